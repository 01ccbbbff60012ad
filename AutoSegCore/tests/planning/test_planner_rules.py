"""The experiment planner's rules, one table per rule, on small hand-built fingerprints.

Testing/interop/test_planner_vs_nnunet.py checks that our plans equal nnU-Net's; these tests state the rules
themselves (nnU-Net v2.8.1's heuristics, /work/shared/REFERENCE.md sections A3-A5) with expected values
derived by hand from the rule, so that a regression says which rule broke. Everything here is pure
arithmetic on synthetic fingerprints: no image is read and no network is built.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from autoseg.dataset.dataset_json import DatasetJson
from autoseg.errors import PlanError
from autoseg.fingerprint.fingerprint import DatasetFingerprint
from autoseg.planning.planner import (
    PlanningContext,
    fullres_target_spacing,
    initial_patch_size,
    normalization_schemes_for_channels,
    plan_configuration,
    plan_experiment,
    transpose_for_spacing,
)
from autoseg.planning.presets import PRESETS, PlannerSettings, planner_settings
from autoseg.planning.topology import network_topology
from autoseg.plans.feature_maps import (
    architecture_feature_map_size,
    plain_unet_feature_map_size,
    residual_encoder_unet_feature_map_size,
)
from autoseg.plans.model import PLAIN_UNET_CLASS, RESENC_UNET_CLASS, ConfigurationPlan, Plans

PLAIN = planner_settings("ExperimentPlanner")
STATS = {"mean": 0.0, "median": 0.0, "std": 1.0, "min": -1.0, "max": 1.0,
         "percentile_99_5": 1.0, "percentile_00_5": -1.0}
NUM_CLASSES = 2  # background + one label, as _dataset_json writes it


# ---------------------------------------------------------------------------------------------- helpers
def _fingerprint(spacings, shapes, relative_size: float = 0.9, num_channels: int = 1) -> DatasetFingerprint:
    return DatasetFingerprint(
        spacings=[[float(s) for s in sp] for sp in spacings],
        shapes_after_crop=[[int(s) for s in sh] for sh in shapes],
        foreground_intensity_properties_per_channel={str(c): dict(STATS) for c in range(num_channels)},
        median_relative_size_after_cropping=relative_size,
    )


def _dataset_json(num_training: int, channels=("MRI",)) -> DatasetJson:
    return DatasetJson.from_dict({
        "channel_names": {str(i): c for i, c in enumerate(channels)},
        "labels": {"background": 0, "organ": 1},
        "numTraining": num_training,
        "file_ending": ".nii.gz",
    })


def _plan(spacings, shapes, num_training: int | None = None, settings: PlannerSettings = PLAIN, **kwargs) -> Plans:
    num_training = len(spacings) if num_training is None else num_training
    return plan_experiment("Dataset999_Rules", _fingerprint(spacings, shapes), _dataset_json(num_training), settings,
                           "SimpleITKIO", **kwargs)


def _context(settings: PlannerSettings = PLAIN) -> PlanningContext:
    return PlanningContext(settings, 1, NUM_CLASSES, ("ZScoreNormalization",), (False,))


def _divisors(plan: ConfigurationPlan) -> np.ndarray:
    """2**num_pool per axis, read from the plan's strides."""
    return np.prod(np.array(plan.architecture.arch_kwargs["strides"]), axis=0)


def _estimate(plan: ConfigurationPlan, patch=None) -> int:
    arch = plan.architecture
    return architecture_feature_map_size(arch.network_class_name, arch.arch_kwargs, patch or plan.patch_size,
                                         NUM_CLASSES)


def _reference(settings: PlannerSettings, dim: int) -> tuple[float, int]:
    """(VRAM reference scaled to the GPU target, reference batch size) of REFERENCE.md A4/A5."""
    value = settings.reference_val_2d if dim == 2 else settings.reference_val_3d
    ref_bs = settings.reference_batch_size_2d if dim == 2 else settings.reference_batch_size_3d
    return value * settings.gpu_memory_target_gb / settings.reference_vram_gb, ref_bs


def _fits(settings: PlannerSettings, estimate: int, dim: int) -> bool:
    """Plain planner: estimate / ref_bs * 2 <= reference; ResEnc planners: estimate <= reference."""
    reference, ref_bs = _reference(settings, dim)
    return (estimate / ref_bs * 2 if settings.batch_corrected_vram_check else estimate) <= reference


def _step_exponents(ratio) -> np.ndarray:
    """k with ratio == 1.03**k per axis (asserting that k is an integer)."""
    k = np.log(np.asarray(ratio, dtype=float)) / np.log(1.03)
    np.testing.assert_allclose(k, np.round(k), atol=1e-6)
    return np.round(k).astype(int)


