"""The experiment planner: from a fingerprint to 2d / 3d_fullres / 3d_lowres / 3d_cascade_fullres plans.

Reproduces nnU-Net v2 (2.8.1): median target spacing with the anisotropy rule, lowest-resolution axis
first (transpose), patch size from the spacing's aspect ratio shrunk until the feature-map estimate
fits the VRAM reference, batch size from the remaining headroom capped by dataset coverage, and a
3d_lowres stage when the full-resolution patch covers less than a quarter of the median image.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from autoseg.dataset.dataset_json import DatasetJson
from autoseg.errors import PlanError
from autoseg.fingerprint.fingerprint import DatasetFingerprint
from autoseg.planning.presets import PlannerSettings
from autoseg.planning.topology import Topology, network_topology
from autoseg.plans.feature_maps import architecture_feature_map_size
from autoseg.plans.model import (
    CONV_OPS,
    INSTANCE_NORMS,
    ArchitecturePlan,
    ConfigurationPlan,
    InheritingConfiguration,
    Plans,
)
from autoseg.preprocessing.normalization import (
    leaves_pixels_outside_mask_at_zero,
    normalization_scheme_for_channel_name,
)
from autoseg.preprocessing.resampling import SpacingLike, compute_new_shape

logger = logging.getLogger(__name__)

RESAMPLING_FN = "resample_data_or_seg_to_shape"
DATA_RESAMPLING = {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None}
SEG_RESAMPLING = {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None}
PROBABILITY_RESAMPLING = {"is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None}


@dataclass
class PlanningContext:
    """What every configuration of one dataset shares while planning."""

    settings: PlannerSettings
    num_input_channels: int
    num_output_channels: int
    normalization_schemes: tuple[str, ...]
    use_mask_for_norm: tuple[bool, ...]
    estimate_cache: dict[tuple, int] = field(default_factory=dict)


#: Datasets whose cropping keeps less than this fraction of the image normalise inside the nonzero mask.
MASK_FOR_NORM_CROP_THRESHOLD = 0.75


def normalization_schemes_for_channels(
    channel_names: Sequence[str], median_relative_size_after_cropping: float
) -> tuple[list[str], list[bool]]:
    """Scheme per channel from its name, and whether to normalise inside the nonzero mask only."""
    schemes = [normalization_scheme_for_channel_name(n) for n in channel_names]
    if median_relative_size_after_cropping < MASK_FOR_NORM_CROP_THRESHOLD:
        return schemes, [leaves_pixels_outside_mask_at_zero(s) for s in schemes]
    return schemes, [False] * len(schemes)


def fullres_target_spacing(
    fingerprint: DatasetFingerprint, anisotropy_threshold: float = 3.0, overwrite: Sequence[float] | None = None
) -> np.ndarray:
    """Median spacing, except a much coarser axis with few voxels gets its 10th-percentile spacing."""
    if overwrite is not None:
        return np.array([float(s) for s in overwrite])
    spacings = np.vstack(fingerprint.spacings)
    target = np.percentile(spacings, 50, 0)
    target_size = np.percentile(np.vstack(fingerprint.shapes_after_crop), 50, 0)
    worst = int(np.argmax(target))
    others = [i for i in range(len(target)) if i != worst]
    max_other_spacing = max(target[i] for i in others)
    anisotropic_spacing = target[worst] > anisotropy_threshold * max_other_spacing
    few_voxels = target_size[worst] * anisotropy_threshold < min(target_size[i] for i in others)
    if anisotropic_spacing and few_voxels:
        value = np.percentile(spacings[:, worst], 10)
        if value < max_other_spacing:
            value = max(max_other_spacing, value) + 1e-5
        target[worst] = value
    return target


def transpose_for_spacing(target_spacing: SpacingLike) -> tuple[list[int], list[int]]:
    """Forward transpose puts the coarsest axis first; backward undoes it."""
    coarsest = int(np.argmax(target_spacing))
    forward = [coarsest] + [i for i in range(3) if i != coarsest]
    backward = [forward.index(i) for i in range(3)]
    return forward, backward


def _architecture(ctx: PlanningContext, topology: Topology, dim: int) -> ArchitecturePlan:
    s = ctx.settings
    max_features = s.max_features_2d if dim == 2 else s.max_features_3d
    n = topology.num_stages
    return ArchitecturePlan(
        network_class_name=s.network_class_name,
        arch_kwargs={
            "n_stages": n,
            "features_per_stage": [min(max_features, s.base_num_features * 2**i) for i in range(n)],
            "conv_op": CONV_OPS[dim],
            "kernel_sizes": [list(k) for k in topology.kernel_sizes],
            "strides": [list(k) for k in topology.strides],
            s.encoder_blocks_key: list(s.blocks_per_stage_encoder[:n]),
            "n_conv_per_stage_decoder": list(s.blocks_per_stage_decoder[: n - 1]),
            "conv_bias": True,
            "norm_op": INSTANCE_NORMS[dim],
            "norm_op_kwargs": {"eps": 1e-05, "affine": True},
            "dropout_op": None,
            "dropout_op_kwargs": None,
            "nonlin": "torch.nn.LeakyReLU",
            "nonlin_kwargs": {"inplace": True},
        },
    )


def _estimate(ctx: PlanningContext, topology: Topology, architecture: ArchitecturePlan) -> int:
    key = (topology.patch_size, topology.strides)
    if key not in ctx.estimate_cache:
        ctx.estimate_cache[key] = architecture_feature_map_size(
            architecture.network_class_name, architecture.arch_kwargs, topology.patch_size, ctx.num_output_channels
        )
    return ctx.estimate_cache[key]


def initial_patch_size(spacing: SpacingLike, median_shape: SpacingLike) -> list[int]:
    """Patch with the spacing's inverse aspect ratio and the volume of 256^3 (2048^2 in 2d), clipped to the median."""
    inverse = 1 / np.array(spacing, dtype=float)
    target_volume = 256**3 if len(spacing) == 3 else 2048**2
    scaled = inverse * (target_volume / np.prod(inverse)) ** (1 / len(spacing))
    return [min(round(p), m) for p, m in zip(scaled, median_shape[: len(spacing)])]


