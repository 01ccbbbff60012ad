"""Data augmentation: nnU-Net v2's spatial settings and transform pipelines, and how the pipelines behave.

The oracle tests compare with nnU-Net's trainer itself: the settings it derives from a patch size, and its
training and validation pipelines, transform by transform (class, order and every constructor attribute).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytest
import torch
from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform
from batchgeneratorsv2.transforms.intensity.contrast import BGContrast
from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform
from batchgeneratorsv2.transforms.utils.random import RandomTransform

from autoseg.training.augmentation import build_training_transforms, build_validation_transforms
from autoseg.training.augmentation_params import (
    SCALING_RANGE,
    SpatialAugmentationParams,
    configure_spatial_augmentation,
    initial_patch_size,
)

DS_3D = [[1.0, 1.0, 1.0], [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]]
DS_2D = [[1.0, 1.0], [0.5, 0.5], [0.25, 0.25], [0.125, 0.125]]
DS_DUMMY_2D = [[1.0, 1.0, 1.0], [1.0, 0.5, 0.5], [0.5, 0.25, 0.25]]

#: name -> patch size: isotropic 3D, dummy 2D (anisotropic), just below the dummy-2D threshold, 2D square, 2D
#: elongated (15 degree rotation), 2D just at the elongation threshold
PATCHES = {
    "3d_hippocampus": [40, 56, 40],
    "3d_iso": [128, 128, 128],
    "3d_dummy2d": [20, 192, 160],
    "3d_at_threshold": [32, 96, 80],
    "3d_flat_first_axis_long": [160, 64, 48],
    "2d_square": [512, 512],
    "2d_rect": [320, 256],
    "2d_elongated": [128, 512],
    "2d_at_threshold": [128, 192],
}


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    """The data loader runs the pipelines in single-threaded workers; so do the tests (cores are shared)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trainers() -> dict[str, type]:
    """nnU-Net's default trainer and its two mirroring variants (the oracle)."""
    base = pytest.importorskip("nnunetv2.training.nnUNetTrainer.nnUNetTrainer")
    variants = pytest.importorskip(
        "nnunetv2.training.nnUNetTrainer.variants.data_augmentation.nnUNetTrainerNoMirroring"
    )
    return {
        "default": base.nnUNetTrainer,
        "none": variants.nnUNetTrainerNoMirroring,
        "only01": variants.nnUNetTrainer_onlyMirror01,
    }


def nnunet_spatial(trainer_class: type, patch_size: Sequence[int]) -> tuple:
    """nnU-Net's ``configure_rotation_dummyDA_mirroring_and_inital_patch_size`` (trainer without __init__)."""
    trainer = trainer_class.__new__(trainer_class)
    trainer.configuration_manager = type("Config", (), {"patch_size": list(patch_size)})()
    trainer.print_to_log_file = lambda *args, **kwargs: None
    return trainer.configure_rotation_dummyDA_mirroring_and_inital_patch_size()


def describe(obj: Any) -> Any:
    """A comparable description: transform classes and every attribute, recursively (tuples read as lists)."""
    if isinstance(obj, (BasicTransform, BGContrast)):
        name = f"{type(obj).__module__}.{type(obj).__qualname__}"
        return name, {key: describe(value) for key, value in sorted(vars(obj).items())}
    if isinstance(obj, torch.Tensor):
        return "tensor", obj.tolist()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (list, tuple)):
        return [describe(value) for value in obj]
    if isinstance(obj, dict):
        return {key: describe(value) for key, value in obj.items()}
    if callable(obj):
        return f"{obj.__module__}.{obj.__qualname__}"
    return obj


# ----------------------------------------------------------------------------------- settings


@pytest.mark.oracle
@pytest.mark.parametrize("name", PATCHES)
@pytest.mark.parametrize("mirroring", ["default", "none", "only01"])
def test_spatial_settings_match_nnunet(trainers: dict[str, type], name: str, mirroring: str) -> None:
    patch = PATCHES[name]
    rotation, dummy_2d, initial, mirror_axes = nnunet_spatial(trainers[mirroring], patch)
    override = {"default": "default", "none": None, "only01": (0,) if len(patch) == 2 else (0, 1)}[mirroring]
    ours = configure_spatial_augmentation(patch, mirror_axes=override)
    assert ours.rotation == tuple(rotation)  # bit-identical radians
    assert ours.do_dummy_2d == dummy_2d
    assert ours.initial_patch_size == tuple(int(i) for i in initial)
    assert ours.mirror_axes == mirror_axes