# ---------------------------------------------------------------------------------- target spacing (A3)
@pytest.mark.parametrize(
    ("spacings", "shapes", "expected"),
    [
        pytest.param([[1, 1, 1], [1.2, 1.2, 1.2], [0.8, 0.8, 0.8]], [[100, 100, 100]] * 3, [1, 1, 1],
                     id="isotropic-median"),
        pytest.param([[2, 0.9, 0.8], [3, 0.7, 0.9], [1, 1.0, 0.7]], [[100, 100, 100]] * 3, [2, 0.9, 0.8],
                     id="median-taken-per-axis"),
        pytest.param([[1, 1, 1], [2, 1, 1]], [[100, 100, 100]] * 2, [1.5, 1, 1],
                     id="even-case-count-averages-middle-two"),
        pytest.param([[2, 1, 1]] + [[3, 1, 1]] * 4, [[10, 200, 200]] * 5, [3, 1, 1],
                     id="ratio-exactly-3-is-not-anisotropic"),
        pytest.param([[2, 1, 1]] + [[5, 1, 1]] * 4, [[100, 256, 256]] * 5, [5, 1, 1],
                     id="coarse-axis-with-many-voxels-keeps-median"),
        pytest.param([[2, 1, 1]] + [[5, 1, 1]] * 4, [[50, 150, 150]] * 5, [5, 1, 1],
                     id="voxels-exactly-3x-fewer-is-not-few"),
        pytest.param([[2.5, 2, 1]] + [[5, 2, 1]] * 4, [[10, 200, 200]] * 5, [5, 2, 1],
                     id="anisotropy-measured-against-coarsest-other-axis"),
    ],
)
def test_target_spacing_is_the_median_unless_the_anisotropy_rule_fires(spacings, shapes, expected):
    target = fullres_target_spacing(_fingerprint(spacings, shapes))
    np.testing.assert_allclose(target, expected, rtol=1e-12)


@pytest.mark.parametrize(
    ("spacings", "shapes", "expected"),
    [
        # 10 cases: numpy's linear 10th percentile sits at index 0.1 * 9 = 0.9 -> 4 + 0.9 * (6 - 4) = 5.8
        pytest.param([[z, 1, 1] for z in [4, 6] + [8] * 8], [[20, 256, 256]] * 10, [5.8, 1, 1], id="z-coarse"),
        pytest.param([[1, 1, z] for z in [4, 6] + [8] * 8], [[256, 256, 20]] * 10, [1, 1, 5.8], id="x-coarse"),
        # 5 cases: index 0.4 -> 4 + 0.4 * (8 - 4) = 5.6; the median slice count (20) decides, not the mean (132)
        pytest.param([[z, 1, 1] for z in [4, 8, 8, 8, 8]], [[n, 256, 256] for n in [20, 20, 20, 300, 300]],
                     [5.6, 1, 1], id="median-slice-count-decides"),
        # the 10th percentile (0.5) is finer than the other axes: clamped to max(other spacings) + 1e-5
        pytest.param([[z, 1.0, 1.5] for z in [0.5, 0.5] + [6] * 8], [[20, 256, 256]] * 10, [1.5 + 1e-5, 1.0, 1.5],
                     id="clamped-above-finer-axes"),
    ],
)
def test_anisotropy_rule_uses_the_10th_percentile_of_the_coarse_axis(spacings, shapes, expected):
    target = fullres_target_spacing(_fingerprint(spacings, shapes))
    np.testing.assert_allclose(target, expected, rtol=1e-12, atol=0)


def test_overwritten_target_spacing_replaces_median_and_rule():
    fingerprint = _fingerprint([[z, 1, 1] for z in [4, 6] + [8] * 8], [[20, 256, 256]] * 10)
    np.testing.assert_array_equal(fullres_target_spacing(fingerprint, overwrite=[2, 0.5, 0.5]), [2, 0.5, 0.5])


@pytest.mark.parametrize(
    ("spacing", "forward", "backward"),
    [
        pytest.param([3, 1, 1], [0, 1, 2], [0, 1, 2], id="z-coarsest-stays"),
        pytest.param([1, 3, 1], [1, 0, 2], [1, 0, 2], id="y-coarsest-first"),
        pytest.param([1, 1, 3], [2, 0, 1], [1, 2, 0], id="x-coarsest-first"),
        pytest.param([2, 2, 1], [0, 1, 2], [0, 1, 2], id="tie-takes-first-coarsest"),
    ],
)
def test_transpose_puts_the_coarsest_axis_first(spacing, forward, backward):
    got_forward, got_backward = transpose_for_spacing(spacing)
    assert (got_forward, got_backward) == (forward, backward)
    transposed = np.array(spacing)[got_forward]
    assert transposed[0] == max(spacing)
    np.testing.assert_array_equal(transposed[got_backward], spacing)


# ----------------------------------------------------------------------------- initial patch size (A4)
@pytest.mark.parametrize(
    ("spacing", "median", "expected"),
    [
        pytest.param([1, 1, 1], [500, 500, 500], [256, 256, 256], id="3d-isotropic-256-cubed"),
        # p ~ 1/spacing = (a, 2a, 2a) with volume 4a^3 = 256^3 -> a = 256 / 4**(1/3) = 161.27
        pytest.param([2, 1, 1], [500, 500, 500], [161, 323, 323], id="3d-inverse-spacing-aspect"),
        pytest.param([1, 1, 1], [100, 300, 50], [100, 256, 50], id="3d-clipped-to-median"),
        pytest.param([1, 1], [5000, 5000], [2048, 2048], id="2d-isotropic-2048-squared"),
        # p ~ (1, 1/4) with volume a * a/4 = 2048^2 -> a = 4096
        pytest.param([1, 4], [5000, 5000], [4096, 1024], id="2d-inverse-spacing-aspect"),
        pytest.param([1, 1], [300, 200], [300, 200], id="2d-clipped-to-median"),
    ],
)
def test_initial_patch_has_the_inverse_spacing_aspect_and_reference_volume(spacing, median, expected):
    assert list(initial_patch_size(spacing, median)) == expected


# -------------------------------------------------------------------------------------- topology (A4)
T3, T2 = (3, 3, 3), (3, 3)