def _shrink_one_step(
    spacing: SpacingLike, topology: Topology, median_shape: SpacingLike, min_edge: int
) -> Topology:
    """Reduce the axis that is largest relative to the median shape by one divisibility step."""
    patch = list(topology.patch_size)
    axis = int(np.argsort([p / m for p, m in zip(patch, median_shape[: len(spacing)])])[-1])
    trial = list(patch)
    trial[axis] -= topology.must_be_divisible_by[axis]
    step = network_topology(spacing, trial, min_edge).must_be_divisible_by[axis]
    patch[axis] -= step
    return network_topology(spacing, patch, min_edge)


def plan_configuration(
    ctx: PlanningContext,
    spacing: SpacingLike,
    median_shape: SpacingLike,
    data_identifier: str,
    approximate_n_voxels_dataset: float,
) -> ConfigurationPlan:
    """Plan one configuration: topology, patch size fitted to the VRAM reference, batch size."""
    if any(s <= 0 for s in spacing):
        raise PlanError(f"Target spacing must be positive, got {list(spacing)}.")
    s = ctx.settings
    dim = len(spacing)
    topology = network_topology(spacing, initial_patch_size(spacing, median_shape), s.featuremap_min_edge_length)
    architecture = _architecture(ctx, topology, dim)
    estimate = _estimate(ctx, topology, architecture)
    reference = (s.reference_val_2d if dim == 2 else s.reference_val_3d) * (
        s.gpu_memory_target_gb / s.reference_vram_gb
    )
    ref_bs = s.reference_batch_size_2d if dim == 2 else s.reference_batch_size_3d

    def too_large(value: int) -> bool:
        return (value / ref_bs * 2 if s.batch_corrected_vram_check else value) > reference

    while too_large(estimate):
        topology = _shrink_one_step(spacing, topology, median_shape, s.featuremap_min_edge_length)
        architecture = _architecture(ctx, topology, dim)
        estimate = _estimate(ctx, topology, architecture)
    batch_size = round((reference / estimate) * ref_bs)
    coverage_cap = round(
        approximate_n_voxels_dataset * s.max_dataset_covered / np.prod(topology.patch_size, dtype=np.float64)
    )
    batch_size = max(min(batch_size, coverage_cap), s.min_batch_size)
    return ConfigurationPlan(
        data_identifier=data_identifier,
        preprocessor_name=s.preprocessor_name,
        batch_size=int(batch_size),
        patch_size=tuple(int(p) for p in topology.patch_size),
        median_image_size_in_voxels=tuple(_plain_number(m) for m in median_shape),
        spacing=tuple(float(x) for x in spacing),
        normalization_schemes=ctx.normalization_schemes,
        use_mask_for_norm=ctx.use_mask_for_norm,
        resampling_fn_data=RESAMPLING_FN,
        resampling_fn_seg=RESAMPLING_FN,
        resampling_fn_data_kwargs=dict(DATA_RESAMPLING),
        resampling_fn_seg_kwargs=dict(SEG_RESAMPLING),
        resampling_fn_probabilities=RESAMPLING_FN,
        resampling_fn_probabilities_kwargs=dict(PROBABILITY_RESAMPLING),
        architecture=architecture,
    )


def _plain_number(value: float) -> float | int:
    return int(value) if isinstance(value, (int, np.integer)) else float(value)


