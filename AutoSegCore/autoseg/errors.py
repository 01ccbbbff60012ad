"""The AutoSeg exception hierarchy.

Every error a user can cause is an ``AutoSegError`` whose message says what went wrong, where,
what was expected, what was found and how to fix it. The CLI prints the message and exits 1.
"""


class AutoSegError(Exception):
    """Base class of every error caused by user input or the environment."""


class WorkspaceError(AutoSegError):
    """nnUNet_raw / nnUNet_preprocessed / nnUNet_results are missing or misconfigured."""


class DatasetError(AutoSegError):
    """A raw dataset (dataset.json, files, labels) is missing or malformed."""


class ImageIOError(AutoSegError):
    """An image file cannot be read or written."""


class PlanError(AutoSegError):
    """A plans file is missing, malformed or does not contain the requested configuration."""


class PreprocessingError(AutoSegError):
    """Preprocessing could not complete."""


class DeviceError(AutoSegError):
    """The requested compute device does not exist or is not usable."""


class ModelFolderError(AutoSegError):
    """A results/model folder does not have the expected layout."""


class EvaluationError(AutoSegError):
    """Predictions cannot be evaluated against their references (missing files, mismatched shapes)."""


class UnsafeFileError(AutoSegError):
    """A file from a model folder or zip refers to code it never needs (it was not loaded)."""


class PostprocessingError(AutoSegError):
    """Postprocessing cannot be determined, read or applied."""


class EnsembleError(AutoSegError):
    """Predictions cannot be ensembled (missing probabilities, mismatched folders)."""


class ModelSharingError(AutoSegError):
    """A model zip cannot be written or installed (missing folds, unsafe or oversized content)."""


class VisualizationError(AutoSegError):
    """An overlay picture cannot be made (mismatched image/segmentation, no data to plot)."""


class PredictionError(AutoSegError):
    """The input does not fit the model (channels, dimensionality), the weights do not fit the plans, or
    prediction failed."""
