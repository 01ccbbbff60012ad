"""The predictor: preprocess a case with the model's plan, run sliding-window inference over all
folds (logits averaged before softmax), and export to the input's geometry.

The network runs in an *engine* (:mod:`autoseg.inference.engine_choice`): PyTorch, or OpenVINO on the CPU
without PyTorch. Everything around it (preprocessing, windows, Gaussian weighting, mirroring, fold
averaging, cascade input, export) is the same for both. Usable from Python (and Slicer) without files::

    model = open_model_folder("nnUNet_results/Dataset004_Hippocampus/nnUNetTrainer__nnUNetPlans__3d_fullres")
    predictor = Predictor(model, PredictionSettings(device="cpu", use_mirroring=False))
    segmentation, _ = predictor.predict_array(image_zyx, spacing_zyx)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import numpy as np
import psutil

from autoseg.errors import PredictionError
from autoseg.inference.engine_choice import choose_engine
from autoseg.inference.export import export_logits
from autoseg.inference.model_folder import ModelFolder
from autoseg.inference.prediction_settings import PredictionSettings
from autoseg.inference.window_grid import window_slicers
from autoseg.preprocessing.preprocessor import preprocess_case
from autoseg.typing import ProgressCallback

logger = logging.getLogger(__name__)

__all__ = ["NetworkEngine", "PredictionError", "PredictionSettings", "Predictor"]


class NetworkEngine(Protocol):
    """What evaluates the network over a whole case: one fold's sliding-window logits at a time."""

    name: str
    num_threads: int

    @property
    def description(self) -> str: ...

    def fold_logits(self, index: int, data: np.ndarray, tick: Callable[[], None]) -> np.ndarray: ...


def create_engine(model: ModelFolder, settings: PredictionSettings,
                  mirror_axes: tuple[int, ...] | None) -> NetworkEngine:
    """The engine ``settings.engine``/``settings.device`` choose, with every fold's weights checked."""
    choice = choose_engine(settings.engine, settings.device)
    if choice.engine == "openvino":
        from autoseg.inference.openvino_engine import OpenVinoEngine

        return OpenVinoEngine(model, settings, mirror_axes)
    from autoseg.inference.torch_engine import TorchEngine

    return TorchEngine(model, settings, choice.device, mirror_axes)


