"""Where training patches come from: nnU-Net's bounding-box choice, foreground oversampling, crop + pad.

All functions are pure; randomness comes from an explicit ``numpy.random.RandomState`` whose draws are
made in the same order as nnU-Net's loader makes them on the global numpy generator, so a seeded
AutoSeg loader chooses exactly the boxes nnU-Net would. Boxes are half-open ``[lb, ub)`` per spatial
axis and may reach outside the case: the outside is padded (data with 0, segmentation with -1).

2D configurations use the 3D code path with a leading patch axis of 1 (``pseudo_3d``): a slice is
chosen like any other axis, i.e. at random, or through the forced foreground voxel.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

ClassKey = int | tuple[int, ...]


@dataclass(frozen=True)
class SamplingLabels:
    """The label facts the sampler needs: every label value (background included) and the ignore label."""

    all_labels: tuple[int, ...]
    has_ignore: bool = False

    @property
    def annotated_key(self) -> tuple[int, ...]:
        """Class-locations key of "any annotated voxel", present when an ignore label exists."""
        return (-1, *self.all_labels)

    @classmethod
    def from_dataset_json(cls, dataset_json) -> SamplingLabels:
        return cls(tuple(int(v) for v in dataset_json.all_labels), dataset_json.ignore_label is not None)


def pseudo_3d(patch_size: Sequence[int]) -> tuple[int, ...]:
    """A 2D patch size as the 3D patch ``(1, y, x)``; a 3D one unchanged."""
    patch = tuple(int(p) for p in patch_size)
    return (1, *patch) if len(patch) == 2 else patch


def oversample_foreground(sample_index: int, batch_size: int, percent: float) -> bool:
    """True for the last ``round(batch_size * percent)`` samples of a batch (nnU-Net's deterministic rule)."""
    return not sample_index < round(batch_size * (1 - percent))


def padding_margin(crop_size: Sequence[int], final_patch_size: Sequence[int]) -> np.ndarray:
    """How far boxes may reach outside the case so that final patches still cover its borders."""
    return (np.asarray(pseudo_3d(crop_size)) - np.asarray(pseudo_3d(final_patch_size))).astype(int)


def eligible_classes(class_locations: Mapping[ClassKey, np.ndarray], labels: SamplingLabels) -> list[ClassKey]:
    """Classes (or regions) with locations; "any annotated voxel" only when nothing else is present."""
    eligible = [k for k, v in class_locations.items() if len(v) > 0]
    if len(eligible) > 1 and labels.annotated_key in eligible:
        eligible.remove(labels.annotated_key)
    return eligible


def choose_bbox(
    data_shape: Sequence[int],
    crop_size: Sequence[int],
    margin: np.ndarray,
    force_fg: bool,
    class_locations: Mapping[ClassKey, np.ndarray] | None,
    labels: SamplingLabels,
    rng: np.random.RandomState,
) -> tuple[list[int], list[int]]:
    """Lower and upper corner of one training box over the spatial ``data_shape``.

    Random boxes range from ``-margin // 2`` to ``shape - crop + ceil(margin / 2)`` per axis (the
    margin grows so that a case smaller than the crop is centred-by-chance inside it). Forced
    foreground boxes are centred on a random location of a random eligible class (the lower corner is
    clamped to the lowest allowed position only, as in nnU-Net). With an ignore label, unforced boxes
    are centred on an annotated voxel so that patches are never fully unannotated.
    """
    dim = len(data_shape)
    crop = [int(c) for c in crop_size]
    pad = [max(int(margin[d]), crop[d] - int(data_shape[d])) for d in range(dim)]
    lbs = [-pad[d] // 2 for d in range(dim)]
    ubs = [int(data_shape[d]) + pad[d] // 2 + pad[d] % 2 - crop[d] for d in range(dim)]

    selected: ClassKey | None = None
    if force_fg or labels.has_ignore:
        if class_locations is None:
            raise ValueError("foreground sampling needs the case's class locations")
        if force_fg:
            eligible = eligible_classes(class_locations, labels)
            selected = eligible[rng.choice(len(eligible))] if eligible else None
        else:
            selected = labels.annotated_key
            if len(class_locations.get(selected, ())) == 0:
                warnings.warn("A training case has no annotated voxels; sampling a random patch.", stacklevel=2)
                selected = None
    if selected is None:
        lower = [int(rng.randint(lbs[d], ubs[d] + 1)) for d in range(dim)]
    else:
        assert class_locations is not None  # ``selected`` only comes from class_locations
        voxels = class_locations[selected]
        voxel = voxels[rng.choice(len(voxels))]
        lower = [max(lbs[d], int(voxel[d + 1]) - crop[d] // 2) for d in range(dim)]
    return lower, [lower[d] + crop[d] for d in range(dim)]


def crop_and_pad(
    array: np.ndarray, lower: Sequence[int], upper: Sequence[int], pad_value: float, dtype: np.dtype | type
) -> np.ndarray:
    """``array[..., lower:upper]`` over the trailing axes, padded with ``pad_value`` outside the array.

    Only the part inside the array is read, so a memory-mapped case costs one patch of I/O.
    """
    lead = array.ndim - len(lower)
    out = np.full((*array.shape[:lead], *(u - lo for lo, u in zip(lower, upper))), pad_value, dtype=dtype)
    src, dst = [slice(None)] * lead, [slice(None)] * lead
    for lo, u, size in zip(lower, upper, array.shape[lead:]):
        a, b = max(lo, 0), min(u, size)
        if b <= a:
            return out
        src.append(slice(a, b))
        dst.append(slice(a - lo, b - lo))
    out[tuple(dst)] = array[tuple(src)]
    return out
