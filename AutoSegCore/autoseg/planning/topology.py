"""U-Net topology from spacing and patch size: pooling per axis, kernel sizes, divisibility.

Reproduces nnU-Net v2's rule: pool an axis while its feature map stays at least twice the minimum
edge length and its spacing is within 2x of the finest valid axis; use 3-wide kernels on an axis once
its spacing is within 2x of the finest axis (1-wide before, which handles anisotropic data).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: "no limit" on the number of poolings per axis, as nnU-Net's planner passes it.
UNLIMITED_POOLING = 999999


@dataclass(frozen=True)
class Topology:
    """The network layout derived for one patch size."""

    num_pool_per_axis: tuple[int, ...]
    strides: tuple[tuple[int, ...], ...]  # per stage, first stage is all ones
    kernel_sizes: tuple[tuple[int, ...], ...]  # per stage, bottleneck last
    patch_size: tuple[int, ...]  # padded up to a multiple of must_be_divisible_by
    must_be_divisible_by: tuple[int, ...]

    @property
    def num_stages(self) -> int:
        return len(self.strides)


def pad_to_multiple(shape: Sequence[float], divisor: Sequence[int]) -> tuple[int, ...]:
    """Round every axis of ``shape`` up to the next multiple of ``divisor`` (unchanged if already one)."""
    return tuple(int(math.ceil(s / d) * d) for s, d in zip(shape, divisor))


def network_topology(
    spacing: Sequence[float] | np.ndarray,
    patch_size: Sequence[int],
    min_feature_map_edge: int = 4,
    max_num_pool: int = UNLIMITED_POOLING,
) -> Topology:
    """Derive strides, kernel sizes and the padded patch size for a U-Net on this spacing and patch."""
    dim = len(spacing)
    current_spacing = [float(s) for s in spacing]
    current_size = [float(s) for s in patch_size]
    strides: list[tuple[int, ...]] = [(1,) * dim]
    kernels: list[tuple[int, ...]] = []
    num_pool = [0] * dim
    kernel = [1] * dim
    while True:
        valid = [i for i in range(dim) if current_size[i] >= 2 * min_feature_map_edge]
        if not valid:
            break
        finest = min(current_spacing[i] for i in valid)
        valid = [i for i in valid if current_spacing[i] / finest < 2 and num_pool[i] < max_num_pool]
        if len(valid) == 1 and current_size[valid[0]] < 3 * min_feature_map_edge:
            break
        if not valid:
            break
        finest_overall = min(current_spacing)
        kernel = [3 if k == 3 or current_spacing[d] / finest_overall < 2 else 1 for d, k in enumerate(kernel)]
        stride = [1] * dim
        for axis in valid:
            stride[axis] = 2
            num_pool[axis] += 1
            current_spacing[axis] *= 2
            current_size[axis] = math.ceil(current_size[axis] / 2)
        strides.append(tuple(stride))
        kernels.append(tuple(kernel))
    kernels.append((3,) * dim)
    divisible_by = tuple(2**n for n in num_pool)
    return Topology(
        num_pool_per_axis=tuple(num_pool),
        strides=tuple(strides),
        kernel_sizes=tuple(kernels),
        patch_size=pad_to_multiple(patch_size, divisible_by),
        must_be_divisible_by=divisible_by,
    )