class Predictor:
    """Sliding-window prediction with a loaded :class:`ModelFolder`."""

    def __init__(self, model: ModelFolder, settings: PredictionSettings | None = None) -> None:
        self.model = model
        self.settings = settings or PredictionSettings()
        self.configuration = model.configuration
        self.mirror_axes = model.mirror_axes if self.settings.use_mirroring else None
        self.engine = create_engine(model, self.settings, self.mirror_axes)
        self.device = self.engine.description

    # ------------------------------------------------------------------ preprocessing
    def check_input(self, data: np.ndarray, source: str = "input") -> None:
        """Channel count and dimensionality against the model; raises :class:`PredictionError`."""
        expected = self.model.dataset_json.num_channels
        if data.shape[0] != expected:
            names = ", ".join(f"{k}: {v}" for k, v in self.model.dataset_json.channel_names.items())
            raise PredictionError(
                f"{source}: the model expects {expected} channel(s) ({names}), got {data.shape[0]}. Provide one "
                f"file per channel named CASE_0000{self.model.dataset_json.file_ending} ... "
                f"CASE_{expected - 1:04d}{self.model.dataset_json.file_ending}."
            )
        if (
            not self.configuration.is_2d
            and data.shape[1] == 1
            and self.model.plans.original_median_shape_after_transp[0] != 1
        ):
            raise PredictionError(
                f"{source} is a 2D image (shape {tuple(data.shape[1:])}) but the model's configuration "
                f"{self.model.configuration_name} is 3D. Use a 2d model or a 3D volume."
            )

    def preprocess(self, data: np.ndarray, properties: dict[str, Any],
                   previous_stage: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Raw (c, z, y, x) image -> network input (plus the previous stage's one-hot for a cascade)."""
        configuration = self.configuration
        cascade = bool(configuration.previous_stage)
        if cascade and previous_stage is None:
            raise PredictionError(
                f"Configuration {self.model.configuration_name} is a cascade stage: give the previous stage's "
                f"predictions with -prev_stage_predictions."
            )
        seg = previous_stage if cascade else None
        data, seg, properties = preprocess_case(data, seg, dict(properties), self.model.plans, configuration,
                                                self.model.dataset_json, sample_locations=False)
        if cascade:
            labels = self.model.dataset_json.foreground_labels
            one_hot = np.stack([seg[0] == label for label in labels]).astype(data.dtype)
            data = np.concatenate([data, one_hot])
        return np.ascontiguousarray(data, dtype=np.float32), properties

    # ------------------------------------------------------------------ sliding window
    def _num_windows(self, shape: tuple[int, ...]) -> int:
        patch = self.configuration.patch_size
        padded = [
            *shape[: len(shape) - len(patch)],
            *(max(s, p) for s, p in zip(shape[len(shape) - len(patch) :], patch)),
        ]
        return len(window_slicers(padded, patch, self.settings.step_size))

    def predict_logits(self, data: np.ndarray, progress: ProgressCallback | None = None) -> np.ndarray:
        """Preprocessed (c, ...) input -> logits averaged over the folds (aggregation dtype)."""
        summed: np.ndarray | None = None
        for logits in self.iter_fold_logits(data, progress):
            if summed is None:
                summed = logits
            else:
                summed += logits
        assert summed is not None
        if len(self.model.folds) > 1:
            summed /= len(self.model.folds)
        return summed

    def iter_fold_logits(self, data: np.ndarray, progress: ProgressCallback | None = None) -> Iterator[np.ndarray]:
        """Preprocessed (c, ...) input -> each fold's logits in turn (fold order of the model), aggregation dtype;
        ``progress`` counts the windows of all folds. For per-fold uncertainty."""
        data = np.ascontiguousarray(data, dtype=np.float32)
        total = self._num_windows(tuple(data.shape[1:])) * len(self.model.folds)
        done = 0

        def tick() -> None:
            nonlocal done
            done += 1
            if progress:
                progress(done, total)

        for index in range(len(self.model.folds)):
            yield self.engine.fold_logits(index, data, tick)

    # ------------------------------------------------------------------ whole cases
    def predict_case(
        self,
        data: np.ndarray,
        properties: dict[str, Any],
        previous_stage: np.ndarray | None = None,
        return_probabilities: bool = False,
        progress: ProgressCallback | None = None,
        source: str = "input",
    ) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
        """Raw image (c, z, y, x) + reader properties -> (segmentation (z, y, x), probabilities, properties)."""
        self.check_input(data, source)
        network_input, properties = self.preprocess(data, properties, previous_stage)
        self._warn_if_memory_is_short(tuple(network_input.shape[1:]), properties, return_probabilities, source)
        logits = self.predict_logits(network_input, progress)
        del network_input
        segmentation, probabilities = export_logits(
            logits, self.model.plans, self.configuration, self.model.dataset_json, properties,
            return_probabilities=return_probabilities, num_threads=self.engine.num_threads,
        )
        return segmentation, probabilities, properties

    def estimated_peak_bytes(self, preprocessed_shape: tuple[int, ...], properties: dict[str, Any],
                             return_probabilities: bool) -> int:
        """Rough peak RAM of one case: aggregated logits (float16, two copies with several folds) plus the
        export (two float32 volumes of the cropped image, or all classes when probabilities are written)."""
        classes = self.model.num_output_channels
        logits = 2 * classes * math.prod(preprocessed_shape) * (2 if len(self.model.folds) > 1 else 1)
        cropped = math.prod(properties["shape_after_cropping_and_before_resampling"])
        export = 4 * cropped * (2 * classes + 1 if return_probabilities else 3)
        return logits + export

    def _warn_if_memory_is_short(self, shape: tuple[int, ...], properties: dict[str, Any], return_probabilities: bool,
                                 source: str) -> None:
        needed = self.estimated_peak_bytes(shape, properties, return_probabilities)
        available = psutil.virtual_memory().available
        if needed > 0.8 * available:
            logger.warning(
                "%s needs about %.1f GB of RAM to predict%s, %.1f GB are free: close other programs%s.",
                source, needed / 1e9, " and save probabilities" if return_probabilities else "", available / 1e9,
                " or drop --save_probabilities" if return_probabilities else "",
            )

    def predict_array(
        self,
        image: np.ndarray,
        spacing: tuple[float, ...] | list[float],
        return_probabilities: bool = False,
        progress: ProgressCallback | None = None,
        previous_stage: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Predict an in-memory image: ``image`` is (z, y, x) or (c, z, y, x) in array order and ``spacing``
        (sz, sy, sx). Returns the (z, y, x) segmentation and optional (c, z, y, x) probabilities; origin and
        direction are the caller's to keep (the result is on the input's voxel grid)."""
        data = np.asarray(image, dtype=np.float32)
        if data.ndim == 3:
            data = data[None]
        if data.ndim != 4 or len(spacing) != 3:
            raise PredictionError(
                f"predict_array wants (c, z, y, x) data and 3 spacings, got {data.shape} and {spacing}."
            )
        properties = {"spacing": [float(s) for s in spacing]}
        previous = None if previous_stage is None else np.asarray(previous_stage)
        if previous is not None and previous.ndim == 3:
            previous = previous[None]
        segmentation, probabilities, _ = self.predict_case(data, properties, previous, return_probabilities, progress)
        return segmentation, probabilities
