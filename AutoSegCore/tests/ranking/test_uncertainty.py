"""The uncertainty formulas on hand-made probabilities: entropy normalisation, member disagreement, the
no-foreground case, the combined score and reason, and the ranking files."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from autoseg.errors import AutoSegError
from autoseg.ranking.report import COLUMNS, RankedCase, order_by_score, refuse_existing_ranking, write_ranking
from autoseg.ranking.scores import combined_score, explain
from autoseg.ranking.uncertainty import (
    EnsembleAccumulator,
    disagreement,
    foreground_dice,
    mean_foreground_dice,
    normalised_entropy,
)


def one_hot(labels: np.ndarray, channels: int, confidence: float = 1.0) -> np.ndarray:
    """(c, ...) probabilities giving ``confidence`` to each voxel's label and the rest evenly to the others."""
    rest = (1.0 - confidence) / (channels - 1)
    probabilities = np.full((channels, *labels.shape), rest, dtype=np.float32)
    for channel in range(channels):
        probabilities[channel][labels == channel] = confidence
    return probabilities


def test_entropy_is_zero_when_certain_and_one_when_uniform_for_any_number_of_labels():
    for channels in (2, 3, 5):
        uniform = np.full((channels, 2, 3, 4), 1.0 / channels, dtype=np.float32)
        certain = one_hot(np.zeros((2, 3, 4), dtype=np.uint8), channels)
        np.testing.assert_allclose(normalised_entropy(uniform), 1.0, atol=1e-6)
        np.testing.assert_allclose(normalised_entropy(certain), 0.0, atol=1e-7)
        assert normalised_entropy(uniform).dtype == np.float32
    # two labels at p = (0.9, 0.1): H = -(0.9 ln 0.9 + 0.1 ln 0.1) / ln 2
    mixed = np.array([[[[0.9]]], [[[0.1]]]], dtype=np.float32)
    expected = -(0.9 * np.log(0.9) + 0.1 * np.log(0.1)) / np.log(2)
    np.testing.assert_allclose(normalised_entropy(mixed)[0, 0, 0], expected, rtol=1e-5)


def test_region_entropy_is_the_mean_binary_entropy_of_the_channels():
    probabilities = np.array([0.5, 1.0, 0.0], dtype=np.float32).reshape(3, 1, 1, 1)
    # channel entropies 1, 0, 0 (in bits) -> mean 1/3
    np.testing.assert_allclose(normalised_entropy(probabilities, has_regions=True), 1.0 / 3.0, rtol=1e-6)


def test_agreeing_members_have_zero_disagreement():
    labels = np.zeros((4, 4, 4), dtype=np.uint8)
    labels[1:3, 1:3, 1:3] = 1
    labels[0, 0, :2] = 2
    accumulator = EnsembleAccumulator()
    for confidence in (0.9, 0.8, 0.95):  # same argmax, different confidence
        accumulator.add(one_hot(labels, 3, confidence))
    result = accumulator.result()
    assert result.members == 3 and result.disagreement == 0.0 and result.mean_dice == 1.0
    assert result.foreground_voxels == 10 and not result.no_foreground
    assert combined_score(result) == pytest.approx(result.mean_entropy)
    assert explain(result).startswith("folds agree: mean Dice of the folds against their ensemble 1.00; ")


def test_dice_is_averaged_over_the_labels_present_only():
    a = np.array([0, 1, 1, 1, 0, 0], dtype=np.uint8)
    b = np.array([0, 1, 1, 0, 0, 0], dtype=np.uint8)
    dice = foreground_dice(a, b, num_channels=3)
    assert dice[0] == pytest.approx(0.8) and np.isnan(dice[1])  # label 2 absent from both: not counted
    assert mean_foreground_dice(a, b, 3) == pytest.approx(0.8)
    assert mean_foreground_dice(np.zeros(6, np.uint8), np.zeros(6, np.uint8), 3) == 1.0  # nothing to disagree on
    c = np.array([2, 1, 1, 1, 0, 0], dtype=np.uint8)  # label 2 only in c: Dice 0 for it
    assert mean_foreground_dice(a, c, 3) == pytest.approx(0.5)
    regions_a = np.array([[True, True, False], [False, False, False]])
    regions_b = np.array([[True, False, False], [False, False, False]])
    assert mean_foreground_dice(regions_a, regions_b, 2, has_regions=True) == pytest.approx(2 / 3)