@pytest.mark.oracle
def test_initial_patch_size_matches_nnunet_on_many_sizes() -> None:
    get_patch_size = pytest.importorskip(
        "nnunetv2.training.data_augmentation.compute_initial_patch_size"
    ).get_patch_size
    rng = np.random.default_rng(0)
    for _ in range(400):
        patch = [int(p) for p in rng.integers(4, 400, size=rng.choice([2, 3]))]
        degrees = float(rng.choice([15, 30, 45, 90, 180]))
        rotation = (-degrees / 360 * 2 * np.pi, degrees / 360 * 2 * np.pi)
        expected = get_patch_size(patch, rotation, rotation, rotation, (0.85, 1.25))
        assert initial_patch_size(patch, rotation) == tuple(int(i) for i in expected), patch


def test_spatial_settings_rules() -> None:
    iso = configure_spatial_augmentation([40, 56, 40])
    assert iso == SpatialAugmentationParams(
        (-np.pi / 6, np.pi / 6), SCALING_RANGE, False, iso.initial_patch_size, (0, 1, 2)
    ) and iso.initial_patch_size == (73, 80, 64)
    flat = configure_spatial_augmentation([20, 192, 160])
    assert flat.do_dummy_2d and flat.rotation == (-np.pi, np.pi) and flat.initial_patch_size[0] == 20
    assert configure_spatial_augmentation([128, 512]).rotation == pytest.approx((-np.pi / 12, np.pi / 12))
    assert configure_spatial_augmentation([320, 256]).mirror_axes == (0, 1)
    assert configure_spatial_augmentation([320, 256], mirror_axes=None).mirror_axes is None
    with pytest.raises(ValueError, match="mirror axes"):
        configure_spatial_augmentation([320, 256], mirror_axes=(0, 1, 2))
    with pytest.raises(ValueError):
        configure_spatial_augmentation([64])


# ----------------------------------------------------------------------------------- pipelines vs nnU-Net

#: name -> (patch, DS scales, use_mask_for_norm, cascaded, foreground labels, regions, ignore label)
PIPELINES: dict[str, tuple] = {
    "labels": ([40, 56, 40], DS_3D, [False], False, [1, 2], None, None),
    "labels_no_ds": ([40, 56, 40], None, [False], False, [1, 2], None, None),
    "regions_ignore": ([64, 64, 64], DS_3D, [False, False], False, [1, 2, 3], [(1, 2, 3), (2, 3), 3], 4),
    "regions": ([64, 64, 64], DS_3D, [False], False, [1, 2, 3], [[1, 2, 3], [2, 3], [3]], None),
    "cascade": ([48, 64, 56], DS_3D, [False], True, [1, 2, 3], None, None),
    "cascade_regions_ignore": ([48, 64, 56], DS_3D, [False], True, [1, 2], [(1, 2), 2], 3),
    "mask_for_norm": ([64, 64, 64], DS_3D, [True, False, True], False, [1], None, None),
    "dummy_2d": ([20, 192, 160], DS_DUMMY_2D, [True], False, [1, 2], None, None),
    "2d": ([320, 256], DS_2D, [False, False], False, [1, 2, 3, 4], None, None),
    "2d_elongated": ([128, 512], DS_2D, [True], False, [1], None, 2),
}


@pytest.mark.oracle
@pytest.mark.parametrize("name", PIPELINES)
@pytest.mark.parametrize("mirroring", ["default", "none"])
def test_training_pipeline_matches_nnunet(trainers: dict[str, type], name: str, mirroring: str) -> None:
    patch, ds, mask, cascaded, labels, regions, ignore = PIPELINES[name]
    rotation, dummy_2d, _, mirror_axes = nnunet_spatial(trainers[mirroring], patch)
    theirs = trainers["default"].get_training_transforms(
        patch, rotation, ds, mirror_axes, dummy_2d, use_mask_for_norm=mask, is_cascaded=cascaded,
        foreground_labels=labels, regions=regions, ignore_label=ignore,
    )
    params = configure_spatial_augmentation(patch, mirror_axes=None if mirroring == "none" else "default")
    ours = build_training_transforms(patch, params, ds, mask, cascaded, labels, regions, ignore)
    assert describe(ours) == describe(theirs)


