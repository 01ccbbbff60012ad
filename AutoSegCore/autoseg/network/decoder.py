"""The U-Net decoder shared by PlainConvUNet and ResidualEncoderUNet."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import nn

from autoseg.network.blocks import IntOrSeq, StackedConvBlocks, per_stage
from autoseg.network.encoders import UNetEncoder


class UNetDecoder(nn.Module):
    """Upsamples from the bottleneck back to full resolution, merging one skip per stage.

    Decoder stage ``s`` (0 = lowest resolution) runs a transposed convolution on the stage below,
    concatenates the matching skip (upsampled features first) and applies ``n_conv_per_stage[s]`` conv
    blocks. Every stage has a 1x1 segmentation head, so weights load whether or not deep supervision was
    used in training. With ``deep_supervision`` the forward returns every head's output, highest resolution
    first; without it, only the last head runs.

    The encoder is registered as a submodule (keys ``decoder.encoder.*``), as in nnU-Net checkpoints.
    """

    def __init__(
        self, encoder: UNetEncoder, num_classes: int, n_conv_per_stage: IntOrSeq, deep_supervision: bool,
        nonlin_first: bool = False,
    ) -> None:
        super().__init__()
        self.deep_supervision = deep_supervision
        self.encoder = encoder
        self.num_classes = num_classes
        n_decoder_stages = len(encoder.output_channels) - 1
        self.n_conv_per_stage: list[int] = per_stage(
            n_conv_per_stage, n_decoder_stages, "n_conv_per_stage_decoder"
        )
        ops = replace(encoder.ops, nonlin_first=nonlin_first)
        stages, transpconvs, seg_layers = [], [], []
        for s in range(n_decoder_stages):
            below = encoder.output_channels[-(s + 1)]
            skip = encoder.output_channels[-(s + 2)]
            stride = encoder.strides[-(s + 1)]
            transpconvs.append(ops.transposed_conv_op(below, skip, stride, stride, bias=ops.conv_bias))
            stages.append(StackedConvBlocks(
                self.n_conv_per_stage[s], ops, 2 * skip, skip, encoder.kernel_sizes[-(s + 2)], 1
            ))
            seg_layers.append(ops.conv_op(skip, num_classes, 1, 1, 0, bias=True))
        self.stages = nn.ModuleList(stages)
        self.transpconvs = nn.ModuleList(transpconvs)
        self.seg_layers = nn.ModuleList(seg_layers)

    def forward(self, skips: Sequence[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
        """``skips``: the encoder outputs in the order computed (bottleneck last)."""
        x = skips[-1]
        last = len(self.stages) - 1
        outputs: list[torch.Tensor] = []
        layers = zip(self.transpconvs, self.stages, self.seg_layers, strict=True)
        for s, (upsample, stage, seg_layer) in enumerate(layers):
            x = stage(torch.cat((upsample(x), skips[-(s + 2)]), 1))
            if self.deep_supervision or s == last:
                outputs.append(seg_layer(x))
        if not self.deep_supervision:
            return outputs[0]
        outputs.reverse()
        return outputs
