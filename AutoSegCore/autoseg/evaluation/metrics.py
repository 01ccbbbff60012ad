"""Overlap metrics of one segmentation against its reference, per label or region (nnU-Net's conventions).

A *label* is one integer value of the label map; a *region* is a tuple of values whose union forms one
mask (region-based training, e.g. BraTS' whole tumour ``(1, 2, 3)``). Voxels carrying the ignore label in
the reference are left out of every count. Dice and IoU are NaN when neither the reference nor the
prediction contains the label/region (``TP + FP + FN == 0``), so such cases drop out of the means.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

LabelOrRegion = int | tuple[int, ...]
#: The per-label metric names nnU-Net writes into ``summary.json`` (in its sorted key order).
METRIC_NAMES = ("Dice", "FN", "FP", "IoU", "TN", "TP", "n_pred", "n_ref")


@dataclass(frozen=True)
class ConfusionCounts:
    """Voxel counts of one label/region: true/false positives/negatives (ignored voxels excluded)."""

    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def n_pred(self) -> int:
        """Voxels predicted as the label/region."""
        return self.tp + self.fp

    @property
    def n_ref(self) -> int:
        """Voxels of the label/region in the reference."""
        return self.tp + self.fn

    @property
    def dice(self) -> float:
        """``2TP / (2TP + FP + FN)``; NaN when reference and prediction are both empty."""
        denominator = 2 * self.tp + self.fp + self.fn
        return math.nan if self.tp + self.fp + self.fn == 0 else 2 * self.tp / denominator

    @property
    def iou(self) -> float:
        """``TP / (TP + FP + FN)`` (Jaccard); NaN when reference and prediction are both empty."""
        union = self.tp + self.fp + self.fn
        return math.nan if union == 0 else self.tp / union

    def as_dict(self) -> dict[str, float | int]:
        """The entry nnU-Net writes for one label/region of one case."""
        return {
            "Dice": self.dice, "FN": self.fn, "FP": self.fp, "IoU": self.iou,
            "TN": self.tn, "TP": self.tp, "n_pred": self.n_pred, "n_ref": self.n_ref,
        }


def region_mask(segmentation: np.ndarray, label_or_region: LabelOrRegion) -> np.ndarray:
    """Boolean mask of the voxels whose value is the label, or any value of the region."""
    if isinstance(label_or_region, (tuple, list)):
        return np.isin(segmentation, np.asarray(label_or_region))
    return segmentation == label_or_region


def confusion_counts(
    reference_mask: np.ndarray, prediction_mask: np.ndarray, ignore_mask: np.ndarray | None = None
) -> ConfusionCounts:
    """Count TP/FP/FN/TN of two boolean masks of the same shape, skipping voxels where ``ignore_mask``."""
    if ignore_mask is not None:
        used = ~ignore_mask
        reference_mask = reference_mask & used
        prediction_mask = prediction_mask & used
        total = int(np.count_nonzero(used))
    else:
        total = int(reference_mask.size)
    tp = int(np.count_nonzero(reference_mask & prediction_mask))
    fp = int(np.count_nonzero(prediction_mask)) - tp
    fn = int(np.count_nonzero(reference_mask)) - tp
    return ConfusionCounts(tp=tp, fp=fp, fn=fn, tn=total - tp - fp - fn)


def segmentation_metrics(
    reference: np.ndarray,
    prediction: np.ndarray,
    labels_or_regions: Sequence[LabelOrRegion],
    ignore_label: int | None = None,
) -> dict[LabelOrRegion, ConfusionCounts]:
    """Confusion counts of every label/region for one case (label maps of the same shape)."""
    if reference.shape != prediction.shape:
        raise ValueError(f"reference shape {reference.shape} != prediction shape {prediction.shape}")
    ignore_mask = reference == ignore_label if ignore_label is not None else None
    return {
        r: confusion_counts(region_mask(reference, r), region_mask(prediction, r), ignore_mask)
        for r in labels_or_regions
    }


def label_or_region_key(label_or_region: LabelOrRegion) -> str:
    """The ``summary.json`` key: ``"2"`` for a label, ``"(1, 2, 3)"`` / ``"(1,)"`` for a region."""
    if isinstance(label_or_region, (tuple, list)):
        return str(tuple(int(v) for v in label_or_region))
    return str(int(label_or_region))


def parse_label_or_region_key(key: str) -> LabelOrRegion:
    """Inverse of :func:`label_or_region_key`."""
    text = key.strip()
    if text.startswith("("):
        return tuple(int(v) for v in text.strip("()").split(",") if v.strip())
    return int(text)


def evaluated_labels_or_regions(label_dict: Mapping[str, Any]) -> list[LabelOrRegion]:
    """What nnU-Net evaluates for a ``dataset.json`` ``labels`` dict.

    Without regions: the sorted foreground label values. With regions (some entry lists more than one
    value): every entry except background and ignore, in file order, lists as tuples (``[1]`` stays the
    region ``(1,)``) and plain values as ints.
    """
    entries = {name: value for name, value in label_dict.items() if name != "ignore"}
    has_regions = any(isinstance(v, (list, tuple)) and len(v) > 1 for v in entries.values())
    if not has_regions:
        values: set[int] = set()
        for value in entries.values():
            values.update(int(v) for v in (value if isinstance(value, (list, tuple)) else (value,)))
        return sorted(v for v in values if v != 0)
    regions: list[LabelOrRegion] = []
    for value in entries.values():
        if isinstance(value, (list, tuple)):
            if {int(v) for v in value} != {0}:
                regions.append(tuple(int(v) for v in value))
        elif int(value) != 0:
            regions.append(int(value))
    return regions


def label_or_region_names(label_dict: Mapping[str, Any]) -> dict[LabelOrRegion, str]:
    """Display names of the evaluated labels/regions (the ``dataset.json`` names)."""
    names: dict[LabelOrRegion, str] = {}
    evaluated = evaluated_labels_or_regions(label_dict)
    for name, value in label_dict.items():
        if name == "ignore":
            continue
        values = tuple(int(v) for v in value) if isinstance(value, (list, tuple)) else (int(value),)
        for candidate in (values, values[0] if len(values) == 1 else None):
            if candidate in evaluated and candidate not in names:
                names[candidate] = str(name)
    return names