@pytest.mark.oracle
@pytest.mark.parametrize("name", ["labels", "regions_ignore", "cascade", "mask_for_norm", "dummy_2d", "2d"])
def test_training_pipeline_output_matches_nnunet(trainers: dict[str, type], name: str) -> None:
    """Same seed and sample, same augmented patch (blur picks FFT or convolution by timing: allclose)."""
    patch, ds, mask, cascaded, labels, regions, ignore = PIPELINES[name]
    rotation, dummy_2d, _, mirror_axes = nnunet_spatial(trainers["default"], patch)
    theirs = trainers["default"].get_training_transforms(
        patch, rotation, ds, mirror_axes, dummy_2d, use_mask_for_norm=mask, is_cascaded=cascaded,
        foreground_labels=labels, regions=regions, ignore_label=ignore,
    )
    params = configure_spatial_augmentation(patch)
    ours = build_training_transforms(patch, params, ds, mask, cascaded, labels, regions, ignore)
    all_labels = [0, *labels] + ([ignore] if ignore is not None else [])
    for probability, seed in [(None, 0), (None, 1), (1.0, 2), (1.0, 3)]:
        image, seg = sample(
            params.initial_patch_size, len(mask), all_labels, seg_channels=2 if cascaded else 1, seed=seed
        )
        outputs = []
        for pipeline in (theirs, ours):
            if probability is not None:
                force(pipeline, probability)
            torch.manual_seed(seed)
            np.random.seed(seed)
            outputs.append(pipeline(image=image.clone(), segmentation=seg.clone()))
        expected, actual = outputs
        torch.testing.assert_close(actual["image"], expected["image"], rtol=1e-4, atol=1e-4)
        assert all(torch.equal(a, b) for a, b in zip(actual["segmentation"], expected["segmentation"]))


@pytest.mark.oracle
@pytest.mark.parametrize("name", PIPELINES)
def test_validation_pipeline_matches_nnunet(trainers: dict[str, type], name: str) -> None:
    _, ds, _, cascaded, labels, regions, ignore = PIPELINES[name]
    theirs = trainers["default"].get_validation_transforms(
        ds, is_cascaded=cascaded, foreground_labels=labels, regions=regions, ignore_label=ignore
    )
    ours = build_validation_transforms(ds, cascaded, labels, regions, ignore)
    assert describe(ours) == describe(theirs)


# ----------------------------------------------------------------------------------- behaviour