def test_disagreement_against_the_ensemble_argmax():
    ensemble = np.array([0, 1, 1, 1, 1, 0], dtype=np.uint8)
    members = [ensemble.copy(), np.array([0, 1, 1, 0, 0, 0], dtype=np.uint8)]  # Dice 1 and 2*2/(4+2)
    assert disagreement(members, ensemble, 2) == pytest.approx(1 - (1 + 2 / 3) / 2)
    assert disagreement(members[:1], ensemble, 2) is None

    accumulator = EnsembleAccumulator()
    left = np.zeros((1, 1, 4), dtype=np.uint8)
    left[..., :2] = 1
    right = np.zeros((1, 1, 4), dtype=np.uint8)
    right[..., 2:] = 1
    accumulator.add(one_hot(left, 2, 0.9))
    accumulator.add(one_hot(right, 2, 0.9))
    result = accumulator.result(keep_map=True)
    # mean probabilities are 0.5 everywhere: the ensemble argmax is background, every member has Dice 0 with it
    assert result.disagreement == pytest.approx(1.0) and result.mean_dice == pytest.approx(0.0)
    assert result.mean_entropy == pytest.approx(1.0) and result.foreground_voxels == 4
    assert result.entropy_map is not None and result.entropy_map.shape == (1, 1, 4)
    assert combined_score(result) == pytest.approx(2.0)
    assert explain(result, "mirrored copies").startswith(
        "mirrored copies disagree: mean Dice of the mirrored copies against their ensemble 0.00; "
        "uncertain boundary: mean entropy 1.00 over 4 predicted voxels")


def test_entropy_is_measured_on_the_voxels_any_member_predicts_as_foreground():
    first = np.zeros((10,), dtype=np.float32)
    probabilities = np.stack([1 - first, first])  # all background, certain
    second = probabilities.copy()
    second[:, 0] = (0.4, 0.6)  # one voxel foreground in one member
    accumulator = EnsembleAccumulator()
    accumulator.add(probabilities)
    accumulator.add(second)
    result = accumulator.result()
    expected = normalised_entropy(np.array([[0.7], [0.3]], dtype=np.float32))[0]
    assert result.foreground_voxels == 1 and result.mean_entropy == pytest.approx(float(expected), rel=1e-6)


def test_without_predicted_foreground_the_entropy_is_over_all_voxels_and_the_reason_says_so():
    probabilities = np.zeros((2, 3, 4, 5), dtype=np.float32)
    probabilities[0] = 0.9
    probabilities[1] = 0.1
    accumulator = EnsembleAccumulator()
    accumulator.add(probabilities)
    result = accumulator.result()
    expected = -(0.9 * np.log(0.9) + 0.1 * np.log(0.1)) / np.log(2)
    assert result.no_foreground and result.foreground_voxels == 0 and result.total_voxels == 60
    assert result.mean_entropy == pytest.approx(expected, rel=1e-5)
    assert result.disagreement is None and combined_score(result) == pytest.approx(expected, rel=1e-5)
    assert explain(result) == (
        "no disagreement measured (one fold, no mirrored copies); "
        f"no foreground predicted: mean entropy {expected:.2f} over all 60 voxels")


def test_ranking_files_order_and_refusal(tmp_path):
    rows = [RankedCase(0, "b", 0.2, 0.1, 0.1, 5, "r b"), RankedCase(0, "a", 0.9, None, 0.9, 0, "r a", "/m/a.nii.gz"),
            RankedCase(0, "c", 0.2, 0.05, 0.15, 7, "r c")]
    ranking = order_by_score(rows)
    assert [(r.rank, r.case) for r in ranking] == [(1, "a"), (2, "b"), (3, "c")]  # ties by name
    refuse_existing_ranking(tmp_path)
    write_ranking(tmp_path, ranking, {"model_folder": "/x", "folds": [0, 1], "checkpoint": "checkpoint_final.pth"})
    written = json.loads((tmp_path / "ranking.json").read_text())
    assert written["folds"] == [0, 1] and written["checkpoint"] == "checkpoint_final.pth"
    assert written["cases"][0] == {"rank": 1, "case": "a", "score": 0.9, "fold_disagreement": None,
                                   "mean_entropy": 0.9, "predicted_foreground_voxels": 0, "reason": "r a",
                                   "uncertainty_map": "/m/a.nii.gz"}
    with open(tmp_path / "ranking.csv", newline="") as f:
        table = list(csv.reader(f))
    assert tuple(table[0]) == COLUMNS
    assert table[1] == ["1", "a", "0.9", "", "0.9", "0", "r a", "/m/a.nii.gz"]
    assert [row[1] for row in table[1:]] == ["a", "b", "c"]
    with pytest.raises(AutoSegError, match="ranking.json already exists.*new output folder"):
        refuse_existing_ranking(tmp_path)
