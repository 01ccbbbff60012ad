"""nnU-Net's ResEnc network: a residual encoder (stem, basic residual blocks) and the plain U-Net decoder."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from autoseg.network.blocks import IntOrSeq, LayerOps, per_stage
from autoseg.network.decoder import UNetDecoder
from autoseg.network.encoders import ResidualEncoder
from autoseg.network.initialization import init_he, zero_last_norm_in_residual_branch
from autoseg.plans.feature_maps import residual_encoder_unet_feature_map_size


class ResidualEncoderUNet(nn.Module):
    """Drop-in for dynamic_network_architectures' ``ResidualEncoderUNet`` with its default basic blocks.

    Same arguments (without the bottleneck-block, custom-stem options nnU-Net's planners never set),
    state-dict keys and outputs; see :class:`~autoseg.network.plain_unet.PlainConvUNet` for the outputs.
    """

    def __init__(
        self,
        input_channels: int,
        n_stages: int,
        features_per_stage: IntOrSeq,
        conv_op: type[nn.Module],
        kernel_sizes: IntOrSeq | Sequence[IntOrSeq],
        strides: IntOrSeq | Sequence[IntOrSeq],
        n_blocks_per_stage: IntOrSeq,
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
    ) -> None:
        super().__init__()
        if n_stages < 2:
            raise ValueError(f"n_stages must be >= 2 (a U-Net needs a decoder), got {n_stages}.")
        ops = LayerOps(
            conv_op, conv_bias, norm_op, norm_op_kwargs, dropout_op, dropout_op_kwargs, nonlin, nonlin_kwargs
        )
        self.n_blocks_per_stage: list[int] = per_stage(n_blocks_per_stage, n_stages, "n_blocks_per_stage")
        self.num_classes = num_classes
        self.encoder = ResidualEncoder(
            input_channels, n_stages, features_per_stage, kernel_sizes, strides, self.n_blocks_per_stage, ops
        )
        self.decoder = UNetDecoder(self.encoder, num_classes, n_conv_per_stage_decoder, deep_supervision)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        return self.decoder(self.encoder(x))

    def compute_conv_feature_map_size(self, input_size: Sequence[int]) -> int:
        """Feature-map voxels produced for one patch of ``input_size`` (nnU-Net's VRAM proxy)."""
        self.encoder.check_spatial_size(input_size)
        return residual_encoder_unet_feature_map_size(
            input_size, self.encoder.output_channels, self.encoder.strides, self.n_blocks_per_stage,
            self.decoder.n_conv_per_stage, self.num_classes, self.decoder.deep_supervision,
        )

    @staticmethod
    def initialize(module: nn.Module) -> None:
        """nnU-Net's initialisation; use as ``network.apply(network.initialize)``."""
        init_he(module, neg_slope=1e-2)
        zero_last_norm_in_residual_branch(module)
