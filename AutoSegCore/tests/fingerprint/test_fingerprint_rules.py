"""The dataset fingerprint's rules, one table per rule, on tiny synthetic images.

Testing/interop/test_plan_and_preprocess_vs_nnunet.py checks that our fingerprint equals nnU-Net's on one
dataset; these tests state what each field means (nnU-Net v2.8.1, /work/shared/REFERENCE.md A2) with
expected values derived by hand: spacing in array-axis order, shape after cropping to the nonzero
region of all channels, foreground (label > 0) intensity statistics over a per-case sample of
``TOTAL_FOREGROUND_SAMPLES // num_cases`` voxels drawn with replacement (seed 1234), so that every case
weighs the same whatever its foreground size.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import SimpleITK as sitk

from autoseg.errors import DatasetError, PlanError
from autoseg.fingerprint import extract
from autoseg.fingerprint.extract import extract_fingerprint, intensity_statistics, sample_foreground_intensities
from autoseg.fingerprint.fingerprint import INTENSITY_KEYS, DatasetFingerprint

SHAPE = (10, 12, 14)  # z, y, x (array order)


# ---------------------------------------------------------------------------------------------- helpers
def _write(array: np.ndarray, path, spacing_xyz=(1.0, 1.0, 1.0)) -> None:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(float(s) for s in spacing_xyz))
    sitk.WriteImage(image, str(path))


def _dataset(root, cases: dict, num_channels: int = 1, ending: str = ".nii.gz"):
    """cases: id -> (list of channel arrays, label array, sitk spacing (x, y, z))."""
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    for case, (channels, label, spacing) in cases.items():
        assert len(channels) == num_channels
        for c, array in enumerate(channels):
            _write(array.astype(np.float32), root / "imagesTr" / f"{case}_{c:04d}{ending}", spacing)
        _write(label.astype(np.uint8), root / "labelsTr" / f"{case}{ending}", spacing)
    (root / "dataset.json").write_text(json.dumps({
        "channel_names": {str(c): f"MR{c}" for c in range(num_channels)},
        "labels": {"background": 0, "a": 1, "b": 2},
        "numTraining": len(cases),
        "file_ending": ending,
    }))
    return root


def _box(shape, box, value=1.0, background=0.0) -> np.ndarray:
    array = np.full(shape, background, np.float32)
    array[tuple(slice(lo, hi) for lo, hi in box)] = value
    return array


@pytest.fixture
def small_sample(monkeypatch):
    """A 300-voxel dataset-wide sample instead of 10e7 (the rule is the same, the test stays fast)."""
    monkeypatch.setattr(extract, "TOTAL_FOREGROUND_SAMPLES", 300)


# ------------------------------------------------------------------------------------- spacing and crop
@pytest.mark.parametrize(
    ("spacing_xyz", "expected"),
    [
        pytest.param((0.7, 0.8, 2.5), [2.5, 0.8, 0.7], id="thick-z-reversed"),
        pytest.param((3.0, 0.5, 0.6), [0.6, 0.5, 3.0], id="thick-x-reversed"),
        pytest.param((1.0, 1.0, 1.0), [1.0, 1.0, 1.0], id="isotropic"),
    ],
)
def test_spacing_is_recorded_in_array_axis_order(tmp_path, small_sample, spacing_xyz, expected):
    image = _box(SHAPE, [(0, 10), (0, 12), (0, 14)])
    raw = _dataset(tmp_path / "raw", {"a": ([image], np.ones(SHAPE), spacing_xyz)})
    fingerprint = extract_fingerprint(raw, num_processes=1)
    np.testing.assert_allclose(fingerprint.spacings, [expected], rtol=1e-6)


def _blobs(*points) -> np.ndarray:
    array = np.zeros(SHAPE, np.float32)
    for p in points:
        array[p] = 5.0
    return array


FULL = math.prod(SHAPE)


@pytest.mark.parametrize(
    ("channels", "label", "expected_shape"),
    [
        pytest.param([_box(SHAPE, [(2, 7), (3, 10), (1, 5)])], None, [5, 7, 4], id="one-box"),
        pytest.param([_box(SHAPE, [(0, 10), (0, 12), (0, 14)], value=3.0)], None, [10, 12, 14], id="no-zeros"),
        pytest.param([_blobs((1, 1, 1), (8, 10, 12))], None, [8, 10, 12], id="two-blobs-span-the-box"),
        pytest.param([_box(SHAPE, [(4, 6), (4, 6), (4, 6)], value=-300.0)], None, [2, 2, 2],
                     id="negative-values-are-nonzero"),
        pytest.param([np.zeros(SHAPE, np.float32)], None, [10, 12, 14], id="all-zero-keeps-whole-image"),
        pytest.param([_box(SHAPE, [(2, 4), (2, 4), (2, 4)]), _box(SHAPE, [(6, 9), (8, 11), (10, 13)])], None,
                     [7, 9, 11], id="union-of-channels"),
        pytest.param([_box(SHAPE, [(2, 7), (3, 10), (1, 5)])], _box(SHAPE, [(0, 10), (0, 12), (0, 14)]),
                     [5, 7, 4], id="label-does-not-widen-the-crop"),
    ],
)
def test_shape_after_crop_is_the_nonzero_box_of_all_channels(tmp_path, small_sample, channels, label, expected_shape):
    label = (channels[0] != 0) if label is None else label
    raw = _dataset(tmp_path / "raw", {"a": (channels, label, (1, 1, 1))}, num_channels=len(channels))
    fingerprint = extract_fingerprint(raw, num_processes=1)
    assert fingerprint.shapes_after_crop == [expected_shape]
    assert fingerprint.median_relative_size_after_cropping == pytest.approx(math.prod(expected_shape) / FULL)


def test_median_relative_size_is_the_median_over_cases(tmp_path, small_sample):
    shape = (8, 8, 8)
    boxes = {"a": [(0, 8)] * 3, "b": [(0, 8), (0, 8), (2, 6)], "c": [(0, 8), (2, 6), (2, 6)]}  # 1, 1/2, 1/4
    cases = {k: ([_box(shape, b)], _box(shape, b), (1, 1, 1)) for k, b in boxes.items()}
    fingerprint = extract_fingerprint(_dataset(tmp_path / "raw", cases), num_processes=1)
    assert fingerprint.shapes_after_crop == [[8, 8, 8], [8, 8, 4], [8, 4, 4]]
    assert fingerprint.median_relative_size_after_cropping == pytest.approx(0.5)


# ------------------------------------------------------------------------------------------- statistics
STD_0_TO_1000 = math.sqrt((1001**2 - 1) / 12)  # population std of the integers 0..N-1 is sqrt((N^2 - 1) / 12)


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        # numpy's linear percentile: index q / 100 * (n - 1) -> 0.5% of 0..1000 is the value at index 5
        pytest.param(np.arange(1001, dtype=np.float64),
                     dict(mean=500, median=500, std=STD_0_TO_1000, min=0, max=1000, percentile_00_5=5,
                          percentile_99_5=995), id="ramp-0-to-1000"),
        pytest.param(np.full(10, 7.0),
                     dict(mean=7, median=7, std=0, min=7, max=7, percentile_00_5=7, percentile_99_5=7),
                     id="constant"),
        # median index 49.5 -> halfway between 0 and 10
        pytest.param(np.array([0.0] * 50 + [10.0] * 50),
                     dict(mean=5, median=5, std=5, min=0, max=10, percentile_00_5=0, percentile_99_5=10),
                     id="two-values"),
        # 200 values, sum 99: 0.5% index 0.995 -> -100 + 0.995 * 100 = -0.5; 99.5% index 198.005 -> 1 + 0.005 * 99
        pytest.param(np.array([-100.0] + [0.0] * 99 + [1.0] * 99 + [100.0]),
                     dict(mean=0.495, median=0.5, std=math.sqrt((2 * 100**2 + 99) / 200 - 0.495**2), min=-100, max=100,
                          percentile_00_5=-0.5, percentile_99_5=1.495), id="outliers-beyond-percentiles"),
    ],
)
def test_intensity_statistics(samples, expected):
    stats = intensity_statistics(samples)
    assert set(stats) == set(INTENSITY_KEYS)
    for key, value in expected.items():
        assert stats[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key
        assert isinstance(stats[key], float)


def test_no_foreground_gives_nan_statistics():
    stats = intensity_statistics(np.empty(0, np.float32))
    assert set(stats) == set(INTENSITY_KEYS)
    assert all(math.isnan(v) for v in stats.values())


def _sampling_case():
    """2 channels; labels 1 and 2 on 3 voxels of a 2x2x2 image; channel 1 = channel 0 + 1000."""
    seg = np.array([[[0, 1], [2, 0]], [[-1, 0], [0, 1]]], np.int16)[None]
    channel0 = np.arange(8, dtype=np.float32).reshape(2, 2, 2)
    images = np.stack([channel0, channel0 + 1000])
    return seg, images


@pytest.mark.parametrize("num_samples", [1, 7, 50], ids=["1-sample", "7-samples", "50-samples-more-than-fg"])
def test_foreground_sample_size_and_values(num_samples):
    seg, images = _sampling_case()
    foreground = {1.0, 2.0, 7.0}  # voxels with label > 0 (the -1 "outside the crop mask" voxel is not)
    samples = sample_foreground_intensities(seg, images, num_samples)
    assert [s.size for s in samples] == [num_samples, num_samples]
    assert set(samples[0].tolist()) <= foreground
    assert set(samples[1].tolist()) <= {v + 1000 for v in foreground}
    if num_samples == 50:  # with replacement: more samples than foreground voxels, every voxel drawn
        assert set(samples[0].tolist()) == foreground


def test_foreground_sampling_is_seeded_with_1234_and_shares_the_stream_across_channels():
    seg, images = _sampling_case()
    samples = sample_foreground_intensities(seg, images, 20)
    rng = np.random.RandomState(1234)
    mask = seg[0] > 0
    np.testing.assert_array_equal(samples[0], rng.choice(images[0][mask], 20, replace=True))
    np.testing.assert_array_equal(samples[1], rng.choice(images[1][mask], 20, replace=True))
    again = sample_foreground_intensities(seg, images, 20)
    assert all(np.array_equal(a, b) for a, b in zip(samples, again))


def test_case_without_foreground_contributes_no_samples():
    seg, images = _sampling_case()
    samples = sample_foreground_intensities(np.zeros_like(seg), images, 10)
    assert [s.size for s in samples] == [0, 0]


# ------------------------------------------------------------------------------- dataset-wide sampling
def _constant_foreground_case(value: float, foreground_box, channels: int = 1):
    """A case whose foreground (label 1) has intensity ``value`` (channel c: value * (c + 1)); the rest of
    the image is nonzero (so not cropped) with an intensity far from every foreground value."""
    label = _box(SHAPE, foreground_box)
    images = [np.where(label > 0, value * (c + 1), 5000.0).astype(np.float32) for c in range(channels)]
    return images, label, (1, 1, 1)


@pytest.mark.parametrize(
    ("total", "num_cases", "per_case"),
    [
        pytest.param(300, 3, 100, id="300-over-3"),
        pytest.param(301, 3, 100, id="remainder-dropped"),
        pytest.param(10, 4, 2, id="10-over-4"),
    ],
)
def test_sample_cap_is_split_evenly_across_cases(tmp_path, monkeypatch, total, num_cases, per_case):
    monkeypatch.setattr(extract, "TOTAL_FOREGROUND_SAMPLES", total)
    requested = []
    original = extract.sample_foreground_intensities

    def spy(seg, images, num_samples):
        requested.append(num_samples)
        return original(seg, images, num_samples)

    monkeypatch.setattr(extract, "sample_foreground_intensities", spy)
    cases = {f"c{i}": _constant_foreground_case(10.0 * (i + 1), [(0, 2 + i), (0, 3), (0, 3)]) for i in range(num_cases)}
    extract_fingerprint(_dataset(tmp_path / "raw", cases), num_processes=1)
    assert requested == [per_case] * num_cases


def test_every_case_weighs_the_same_whatever_its_foreground_size(tmp_path, small_sample):
    # foreground 10 on 360 voxels, 20 on 8 voxels, 60 on 1 voxel: 100 samples each -> pooled mean is the
    # unweighted mean of the three values (30), not the voxel-weighted one (~10.4)
    cases = {
        "a": _constant_foreground_case(10.0, [(0, 6), (0, 6), (0, 10)]),
        "b": _constant_foreground_case(20.0, [(0, 2), (0, 2), (0, 2)]),
        "c": _constant_foreground_case(60.0, [(5, 6), (5, 6), (5, 6)]),
    }
    fingerprint = extract_fingerprint(_dataset(tmp_path / "raw", cases), num_processes=1)
    stats = fingerprint.channel_intensity_properties(0)
    expected = dict(mean=30, median=20, min=10, max=60, percentile_00_5=10, percentile_99_5=60,
                    std=math.sqrt((20**2 + 10**2 + 30**2) / 3))
    for key, value in expected.items():
        assert stats[key] == pytest.approx(value, rel=1e-5), key


@pytest.mark.parametrize("num_channels", [1, 2, 3], ids=["1-channel", "2-channels", "3-channels"])
def test_statistics_per_channel_over_label_foreground_only(tmp_path, small_sample, num_channels):
    # channel c has foreground intensity 10 * (c + 1) in one case and 30 * (c + 1) in the other; the rest of
    # the image (5000) is nonzero, inside the crop, and must not be counted
    cases = {
        "a": _constant_foreground_case(10.0, [(0, 4), (0, 4), (0, 4)], num_channels),
        "b": _constant_foreground_case(30.0, [(2, 5), (2, 5), (2, 5)], num_channels),
    }
    fingerprint = extract_fingerprint(_dataset(tmp_path / "raw", cases, num_channels), num_processes=1)
    assert list(fingerprint.foreground_intensity_properties_per_channel) == [str(c) for c in range(num_channels)]
    for c in range(num_channels):
        stats = fingerprint.channel_intensity_properties(c)
        scale = c + 1
        assert stats["mean"] == pytest.approx(20 * scale)
        assert stats["std"] == pytest.approx(10 * scale)
        assert (stats["min"], stats["max"]) == (10 * scale, 30 * scale)
        assert stats["max"] < 5000


def test_nan_in_an_image_is_a_dataset_error(tmp_path, small_sample):
    image = _box(SHAPE, [(0, 10), (0, 12), (0, 14)])
    image[3, 3, 3] = np.nan
    # .mha keeps NaN; ITK's NIfTI writer/reader turns it into 0 before we could see it
    raw = _dataset(tmp_path / "raw", {"a": ([image], np.ones(SHAPE), (1, 1, 1))}, ending=".mha")
    with pytest.raises(DatasetError, match="NaN"):
        extract_fingerprint(raw, num_processes=1)


def test_cases_are_listed_in_case_id_order(tmp_path, small_sample):
    cases = {name: ([_box(SHAPE, [(0, 10), (0, 12), (0, 14)])], np.ones(SHAPE), (1, 1, z))
             for name, z in (("b", 2.0), ("a", 1.0), ("c", 3.0))}
    fingerprint = extract_fingerprint(_dataset(tmp_path / "raw", cases), num_processes=1)
    assert [s[0] for s in fingerprint.spacings] == [1.0, 2.0, 3.0]


def test_empty_dataset_is_a_dataset_error(tmp_path):
    raw = _dataset(tmp_path / "raw", {})
    with pytest.raises(DatasetError, match="no training cases"):
        extract_fingerprint(raw, num_processes=1)


# ------------------------------------------------------------------------------------- the JSON model
def _raw_fingerprint() -> dict:
    return {
        "spacings": [[3, 1, 1], [2.5, 0.9, 0.9]],
        "shapes_after_crop": [[20, 30, 40], [21, 31, 41]],
        "foreground_intensity_properties_per_channel": {0: dict.fromkeys(INTENSITY_KEYS, 1.0)},
        "median_relative_size_after_cropping": 1,
    }


def test_fingerprint_json_round_trip_normalises_types(tmp_path):
    fingerprint = DatasetFingerprint.from_dict(_raw_fingerprint())
    assert fingerprint.spacings == [[3.0, 1.0, 1.0], [2.5, 0.9, 0.9]]
    assert all(isinstance(s, float) for sp in fingerprint.spacings for s in sp)
    assert list(fingerprint.foreground_intensity_properties_per_channel) == ["0"]
    assert isinstance(fingerprint.median_relative_size_after_cropping, float)
    path = tmp_path / "dataset_fingerprint.json"
    fingerprint.save(path)
    assert DatasetFingerprint.load(path) == fingerprint


@pytest.mark.parametrize(
    ("change", "match"),
    [
        pytest.param(lambda raw: raw.pop("spacings"), "spacings", id="missing-spacings"),
        pytest.param(lambda raw: raw.pop("median_relative_size_after_cropping"), "median_relative",
                     id="missing-relative-size"),
        pytest.param(lambda raw: raw.update(shapes_after_crop=[["a", 1, 1]]), "malformed", id="non-numeric-shape"),
        pytest.param(lambda raw: raw.update(foreground_intensity_properties_per_channel=[1, 2]), "malformed",
                     id="channels-not-a-mapping"),
    ],
)
def test_malformed_fingerprint_is_a_plan_error(change, match):
    raw = _raw_fingerprint()
    change(raw)
    with pytest.raises(PlanError, match=match):
        DatasetFingerprint.from_dict(raw)


@pytest.mark.parametrize(("content", "match"), [(None, "does not exist"), ("{not json", "not valid JSON")],
                         ids=["missing-file", "invalid-json"])
def test_unreadable_fingerprint_file_is_a_plan_error(tmp_path, content, match):
    path = tmp_path / "dataset_fingerprint.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(PlanError, match=match):
        DatasetFingerprint.load(path)
