"""Architecture plans for the network tests: topologies from real nnU-Net plans, small feature counts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from autoseg.plans.model import PLAIN_UNET_CLASS, RESENC_UNET_CLASS, ArchitecturePlan

#: n_blocks_per_stage of nnU-Net's ResEnc presets (the planner truncates to n_stages).
RESENC_BLOCKS = (1, 3, 4, 6, 6, 6, 6, 6)


def architecture(
    residual: bool,
    features: list[int],
    kernel_sizes: list[list[int]],
    strides: list[list[int]],
    *,
    norm: str = "instancenorm.InstanceNorm",
    dropout: float | None = None,
    nonlin: str = "torch.nn.LeakyReLU",
    nonlin_kwargs: dict[str, Any] | None = None,
    conv_bias: bool = True,
    **extra: Any,
) -> ArchitecturePlan:
    """An ``architecture`` entry as nnU-Net's planners write it (defaults: theirs)."""
    n, dim = len(features), len(kernel_sizes[0])
    kwargs: dict[str, Any] = {
        "n_stages": n,
        "features_per_stage": features,
        "conv_op": f"torch.nn.modules.conv.Conv{dim}d",
        "kernel_sizes": kernel_sizes,
        "strides": strides,
        **({"n_blocks_per_stage": list(RESENC_BLOCKS[:n])} if residual else {"n_conv_per_stage": [2] * n}),
        "n_conv_per_stage_decoder": [1 if residual else 2] * (n - 1),
        "conv_bias": conv_bias,
        "norm_op": f"torch.nn.modules.{norm}{dim}d",
        "norm_op_kwargs": {"eps": 1e-05, "affine": True},
        "dropout_op": None if dropout is None else f"torch.nn.modules.dropout.Dropout{dim}d",
        "dropout_op_kwargs": None if dropout is None else {"p": dropout},
        "nonlin": nonlin,
        "nonlin_kwargs": {"inplace": True} if nonlin_kwargs is None else nonlin_kwargs,
        **extra,
    }
    return ArchitecturePlan(RESENC_UNET_CLASS if residual else PLAIN_UNET_CLASS, kwargs)


@dataclass(frozen=True)
class Topology:
    """One configuration of a real nnU-Net plans file (nnU-Net 2.8.1 on our test datasets)."""

    name: str
    patch_size: tuple[int, ...]
    features: list[int]
    kernel_sizes: list[list[int]]
    strides: list[list[int]]
    #: A small input whose sizes the strides divide, for forward passes.
    small_input: tuple[int, ...] = field(default=())

    def small_features(self) -> list[int]:
        return [min(2 * 2**i, 8) for i in range(len(self.features))]


K3, K2 = [3, 3, 3], [3, 3]
TOPOLOGIES = [
    Topology("Hippocampus_2d", (56, 40), [32, 64, 128, 256], [K2] * 4,
             [[1, 1], [2, 2], [2, 2], [2, 2]], (16, 24)),
    Topology("PNG2D_2d", (112, 128), [32, 64, 128, 256, 512], [K2] * 5,
             [[1, 1], [2, 2], [2, 2], [2, 2], [2, 2]], (32, 16)),
    Topology("BraTS_2d", (256, 256), [32, 64, 128, 256, 512, 512, 512], [K2] * 7,
             [[1, 1]] + [[2, 2]] * 6, (128, 64)),
    Topology("Oblique_3d_fullres", (12, 56, 48), [32, 64, 128, 256], [[1, 3, 3], [1, 3, 3], K3, K3],
             [[1, 1, 1], [1, 2, 2], [1, 2, 2], [2, 2, 2]], (4, 16, 8)),
    Topology("Tiff3D_3d_fullres", (14, 40, 40), [32, 64, 128, 256], [K3] * 4,
             [[1, 1, 1], [2, 2, 2], [1, 2, 2], [1, 2, 2]], (4, 8, 16)),
    Topology("CTTotal_3d_fullres", (28, 224, 224), [32, 64, 128, 256, 320, 320], [K3] * 6,
             [[1, 1, 1], [2, 2, 2], [2, 2, 2], [1, 2, 2], [1, 2, 2], [1, 2, 2]], (8, 64, 32)),
    Topology("BraTS_3d_fullres", (96, 160, 160), [32, 64, 128, 256, 320, 320], [K3] * 6,
             [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2], [1, 2, 2]], (16, 32, 32)),
]
TOPOLOGY_BY_NAME = {t.name: t for t in TOPOLOGIES}


def small_architecture(topology_name: str, residual: bool, **options: Any) -> ArchitecturePlan:
    """The topology's kernels and strides with tiny feature counts, for fast forward passes."""
    t = TOPOLOGY_BY_NAME[topology_name]
    return architecture(residual, t.small_features(), t.kernel_sizes, t.strides, **options)


def full_architecture(topology: Topology, residual: bool) -> ArchitecturePlan:
    """The configuration as planned (real feature counts)."""
    return architecture(residual, topology.features, topology.kernel_sizes, topology.strides)
