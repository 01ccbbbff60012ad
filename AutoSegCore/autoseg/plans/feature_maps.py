"""How many feature-map voxels a U-Net produces for one input patch (the planner's VRAM proxy).

The counts follow the layer structure of nnU-Net's PlainConvUNet and ResidualEncoderUNet exactly (every
convolution output, transposed-convolution output and segmentation head), so that plans derived from
them match nnU-Net's. They need no torch: the planner stays fast and importable anywhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Shape = Sequence[int]


def _voxels(channels: int, size: Shape) -> int:
    return int(channels * math.prod(size))


def _after_stride(size: Shape, stride: Shape) -> list[int]:
    return [s // t for s, t in zip(size, stride)]


def _skip_sizes(input_size: Shape, strides: Sequence[Shape]) -> list[list[int]]:
    """Spatial size of every encoder output except the bottleneck."""
    sizes, size = [], list(input_size)
    for stride in strides[:-1]:
        size = _after_stride(size, stride)
        sizes.append(size)
    return sizes


def decoder_feature_map_size(
    input_size: Shape,
    features_per_stage: Sequence[int],
    strides: Sequence[Shape],
    n_conv_per_stage_decoder: Sequence[int],
    num_classes: int,
    deep_supervision: bool,
) -> int:
    """Decoder outputs: transposed conv, the stage's convolutions and the segmentation head(s)."""
    skips = _skip_sizes(input_size, strides)
    total = 0
    n_decoder_stages = len(strides) - 1
    for s in range(n_decoder_stages):
        size = skips[-(s + 1)]
        channels = features_per_stage[-(s + 2)]
        total += n_conv_per_stage_decoder[s] * _voxels(channels, size)  # conv blocks (stride 1)
        total += _voxels(channels, size)  # transposed convolution
        if deep_supervision or s == n_decoder_stages - 1:
            total += _voxels(num_classes, size)
    return total


def plain_unet_feature_map_size(
    input_size: Shape,
    features_per_stage: Sequence[int],
    strides: Sequence[Shape],
    n_conv_per_stage: Sequence[int],
    n_conv_per_stage_decoder: Sequence[int],
    num_classes: int,
    deep_supervision: bool = False,
) -> int:
    """Feature-map voxels of a PlainConvUNet (strided-convolution downsampling)."""
    total, size = 0, list(input_size)
    for features, stride, n_conv in zip(features_per_stage, strides, n_conv_per_stage):
        size = _after_stride(size, stride)
        total += n_conv * _voxels(features, size)
    return total + decoder_feature_map_size(
        input_size, features_per_stage, strides, n_conv_per_stage_decoder, num_classes, deep_supervision
    )


def residual_encoder_unet_feature_map_size(
    input_size: Shape,
    features_per_stage: Sequence[int],
    strides: Sequence[Shape],
    n_blocks_per_stage: Sequence[int],
    n_conv_per_stage_decoder: Sequence[int],
    num_classes: int,
    deep_supervision: bool = False,
) -> int:
    """Feature-map voxels of a ResidualEncoderUNet (stem + basic residual blocks, plain decoder)."""
    total = _voxels(features_per_stage[0], input_size)  # stem convolution
    size, in_channels = list(input_size), features_per_stage[0]
    for features, stride, n_blocks in zip(features_per_stage, strides, n_blocks_per_stage):
        strided = _after_stride(size, stride)
        total += 2 * _voxels(features, strided)  # first block: two convolutions
        if in_channels != features or strided != list(size):
            total += _voxels(features, strided)  # its projection shortcut
        total += (n_blocks - 1) * 2 * _voxels(features, strided)
        size, in_channels = strided, features
    return total + decoder_feature_map_size(
        input_size, features_per_stage, strides, n_conv_per_stage_decoder, num_classes, deep_supervision
    )


def architecture_feature_map_size(
    network_class_name: str, arch_kwargs: dict, input_size: Shape, num_classes: int, deep_supervision: bool = False
) -> int:
    """Dispatch on the plans' ``network_class_name`` (nnU-Net's dotted names or the bare class name)."""
    name = network_class_name.rsplit(".", 1)[-1]
    common = dict(
        input_size=input_size,
        features_per_stage=arch_kwargs["features_per_stage"],
        strides=arch_kwargs["strides"],
        n_conv_per_stage_decoder=arch_kwargs["n_conv_per_stage_decoder"],
        num_classes=num_classes,
        deep_supervision=deep_supervision,
    )
    if name == "PlainConvUNet":
        return plain_unet_feature_map_size(n_conv_per_stage=arch_kwargs["n_conv_per_stage"], **common)
    if name == "ResidualEncoderUNet":
        return residual_encoder_unet_feature_map_size(n_blocks_per_stage=arch_kwargs["n_blocks_per_stage"], **common)
    raise ValueError(f"No feature-map estimate for network class {network_class_name!r}.")
