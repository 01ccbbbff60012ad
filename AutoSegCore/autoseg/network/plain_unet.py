"""nnU-Net's default network: a U-Net of plain convolution stages with strided-convolution downsampling."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from autoseg.network.blocks import IntOrSeq, LayerOps, per_stage
from autoseg.network.decoder import UNetDecoder
from autoseg.network.encoders import PlainConvEncoder
from autoseg.network.initialization import init_he
from autoseg.plans.feature_maps import plain_unet_feature_map_size


class PlainConvUNet(nn.Module):
    """Drop-in for dynamic_network_architectures' ``PlainConvUNet``: same arguments, state-dict keys, outputs.

    ``forward(x)`` returns the logits at input resolution, or with ``deep_supervision`` a list of logits at
    every decoder resolution, highest first. ``decoder.deep_supervision`` may be switched after construction.
    """

    def __init__(
        self,
        input_channels: int,
        n_stages: int,
        features_per_stage: IntOrSeq,
        conv_op: type[nn.Module],
        kernel_sizes: IntOrSeq | Sequence[IntOrSeq],
        strides: IntOrSeq | Sequence[IntOrSeq],
        n_conv_per_stage: IntOrSeq,
        num_classes: int,
        n_conv_per_stage_decoder: IntOrSeq,
        conv_bias: bool = False,
        norm_op: type[nn.Module] | None = None,
        norm_op_kwargs: Mapping[str, Any] | None = None,
        dropout_op: type[nn.Module] | None = None,
        dropout_op_kwargs: Mapping[str, Any] | None = None,
        nonlin: type[nn.Module] | None = None,
        nonlin_kwargs: Mapping[str, Any] | None = None,
        deep_supervision: bool = False,
        nonlin_first: bool = False,
    ) -> None:
        super().__init__()
        if n_stages < 2:
            raise ValueError(f"n_stages must be >= 2 (a U-Net needs a decoder), got {n_stages}.")
        ops = LayerOps(
            conv_op, conv_bias, norm_op, norm_op_kwargs, dropout_op, dropout_op_kwargs, nonlin, nonlin_kwargs,
            nonlin_first,
        )
        self.n_conv_per_stage: list[int] = per_stage(n_conv_per_stage, n_stages, "n_conv_per_stage")
        self.num_classes = num_classes
        self.encoder = PlainConvEncoder(
            input_channels, n_stages, features_per_stage, kernel_sizes, strides, self.n_conv_per_stage, ops
        )
        self.decoder = UNetDecoder(
            self.encoder, num_classes, n_conv_per_stage_decoder, deep_supervision, nonlin_first=nonlin_first
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        return self.decoder(self.encoder(x))

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> int:
        """Feature-map voxels produced for one patch of ``input_size`` (nnU-Net's VRAM proxy)."""
        self.encoder.check_spatial_size(input_size)
        return plain_unet_feature_map_size(
            input_size, self.encoder.output_channels, self.encoder.strides, self.n_conv_per_stage,
            self.decoder.n_conv_per_stage, self.num_classes, self.decoder.deep_supervision,
        )

    @staticmethod
    def initialize(module: nn.Module) -> None:
        """nnU-Net's initialisation; use as ``network.apply(network.initialize)``."""
        init_he(module, neg_slope=1e-2)
