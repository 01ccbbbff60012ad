"""Training and validation transforms of nnU-Net v2's default trainer, built from batchgeneratorsv2.

Each pipeline is called on one sample, ``pipeline(image=<(c, *spatial) float tensor>,
segmentation=<(n, *spatial) integer tensor>)``, and returns a dict with ``"image"`` and ``"segmentation"``
(a list of tensors, one per scale, when deep-supervision scales are given). Training input has the
initial (enlarged) patch size, validation input the final patch size; output has the final patch size.
In a cascade the previous stage's segmentation arrives as segmentation channel 1 and leaves as one-hot
image channels. Randomness comes from the global NumPy and torch generators.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from numbers import Integral
from typing import Any

from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform
from batchgeneratorsv2.transforms.intensity.brightness import MultiplicativeBrightnessTransform
from batchgeneratorsv2.transforms.intensity.contrast import BGContrast, ContrastTransform
from batchgeneratorsv2.transforms.intensity.gamma import GammaTransform
from batchgeneratorsv2.transforms.intensity.gaussian_noise import GaussianNoiseTransform
from batchgeneratorsv2.transforms.nnunet.random_binary_operator import ApplyRandomBinaryOperatorTransform
from batchgeneratorsv2.transforms.nnunet.seg_to_onehot import MoveSegAsOneHotToDataTransform
from batchgeneratorsv2.transforms.noise.gaussian_blur import GaussianBlurTransform
from batchgeneratorsv2.transforms.spatial.low_resolution import SimulateLowResolutionTransform
from batchgeneratorsv2.transforms.spatial.mirroring import MirrorTransform
from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform
from batchgeneratorsv2.transforms.utils.compose import ComposeTransforms
from batchgeneratorsv2.transforms.utils.deep_supervision_downsampling import DownsampleSegForDSTransform
from batchgeneratorsv2.transforms.utils.nnunet_masking import MaskImageTransform
from batchgeneratorsv2.transforms.utils.pseudo2d import Convert2DTo3DTransform, Convert3DTo2DTransform
from batchgeneratorsv2.transforms.utils.random import RandomTransform
from batchgeneratorsv2.transforms.utils.remove_label import RemoveLabelTransform
from batchgeneratorsv2.transforms.utils.seg_to_regions import ConvertSegmentationToRegionsTransform

from autoseg.training.augmentation_params import SpatialAugmentationParams

Pipeline = Callable[..., dict[str, Any]]


def _intensity_transforms(ignore_axes: tuple[int, ...] | None) -> list[BasicTransform]:
    """Noise, blur, brightness, contrast, low resolution, inverted gamma, gamma (each with a probability)."""
    return [
        RandomTransform(
            GaussianNoiseTransform(noise_variance=(0, 0.1), p_per_channel=1, synchronize_channels=True),
            apply_probability=0.1,
        ),
        RandomTransform(
            GaussianBlurTransform(
                blur_sigma=(0.5, 1.0), synchronize_channels=False, synchronize_axes=False, p_per_channel=0.5,
                benchmark=True,
            ),
            apply_probability=0.2,
        ),
        RandomTransform(
            MultiplicativeBrightnessTransform(
                multiplier_range=BGContrast((0.75, 1.25)), synchronize_channels=False, p_per_channel=1
            ),
            apply_probability=0.15,
        ),
        RandomTransform(
            ContrastTransform(
                contrast_range=BGContrast((0.75, 1.25)), preserve_range=True, synchronize_channels=False,
                p_per_channel=1,
            ),
            apply_probability=0.15,
        ),
        RandomTransform(
            SimulateLowResolutionTransform(
                scale=(0.5, 1), synchronize_channels=False, synchronize_axes=True, ignore_axes=ignore_axes,
                allowed_channels=None, p_per_channel=0.5,
            ),
            apply_probability=0.25,
        ),
        RandomTransform(
            GammaTransform(
                gamma=BGContrast((0.7, 1.5)), p_invert_image=1, synchronize_channels=False, p_per_channel=1,
                p_retain_stats=1,
            ),
            apply_probability=0.1,
        ),
        RandomTransform(
            GammaTransform(
                gamma=BGContrast((0.7, 1.5)), p_invert_image=0, synchronize_channels=False, p_per_channel=1,
                p_retain_stats=1,
            ),
            apply_probability=0.3,
        ),
    ]


def _label_transforms(
    deep_supervision_scales: list[list[float]] | None,
    is_cascaded: bool,
    foreground_labels: Sequence[int],
    regions: Sequence | None,
    ignore_label: int | None,
    training: bool,
) -> list[BasicTransform]:
    """Padding label -1 to 0, cascade input (one-hot, corrupted in training), regions, DS targets."""
    transforms: list[BasicTransform] = [RemoveLabelTransform(-1, 0)]
    if is_cascaded:
        if not foreground_labels:
            raise ValueError("cascade augmentation needs the foreground labels")
        labels = [int(label) for label in foreground_labels]
        transforms.append(
            MoveSegAsOneHotToDataTransform(
                source_channel_idx=1, all_labels=labels, remove_channel_from_source=True
            )
        )
        if training:
            transforms += _cascade_corruption(len(labels))
    if regions is not None:
        region_list: list[int | tuple[int, ...]] = [_region(r) for r in regions]
        if ignore_label is not None:
            region_list.append(int(ignore_label))  # the ignore label becomes the last channel
        transforms.append(ConvertSegmentationToRegionsTransform(regions=region_list, channel_in_seg=0))
    if deep_supervision_scales is not None:
        transforms.append(DownsampleSegForDSTransform(ds_scales=deep_supervision_scales))
    return transforms


def _region(region: int | Sequence[int]) -> int | tuple[int, ...]:
    """A region as an int or a tuple of ints (batchgeneratorsv2 would misread a NumPy integer as a size)."""
    if isinstance(region, (int, Integral)):  # Integral: NumPy integers too
        return int(region)
    return tuple(int(label) for label in region)


def _cascade_corruption(num_labels: int) -> list[BasicTransform]:
    """Random morphology on, and removal of a connected component from, the previous stage's one-hot."""
    # imported here: it needs acvl_utils, which only cascade training uses
    from batchgeneratorsv2.transforms.nnunet.remove_connected_components import (
        RemoveRandomConnectedComponentFromOneHotEncodingTransform,
    )

    channels = range(-num_labels, 0)  # a fresh list for each: both shuffle theirs in place on every call
    return [
        RandomTransform(
            ApplyRandomBinaryOperatorTransform(
                channel_idx=list(channels), strel_size=(1, 8), p_per_label=0.5
            ),
            apply_probability=0.4,
        ),
        RandomTransform(
            RemoveRandomConnectedComponentFromOneHotEncodingTransform(
                channel_idx=list(channels),
                fill_with_other_class_p=0,
                dont_do_if_covers_more_than_x_percent=0.15,
                p_per_label=0.5,
            ),
            apply_probability=0.2,
        ),
    ]


