"""Convolution building blocks shared by both U-Nets.

Attribute names (``conv``, ``dropout``, ``norm``, ``nonlin``, ``all_modules``, ``convs``, ``conv1``,
``conv2``, ``nonlin2``, ``skip``, ``blocks``) and the order in which layers are created are part of the
checkpoint format: they give the state-dict keys of nnU-Net's dynamic_network_architectures, and the same
random initialisation for the same seed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

# per_stage and IntOrSeq are also imported from here by the encoders, the decoder and the U-Nets
from autoseg.plans.architecture_args import IntOrSeq, per_axis, per_stage  # noqa: F401

_DIM_OF_CONV: dict[type[nn.Module], int] = {nn.Conv2d: 2, nn.Conv3d: 3}
_TRANSPOSED_CONV: dict[int, type[nn.Module]] = {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
_AVG_POOL: dict[int, type[nn.Module]] = {2: nn.AvgPool2d, 3: nn.AvgPool3d}


@dataclass(frozen=True)
class LayerOps:
    """The layer types one U-Net uses everywhere, with their arguments (nnU-Net's plan keys)."""

    conv_op: type[nn.Module]
    conv_bias: bool = False
    norm_op: type[nn.Module] | None = None
    norm_op_kwargs: Mapping[str, Any] | None = None
    dropout_op: type[nn.Module] | None = None
    dropout_op_kwargs: Mapping[str, Any] | None = None
    nonlin: type[nn.Module] | None = None
    nonlin_kwargs: Mapping[str, Any] | None = None
    #: conv -> nonlin -> norm instead of conv -> norm -> nonlin (PlainConvUNet option).
    nonlin_first: bool = False

    @property
    def dim(self) -> int:
        """Number of spatial axes (2 or 3)."""
        for conv, dim in _DIM_OF_CONV.items():
            if issubclass(self.conv_op, conv):
                return dim
        raise ValueError(f"conv_op must be a 2D or 3D convolution class, got {self.conv_op!r}.")

    @property
    def transposed_conv_op(self) -> type[nn.Module]:
        return _TRANSPOSED_CONV[self.dim]

    @property
    def avg_pool_op(self) -> type[nn.Module]:
        return _AVG_POOL[self.dim]

    def make_nonlin(self) -> nn.Module | None:
        return None if self.nonlin is None else self.nonlin(**(self.nonlin_kwargs or {}))

    def conv_norm_only(self, bias: bool | None = None) -> LayerOps:
        """The same ops without dropout and nonlinearity (the convolution before a residual addition)."""
        return replace(self, dropout_op=None, nonlin=None, conv_bias=self.conv_bias if bias is None else bias)


class ConvDropoutNormNonlin(nn.Module):
    """Convolution with "same" padding, then optional dropout, normalisation and nonlinearity.

    The layers are attributes (``conv``, ``dropout``, ``norm``, ``nonlin``) *and* members of the
    ``all_modules`` Sequential that runs them, so each parameter appears under two state-dict keys,
    exactly as in nnU-Net checkpoints.
    """

    def __init__(
        self, ops: LayerOps, in_channels: int, out_channels: int, kernel_size: IntOrSeq, stride: IntOrSeq
    ) -> None:
        super().__init__()
        kernel = per_axis(kernel_size, ops.dim, "kernel_size")
        self.stride = per_axis(stride, ops.dim, "stride")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.conv = ops.conv_op(
            in_channels, out_channels, kernel, self.stride,
            padding=[(k - 1) // 2 for k in kernel], dilation=1, bias=ops.conv_bias,
        )
        layers: list[nn.Module] = [self.conv]
        if ops.dropout_op is not None:
            self.dropout = ops.dropout_op(**(ops.dropout_op_kwargs or {}))
            layers.append(self.dropout)
        if ops.norm_op is not None:
            self.norm = ops.norm_op(out_channels, **(ops.norm_op_kwargs or {}))
            layers.append(self.norm)
        nonlin = ops.make_nonlin()
        if nonlin is not None:
            self.nonlin = nonlin
            layers.append(self.nonlin)
        if ops.nonlin_first and ops.norm_op is not None and nonlin is not None:
            layers[-2], layers[-1] = layers[-1], layers[-2]
        self.all_modules = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.all_modules(x)


class StackedConvBlocks(nn.Module):
    """``num_convs`` conv blocks; only the first one is strided (and changes the channel count)."""

    def __init__(
        self, num_convs: int, ops: LayerOps, in_channels: int, out_channels: int, kernel_size: IntOrSeq,
        first_stride: IntOrSeq,
    ) -> None:
        super().__init__()
        if num_convs < 1:
            raise ValueError(f"the number of convolutions per stage must be >= 1, got {num_convs}.")
        convs = [ConvDropoutNormNonlin(ops, in_channels, out_channels, kernel_size, first_stride)]
        for _ in range(1, num_convs):
            convs.append(ConvDropoutNormNonlin(ops, out_channels, out_channels, kernel_size, 1))
        self.convs = nn.Sequential(*convs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(x)


class BasicResidualBlock(nn.Module):
    """Two convolutions plus a shortcut (ResNet-D: average pooling, then a 1x1 projection, when needed).

    The second convolution has neither dropout nor nonlinearity; ``nonlin2`` follows the addition.
    """

    def __init__(
        self, ops: LayerOps, in_channels: int, out_channels: int, kernel_size: IntOrSeq, stride: IntOrSeq
    ) -> None:
        super().__init__()
        stride = per_axis(stride, ops.dim, "stride")
        self.conv1 = ConvDropoutNormNonlin(ops, in_channels, out_channels, kernel_size, stride)
        self.conv2 = ConvDropoutNormNonlin(ops.conv_norm_only(), out_channels, out_channels, kernel_size, 1)
        nonlin = ops.make_nonlin()
        self.nonlin2 = nn.Identity() if nonlin is None else nonlin
        shortcut: list[nn.Module] = []
        if any(s != 1 for s in stride):
            shortcut.append(ops.avg_pool_op(stride, stride))
        if in_channels != out_channels:
            projection_ops = ops.conv_norm_only(bias=False)
            shortcut.append(ConvDropoutNormNonlin(projection_ops, in_channels, out_channels, 1, 1))
        self.skip = nn.Sequential(*shortcut) if shortcut else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.skip(x)
        out = self.conv2(self.conv1(x))
        out += residual
        return self.nonlin2(out)


class StackedResidualBlocks(nn.Module):
    """``n_blocks`` residual blocks; only the first one is strided (and changes the channel count)."""

    def __init__(
        self, n_blocks: int, ops: LayerOps, in_channels: int, out_channels: int, kernel_size: IntOrSeq,
        first_stride: IntOrSeq,
    ) -> None:
        super().__init__()
        if n_blocks < 1:
            raise ValueError(f"the number of residual blocks per stage must be >= 1, got {n_blocks}.")
        blocks = [BasicResidualBlock(ops, in_channels, out_channels, kernel_size, first_stride)]
        for _ in range(1, n_blocks):
            blocks.append(BasicResidualBlock(ops, out_channels, out_channels, kernel_size, 1))
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)