@pytest.mark.parametrize(
    ("spacing", "patch", "num_pool", "strides", "kernels", "padded"),
    [
        pytest.param([1, 1, 1], [128] * 3, (5, 5, 5), [(1, 1, 1)] + [(2, 2, 2)] * 5, [T3] * 6, (128, 128, 128),
                     id="isotropic-128-pools-down-to-4"),
        # 18 -> 9 -> 5, 17 -> 9 -> 5, 20 -> 10 -> 5 (ceil): two poolings, padded up to multiples of 4
        pytest.param([1, 1, 1], [18, 17, 20], (2, 2, 2), [(1, 1, 1), (2, 2, 2), (2, 2, 2)], [T3] * 3, (20, 20, 20),
                     id="ceil-halving-then-padding"),
        # 15 -> 8 (ceil, not 7) is still >= 2 * 4, so it is pooled once more -> 4; padded to 16
        pytest.param([1, 1, 1], [15, 15, 15], (2, 2, 2), [(1, 1, 1), (2, 2, 2), (2, 2, 2)], [T3] * 3, (16, 16, 16),
                     id="ceil-halving-allows-another-pooling"),
        # axis 0 reaches 4 after one pooling and stops; the others go on to 4
        pytest.param([1, 1, 1], [8, 64, 64], (1, 4, 4), [(1, 1, 1), (2, 2, 2)] + [(1, 2, 2)] * 3, [T3] * 5,
                     (8, 64, 64), id="small-axis-stops-at-min-edge"),
        # spacing 3:1 -> z neither pooled nor given a 3-kernel until in-plane spacing reaches 2 (3/2 < 2)
        pytest.param([3, 1, 1], [32, 128, 128], (3, 5, 5),
                     [(1, 1, 1), (1, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2), (1, 2, 2)],
                     [(1, 3, 3)] + [T3] * 5, (32, 128, 128), id="anisotropic-3-to-1"),
        # spacing 5:1 -> two in-plane-only poolings (5/1, 5/2 >= 2, 5/4 < 2)
        pytest.param([5, 1, 1], [8, 32, 32], (1, 3, 3), [(1, 1, 1), (1, 2, 2), (1, 2, 2), (2, 2, 2)],
                     [(1, 3, 3), (1, 3, 3), T3, T3], (8, 32, 32), id="anisotropic-5-to-1"),
        # 16x8 -> 8x4: axis 0 alone is valid but 8 < 3 * 4, so it is not pooled again
        pytest.param([1, 1], [16, 8], (1, 1), [(1, 1), (2, 2)], [T2, T2], (16, 8),
                     id="2d-lone-axis-below-3x-min-edge-stops"),
        # 24x8 -> 12x4: axis 0 alone with 12 >= 3 * 4 is pooled once more
        pytest.param([1, 1], [24, 8], (2, 1), [(1, 1), (2, 2), (2, 1)], [T2] * 3, (24, 8),
                     id="2d-lone-axis-at-3x-min-edge-pools"),
    ],
)
def test_topology_hand_derived(spacing, patch, num_pool, strides, kernels, padded):
    topology = network_topology(spacing, patch, 4)
    assert topology.num_pool_per_axis == num_pool
    assert list(topology.strides) == strides
    assert list(topology.kernel_sizes) == kernels
    assert topology.patch_size == padded
    assert topology.must_be_divisible_by == tuple(2**n for n in num_pool)


@pytest.mark.parametrize(
    ("ratio", "leading_ones"),
    [
        pytest.param(1.5, 0, id="ratio-1.5"),
        pytest.param(2.0, 1, id="ratio-2-exactly"),
        pytest.param(3.0, 1, id="ratio-3"),
        pytest.param(4.0, 2, id="ratio-4"),
        pytest.param(6.25, 2, id="ratio-6.25"),
        pytest.param(10.0, 3, id="ratio-10"),
    ],
)
def test_coarse_axis_gets_kernel_1_and_no_pooling_until_within_2x(ratio, leading_ones):
    """j = the first j with ratio / 2**j < 2: the coarse axis has kernel 1 in the first j stages, 3 after,
    and is first pooled in the stage after them."""
    topology = network_topology([ratio * 0.5, 0.5, 0.5], [64, 512, 512], 4)
    z_kernels = [k[0] for k in topology.kernel_sizes]
    assert z_kernels == [1] * leading_ones + [3] * (len(z_kernels) - leading_ones)
    assert all(k[1:] == (3, 3) for k in topology.kernel_sizes)
    z_strides = [s[0] for s in topology.strides]
    assert z_strides[: leading_ones + 1] == [1] * (leading_ones + 1)
    assert z_strides[leading_ones + 1] == 2


@pytest.mark.parametrize(
    ("spacing", "patch"),
    [
        pytest.param([1, 1, 1], [100, 37, 250], id="isotropic-odd-sizes"),
        pytest.param([4.5, 0.7, 0.7], [20, 300, 270], id="thick-slices"),
        pytest.param([0.7, 2.2, 0.9], [190, 45, 170], id="coarse-middle-axis"),
        pytest.param([1, 1, 1], [7, 200, 9], id="axes-below-2x-min-edge"),
        pytest.param([0.5, 0.5], [777, 513], id="2d-odd"),
        pytest.param([1, 3], [1000, 60], id="2d-anisotropic"),
    ],
)
def test_topology_invariants(spacing, patch):
    topology = network_topology(spacing, patch, 4)
    divisor = np.array(topology.must_be_divisible_by)
    padded = np.array(topology.patch_size)
    np.testing.assert_array_equal(divisor, 2 ** np.array(topology.num_pool_per_axis))
    np.testing.assert_array_equal(np.prod(np.array(topology.strides), axis=0), divisor)
    assert topology.strides[0] == (1,) * len(spacing)
    assert len(topology.kernel_sizes) == len(topology.strides)
    assert topology.kernel_sizes[-1] == (3,) * len(spacing)
    assert np.all(padded % divisor == 0)
    assert np.all((padded >= patch) & (padded < np.array(patch) + divisor)), "padding is the smallest multiple"
    # pooling never takes an axis below the minimum edge length
    final = np.ceil(np.array(patch) / divisor)
    assert np.all((final >= 4) | (divisor == 1))
    for axis in range(len(spacing)):  # kernel 1 -> 3 once, never back
        column = [k[axis] for k in topology.kernel_sizes]
        assert column == sorted(column) and set(column) <= {1, 3}


