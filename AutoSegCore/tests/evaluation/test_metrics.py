"""Per-label/region confusion counts, Dice and IoU on hand-computed arrays (nnU-Net's conventions)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from autoseg.evaluation.metrics import (
    ConfusionCounts,
    confusion_counts,
    evaluated_labels_or_regions,
    label_or_region_key,
    label_or_region_names,
    parse_label_or_region_key,
    region_mask,
    segmentation_metrics,
)

# 2D, 4x4. Label 1: ref 4 voxels, pred 3 of them + 1 extra. Label 2: ref 2, pred 0 (missed).
REF_2D = np.array([
    [0, 1, 1, 0],
    [0, 1, 1, 0],
    [2, 2, 0, 0],
    [0, 0, 0, 0],
])
PRED_2D = np.array([
    [0, 1, 1, 1],
    [0, 1, 0, 0],
    [0, 0, 0, 0],
    [0, 0, 0, 3],
])


def test_counts_dice_iou_per_label_2d():
    counts = segmentation_metrics(REF_2D, PRED_2D, [1, 2, 3])
    assert counts[1] == ConfusionCounts(tp=3, fp=1, fn=1, tn=11)
    assert counts[1].dice == pytest.approx(6 / 8) and counts[1].iou == pytest.approx(3 / 5)
    assert (counts[1].n_pred, counts[1].n_ref) == (4, 4)
    assert counts[2] == ConfusionCounts(tp=0, fp=0, fn=2, tn=14)
    assert counts[2].dice == 0.0 and counts[2].iou == 0.0
    # label 3 only predicted: a false positive, Dice 0 (not NaN)
    assert counts[3] == ConfusionCounts(tp=0, fp=1, fn=0, tn=15) and counts[3].dice == 0.0


def test_region_is_union_of_values():
    mask = region_mask(REF_2D, (1, 2))
    assert mask.sum() == 6 and mask[2, 0] and mask[0, 1] and not mask[0, 0]
    counts = segmentation_metrics(REF_2D, PRED_2D, [(1, 2), (1,), 2])
    # region (1, 2): ref 6 voxels, pred 4 (3 inside, 1 outside)
    assert counts[(1, 2)] == ConfusionCounts(tp=3, fp=1, fn=3, tn=9)
    assert counts[(1, 2)].dice == pytest.approx(6 / 10) and counts[(1, 2)].iou == pytest.approx(3 / 7)
    assert counts[(1,)] == ConfusionCounts(tp=3, fp=1, fn=1, tn=11)  # one-value region == the label
    assert counts[2] == ConfusionCounts(tp=0, fp=0, fn=2, tn=14)


def test_ignore_label_voxels_are_excluded_from_every_count():
    ref = np.array([[1, 1, 4, 4], [0, 0, 4, 0]])
    pred = np.array([[1, 0, 1, 0], [1, 0, 1, 0]])
    counts = segmentation_metrics(ref, pred, [1], ignore_label=4)
    # 3 ignored voxels (two predicted as 1): left out; remaining 5 voxels
    assert counts[1] == ConfusionCounts(tp=1, fp=1, fn=1, tn=2)
    assert counts[1].tp + counts[1].fp + counts[1].fn + counts[1].tn == 5
    assert counts[1].dice == pytest.approx(0.5)


def test_empty_reference_and_prediction_give_nan():
    ref = np.zeros((2, 3, 4), dtype=np.uint8)
    pred = np.zeros((2, 3, 4), dtype=np.uint8)
    counts = segmentation_metrics(ref, pred, [1, (1, 2)])
    for c in counts.values():
        assert c == ConfusionCounts(tp=0, fp=0, fn=0, tn=24)
        assert math.isnan(c.dice) and math.isnan(c.iou)
        entry = c.as_dict()
        assert sorted(entry) == ["Dice", "FN", "FP", "IoU", "TN", "TP", "n_pred", "n_ref"]
        assert math.isnan(entry["Dice"]) and entry["TN"] == 24 and entry["n_pred"] == entry["n_ref"] == 0


def test_empty_reference_with_prediction_is_zero_not_nan():
    ref = np.zeros((3, 3), dtype=np.uint8)
    pred = ref.copy()
    pred[1, 1] = 1
    counts = segmentation_metrics(ref, pred, [1])[1]
    assert counts == ConfusionCounts(tp=0, fp=1, fn=0, tn=8) and counts.dice == 0.0 and counts.iou == 0.0


def test_3d_with_float_label_maps_as_readers_return_them():
    ref = np.zeros((1, 3, 4, 5), dtype=np.float32)
    ref[0, 1, 1:3, 1:4] = 1  # 6 voxels
    ref[0, 2, 0, 0] = 2
    pred = np.zeros_like(ref)
    pred[0, 1, 1:3, 2:5] = 1  # 6 voxels, 4 overlapping
    pred[0, 2, 0, 0] = 2
    counts = segmentation_metrics(ref, pred, [1, 2])
    assert counts[1] == ConfusionCounts(tp=4, fp=2, fn=2, tn=52)
    assert counts[1].dice == pytest.approx(8 / 12) and counts[1].iou == pytest.approx(4 / 8)
    assert counts[2].dice == 1.0 and counts[2].iou == 1.0 and counts[2].tn == 59


def test_confusion_counts_match_the_definition_on_random_masks():
    rng = np.random.default_rng(0)
    ref, pred, ignore = (rng.random((5, 6, 7)) < p for p in (0.3, 0.4, 0.1))
    c = confusion_counts(ref, pred, ignore)
    use = ~ignore
    assert c.tp == np.sum(ref & pred & use) and c.fp == np.sum(~ref & pred & use)
    assert c.fn == np.sum(ref & ~pred & use) and c.tn == np.sum(~ref & ~pred & use)


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match=r"\(2, 2\).*\(2, 3\)"):
        segmentation_metrics(np.zeros((2, 2)), np.zeros((2, 3)), [1])


@pytest.mark.parametrize(
    "value, key",
    [(1, "1"), (np.int64(12), "12"), ((1, 2, 3), "(1, 2, 3)"), ((2,), "(2,)"), ([3, 1], "(3, 1)")],
)
def test_keys_are_written_like_nnunet_and_parse_back(value, key):
    assert label_or_region_key(value) == key
    parsed = parse_label_or_region_key(key)
    assert parsed == (tuple(value) if isinstance(value, list) else value)


def test_evaluated_labels_without_regions_are_sorted_foreground_values():
    labels = {"background": 0, "b": 2, "a": [1], "ignore": 3}
    assert evaluated_labels_or_regions(labels) == [1, 2]
    assert label_or_region_names(labels) == {1: "a", 2: "b"}


def test_evaluated_regions_keep_file_order_and_single_value_lists_as_tuples():
    labels = {"background": 0, "whole": [1, 2, 3], "core": [2, 3], "enhancing": 3, "single": [2],
              "bg_region": [0], "ignore": 4}
    assert evaluated_labels_or_regions(labels) == [(1, 2, 3), (2, 3), 3, (2,)]
    names = {(1, 2, 3): "whole", (2, 3): "core", 3: "enhancing", (2,): "single"}
    assert label_or_region_names(labels) == names
