"""Sliding-window pieces in torch: the Gaussian importance map and padding as tensors, and mirrored
test-time augmentation around a torch network.

Positions, weights and padding come from :mod:`autoseg.inference.window_grid` (torch-free, shared with
the OpenVINO engine), so both engines put the same windows on the same voxels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from autoseg.inference.window_grid import (
    Slicer,
    compute_steps,
    gaussian_weights,
    mirror_axes_combinations,
    patch_padding,
    window_slicers,
)

__all__ = [
    "Slicer", "compute_steps", "gaussian_importance_map", "mirror_axes_combinations", "pad_to_patch",
    "predict_with_mirroring", "window_slicers",
]


def gaussian_importance_map(
    patch_size: Sequence[int],
    sigma_scale: float = 1.0 / 8,
    value_scaling_factor: float = 10.0,
    dtype: torch.dtype = torch.float16,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """:func:`~autoseg.inference.window_grid.gaussian_weights` as a tensor of ``dtype`` on ``device``."""
    weights = torch.from_numpy(gaussian_weights(patch_size, sigma_scale, value_scaling_factor, dtype=np.float64))
    weights = weights.to(device=device, dtype=dtype)
    zero = weights == 0
    if zero.any():
        weights[zero] = weights[~zero].min()
    return weights


def pad_to_patch(image: torch.Tensor, patch_size: Sequence[int]) -> tuple[torch.Tensor, Slicer]:
    """Zero-pad the trailing ``len(patch_size)`` axes of ``image`` to at least ``patch_size``
    (:func:`~autoseg.inference.window_grid.patch_padding`). Returns the padded tensor (``image`` itself when
    no padding is needed) and the slicer that undoes the padding."""
    widths, revert = patch_padding(tuple(image.shape), patch_size)
    if not any(b or a for b, a in widths):
        return image, revert
    pad: list[int] = []
    for b, a in reversed(widths):
        pad += [b, a]
    return torch.nn.functional.pad(image, pad, mode="constant", value=0), revert


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