def test_max_num_pool_limits_pooling_per_axis():
    topology = network_topology([1, 1, 1], [128, 128, 128], 4, max_num_pool=2)
    assert topology.num_pool_per_axis == (2, 2, 2)
    assert topology.must_be_divisible_by == (4, 4, 4)


# ---------------------------------------------------------------------------------- VRAM estimate (A4)
# Hand counts (feature-map voxels = channels * spatial size of every conv / transposed conv / head output).
# plain, 2 stages, input 8x8, features (2, 4), strides (1,1),(2,2), 2 convs/stage, 3 classes:
#   encoder 2*2*64 + 2*4*16 = 384; decoder at 8x8: 2 convs 2*2*64 = 256, transposed conv 2*64 = 128,
#   head 3*64 = 192 -> 960
# plain, 3 stages, features (2, 4, 8), 1 conv/stage, 3 classes:
#   encoder 2*64 + 4*16 + 8*4 = 224; decoder 4x4: 4*16 + 4*16 (+ head 3*16 with deep supervision),
#   8x8: 2*64 + 2*64 + head 3*64 -> 800, 848 with deep supervision
# residual, 2 stages, features (2, 4), blocks (1, n), decoder 1 conv, 3 classes:
#   stem 2*64 = 128; stage 0: 2 convs 2*2*64 = 256 (same channels and size: no projection);
#   stage 1: 2*4*16 = 128 + projection 4*16 = 64 + (n - 1) * 2*4*16; decoder 2*64 + 2*64 + 3*64 = 448
STRIDES_2 = [[1, 1], [2, 2]]
STRIDES_3 = [[1, 1], [2, 2], [2, 2]]


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        pytest.param(lambda: plain_unet_feature_map_size([8, 8], [2, 4], STRIDES_2, [2, 2], [2], 3), 960,
                     id="plain-2-stages"),
        pytest.param(lambda: plain_unet_feature_map_size([8, 8], [2, 4, 8], STRIDES_3, [1, 1, 1], [1, 1], 3), 800,
                     id="plain-3-stages"),
        pytest.param(lambda: plain_unet_feature_map_size([8, 8], [2, 4, 8], STRIDES_3, [1, 1, 1], [1, 1], 3, True),
                     848, id="plain-3-stages-deep-supervision"),
        pytest.param(lambda: residual_encoder_unet_feature_map_size([8, 8], [2, 4], STRIDES_2, [1, 1], [1], 3),
                     1024, id="resenc-1-block"),
        pytest.param(lambda: residual_encoder_unet_feature_map_size([8, 8], [2, 4], STRIDES_2, [1, 2], [1], 3),
                     1152, id="resenc-2-blocks-in-stage-1"),
    ],
)
def test_feature_map_size_hand_counted(count, expected):
    assert count() == expected


def _arch_kwargs(residual: bool, features_scale: int = 1) -> dict:
    strides = [[1, 1, 1]] + [[2, 2, 2]] * 4
    kwargs = {"features_per_stage": [features_scale * 32 * 2**i for i in range(5)], "strides": strides,
              "n_conv_per_stage_decoder": [2] * 4}
    kwargs["n_blocks_per_stage" if residual else "n_conv_per_stage"] = [1, 3, 4, 6, 6] if residual else [2] * 5
    return kwargs


@pytest.mark.parametrize("residual", [False, True], ids=["plain", "resenc"])
@pytest.mark.parametrize("axis", [0, 1, 2], ids=["axis0", "axis1", "axis2"])
def test_feature_map_size_is_linear_in_patch_volume(residual, axis):
    """With a patch divisible by all strides, doubling one axis doubles every feature map."""
    name = RESENC_UNET_CLASS if residual else PLAIN_UNET_CLASS
    base = [32, 48, 64]
    bigger = list(base)
    bigger[axis] *= 2
    small = architecture_feature_map_size(name, _arch_kwargs(residual), base, 3)
    assert architecture_feature_map_size(name, _arch_kwargs(residual), bigger, 3) == 2 * small


@pytest.mark.parametrize("residual", [False, True], ids=["plain", "resenc"])
def test_feature_map_size_grows_with_features_but_heads_do_not_scale(residual):
    name = RESENC_UNET_CLASS if residual else PLAIN_UNET_CLASS
    one = architecture_feature_map_size(name, _arch_kwargs(residual, 1), [32, 32, 32], 3)
    two = architecture_feature_map_size(name, _arch_kwargs(residual, 2), [32, 32, 32], 3)
    head = 3 * 32**3  # the segmentation head (no deep supervision) does not scale with the features
    assert two == 2 * (one - head) + head