def build_training_transforms(
    patch_size: Sequence[int],
    params: SpatialAugmentationParams,
    deep_supervision_scales: list[list[float]] | None,
    use_mask_for_norm: Sequence[bool] = (),
    is_cascaded: bool = False,
    foreground_labels: Sequence[int] = (),
    regions: Sequence | None = None,
    ignore_label: int | None = None,
) -> Pipeline:
    """nnU-Net's training augmentation: spatial (in-plane for dummy 2D), intensity, mirroring, then labels."""
    patch = tuple(int(p) for p in patch_size)
    transforms: list[BasicTransform] = []
    if params.do_dummy_2d:
        transforms.append(Convert3DTo2DTransform())
    transforms.append(
        SpatialTransform(
            patch[1:] if params.do_dummy_2d else patch,
            patch_center_dist_from_border=0,
            random_crop=False,
            p_elastic_deform=0,
            p_rotation=0.2,
            rotation=params.rotation,
            p_scaling=0.2,
            scaling=params.scaling,
            p_synchronize_scaling_across_axes=1,
            bg_style_seg_sampling=False,
            border_mode_seg="constant",
            padding_value_seg=-1,
        )
    )
    if params.do_dummy_2d:
        transforms.append(Convert2DTo3DTransform())
    transforms += _intensity_transforms((0,) if params.do_dummy_2d else None)
    if params.mirror_axes:
        transforms.append(MirrorTransform(allowed_axes=params.mirror_axes))
    if any(use_mask_for_norm):
        masked = [i for i, use in enumerate(use_mask_for_norm) if use]
        transforms.append(
            MaskImageTransform(apply_to_channels=masked, channel_idx_in_seg=0, set_outside_to=0)
        )
    transforms += _label_transforms(
        deep_supervision_scales, is_cascaded, foreground_labels, regions, ignore_label, training=True
    )
    return ComposeTransforms(transforms)


def build_validation_transforms(
    deep_supervision_scales: list[list[float]] | None,
    is_cascaded: bool = False,
    foreground_labels: Sequence[int] = (),
    regions: Sequence | None = None,
    ignore_label: int | None = None,
) -> Pipeline:
    """nnU-Net's validation transforms: only the label handling of the training pipeline (no augmentation)."""
    return ComposeTransforms(
        _label_transforms(
            deep_supervision_scales, is_cascaded, foreground_labels, regions, ignore_label, training=False
        )
    )
