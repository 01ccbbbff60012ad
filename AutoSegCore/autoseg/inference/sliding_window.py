"""Sliding-window building blocks as pure functions: window positions, Gaussian importance map,
padding to the patch size and mirrored test-time augmentation.

The positions, Gaussian and padding reproduce nnU-Net v2 exactly, so windows land on the same voxels
and are weighted the same way; only the aggregation precision differs (float32 here, more exact than
nnU-Net's float16).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np
import torch
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


def gaussian_importance_map(
    patch_size: Sequence[int],
    sigma_scale: float = 1.0 / 8,
    value_scaling_factor: float = 10.0,
    dtype: torch.dtype = torch.float16,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Gaussian window weights (σ = patch × ``sigma_scale``), peak ``value_scaling_factor``.

    Computed in float64 and cast to ``dtype`` (nnU-Net uses float16, whose rounding we keep by default
    so that weights are identical); zeros left by the cast are replaced by the smallest nonzero weight.
    """
    weights = torch.from_numpy(_gaussian_numpy(tuple(int(p) for p in patch_size), sigma_scale, value_scaling_factor))
    weights = weights.to(device=device, dtype=dtype)
    zero = weights == 0
    if zero.any():
        weights[zero] = weights[~zero].min()
    return weights


def pad_to_patch(image: torch.Tensor, patch_size: Sequence[int]) -> tuple[torch.Tensor, Slicer]:
    """Zero-pad the trailing ``len(patch_size)`` axes of ``image`` to at least ``patch_size``.

    Padding is split evenly (the extra voxel of an odd difference goes after). Returns the padded
    tensor (``image`` itself when no padding is needed) and the slicer that undoes the padding.
    """
    spatial = image.shape[image.ndim - len(patch_size):]
    lead = image.ndim - len(patch_size)
    before = [max(0, int(p) - s) // 2 for s, p in zip(spatial, patch_size)]
    after = [max(0, int(p) - s) - b for s, p, b in zip(spatial, patch_size, before)]
    revert: Slicer = (*(slice(None),) * lead, *(slice(b, b + s) for b, s in zip(before, spatial)))
    if not any(before) and not any(after):
        return image, revert
    pad: list[int] = []
    for b, a in zip(reversed(before), reversed(after)):
        pad += [b, a]
    return torch.nn.functional.pad(image, pad, mode="constant", value=0), revert


def mirror_axes_combinations(mirror_axes: Sequence[int] | None) -> list[tuple[int, ...]]:
    """All non-empty flip combinations of ``mirror_axes`` (spatial axes, 0-based), as tensor dims of a
    (b, c, ...) batch, in nnU-Net's order; the unflipped prediction is not included."""
    if not mirror_axes:
        return []
    dims = [int(a) + 2 for a in mirror_axes]
    return [c for k in range(1, len(dims) + 1) for c in itertools.combinations(dims, k)]


def predict_with_mirroring(
    network: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, mirror_axes: Sequence[int] | None,
    batch_mirrors: bool = False, map_copies: Callable[[list[torch.Tensor]], list[torch.Tensor]] | None = None,
) -> torch.Tensor:
    """Mean of the network's predictions over ``x`` and all its mirrored copies (each flipped back).

    ``batch_mirrors`` runs all copies as one batch (faster on GPUs for small windows); ``map_copies``
    evaluates the list of copies itself (e.g. in parallel threads) and returns the outputs in order. The
    outputs are summed in the same order either way, so only ``batch_mirrors`` can change the last bits.
    """
    combinations = mirror_axes_combinations(mirror_axes)
    if mirror_axes and max(mirror_axes) > x.ndim - 3:
        raise ValueError(f"mirror axes {tuple(mirror_axes)} do not fit a {x.ndim - 2}D input")
    if not combinations:
        return network(x)
    if batch_mirrors or map_copies is not None:
        copies = [x, *(torch.flip(x, dims) for dims in combinations)]
        if batch_mirrors:
            n = x.shape[0]
            out = network(torch.cat(copies))
            outputs = [out[i * n:(i + 1) * n] for i in range(len(copies))]
        else:
            assert map_copies is not None  # not batch_mirrors: map_copies was given
            outputs = map_copies(copies)
        prediction = outputs[0].clone()
        for output, dims in zip(outputs[1:], combinations):
            prediction += torch.flip(output, dims)
    else:  # one copy at a time: only one output is held in memory
        prediction = network(x)
        for dims in combinations:
            prediction += torch.flip(network(torch.flip(x, dims)), dims)
    prediction /= len(combinations) + 1
    return prediction