def test_unknown_network_class_has_no_estimate():
    with pytest.raises(ValueError, match="No feature-map estimate"):
        architecture_feature_map_size("some.Other", _arch_kwargs(False), [32, 32, 32], 3)


# ------------------------------------------------------------------ one configuration: patch and batch (A4)
GEOMETRIES = [
    pytest.param("ExperimentPlanner", [1, 1, 1], [64, 64, 64], 10, id="plain-iso-small"),
    pytest.param("ExperimentPlanner", [1, 1, 1], [400, 400, 400], 50, id="plain-iso-large"),
    pytest.param("ExperimentPlanner", [5, 0.8, 0.8], [80, 512, 512], 30, id="plain-thick-slice-ct"),
    pytest.param("ExperimentPlanner", [1, 1, 1], [600, 150, 150], 20, id="plain-elongated"),
    pytest.param("ExperimentPlanner", [2, 2, 2], [12, 14, 9], 5, id="plain-tiny"),
    pytest.param("ExperimentPlanner", [0.5, 0.5], [512, 640], 15, id="plain-2d"),
    pytest.param("ExperimentPlanner", [0.3, 0.3], [3000, 2500], 400, id="plain-2d-large"),
    pytest.param("nnUNetPlannerResEncM", [1, 1, 1], [400, 400, 400], 50, id="resencM-iso-large"),
    pytest.param("nnUNetPlannerResEncL", [3, 0.7, 0.7], [120, 512, 512], 200, id="resencL-anisotropic"),
    pytest.param("nnUNetPlannerResEncXL", [1, 1], [1024, 1024], 100, id="resencXL-2d"),
    pytest.param("ResEncUNetPlanner", [1, 1, 1], [100, 100, 100], 400, id="legacy-resenc-5pct-cap"),
]


@pytest.mark.parametrize(("preset", "spacing", "median", "num_training"), GEOMETRIES)
def test_patch_is_divisible_within_the_median_and_fits_the_vram_reference(preset, spacing, median, num_training):
    settings = planner_settings(preset)
    dim = len(spacing)
    plan = plan_configuration(_context(settings), spacing, median, "id", float(np.prod(median) * num_training))
    patch, divisor = np.array(plan.patch_size), _divisors(plan)
    assert np.all(patch % divisor == 0)
    assert np.all(patch < np.array(median) + divisor), "at most the divisibility rounding above the median"
    assert _fits(settings, _estimate(plan), dim)
    # no shrinking when the padded initial patch already fits; otherwise strictly smaller than it
    initial = network_topology(spacing, initial_patch_size(spacing, median), 4).patch_size
    if _fits(settings, _estimate(plan, initial), dim):
        assert plan.patch_size == initial
    else:
        assert np.prod(patch) < np.prod(initial)
    # what the patch size implies about the network
    n = plan.architecture.arch_kwargs["n_stages"]
    cap = settings.max_features_2d if dim == 2 else settings.max_features_3d
    assert plan.architecture.arch_kwargs["features_per_stage"] == [min(cap, 32 * 2**i) for i in range(n)]
    assert np.all(np.ceil(patch / divisor) >= settings.featuremap_min_edge_length)


@pytest.mark.parametrize(("preset", "spacing", "median", "num_training"), GEOMETRIES)
def test_batch_size_from_vram_headroom_capped_by_dataset_coverage(preset, spacing, median, num_training):
    settings = planner_settings(preset)
    n_voxels = float(np.prod(median) * num_training)
    plan = plan_configuration(_context(settings), spacing, median, "id", n_voxels)
    reference, ref_bs = _reference(settings, len(spacing))
    from_vram = round(reference / _estimate(plan) * ref_bs)
    coverage_cap = round(n_voxels * settings.max_dataset_covered / np.prod(plan.patch_size, dtype=np.float64))
    assert plan.batch_size == max(min(from_vram, coverage_cap), 2)
    assert plan.batch_size >= 2


@pytest.mark.parametrize(
    ("preset", "num_training", "expected"),
    [
        # patch == median image, so the 5% cap is round(0.05 * num_training); the VRAM headroom is far larger
        pytest.param("ExperimentPlanner", 1000, 50, id="5pct-of-1000-cases"),
        pytest.param("ExperimentPlanner", 100, 5, id="5pct-of-100-cases"),
        pytest.param("ExperimentPlanner", 20, 2, id="5pct-is-1-floor-2"),
        pytest.param("ExperimentPlanner", 10, 2, id="5pct-is-0-floor-2"),
        pytest.param("ResEncUNetPlanner", 100, 5, id="legacy-resenc-keeps-5pct"),
        # M/L/XL: max_dataset_covered = 1, the cap is the whole dataset
        pytest.param("nnUNetPlannerResEncM", 100, 100, id="resencM-cap-is-dataset"),
        pytest.param("nnUNetPlannerResEncL", 30, 30, id="resencL-cap-is-dataset"),
    ],
)
def test_batch_size_dataset_cap_for_tiny_images(preset, num_training, expected):
    settings = planner_settings(preset)
    median = [16, 16, 16]
    plan = plan_configuration(_context(settings), [1, 1, 1], median, "id", float(np.prod(median) * num_training))
    assert plan.patch_size == (16, 16, 16)
    reference, ref_bs = _reference(settings, 3)
    assert round(reference / _estimate(plan) * ref_bs) > expected, "precondition: VRAM is not the limit"
    assert plan.batch_size == expected


def test_non_positive_spacing_is_a_plan_error():
    with pytest.raises(PlanError, match="positive"):
        plan_configuration(_context(), [0, 1, 1], [64, 64, 64], "id", 1e6)


