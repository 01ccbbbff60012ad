"""Resampling against nnU-Net v2's ``default_resampling`` and batchgenerators' ``resize_segmentation``
(the oracle): exact equality of values, dtypes and shapes for images, segmentations and probabilities."""

from __future__ import annotations

import numpy as np
import pytest
from external_test_data import TEST_DATA as DATA
from scipy import ndimage

from autoseg.preprocessing import resampling as ours
from autoseg.preprocessing.cropping import crop_to_nonzero

pytestmark = pytest.mark.oracle
nn = pytest.importorskip("nnunetv2.preprocessing.resampling.default_resampling")
bg_utils = pytest.importorskip("batchgenerators.augmentations.utils")

DATA_KW = {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None}  # nnU-Net plans: images
SEG_KW = {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None}  # segmentations
PROB_KW = {"is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None}  # probabilities at export
KWARGS = {
    "data": DATA_KW, "seg": SEG_KW, "probabilities": PROB_KW,
    "data_forced_sep_z": {**DATA_KW, "force_separate_z": True},
    "data_no_sep_z": {**DATA_KW, "force_separate_z": False},
    "data_order_z1": {**DATA_KW, "order_z": 1, "force_separate_z": True},
    "seg_order_z1": {**SEG_KW, "order_z": 1, "force_separate_z": True},
    "seg_order0": {**SEG_KW, "order": 0},
}

# (shape, current spacing, new spacing, channels)
GEOMETRIES = {
    "aniso_upsample_z": ((12, 30, 28), (5.0, 0.8, 0.8), (1.6, 0.8, 0.8), 1),  # separate z, in-plane unchanged
    "aniso_both": ((10, 26, 30), (5.0, 0.8, 0.8), (2.5, 0.7, 0.9), 2),
    "aniso_downsample_z": ((30, 20, 20), (4.0, 1.0, 1.0), (9.0, 1.2, 1.2), 1),
    "aniso_axis_1": ((20, 9, 24), (0.9, 4.5, 0.9), (1.0, 1.5, 1.0), 1),
    "aniso_axis_2": ((18, 22, 8), (1.0, 1.0, 5.0), (1.2, 0.8, 2.0), 1),
    "aniso_target_only": ((14, 24, 24), (1.0, 1.0, 1.0), (4.0, 1.1, 1.1), 1),  # rule fires on the new spacing
    "iso": ((16, 18, 14), (1.0, 1.0, 1.0), (0.8, 1.3, 1.1), 2),
    "two_tied_axes": ((12, 12, 20), (3.0, 3.0, 0.5), (2.0, 2.0, 0.7), 1),  # no separate z
    "2d_ish": ((1, 40, 36), (999.0, 0.7, 0.7), (999.0, 0.5, 1.0), 1),
    "unchanged": ((8, 9, 10), (1.0, 2.0, 3.0), (1.0, 2.0, 3.0), 1),
}


def make_arrays(shape: tuple[int, ...], channels: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    data = ndimage.gaussian_filter(rng.normal(size=(channels, *shape)), (0, 1, 1, 1)).astype(np.float32) * 100
    seg = np.zeros((1, *shape), dtype=np.float32)
    for label in (1, 2, 3):
        centre = [rng.integers(0, s) for s in shape]
        radius = [max(1, s // 4) for s in shape]
        seg[(0, *(slice(max(0, c - r), c + r) for c, r in zip(centre, radius)))] = label
    seg[0, rng.random(shape) < 0.02] = 4
    seg[0, 0] = -1  # the outside-the-mask label of cropped segmentations
    probs = rng.dirichlet(np.ones(3), size=shape).astype(np.float32)
    return {"data": data, "seg": seg, "probabilities": np.moveaxis(probs, -1, 0)}


def assert_same(expected: np.ndarray, got: np.ndarray) -> None:
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("geometry", list(GEOMETRIES))
@pytest.mark.parametrize("kind", list(KWARGS))
def test_resample_to_shape_matches_nnunet(geometry: str, kind: str) -> None:
    shape, spacing, new_spacing, channels = GEOMETRIES[geometry]
    arrays = make_arrays(shape, channels, seed=len(geometry))
    array = arrays[kind.split("_")[0]] if not kind.startswith("prob") else arrays["probabilities"]
    kwargs = KWARGS[kind]
    new_shape = nn.compute_new_shape(shape, spacing, new_spacing)
    expected = nn.resample_data_or_seg_to_shape(array.copy(), new_shape, spacing, new_spacing, **kwargs)
    got = ours.resample_data_or_seg_to_shape(array, new_shape, spacing, new_spacing, **kwargs)
    assert_same(expected, got)
    if geometry == "unchanged":
        assert got is array  # nnU-Net returns its input untouched, dtype included


@pytest.mark.parametrize("kind", ["data", "seg"])
def test_to_spacing_and_threads(kind: str) -> None:
    shape, spacing, new_spacing, channels = GEOMETRIES["aniso_both"]
    array = make_arrays(shape, 2, seed=3)[kind]
    kwargs = KWARGS[kind]
    expected = nn.resample_data_or_seg_to_spacing(array.copy(), spacing, new_spacing, **kwargs)
    for threads in (1, 3):
        assert_same(expected, ours.resample_data_or_seg_to_spacing(array, spacing, new_spacing, **kwargs,
                                                                    num_threads=threads))
    iso = GEOMETRIES["iso"]
    array = make_arrays(iso[0], 2, seed=4)[kind]
    expected = nn.resample_data_or_seg_to_spacing(array.copy(), iso[1], iso[2], **kwargs)
    assert_same(expected, ours.resample_data_or_seg_to_spacing(array, iso[1], iso[2], **kwargs, num_threads=2))


@pytest.mark.parametrize("seed", range(6))
def test_resize_segmentation_matches_batchgenerators(seed: int) -> None:
    """Random label maps, including small labels (the cropped per-label path) and exact ties."""
    rng = np.random.default_rng(seed)
    for _ in range(25):
        ndim = int(rng.integers(2, 4))
        shape = tuple(int(s) for s in rng.integers(1, 24, ndim))
        factor = rng.choice([0.5, 2.0, 0.0])  # 0: arbitrary target
        new_shape = (tuple(int(s) for s in rng.integers(1, 32, ndim)) if factor == 0
                     else tuple(max(1, int(s * factor)) for s in shape))
        seg = np.zeros(shape, dtype=rng.choice([np.float32, np.int8, np.float64]))
        for label in range(1, int(rng.integers(1, 7))):
            centre = [int(rng.integers(0, s)) for s in shape]
            radius = [int(rng.integers(0, max(1, s // 3) + 1)) for s in shape]
            seg[tuple(slice(max(0, c - r), c + r + 1) for c, r in zip(centre, radius))] = label
        if rng.random() < 0.3:
            seg[rng.random(shape) < 0.1] = -1
        order = int(rng.choice([1, 1, 1, 0, 2, 3]))
        expected = bg_utils.resize_segmentation(seg, new_shape, order)
        assert_same(expected, ours.resize_segmentation(seg, new_shape, order, num_threads=int(rng.integers(1, 3))))


@pytest.mark.parametrize("shape,spacing,new_spacing", [
    ((5, 6, 7), (1.0, 1.0, 1.0), (0.3, 0.7, 1.4)),
    ((10, 10, 10), (2.0, 2.0, 2.0), (0.8, 0.8, 0.8)),  # x.5 cases: Python's round is half to even
    ((3, 7, 9), (2.5, 0.5, 0.5), (1.0, 1.0, 1.0)),
])
def test_compute_new_shape(shape, spacing, new_spacing) -> None:
    np.testing.assert_array_equal(ours.compute_new_shape(shape, spacing, new_spacing),
                                  nn.compute_new_shape(shape, spacing, new_spacing))


@pytest.mark.parametrize("force", [None, True, False])
@pytest.mark.parametrize("spacing,new_spacing", [
    ((5.0, 0.8, 0.8), (1.0, 1.0, 1.0)), ((1.0, 1.0, 1.0), (4.0, 1.0, 1.0)), ((3.0, 1.0, 1.0), (1.0, 1.0, 1.0)),
    ((3.01, 1.0, 1.0), (1.0, 1.0, 1.0)), ((0.24, 1.25, 1.25), (1.0, 1.0, 1.0)), ((1.0, 1.0, 1.0), (1.0, 1.0, 1.0)),
    ((1.0, 4.0, 1.0), (1.0, 1.0, 1.0)), ((0.5, 0.5, 3.0), (1.0, 1.0, 5.0)),
])
def test_separate_z_rule(force, spacing, new_spacing) -> None:
    expected = nn.determine_do_sep_z_and_axis(force, spacing, new_spacing)
    got = ours.determine_do_sep_z_and_axis(force, spacing, new_spacing)
    assert got[0] == bool(expected[0]) and got[1] == (None if expected[1] is None else int(expected[1]))
    assert ours.get_do_separate_z(spacing) == nn.get_do_separate_z(spacing)
    np.testing.assert_array_equal(ours.get_lowres_axis(spacing), nn.get_lowres_axis(spacing))


def test_nearest_indices_are_what_map_coordinates_picks() -> None:
    for old in range(1, 40):
        line = np.arange(old, dtype=float)
        for new in range(1, 40):
            coords = float(old) / new * (np.arange(new) + 0.5) - 0.5
            picked = ndimage.map_coordinates(line, coords[None], order=0, mode="nearest")
            np.testing.assert_array_equal(ours._nearest_indices(old, new), picked)


def read_case(dataset: str, case: str) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    sitk = pytest.importorskip("SimpleITK")
    root = DATA / dataset
    if not root.is_dir():
        pytest.skip(f"{root} not available")
    image = sitk.ReadImage(str(root / "imagesTr" / f"{case}_0000.nii.gz"))
    data = sitk.GetArrayFromImage(image)[None].astype(np.float32)
    seg = sitk.GetArrayFromImage(sitk.ReadImage(str(root / "labelsTr" / f"{case}.nii.gz")))[None].astype(np.float32)
    return data, seg, tuple(image.GetSpacing()[::-1])


@pytest.mark.parametrize("dataset,case,new_spacing,crop", [
    ("Hippocampus", "hippocampus_001", (0.8, 1.3, 0.9), None),
    ("Hippocampus", "hippocampus_003", (4.0, 1.0, 1.0), None),  # separate z from the target spacing
    ("CT_TotalSegExamples", "ts_example_sm", (2.0, 2.5, 2.5), None),  # 41 labels
    ("CT_TotalSegExamples", "ts_example_dicom", (5.0, 1.2, 1.2), (slice(None), slice(100, 300), slice(150, 350))),
])
def test_real_cases(dataset: str, case: str, new_spacing: tuple[float, ...], crop) -> None:
    data, seg, spacing = read_case(dataset, case)
    if crop is not None:
        data, seg = data[(slice(None), *crop)], seg[(slice(None), *crop)]
    data, seg, _ = crop_to_nonzero(data, seg)
    new_shape = nn.compute_new_shape(data.shape[1:], spacing, new_spacing)
    for array, kwargs in ((data, DATA_KW), (seg, SEG_KW)):
        expected = nn.resample_data_or_seg_to_shape(array.copy(), new_shape, spacing, new_spacing, **kwargs)
        assert_same(expected, ours.resample_data_or_seg_to_shape(array, new_shape, spacing, new_spacing, **kwargs))


def test_input_is_not_modified_and_bad_input_rejected() -> None:
    array = make_arrays((6, 7, 8), 1, seed=0)["seg"]
    before = array.copy()
    ours.resample_data_or_seg_to_shape(array, (9, 9, 9), (1, 1, 1), (1, 1, 1), **SEG_KW)
    np.testing.assert_array_equal(array, before)
    with pytest.raises(ValueError):
        ours.resample_data_or_seg(array[0], (9, 9, 9))
    with pytest.raises(ValueError):
        ours.resample_data_or_seg(array, (9, 9, 9), do_separate_z=True, axis=None)
