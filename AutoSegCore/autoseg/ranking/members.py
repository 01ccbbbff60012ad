"""Predict one case once per ensemble member, reusing the predictor's preprocessing, sliding window and export.

The members are the model's folds (each with the usual mirroring TTA). With a single fold and TTA, they are
the mirrored copies instead: the whole preprocessed image flipped along each combination of the model's
mirror axes (the flips of the TTA), predicted without further mirroring and flipped back. Every member's
probabilities come back on the input's voxel grid, one member at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from autoseg.inference.export import export_logits
from autoseg.inference.model_folder import ModelFolder
from autoseg.inference.predictor import Predictor
from autoseg.inference.window_grid import mirror_axes_combinations
from autoseg.typing import ProgressCallback


@dataclass(frozen=True)
class MemberPlan:
    """Which members to predict: ``kind`` names them in reasons (``folds``, ``mirrored copies``, ``single
    prediction``); ``predictor_mirroring`` is the predictor's own TTA; ``mirror_axes`` the whole-image flips
    (spatial axes; empty: no flipped copies)."""

    kind: str
    predictor_mirroring: bool
    mirror_axes: tuple[int, ...] = ()

    @property
    def copies(self) -> int:
        """Predictions per fold: 1, or the unflipped image plus every flip combination."""
        return 1 + len(mirror_axes_combinations(self.mirror_axes))


def plan_members(model: ModelFolder, tta: bool) -> MemberPlan:
    """Folds when there are several; else the mirrored copies when TTA is on and the model allows mirroring."""
    if len(model.folds) > 1:
        return MemberPlan("folds", predictor_mirroring=tta)
    if tta and model.mirror_axes:
        return MemberPlan("mirrored copies", predictor_mirroring=False, mirror_axes=tuple(model.mirror_axes))
    return MemberPlan("single prediction", predictor_mirroring=tta)


def _flip_dims(plan: MemberPlan, network_input: np.ndarray, patch_dims: int) -> list[tuple[int, ...]]:
    """Tensor dims of the (c, ...) network input for each copy; ``()`` is the unflipped image."""
    offset = network_input.ndim - patch_dims  # 1 for 3D patches, 2 for 2D patches on (c, z, y, x)
    return [(), *(tuple(d - 2 + offset for d in dims) for dims in mirror_axes_combinations(plan.mirror_axes))]


def member_probabilities(predictor: Predictor, plan: MemberPlan, data: np.ndarray, properties: dict[str, Any],
                         progress: ProgressCallback | None = None, source: str = "input") -> Iterator[np.ndarray]:
    """Raw image (c, z, y, x) + reader properties -> each member's (c, z, y, x) float32 probabilities on the
    input's grid. ``progress(done, total)`` counts the windows of all members."""
    predictor.check_input(data, source)
    network_input, preprocessed = predictor.preprocess(data, properties)
    model = predictor.model
    flips = _flip_dims(plan, network_input, len(predictor.configuration.patch_size))
    for copy, dims in enumerate(flips):
        def member_progress(done: int, total: int, copy: int = copy) -> None:
            if progress:
                progress(copy * total + done, len(flips) * total)

        flipped = np.ascontiguousarray(np.flip(network_input, dims)) if dims else network_input
        for logits in predictor.iter_fold_logits(flipped, member_progress):
            if dims:
                logits = np.flip(logits, dims)
            _, probabilities = export_logits(
                logits, model.plans, predictor.configuration, model.dataset_json, preprocessed,
                return_probabilities=True, num_threads=predictor.engine.num_threads,
            )
            assert probabilities is not None
            yield probabilities