def test_shrinking_reduces_the_axis_largest_relative_to_the_median():
    """Median 600x150x150: the long axis keeps the largest patch edge (its patch/median ratio is the smallest)."""
    for median in ([600, 150, 150], [150, 600, 150], [150, 150, 600]):
        plan = plan_configuration(_context(), [1, 1, 1], median, "id", 1e9)
        long_axis = int(np.argmax(median))
        assert plan.patch_size[long_axis] == max(plan.patch_size)
        assert sorted(plan.patch_size) == sorted(
            plan_configuration(_context(), [1, 1, 1], [600, 150, 150], "id", 1e9).patch_size)


@pytest.mark.parametrize("gpu_gb", [4, 24, 80], ids=["4GB", "24GB", "80GB"])
def test_vram_target_scales_the_reference(gpu_gb):
    median = [400, 400, 400]
    base = plan_configuration(_context(), [1, 1, 1], median, "id", 1e12)
    settings = replace(PLAIN, gpu_memory_target_gb=gpu_gb)
    scaled = plan_configuration(_context(settings), [1, 1, 1], median, "id", 1e12)
    assert _fits(settings, _estimate(scaled), 3)
    if gpu_gb > PLAIN.gpu_memory_target_gb:
        assert np.prod(scaled.patch_size) >= np.prod(base.patch_size)
        assert np.prod(scaled.patch_size) * scaled.batch_size > np.prod(base.patch_size) * base.batch_size
    else:
        assert np.prod(scaled.patch_size) < np.prod(base.patch_size)
        assert not _fits(settings, _estimate(base), 3)


# ------------------------------------------------------------------------------- whole experiment (A4)
@pytest.mark.parametrize(
    ("size", "expect"),
    [
        # the isotropic 1 mm fullres patch for a median of at least 128 voxels is 128^3 (asserted below)
        pytest.param(200, "none", id="patch-covers-26pct-no-lowres"),  # 128^3 / 200^3 = 0.262 >= 0.25
        pytest.param(220, "dropped", id="lowres-less-than-2x-smaller-dropped"),  # 0.197: needs ~203^3, 1.3x
        pytest.param(300, "kept", id="lowres-kept"),  # 0.078: needs ~203^3, 3.3x smaller
        pytest.param(600, "kept", id="lowres-kept-huge"),
    ],
)
def test_lowres_exists_only_when_fullres_patch_covers_under_25pct_and_it_halves_the_image(size, expect):
    plans = _plan([[1, 1, 1]] * 10, [[size] * 3] * 10)
    fullres = plans.configurations["3d_fullres"]
    assert fullres.patch_size == (128, 128, 128)
    coverage = np.prod(fullres.patch_size) / size**3
    assert (coverage < 0.25) == (expect != "none")
    has_lowres = expect == "kept"
    assert ("3d_lowres" in plans.configurations) == has_lowres
    assert ("3d_cascade_fullres" in plans.configurations) == has_lowres
    assert fullres.batch_dice == has_lowres
    if has_lowres:
        lowres = plans.configurations["3d_lowres"]
        assert (lowres.batch_dice, lowres.next_stage) == (False, "3d_cascade_fullres")
        assert np.prod(fullres.median_image_size_in_voxels) / np.prod(lowres.median_image_size_in_voxels) >= 2
        cascade = plans.configuration("3d_cascade_fullres")
        assert (cascade.previous_stage, cascade.inherits_from) == ("3d_lowres", "3d_fullres")
        assert (cascade.patch_size, cascade.spacing) == (fullres.patch_size, fullres.spacing)


@pytest.mark.parametrize(
    ("spacing", "shape", "aniso_steps"),
    [
        pytest.param([1, 1, 1], [300, 300, 300], 0, id="isotropic-all-axes-together"),
        pytest.param([0.8, 0.8, 0.8], [420, 380, 400], 0, id="isotropic-uneven-shape"),
        # 3:1 -> only the fine axes grow until 3 / 1.03**k <= 2, i.e. k = 14 (1.03**14 = 1.513), then all
        pytest.param([3, 1, 1], [300, 900, 900], 14, id="anisotropic-fine-axes-first"),
        pytest.param([3, 1, 1], [100, 900, 900], 14, id="anisotropic-thin"),
        # 5 / 0.8 = 6.25: the fine axes would need k = 41 to catch up; the patch fits long before
        pytest.param([5, 0.8, 0.8], [80, 512, 512], None, id="thick-slices-only-fine-axes-grow"),
    ],
)
def test_lowres_spacing_grows_by_the_step_factor_until_the_patch_covers_25pct(spacing, shape, aniso_steps):
    plans = _plan([spacing] * 10, [shape] * 10)
    fullres, lowres = plans.configurations["3d_fullres"], plans.configurations["3d_lowres"]
    ratio = np.array(lowres.spacing) / np.array(fullres.spacing)
    k = _step_exponents(ratio)  # every axis grew by a whole number of 1.03 steps
    if aniso_steps == 0:  # isotropic: all axes together
        assert k[0] > 0 and len(set(k)) == 1
    elif aniso_steps is None:  # the coarse axis never grew: the fine ones stayed > 2x finer
        assert k[0] == 0 and k[1] == k[2] > 0
        assert max(lowres.spacing) / min(lowres.spacing) > 2 * 1.03 ** -1
    else:  # the fine axes alone for aniso_steps steps, then all together
        assert k[1] == k[2] == k[0] + aniso_steps
    # median image of lowres: fullres median scaled by the spacing ratio (rounded)
    unrounded = np.array(fullres.median_image_size_in_voxels) / ratio
    assert list(lowres.median_image_size_in_voxels) == [round(m) for m in unrounded]
    assert np.prod(lowres.patch_size) / np.prod(unrounded) >= 0.25
    # one step less did not reach 25% yet (that is why this last step was taken)
    grown_last = k > 0 if k[0] == 0 else np.ones(3, bool)
    previous = np.array(lowres.spacing) / 1.03**grown_last
    if not np.allclose(previous, fullres.spacing):
        previous_median = np.array(fullres.median_image_size_in_voxels) * np.array(fullres.spacing) / previous
        before = plan_configuration(_context(), previous, [round(m) for m in previous_median], "id", 1e12)
        assert np.prod(before.patch_size) / np.prod(previous_median) < 0.25


