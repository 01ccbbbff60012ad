"""The two U-Net encoders: strided plain convolutions, or a stem followed by residual blocks.

Both return the output of every stage (the skips, bottleneck last) and describe themselves
(``ops``, ``output_channels``, ``strides``, ``kernel_sizes``) so that the decoder can mirror them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from autoseg.network.blocks import (
    IntOrSeq,
    LayerOps,
    StackedConvBlocks,
    StackedResidualBlocks,
    per_axis,
    per_stage,
)

#: Kernel sizes or strides: one entry (int or per-axis list) per stage, or one int for all.
PerStageAxes = IntOrSeq | Sequence[IntOrSeq]


class UNetEncoder(nn.Module):
    """What the decoder needs to know about an encoder; subclasses build ``stages``."""

    stages: nn.Sequential

    def __init__(
        self, ops: LayerOps, n_stages: int, features_per_stage: IntOrSeq, kernel_sizes: PerStageAxes,
        strides: PerStageAxes,
    ) -> None:
        super().__init__()
        if n_stages < 1:
            raise ValueError(f"n_stages must be >= 1, got {n_stages}.")
        self.ops = ops
        features = per_stage(features_per_stage, n_stages, "features_per_stage")
        kernels = per_stage(kernel_sizes, n_stages, "kernel_sizes")
        self.output_channels: list[int] = [int(f) for f in features]
        self.kernel_sizes: list[list[int]] = [per_axis(k, ops.dim, "kernel_sizes entry") for k in kernels]
        self.strides: list[list[int]] = [
            per_axis(s, ops.dim, "strides entry") for s in per_stage(strides, n_stages, "strides")
        ]

    def check_spatial_size(self, input_size: Sequence[int]) -> None:
        """Raise if ``input_size`` is not one size per spatial axis."""
        if len(input_size) != self.ops.dim:
            raise ValueError(
                f"input_size must be the {self.ops.dim} spatial sizes of a patch, without batch or channel "
                f"axes, got {tuple(input_size)}."
            )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        skips = []
        for stage in self.stages:
            x = stage(x)
            skips.append(x)
        return skips


class PlainConvEncoder(UNetEncoder):
    """Per stage ``n_conv_per_stage`` conv blocks, the first one strided (keys ``stages.<s>.0.convs.<i>``)."""

    def __init__(
        self, input_channels: int, n_stages: int, features_per_stage: IntOrSeq,
        kernel_sizes: PerStageAxes, strides: PerStageAxes,
        n_conv_per_stage: IntOrSeq, ops: LayerOps,
    ) -> None:
        super().__init__(ops, n_stages, features_per_stage, kernel_sizes, strides)
        n_convs = per_stage(n_conv_per_stage, n_stages, "n_conv_per_stage")
        in_channels, stages = input_channels, []
        for s, out_channels in enumerate(self.output_channels):
            convs = StackedConvBlocks(
                n_convs[s], ops, in_channels, out_channels, self.kernel_sizes[s], self.strides[s]
            )
            stages.append(nn.Sequential(convs))  # nnU-Net's layout: room for a pooling layer before the convs
            in_channels = out_channels
        self.stages = nn.Sequential(*stages)


class ResidualEncoder(UNetEncoder):
    """A one-convolution stem at full resolution, then per stage ``n_blocks_per_stage`` residual blocks."""

    def __init__(
        self, input_channels: int, n_stages: int, features_per_stage: IntOrSeq,
        kernel_sizes: PerStageAxes, strides: PerStageAxes,
        n_blocks_per_stage: IntOrSeq, ops: LayerOps,
    ) -> None:
        super().__init__(ops, n_stages, features_per_stage, kernel_sizes, strides)
        n_blocks = per_stage(n_blocks_per_stage, n_stages, "n_blocks_per_stage")
        # The stem comes first, in the state dict and in the order of random initialisation, as in nnU-Net.
        in_channels, stages = self.output_channels[0], []
        self.stem = StackedConvBlocks(1, ops, input_channels, in_channels, self.kernel_sizes[0], 1)
        for s, out_channels in enumerate(self.output_channels):
            stages.append(StackedResidualBlocks(
                n_blocks[s], ops, in_channels, out_channels, self.kernel_sizes[s], self.strides[s]
            ))
            in_channels = out_channels
        self.stages = nn.Sequential(*stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return super().forward(self.stem(x))