def _lowres_configuration(
    ctx: PlanningContext, fullres: ConfigurationPlan, median_shape: np.ndarray, num_training: int
) -> ConfigurationPlan | None:
    """Grow the spacing (x1.03 per step) until the patch covers 25% of the median image; None if not needed."""
    s = ctx.settings
    fullres_spacing = np.array(fullres.spacing)
    median_voxels = np.prod(median_shape, dtype=np.float64)
    patch_voxels: np.number = np.prod(fullres.patch_size, dtype=np.float64)
    spacing = fullres_spacing.copy()
    lowres: ConfigurationPlan | None = None
    while patch_voxels / median_voxels < s.lowres_creation_threshold:
        coarsest = max(spacing)
        much_finer = (coarsest / spacing) > 2
        if np.any(much_finer):
            spacing[much_finer] *= s.lowres_spacing_increase_factor
        else:
            spacing *= s.lowres_spacing_increase_factor
        lowres_shape = fullres_spacing / spacing * median_shape
        median_voxels = np.prod(lowres_shape, dtype=np.float64)
        lowres = plan_configuration(
            ctx, spacing.copy(), tuple(round(i) for i in lowres_shape), s.data_identifier("3d_lowres"),
            float(median_voxels * num_training),
        )
        patch_voxels = np.prod(lowres.patch_size, dtype=np.int64)
        logger.debug("3d_lowres attempt: spacing %s, patch %s", spacing.tolist(), lowres.patch_size)
    if lowres is not None and np.prod(median_shape, dtype=np.float64) / median_voxels < 2:
        logger.info("Dropping 3d_lowres: its images would be less than 2x smaller than 3d_fullres's.")
        return None
    return lowres


def plan_experiment(
    dataset_name: str,
    fingerprint: DatasetFingerprint,
    dataset_json: DatasetJson,
    settings: PlannerSettings,
    image_reader_writer: str,
    overwrite_target_spacing: Sequence[float] | None = None,
) -> Plans:
    """Plan every configuration for a dataset; the result is nnU-Net's plans structure."""
    schemes, use_mask = normalization_schemes_for_channels(
        [dataset_json.channel_names[str(i)] for i in range(dataset_json.num_channels)],
        fingerprint.median_relative_size_after_cropping,
    )
    ctx = PlanningContext(
        settings, dataset_json.num_channels, len(dataset_json.labels), tuple(schemes), tuple(use_mask)
    )
    target = fullres_target_spacing(fingerprint, settings.anisotropy_threshold, overwrite_target_spacing)
    forward, backward = transpose_for_spacing(target)
    new_shapes = [
        compute_new_shape(shape, sp, target) for sp, shape in zip(fingerprint.spacings, fingerprint.shapes_after_crop)
    ]
    median_shape = np.median(new_shapes, 0)[forward]
    spacing_t = target[forward]
    n_voxels = float(np.prod(median_shape, dtype=np.float64) * dataset_json.num_training)

    configurations: dict[str, ConfigurationPlan | InheritingConfiguration] = {}
    fullres = lowres = None
    if median_shape[0] != 1:
        fullres = plan_configuration(ctx, spacing_t, median_shape, settings.data_identifier("3d_fullres"), n_voxels)
        lowres = _lowres_configuration(ctx, fullres, median_shape, dataset_json.num_training)
        if lowres is not None:
            lowres = _with(lowres, batch_dice=False, next_stage="3d_cascade_fullres")
        fullres = _with(fullres, batch_dice=lowres is not None)
    plan_2d = plan_configuration(ctx, spacing_t[1:], median_shape[1:], settings.data_identifier("2d"), n_voxels)
    configurations["2d"] = _with(plan_2d, batch_dice=True)
    if lowres is not None:
        configurations["3d_lowres"] = lowres
    if fullres is not None:
        configurations["3d_fullres"] = fullres
        if lowres is not None:
            configurations["3d_cascade_fullres"] = InheritingConfiguration(
                "3d_fullres", {"previous_stage": "3d_lowres"}
            )
    return Plans(
        dataset_name=dataset_name,
        plans_name=settings.plans_name,
        original_median_spacing_after_transp=tuple(float(i) for i in np.median(fingerprint.spacings, 0)[forward]),
        original_median_shape_after_transp=tuple(
            int(round(i)) for i in np.median(fingerprint.shapes_after_crop, 0)[forward]
        ),
        image_reader_writer=image_reader_writer,
        transpose_forward=tuple(forward),
        transpose_backward=tuple(backward),
        configurations=configurations,
        experiment_planner_used=settings.planner_name,
        label_manager="LabelManager",
        foreground_intensity_properties_per_channel=fingerprint.foreground_intensity_properties_per_channel,
    )


def _with(plan: ConfigurationPlan, **changes) -> ConfigurationPlan:
    return replace(plan, **changes)


def merge_with_existing(new: Plans, existing: Plans | None) -> Plans:
    """Keep configurations of an existing plans file that this planning run did not produce (as nnU-Net)."""
    if existing is None:
        return new
    kept = {k: v for k, v in existing.configurations.items() if k not in new.configurations}
    return new.with_configurations({**new.configurations, **kept})
