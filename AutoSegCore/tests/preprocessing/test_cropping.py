"""Cropping to the nonzero region, against nnU-Net v2's ``crop_to_nonzero`` (the oracle): identical
masks, bounding boxes, cropped data and segmentations (values and dtype), and the export helpers."""

from __future__ import annotations

import numpy as np
import pytest
from external_test_data import TEST_DATA as DATA

from autoseg.preprocessing.cropping import (
    bounding_box,
    bounding_box_to_slice,
    crop_to_nonzero,
    insert_crop_into_image,
    nonzero_mask,
    uncrop,
    uncrop_probabilities,
)

pytestmark = pytest.mark.oracle
nn_cropping = pytest.importorskip("nnunetv2.preprocessing.cropping.cropping")
acvl_boxes = pytest.importorskip("acvl_utils.cropping_and_padding.bounding_boxes")


def blob_with_holes(shape: tuple[int, ...], channels: int, seed: int) -> np.ndarray:
    """Zero border, a nonzero block with interior holes (3-D cavities) and a little noise."""
    rng = np.random.default_rng(seed)
    data = np.zeros((channels, *shape), dtype=np.float32)
    inner = tuple(slice(max(1, s // 5), max(2, s - s // 4)) for s in shape)
    for c in range(channels):
        data[c][inner] = rng.normal(size=data[c][inner].shape) + 3
    data[(slice(None), *(slice(s // 2 - 1, s // 2 + 1) for s in shape))] = 0  # a cavity in all channels
    data[0, (shape[0] - 1) // 2, 0, 0] = 1.5  # a stray voxel that stretches the box
    return data


def random_seg(shape: tuple[int, ...], seed: int, dtype: type = np.float32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4, (1, *shape)).astype(dtype)


def their_crop(data: np.ndarray, seg: np.ndarray | None):
    return nn_cropping.crop_to_nonzero(data.copy(), None if seg is None else seg.copy())


CASES = {
    "3d_one_channel": (blob_with_holes((20, 24, 22), 1, 0), True),
    "3d_two_channels": (blob_with_holes((16, 30, 18), 2, 1), True),
    "3d_no_seg": (blob_with_holes((16, 30, 18), 2, 2), False),
    "2d_ish_single_slice": (blob_with_holes((1, 40, 36), 1, 3), True),
    "all_zero": (np.zeros((1, 6, 7, 8), dtype=np.float32), True),
    "all_zero_no_seg": (np.zeros((1, 6, 7, 8), dtype=np.float32), False),
    "no_zero_at_all": (np.random.default_rng(4).random((1, 5, 6, 7)).astype(np.float32) + 1, True),
    "random_sparse": ((np.random.default_rng(5).random((2, 15, 17, 19)) < 0.02).astype(np.float32), True),
}


@pytest.mark.parametrize("name", list(CASES))
def test_crop_to_nonzero_matches_nnunet(name: str) -> None:
    data, with_seg = CASES[name]
    seg = random_seg(data.shape[1:], 7) if with_seg else None
    seg_before = None if seg is None else seg.copy()
    expected = their_crop(data, seg)
    ours = crop_to_nonzero(data, seg)
    np.testing.assert_array_equal(ours[0], expected[0])
    assert ours[1].dtype == expected[1].dtype and ours[1].shape == expected[1].shape
    np.testing.assert_array_equal(ours[1], expected[1])
    assert ours[2] == [[int(a), int(b)] for a, b in expected[2]]
    assert all(type(v) is int for pair in ours[2] for v in pair)
    if seg is not None:
        np.testing.assert_array_equal(seg, seg_before)  # the caller's seg is not modified


@pytest.mark.parametrize("name", ["3d_one_channel", "3d_two_channels", "2d_ish_single_slice", "random_sparse"])
def test_nonzero_mask_fills_holes_like_nnunet(name: str) -> None:
    data = CASES[name][0]
    ours = nonzero_mask(data)
    np.testing.assert_array_equal(ours, nn_cropping.create_nonzero_mask(data))
    assert ours.dtype == bool


def test_hole_is_filled_but_single_slice_is_not() -> None:
    data = blob_with_holes((20, 24, 22), 1, 0)
    cavity = (10, 12, 11)
    assert data[(0, *cavity)] == 0 and nonzero_mask(data)[cavity]
    flat = blob_with_holes((1, 40, 36), 1, 3)
    assert flat[0, 0, 20, 18] == 0 and not nonzero_mask(flat)[0, 20, 18]  # every voxel touches the border


@pytest.mark.parametrize("dataset,cases,channels", [
    ("BraTS2015Subset", ["brats_2013_pat0001_1"], 2),
    ("Hippocampus", ["hippocampus_001", "hippocampus_004"], 1),
])
def test_real_cases(dataset: str, cases: list[str], channels: int) -> None:
    sitk = pytest.importorskip("SimpleITK")
    root = DATA / dataset
    if not root.is_dir():
        pytest.skip(f"{root} not available")
    for case in cases:
        data = np.stack([sitk.GetArrayFromImage(sitk.ReadImage(str(root / "imagesTr" / f"{case}_{c:04d}.nii.gz")))
                         for c in range(channels)]).astype(np.float32)
        seg = sitk.GetArrayFromImage(sitk.ReadImage(str(root / "labelsTr" / f"{case}.nii.gz")))[None].astype(np.float32)
        expected = their_crop(data, seg)
        ours = crop_to_nonzero(data, seg)
        np.testing.assert_array_equal(ours[0], expected[0])
        np.testing.assert_array_equal(ours[1], expected[1])
        assert ours[2] == expected[2]


@pytest.mark.parametrize("shape", [(5, 6, 7), (1, 9, 4), (8, 3), (11,)])
def test_bounding_box_matches_np_where_and_empty_is_full(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(len(shape))
    mask = rng.random(shape) < 0.1
    mask.flat[rng.integers(0, mask.size)] = True
    where = np.array(np.where(mask))
    assert bounding_box(mask) == [[int(a), int(b) + 1] for a, b in zip(where.min(1), where.max(1))]
    assert bounding_box(np.zeros(shape, bool)) == [[0, s] for s in shape]
    if len(shape) == 3:
        assert bounding_box(mask) == acvl_boxes.get_bbox_from_mask(mask)
    assert mask[bounding_box_to_slice(bounding_box(mask))].sum() == mask.sum()


@pytest.mark.parametrize("bbox", [
    [[2, 5], [1, 4], [0, 6]],        # inside
    [[-2, 3], [4, 9], [1, 3]],       # sticks out on both sides
    [[7, 12], [0, 3], [0, 2]],       # entirely outside along the first axis
    [[0, 8], [0, 7], [0, 6]],        # the whole image
])
@pytest.mark.parametrize("channels", [0, 2])
def test_insert_crop_into_image_matches_acvl(bbox: list[list[int]], channels: int) -> None:
    lead = (channels,) if channels else ()
    crop = np.arange(np.prod([*lead, *(hi - lo for lo, hi in bbox)]), dtype=np.float32).reshape(
        *lead, *(hi - lo for lo, hi in bbox)) + 1
    image = np.zeros((*lead, 8, 7, 6), dtype=np.float32)
    expected = acvl_boxes.insert_crop_into_image(image.copy(), crop, bbox)
    np.testing.assert_array_equal(insert_crop_into_image(image.copy(), crop, bbox), expected)


def test_uncrop_round_trip_and_probabilities() -> None:
    label_handling = pytest.importorskip("nnunetv2.utilities.label_handling.label_handling")
    data = blob_with_holes((12, 14, 10), 1, 9)
    cropped, seg, bbox = crop_to_nonzero(data, random_seg(data.shape[1:], 1))
    restored = uncrop(cropped, bbox, data.shape[1:])
    np.testing.assert_array_equal(restored, data)  # everything outside the box is 0 already
    assert uncrop(seg[0], bbox, data.shape[1:], fill_value=5, dtype=np.int16)[0, 0, 0] == 5
    probs = np.random.default_rng(0).random((3, *cropped.shape[1:])).astype(np.float32)
    for regions in (None, [(1, 2), (2,)]):
        labels = {"background": 0, "a": 1, "b": 2} if regions is None else {"background": 0, "a": [1, 2], "b": 2}
        manager = label_handling.LabelManager(labels, regions)
        expected = manager.revert_cropping_on_probabilities(probs, bbox, data.shape[1:])
        ours = uncrop_probabilities(probs, bbox, data.shape[1:], has_regions=manager.has_regions)
        assert ours.dtype == expected.dtype
        np.testing.assert_array_equal(ours, expected)


def test_non_integer_bbox_is_rejected() -> None:
    with pytest.raises(ValueError):
        insert_crop_into_image(np.zeros((4, 4)), np.ones((2, 2)), [[0.5, 2.5], [0, 2]])
