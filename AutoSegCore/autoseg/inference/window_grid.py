"""Where the sliding windows go and how they are weighted, without torch (shared by every engine).

Window positions, the Gaussian importance map, padding to the patch size and the mirrored
test-time-augmentation combinations reproduce nnU-Net v2 exactly, so windows land on the same voxels
and are weighted the same way whichever engine evaluates the network.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from scipy.ndimage import gaussian_filter

Slicer = tuple[slice | int, ...]


def compute_steps(image_size: Sequence[int], patch_size: Sequence[int], step_size: float) -> list[list[int]]:
    """Start positions of the windows along every axis.

    The number of windows per axis is ``ceil((size - patch) / (patch * step_size)) + 1``, spread evenly
    from 0 to ``size - patch`` (both ends included, positions rounded). ``image_size`` must be at least
    ``patch_size`` on every axis (pad first).
    """
    if not 0 < step_size <= 1:
        raise ValueError(f"step_size must be in (0, 1], got {step_size}")
    steps = []
    for size, patch in zip(image_size, patch_size):
        if size < patch:
            raise ValueError(f"image size {tuple(image_size)} is smaller than the patch {tuple(patch_size)}")
        count = int(np.ceil((size - patch) / (patch * step_size))) + 1
        stride = (size - patch) / (count - 1) if count > 1 else 0.0
        steps.append([int(np.round(stride * i)) for i in range(count)])
    return steps


def window_slicers(image_size: Sequence[int], patch_size: Sequence[int], step_size: float) -> list[Slicer]:
    """Index tuples into a (c, *image_size) array, one per window, in nnU-Net's order.

    A 2D patch on a 3D image (2d configurations) slides over every slice of the first axis: those
    slicers hold the slice index as an int, so ``array[slicer]`` drops that axis.
    """
    patch_size = tuple(int(p) for p in patch_size)
    if len(patch_size) == len(image_size) - 1:
        steps = compute_steps(image_size[1:], patch_size, step_size)
        return [
            (slice(None), d, *(slice(s, s + p) for s, p in zip(start, patch_size)))
            for d in range(image_size[0])
            for start in itertools.product(*steps)
        ]
    if len(patch_size) != len(image_size):
        raise ValueError(f"patch {patch_size} does not fit image of size {tuple(image_size)}")
    steps = compute_steps(image_size, patch_size, step_size)
    return [(slice(None), *(slice(s, s + p) for s, p in zip(start, patch_size))) for start in itertools.product(*steps)]


@lru_cache(maxsize=8)
def _gaussian_numpy(patch_size: tuple[int, ...], sigma_scale: float, value_scaling_factor: float) -> np.ndarray:
    impulse = np.zeros(patch_size)
    impulse[tuple(p // 2 for p in patch_size)] = 1
    gaussian = gaussian_filter(impulse, [p * sigma_scale for p in patch_size], 0, mode="constant", cval=0)
    gaussian /= gaussian.max() / value_scaling_factor
    return gaussian



def gaussian_weights(patch_size: Sequence[int], sigma_scale: float = 1.0 / 8, value_scaling_factor: float = 10.0,
                     dtype: type[np.floating] = np.float16) -> np.ndarray:
    """Gaussian window weights (σ = patch × ``sigma_scale``), peak ``value_scaling_factor``.

    Computed in float64 and cast to ``dtype`` (nnU-Net uses float16, whose rounding we keep by default
    so that weights are identical); zeros left by the cast are replaced by the smallest nonzero weight.
    """
    weights = _gaussian_numpy(tuple(int(p) for p in patch_size), sigma_scale, value_scaling_factor).astype(dtype)
    zero = weights == 0
    if zero.any():
        weights[zero] = weights[~zero].min()
    return weights


def patch_padding(shape: Sequence[int], patch_size: Sequence[int]) -> tuple[list[tuple[int, int]], Slicer]:
    """Zero padding (before, after) per axis of a ``shape`` array whose trailing ``len(patch_size)`` axes must
    reach ``patch_size``, and the slicer that undoes it.

    Padding is split evenly (the extra voxel of an odd difference goes after); leading axes are not padded.
    """
    lead = len(shape) - len(patch_size)
    spatial = shape[lead:]
    before = [max(0, int(p) - s) // 2 for s, p in zip(spatial, patch_size)]
    after = [max(0, int(p) - s) - b for s, p, b in zip(spatial, patch_size, before)]
    revert: Slicer = (*(slice(None),) * lead, *(slice(b, b + s) for b, s in zip(before, spatial)))
    return [(0, 0)] * lead + list(zip(before, after)), revert


def pad_array_to_patch(image: np.ndarray, patch_size: Sequence[int]) -> tuple[np.ndarray, Slicer]:
    """numpy version of :func:`autoseg.inference.sliding_window.pad_to_patch` (same padding)."""
    widths, revert = patch_padding(image.shape, patch_size)
    if not any(b or a for b, a in widths):
        return image, revert
    return np.pad(image, widths, mode="constant", constant_values=0), revert


def mirror_axes_combinations(mirror_axes: Sequence[int] | None) -> list[tuple[int, ...]]:
    """All non-empty flip combinations of ``mirror_axes`` (spatial axes, 0-based), as array axes of a
    (b, c, ...) batch, in nnU-Net's order; the unflipped prediction is not included."""
    if not mirror_axes:
        return []
    dims = [int(a) + 2 for a in mirror_axes]
    return [c for k in range(1, len(dims) + 1) for c in itertools.combinations(dims, k)]