def sample(shape: Sequence[int], channels: int, labels: Sequence[int], seg_channels: int = 1, seed: int = 0):
    """Smooth random image and blobby labels, with a -1 (outside the case) border as the loader pads."""
    g = torch.Generator().manual_seed(seed)
    image = torch.nn.functional.interpolate(
        torch.rand((1, channels, *[max(2, s // 8) for s in shape]), generator=g), size=list(shape),
        mode="bilinear" if len(shape) == 2 else "trilinear",
    )[0]
    field = torch.nn.functional.interpolate(
        torch.rand((1, seg_channels, *[max(2, s // 6) for s in shape]), generator=g), size=list(shape),
        mode="bilinear" if len(shape) == 2 else "trilinear",
    )[0]
    levels = torch.tensor(sorted(labels), dtype=torch.float32)
    bins = torch.linspace(0.2, 0.8, len(levels) - 1)
    seg = torch.bucketize(field, bins) if len(levels) > 1 else torch.zeros_like(field)
    seg = levels[seg.long()].to(torch.int16)
    border = tuple(slice(None, max(1, s // 8)) for s in shape)
    seg[(slice(None), *border)] = -1
    return image.float(), seg


def force(pipeline: Any, probability: float) -> Any:
    """Set every random transform's (and the spatial transform's) probability."""
    for transform in pipeline.transforms:
        if isinstance(transform, RandomTransform):
            transform.apply_probability = probability
        if isinstance(transform, SpatialTransform):
            transform.p_rotation = transform.p_scaling = probability
    return pipeline


def ds_shapes(patch: Sequence[int], scales: list[list[float]]) -> list[tuple[int, ...]]:
    return [tuple(round(p * s) for p, s in zip(patch, scale)) for scale in scales]


@pytest.mark.parametrize(
    "patch, ds, channels",
    [([40, 56, 40], DS_3D, 1), ([20, 96, 80], DS_DUMMY_2D, 2), ([96, 80], DS_2D, 2), ([40, 56, 40], None, 1)],
)
@pytest.mark.parametrize("probability", [None, 1.0])
def test_training_output_shapes_and_labels(patch, ds, channels: int, probability: float | None) -> None:
    params = configure_spatial_augmentation(patch)
    assert params.do_dummy_2d == (patch == [20, 96, 80])
    pipeline = build_training_transforms(patch, params, ds, [False] * channels, False, [1, 2], None, None)
    if probability is not None:
        force(pipeline, probability)
    for seed in range(4):
        torch.manual_seed(seed)
        np.random.seed(seed)
        image, seg = sample(params.initial_patch_size, channels, [0, 1, 2], seed=seed)
        out = pipeline(image=image, segmentation=seg)
        assert out["image"].shape == (channels, *patch) and out["image"].dtype == torch.float32
        assert torch.isfinite(out["image"]).all()
        segs = out["segmentation"] if ds is not None else [out["segmentation"]]
        expected = ds_shapes(patch, ds or [[1] * len(patch)])
        assert [tuple(s.shape) for s in segs] == [(1, *shape) for shape in expected]
        for s in segs:
            assert s.dtype == torch.int16
            assert set(s.unique().tolist()) <= {0, 1, 2}


def test_validation_output_shapes_and_labels() -> None:
    patch = [40, 56, 40]
    image, seg = sample(patch, 1, [0, 1, 2])
    out = build_validation_transforms(DS_3D)(image=image.clone(), segmentation=seg.clone())
    assert torch.equal(out["image"], image)  # no augmentation
    assert [tuple(s.shape) for s in out["segmentation"]] == [(1, *s) for s in ds_shapes(patch, DS_3D)]
    assert torch.equal(out["segmentation"][0], torch.where(seg == -1, 0, seg))
    assert set(out["segmentation"][2].unique().tolist()) <= {0, 1, 2}


@pytest.mark.parametrize("patch", [[24, 32, 40], [48, 64]])
def test_mirror_only_pipeline_is_a_flip(patch: list[int]) -> None:
    """With every other transform switched off, the output is the input flipped on some allowed axes."""
    params = configure_spatial_augmentation(patch)
    pipeline = force(build_training_transforms(patch, params, None, [False], False, [1], None, None), 0.0)
    image, seg = sample(patch, 2, [0, 1])
    seen = set()
    for seed in range(16):
        torch.manual_seed(seed)
        out = pipeline(image=image.clone(), segmentation=seg.clone())
        flips = [
            axes for n in range(len(patch) + 1) for axes in itertools.combinations(range(len(patch)), n)
            if torch.equal(out["image"], image.flip([a + 1 for a in axes]))
        ]
        assert len(flips) == 1
        axes = [a + 1 for a in flips[0]]
        assert torch.equal(out["segmentation"], torch.where(seg == -1, 0, seg).flip(axes))
        seen.add(flips[0])
    assert len(seen) > 2  # the axes are random


def test_no_mirroring_and_mask_for_norm() -> None:
    patch = [24, 32, 40]
    params = configure_spatial_augmentation(patch, mirror_axes=None)
    pipeline = build_training_transforms(patch, params, None, [True, False], False, [1], None, None)
    force(pipeline, 0.0)
    image, seg = sample(patch, 2, [0, 1])
    image += 1  # nothing is 0 before masking
    out = pipeline(image=image.clone(), segmentation=seg.clone())
    outside = seg[0] == -1
    assert (out["image"][0][outside] == 0).all()
    assert torch.equal(out["image"][0][~outside], image[0][~outside])
    assert torch.equal(out["image"][1], image[1])  # not masked
    assert torch.equal(out["segmentation"], torch.where(seg == -1, 0, seg))


def test_fixed_seed_is_reproducible() -> None:
    patch = [40, 56, 40]
    params = configure_spatial_augmentation(patch)
    pipeline = force(build_training_transforms(patch, params, DS_3D, [False], False, [1, 2], None, None), 1.0)
    image, seg = sample(params.initial_patch_size, 1, [0, 1, 2])

    def run(seed: int) -> dict:
        torch.manual_seed(seed)
        np.random.seed(seed)
        return pipeline(image=image.clone(), segmentation=seg.clone())

    first, again, other = run(3), run(3), run(4)
    assert torch.equal(first["image"], again["image"])
    assert all(torch.equal(a, b) for a, b in zip(first["segmentation"], again["segmentation"]))
    assert not torch.equal(first["image"], other["image"])


@pytest.mark.parametrize("ignore_label", [None, 4])
@pytest.mark.parametrize("training", [True, False])
def test_regions_have_one_channel_per_region(ignore_label: int | None, training: bool) -> None:
    patch, regions = [32, 40, 48], [(1, 2, 3), (2, 3), 3]
    labels = [0, 1, 2, 3] + ([ignore_label] if ignore_label else [])
    if training:
        params = configure_spatial_augmentation(patch, mirror_axes=None)
        pipeline = force(build_training_transforms(patch, params, DS_3D, [False], False, [1, 2, 3], regions,
                                                   ignore_label), 0.0)
    else:
        pipeline = build_validation_transforms(DS_3D, False, [1, 2, 3], regions, ignore_label)
    image, seg = sample(patch, 1, labels)
    out = pipeline(image=image, segmentation=seg.clone())
    channels = len(regions) + (ignore_label is not None)
    assert [tuple(s.shape) for s in out["segmentation"]] == [(channels, *s) for s in ds_shapes(patch, DS_3D)]
    full, labelmap = out["segmentation"][0], torch.where(seg == -1, 0, seg)[0]
    assert full.dtype == torch.bool
    assert torch.equal(full[0], torch.isin(labelmap, torch.tensor([1, 2, 3], dtype=labelmap.dtype)))
    assert torch.equal(full[2], labelmap == 3)
    if ignore_label is not None:
        assert torch.equal(full[3], labelmap == ignore_label) and full[3].any()


@pytest.mark.parametrize("training", [True, False])
def test_cascade_moves_previous_stage_to_image(training: bool) -> None:
    patch, labels = [32, 40, 48], [1, 2, 3]
    params = configure_spatial_augmentation(patch)
    if training:
        pipeline = build_training_transforms(patch, params, DS_3D, [False], True, labels, None, None)
        shape = params.initial_patch_size
    else:
        pipeline = build_validation_transforms(DS_3D, True, labels, None, None)
        shape = tuple(patch)
    image, seg = sample(shape, 1, [0, *labels], seg_channels=2)
    for seed in range(3):
        torch.manual_seed(seed)
        np.random.seed(seed)
        out = pipeline(image=image.clone(), segmentation=seg.clone())
        assert out["image"].shape == (1 + len(labels), *patch)
        onehot = out["image"][1:]
        assert set(onehot.unique().tolist()) <= {0.0, 1.0} and (onehot.sum(0) <= 1).all()
        assert [tuple(s.shape) for s in out["segmentation"]] == [(1, *s) for s in ds_shapes(patch, DS_3D)]
        assert set(out["segmentation"][0].unique().tolist()) <= {0, *labels}
    if not training:
        previous = torch.where(seg[1] == -1, 0, seg[1])
        for i, label in enumerate(labels):
            assert torch.equal(out["image"][1 + i], (previous == label).float())


def test_cascade_needs_foreground_labels() -> None:
    with pytest.raises(ValueError, match="foreground labels"):
        build_validation_transforms(None, True, [], None, None)


def test_regions_given_as_numpy_values() -> None:
    """Regions read through NumPy (np.int64, arrays) mean the same as plain ints and tuples."""
    pipeline = build_validation_transforms(None, False, [1, 2], [np.array([1, 2]), np.int64(2)], np.int64(3))
    _, seg = sample([16, 16], 1, [0, 1, 2, 3])
    out = pipeline(image=torch.zeros((1, 16, 16)), segmentation=seg.clone())["segmentation"]
    labelmap = torch.where(seg == -1, 0, seg)[0]
    assert out.shape == (3, 16, 16)
    assert torch.equal(out[0], (labelmap == 1) | (labelmap == 2))
    assert torch.equal(out[1], labelmap == 2) and torch.equal(out[2], labelmap == 3)