def test_lowres_patch_covers_25pct_of_its_own_median():
    lowres = _plan([[1, 1, 1]] * 10, [[300] * 3] * 10).configurations["3d_lowres"]
    assert np.prod(lowres.patch_size) / np.prod(lowres.median_image_size_in_voxels) >= 0.25


def test_2d_configuration_uses_in_plane_spacing_and_the_2d_reference():
    plans = _plan([[5, 0.8, 0.8]] * 30, [[80, 512, 512]] * 30)
    full, two_d = plans.configurations["3d_fullres"], plans.configurations["2d"]
    assert two_d.spacing == full.spacing[1:]
    assert two_d.median_image_size_in_voxels == full.median_image_size_in_voxels[1:]
    assert two_d.batch_dice is True
    assert two_d.architecture.arch_kwargs["conv_op"].endswith("Conv2d")
    n = two_d.architecture.arch_kwargs["n_stages"]
    assert two_d.architecture.arch_kwargs["features_per_stage"] == [min(512, 32 * 2**i) for i in range(n)]
    assert max(two_d.architecture.arch_kwargs["features_per_stage"]) == 512, "deep 2d nets reach the 2d cap"
    # reference 85e6 at batch 12: the 512x512 patch fits and its batch size is what the headroom allows
    estimate = _estimate(two_d)
    assert estimate / 12 * 2 <= 85e6
    cap = round(80 * 512 * 512 * 30 * 0.05 / np.prod(two_d.patch_size))  # the 3D voxel count of the dataset
    assert two_d.batch_size == max(min(round(85e6 / estimate * 12), cap), 2)


@pytest.mark.parametrize(
    ("spacings", "shapes", "configurations"),
    [
        pytest.param([[999, 0.5, 0.5]] * 15, [[1, 512, 640]] * 15, ["2d"], id="single-slice-images-only-2d"),
        pytest.param([[1, 1, 1]] * 5, [[64, 64, 64]] * 5, ["2d", "3d_fullres"], id="small-3d"),
        pytest.param([[1, 1, 1]] * 5, [[300, 300, 300]] * 5,
                     ["2d", "3d_lowres", "3d_fullres", "3d_cascade_fullres"], id="large-3d-cascade"),
    ],
)
def test_which_configurations_are_planned(spacings, shapes, configurations):
    assert list(_plan(spacings, shapes).configurations) == configurations


def test_plans_are_transposed_coarsest_axis_first():
    plans = _plan([[0.9, 1.1, 4.0]] * 8, [[300, 260, 40]] * 8)
    assert (plans.transpose_forward, plans.transpose_backward) == ((2, 0, 1), (1, 2, 0))
    full = plans.configurations["3d_fullres"]
    assert full.spacing == (4.0, 0.9, 1.1)
    assert full.median_image_size_in_voxels == (40, 300, 260)
    assert plans.original_median_shape_after_transp == (40, 300, 260)
    assert plans.configurations["2d"].spacing == (0.9, 1.1)
    assert full.architecture.arch_kwargs["kernel_sizes"][0][0] == 1, "4 / 0.9 > 2: kernel 1 on the coarse axis first"


def test_median_shape_is_taken_after_resampling_to_the_target_spacing():
    # target = median(0.5, 1, 2) = 1 mm; at 1 mm the cases have 300*0.5 = 150, 100 and 70*2 = 140 voxels:
    # median 140, while the median of the raw shapes (300, 100, 70) is 100
    plans = _plan([[0.5] * 3, [1.0] * 3, [2.0] * 3], [[300] * 3, [100] * 3, [70] * 3])
    assert plans.configurations["3d_fullres"].median_image_size_in_voxels == (140, 140, 140)
    assert plans.original_median_shape_after_transp == (100, 100, 100)


def test_dataset_voxel_count_for_the_cap_is_median_times_num_training():
    # patch == median image (64^3): cap = round(num_training * 0.05) -> 200 cases give 10 (VRAM allows more)
    plans = _plan([[1, 1, 1]] * 3, [[64, 64, 64]] * 3, num_training=200)
    full = plans.configurations["3d_fullres"]
    assert full.patch_size == (64, 64, 64)
    assert round(560e6 / _estimate(full) * 2) > 10
    assert full.batch_size == 10


