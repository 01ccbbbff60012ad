"""One postprocessing step: keep the largest connected component of some labels or a region.

A step's ``labels_or_regions`` is what nnU-Net passes to
``remove_all_but_largest_component_from_segmentation``: a label (``2``), a region (``(1, 2, 3)``) or a
list of labels and/or regions (``[1, 2]``). Everything it names is merged into one mask; voxels of that
mask outside its largest connected component become ``background_label``. A list and a region with the
same values act identically; the form is kept only so that files round-trip unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Union

import numpy as np

from autoseg.errors import PostprocessingError
from autoseg.postprocessing.connected_components import smaller_components

Region = tuple[int, ...]
LabelOrRegion = Union[int, Region]
StepTarget = Union[int, Region, list[LabelOrRegion]]


@dataclass(frozen=True, eq=False)
class PostprocessingStep:
    """Keep only the largest connected component of ``labels_or_regions`` (treated as one mask)."""

    labels_or_regions: StepTarget
    background_label: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels_or_regions", normalize_target(self.labels_or_regions))
        object.__setattr__(self, "background_label", _as_int(self.background_label, "background_label"))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PostprocessingStep):
            return NotImplemented
        return (_form(self.labels_or_regions) == _form(other.labels_or_regions)
                and self.background_label == other.background_label)

    def __hash__(self) -> int:
        return hash((_form(self.labels_or_regions), self.background_label))

    @property
    def values(self) -> tuple[int, ...]:
        """Every label value the step's mask is made of, sorted."""
        target = self.labels_or_regions
        items = target if isinstance(target, list) else [target]
        return tuple(sorted({v for item in items for v in (item if isinstance(item, tuple) else (item,))}))

    def describe(self) -> str:
        """``"labels [1, 2]"``, ``"label 2"`` or ``"region (1, 2, 3)"`` (for messages and tables)."""
        target = self.labels_or_regions
        if isinstance(target, list):
            return "labels " + "[" + ", ".join(str(t) for t in target) + "]"
        return f"region {target}" if isinstance(target, tuple) else f"label {target}"

    def apply(self, segmentation: np.ndarray) -> np.ndarray:
        """A copy of ``segmentation`` with the step applied (the input is not modified)."""
        result = np.array(segmentation, copy=True)
        smaller = smaller_components(values_mask(segmentation, self.values))
        if smaller is not None:
            result[smaller.box][smaller.removed] = self.background_label
        return result


def values_mask(segmentation: np.ndarray, values: Sequence[int]) -> np.ndarray:
    """Where ``segmentation`` holds any of ``values`` (comparisons for a few values beat ``np.isin``)."""
    if len(values) > 8:
        return np.isin(segmentation, np.asarray(values))
    mask = segmentation == values[0]
    for value in values[1:]:
        mask |= segmentation == value
    return mask


def apply_steps(segmentation: np.ndarray, steps: Sequence[PostprocessingStep]) -> np.ndarray:
    """Apply ``steps`` in order (a copy is returned even when there are none)."""
    result = np.array(segmentation, copy=True)
    for step in steps:
        result = step.apply(result)
    return result


def normalize_target(value: Any) -> StepTarget:
    """Validate a ``labels_or_regions`` value: int, tuple of ints, or list of ints and tuples.

    numpy integers become ints; a list nested in a list (JSON's form of a region) becomes a tuple.
    """
    if isinstance(value, list):
        if not value:
            raise PostprocessingError("A postprocessing step needs at least one label or region, got [].")
        return [_region(v) if isinstance(v, (tuple, list)) else _as_int(v, "label") for v in value]
    if isinstance(value, tuple):
        return _region(value)
    return _as_int(value, "label")


def _region(value: Iterable[Any]) -> Region:
    region = tuple(_as_int(v, "region value") for v in value)
    if not region:
        raise PostprocessingError("A region in a postprocessing step must list at least one label, got ().")
    return region


def _as_int(value: Any, what: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise PostprocessingError(
            f"A postprocessing step's {what} must be an integer label value, got {value!r} "
            f"({type(value).__name__})."
        )
    return int(value)


def _form(target: StepTarget) -> Any:
    """A hashable form that still tells a list from a region."""
    return ("list", tuple(target)) if isinstance(target, list) else target


def remove_all_but_largest_component_from_segmentation(
    segmentation: np.ndarray, labels_or_regions: StepTarget, background_label: int = 0
) -> np.ndarray:
    """nnU-Net's function of this name, AutoSeg's implementation (what ``postprocessing.pkl`` files
    written by nnU-Net are mapped to when read)."""
    return PostprocessingStep(labels_or_regions, background_label).apply(segmentation)
