"""Connected-component postprocessing, compatible with nnU-Net v2's ``postprocessing.pkl``.

* :mod:`connected_components` keeps the largest connected component of a mask (fast, bounding-box cropped).
* :mod:`steps` is one step (labels or a region merged into one mask) and applies steps to a segmentation.
* :mod:`determine` chooses steps on cross-validation predictions with nnU-Net's acceptance rule.
* :mod:`apply` postprocesses a folder; :mod:`files` reads and writes ``postprocessing.json``/``.pkl``.
"""

from autoseg.postprocessing.apply import apply_postprocessing_to_folder
from autoseg.postprocessing.connected_components import largest_component, smaller_components
from autoseg.postprocessing.determine import (
    CandidateResult,
    PostprocessingResult,
    determine_postprocessing,
    format_postprocessing_table,
)
from autoseg.postprocessing.files import load_postprocessing, save_postprocessing
from autoseg.postprocessing.steps import PostprocessingStep, apply_steps

__all__ = [
    "CandidateResult",
    "PostprocessingResult",
    "PostprocessingStep",
    "apply_postprocessing_to_folder",
    "apply_steps",
    "determine_postprocessing",
    "format_postprocessing_table",
    "largest_component",
    "load_postprocessing",
    "save_postprocessing",
    "smaller_components",
]