# ---------------------------------------------------------------------------- normalization and presets
@pytest.mark.parametrize(
    ("channels", "relative_size", "schemes", "use_mask"),
    [
        pytest.param(["CT"], 0.5, ["CTNormalization"], [False], id="ct-never-masked"),
        pytest.param(["T1"], 0.5, ["ZScoreNormalization"], [True], id="zscore-masked-after-big-crop"),
        pytest.param(["T1"], 0.8, ["ZScoreNormalization"], [False], id="zscore-not-masked-small-crop"),
        pytest.param(["T1"], 0.75, ["ZScoreNormalization"], [False], id="crop-exactly-75pct-not-masked"),
        pytest.param(["ct", "noNorm", "T2"], 0.3, ["CTNormalization", "NoNormalization", "ZScoreNormalization"],
                     [False, False, True], id="per-channel-case-insensitive"),
    ],
)
def test_normalization_scheme_and_mask_per_channel(channels, relative_size, schemes, use_mask):
    assert normalization_schemes_for_channels(channels, relative_size) == (schemes, use_mask)


@pytest.mark.parametrize(
    ("name", "planner", "encoder_key", "cap", "shares_default_data"),
    [
        pytest.param("default", "ExperimentPlanner", "n_conv_per_stage", 0.05, False, id="default"),
        pytest.param("ResEncM", "nnUNetPlannerResEncM", "n_blocks_per_stage", 1, True, id="resencM"),
        pytest.param("ResEncL", "nnUNetPlannerResEncL", "n_blocks_per_stage", 1, True, id="resencL"),
        pytest.param("nnUNetPlannerResEncXL", "nnUNetPlannerResEncXL", "n_blocks_per_stage", 1, True, id="resencXL"),
        pytest.param("ResEncUNetPlanner", "ResEncUNetPlanner", "n_blocks_per_stage", 0.05, True, id="legacy-resenc"),
    ],
)
def test_presets(name, planner, encoder_key, cap, shares_default_data):
    settings = planner_settings(name)
    assert settings.planner_name == planner
    assert settings.encoder_blocks_key == encoder_key
    assert settings.max_dataset_covered == cap
    # ResEnc presets reuse the default planner's 2d/3d_fullres data whatever their plans are called
    renamed = replace(settings, plans_name="MyPlans")
    shared = {c: renamed.data_identifier(c) == f"nnUNetPlans_{c}" for c in ("2d", "3d_fullres")}
    assert shared == {"2d": shares_default_data, "3d_fullres": shares_default_data}
    assert renamed.data_identifier("3d_lowres") == "MyPlans_3d_lowres"
    # the plans' architecture carries the preset's block counts, trimmed to the number of stages
    full = _plan([[1, 1, 1]] * 3, [[64, 64, 64]] * 3, settings=settings).configurations["3d_fullres"]
    kwargs = full.architecture.arch_kwargs
    n = kwargs["n_stages"]
    assert kwargs[encoder_key] == list(settings.blocks_per_stage_encoder[:n])
    assert kwargs["n_conv_per_stage_decoder"] == list(settings.blocks_per_stage_decoder[: n - 1])
    assert full.architecture.network_class_name == settings.network_class_name


def test_unknown_planner_lists_the_available_ones():
    with pytest.raises(PlanError, match="Available: " + ", ".join(PRESETS)):
        planner_settings("nnUNetPlannerResEncXXL")


def test_larger_presets_plan_larger_patches_or_batches():
    voxels = []
    for name in ("nnUNetPlannerResEncM", "nnUNetPlannerResEncL", "nnUNetPlannerResEncXL"):
        full = _plan([[1, 1, 1]] * 50, [[400, 400, 400]] * 50, settings=planner_settings(name)).configurations[
            "3d_fullres"]
        voxels.append(np.prod(full.patch_size) * full.batch_size)
    assert voxels == sorted(voxels) and len(set(voxels)) == 3


# ------------------------------------------------------------------------------------- plans model
def test_plans_round_trip_and_cascade_resolution(tmp_path):
    plans = _plan([[1, 1, 1]] * 5, [[300, 300, 300]] * 5)
    path = tmp_path / "nnUNetPlans.json"
    plans.save(path)
    loaded = Plans.load(path)
    assert loaded.to_dict() == plans.to_dict()
    assert loaded.configuration("3d_fullres") == plans.configuration("3d_fullres")
    cascade = loaded.configuration("3d_cascade_fullres")
    assert cascade.previous_stage == "3d_lowres"
    assert cascade.data_identifier == plans.configuration("3d_fullres").data_identifier


@pytest.mark.parametrize(
    ("configurations", "message"),
    [
        pytest.param({"a": {"inherits_from": "b"}, "b": {"inherits_from": "a"}}, "Circular", id="circular"),
        pytest.param({"a": {"inherits_from": "a"}}, "Circular", id="self"),
        pytest.param({"a": {"inherits_from": "missing"}}, "missing", id="missing-parent"),
    ],
)
def test_broken_inheritance_is_a_plan_error(configurations, message):
    raw = _plan([[1, 1, 1]] * 3, [[64] * 3] * 3).to_dict()
    raw["configurations"] = configurations
    plans = Plans.from_dict(raw)
    with pytest.raises(PlanError, match=message):
        plans.configuration("a")


def test_feature_maps_rounding_uses_floor_division():
    """An odd size pooled by 2 gives floor(size / 2) voxels in the next stage (as nnU-Net counts)."""
    even = plain_unet_feature_map_size([8, 8], [1, 1], STRIDES_2, [1, 1], [1], 1)
    odd = plain_unet_feature_map_size([9, 8], [1, 1], STRIDES_2, [1, 1], [1], 1)
    # the 4x4 stage stays 4x4 (9 // 2 == 4); only the four full-resolution maps (encoder conv, decoder conv,
    # transposed conv, head) grow by one row of 8 voxels each
    assert odd - even == 4 * 8
