"""Spatial augmentation settings of nnU-Net v2's default trainer, derived from the patch size.

Rotation range, "dummy 2D" augmentation of anisotropic 3D patches, mirror axes, and the enlarged initial
patch the data loader crops so that rotating and scaling still find image content at the patch border.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

#: a 3D patch whose longest axis exceeds ``DUMMY_2D_ANISOTROPY * patch[0]`` is augmented in-plane only
DUMMY_2D_ANISOTROPY = 3.0
#: scaling range of the spatial transform (synchronised across axes)
SCALING_RANGE = (0.7, 1.4)
#: scaling range nnU-Net uses to size the initial patch (narrower than ``SCALING_RANGE``; kept from v1)
INITIAL_PATCH_SCALING = (0.85, 1.25)
#: an elongated 2D patch (max/min above this) is rotated by at most 15 degrees instead of 180
ELONGATED_2D_PATCH = 1.5


def _degrees(value: float) -> float:
    """Degrees to radians, evaluated in the same order as nnU-Net so the ranges are bit-identical."""
    return value / 360 * 2.0 * math.pi


@dataclass(frozen=True)
class SpatialAugmentationParams:
    """What the spatial transform and the data loader need; ``mirror_axes`` is also the inference TTA axes."""

    #: rotation range in radians, sampled independently per rotated axis (all 3 in 3D, in-plane otherwise)
    rotation: tuple[float, float]
    scaling: tuple[float, float]
    do_dummy_2d: bool
    initial_patch_size: tuple[int, ...]
    mirror_axes: tuple[int, ...] | None


def _rotation_matrix(dim: int, axis: int, angle: float) -> np.ndarray:
    """Rotation by ``angle`` about ``axis`` (3D) or in the plane (2D), applied to row vectors (v @ R)."""
    c, s = math.cos(angle), math.sin(angle)
    if dim == 2:
        return np.array([[c, -s], [s, c]])
    plane = [i for i in range(3) if i != axis]
    if axis == 1:
        plane.reverse()  # right-handed orientation for the y axis
    matrix = np.identity(3)
    (a, b) = plane
    matrix[a, a], matrix[a, b], matrix[b, a], matrix[b, b] = c, -s, s, c
    return matrix


def initial_patch_size(
    patch_size: Sequence[int],
    rotation: tuple[float, float],
    scaling: tuple[float, float] = INITIAL_PATCH_SCALING,
) -> tuple[int, ...]:
    """The patch enlarged for rotation and scaling (nnU-Net's rule).

    The patch-size vector is rotated by the largest rotation (capped at 90 degrees) about each axis in
    turn, the per-axis maximum of its absolute components and the patch is taken, divided by the smallest
    scale and truncated to integers.
    """
    size = np.asarray(patch_size, dtype=float)
    dim = len(size)
    if dim not in (2, 3):
        raise ValueError(f"patch size must be 2D or 3D, got {list(patch_size)}")
    angle = min(max(abs(r) for r in rotation), _degrees(90))
    extent = size.copy()
    for axis in range(3 if dim == 3 else 1):
        extent = np.maximum(extent, np.abs(np.dot(size, _rotation_matrix(dim, axis, angle))))
    extent /= min(scaling)
    return tuple(int(v) for v in extent)


def configure_spatial_augmentation(
    patch_size: Sequence[int], mirror_axes: tuple[int, ...] | None | Literal["default"] = "default"
) -> SpatialAugmentationParams:
    """nnU-Net's rotation / dummy-2D / mirroring / initial-patch rules for a 2D or 3D ``patch_size``.

    ``mirror_axes``: ``"default"`` mirrors every axis; ``None`` disables mirroring
    (``nnUNetTrainerNoMirroring``); a tuple restricts it (``nnUNetTrainer_onlyMirror01``: ``(0, 1)`` in
    3D, ``(0,)`` in 2D). The result is also the checkpoint's ``inference_allowed_mirroring_axes``.
    """
    patch = [int(p) for p in patch_size]
    dim = len(patch)
    if dim == 2:
        do_dummy_2d = False
        limit = 15 if max(patch) / min(patch) > ELONGATED_2D_PATCH else 180
    elif dim == 3:
        do_dummy_2d = max(patch) / patch[0] > DUMMY_2D_ANISOTROPY
        limit = 180 if do_dummy_2d else 30
    else:
        raise ValueError(f"patch size must be 2D or 3D, got {patch}")
    rotation = (-_degrees(limit), _degrees(limit))

    initial = list(initial_patch_size(patch, rotation))
    if do_dummy_2d:
        initial[0] = patch[0]

    if mirror_axes == "default":
        mirror_axes = tuple(range(dim))
    elif mirror_axes is not None:
        mirror_axes = tuple(int(a) for a in mirror_axes)
        if any(not 0 <= a < dim for a in mirror_axes):
            raise ValueError(f"mirror axes {mirror_axes} do not fit a {dim}D patch")
    return SpatialAugmentationParams(rotation, SCALING_RANGE, do_dummy_2d, tuple(initial), mirror_axes)
