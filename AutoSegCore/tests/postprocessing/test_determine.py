"""determine_postprocessing: nnU-Net's acceptance rule on folders where the right decision is known."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from pp_cases import (
    REGION_LABELS,
    folder_bytes,
    make_folders,
    read_seg,
    separate_component_case,
    spurious_blobs_case,
)

from autoseg.errors import AutoSegError, PostprocessingError
from autoseg.evaluation import load_summary
from autoseg.postprocessing import (
    PostprocessingStep,
    determine_postprocessing,
    format_postprocessing_table,
    load_postprocessing,
)


def test_all_foreground_step_accepted_when_it_helps_every_label(tmp_path: Path) -> None:
    pred, gt = make_folders(tmp_path, spurious_blobs_case)
    inputs = folder_bytes(pred)
    result = determine_postprocessing(pred, gt, num_processes=2)  # worker processes

    assert result.steps == [PostprocessingStep([1, 2])]
    assert [(c.judged_by, c.accepted) for c in result.candidates] == [
        ("foreground mean", True), ("1", False), ("2", False)]
    assert result.candidates[1].dice_before == result.candidates[1].dice_after == 1.0  # equal is not better
    assert result.baseline.foreground_mean["Dice"] < 1.0 and result.postprocessed.foreground_mean["Dice"] == 1.0
    assert load_postprocessing(pred / "postprocessing.pkl") == result.steps
    assert load_postprocessing(pred / "postprocessing.json") == result.steps

    out = pred / "postprocessed"
    for name in ("case_000.nii.gz", "case_001.nii.gz", "case_002.nii.gz"):
        assert np.array_equal(read_seg(out / name), read_seg(gt / name))
    summary = load_summary(out / "summary.json")
    assert summary.foreground_mean["Dice"] == 1.0
    assert all(Path(c.prediction_file).parent == out for c in summary.metric_per_case)
    assert (out / "dataset.json").is_file() and (out / "plans.json").is_file()

    document = json.loads((pred / "postprocessing.json").read_text())
    assert document["input_folder"]["foreground_mean"]["Dice"] == pytest.approx(result.baseline.foreground_mean["Dice"])
    assert document["postprocessed"]["mean"]["2"]["Dice"] == 1.0
    assert document["postprocessing_kwargs"] == [{"labels_or_regions": [1, 2]}]
    assert [c["accepted"] for c in document["candidates"]] == [True, False, False]

    # the baseline summary.json is written (it was absent); the predictions themselves are untouched
    assert load_summary(pred / "summary.json").foreground_mean["Dice"] == result.baseline.foreground_mean["Dice"]
    after = folder_bytes(pred)
    assert {k: after[k] for k in inputs} == inputs


def test_foreground_step_rejected_when_a_label_gets_worse_then_per_label(tmp_path: Path) -> None:
    pred, gt = make_folders(tmp_path, separate_component_case)
    result = determine_postprocessing(pred, gt, num_processes=1, keep_postprocessed_files=False)

    first = result.candidates[0]
    assert not first.accepted and first.worse == (2,)
    assert first.dice_after < first.dice_before  # the legitimate label-2 component was removed
    assert [(c.judged_by, c.accepted) for c in result.candidates[1:]] == [("1", True), ("2", False)]
    assert result.steps == [PostprocessingStep(1)]
    assert result.postprocessed.mean[1]["Dice"] == 1.0
    assert result.postprocessed_folder is None and not (pred / "postprocessed").exists()
    assert load_postprocessing(pred / "postprocessing.pkl") == [PostprocessingStep(1)]
    table = format_postprocessing_table(result)
    assert "foreground mean" in table and "keep the largest component of label 1" in table


def test_regions(tmp_path: Path) -> None:
    pred, gt = make_folders(tmp_path, spurious_blobs_case, labels=REGION_LABELS)
    result = determine_postprocessing(pred, gt, num_processes=1)
    assert [c.judged_by for c in result.candidates] == ["foreground mean", "(1, 2)", "(2,)"]
    assert result.steps == [PostprocessingStep([1, 2])]
    assert set(result.postprocessed.mean) == {(1, 2), (2,)}

    pred2, gt2 = make_folders(tmp_path / "separate", separate_component_case, labels=REGION_LABELS)
    result = determine_postprocessing(pred2, gt2, num_processes=1)
    # the stray label-1 voxels are part of region (1, 2) but removing its smaller components also
    # removes the legitimate label-2 component: nothing helps
    assert result.steps == []
    assert np.array_equal(read_seg(pred2 / "postprocessed" / "case_000.nii.gz"), read_seg(pred2 / "case_000.nii.gz"))


def test_single_label_only_tries_the_foreground_step(tmp_path: Path) -> None:
    pred, gt = make_folders(tmp_path, spurious_blobs_case, labels={"background": 0, "a": 1, "b": 2})
    (pred / "dataset.json").write_text(json.dumps(
        {"channel_names": {"0": "MRI"}, "labels": {"background": 0, "organ": 1}, "numTraining": 3,
         "file_ending": ".nii.gz"}))
    result = determine_postprocessing(pred, gt, num_processes=1)
    assert len(result.candidates) == 1 and result.steps == [PostprocessingStep([1])]


def test_existing_summary_is_reused_and_a_stale_one_left_alone(tmp_path: Path) -> None:
    pred, gt = make_folders(tmp_path, spurious_blobs_case)
    determine_postprocessing(pred, gt, num_processes=1, keep_postprocessed_files=False)
    summary = json.loads((pred / "summary.json").read_text())
    summary["foreground_mean"]["Dice"] = 0.123  # reused as is, as nnU-Net does
    (pred / "summary.json").write_text(json.dumps(summary))
    result = determine_postprocessing(pred, gt, num_processes=1, keep_postprocessed_files=False)
    assert result.baseline.foreground_mean["Dice"] == 0.123

    summary["mean"] = {"1": summary["mean"]["1"]}  # does not describe these labels: evaluated afresh
    stale = json.dumps(summary)
    (pred / "summary.json").write_text(stale)
    result = determine_postprocessing(pred, gt, num_processes=1, keep_postprocessed_files=False)
    assert not math.isclose(result.baseline.foreground_mean["Dice"], 0.123)
    assert (pred / "summary.json").read_text() == stale


def test_missing_inputs_give_clear_errors(tmp_path: Path) -> None:
    pred, gt = make_folders(tmp_path, spurious_blobs_case, plans=False)
    (gt / "case_001.nii.gz").unlink()
    with pytest.raises(PostprocessingError, match="case_001.nii.gz"):
        determine_postprocessing(pred, gt, num_processes=1)
    (pred / "dataset.json").unlink()
    with pytest.raises(PostprocessingError, match="dataset.json"):
        determine_postprocessing(pred, gt, num_processes=1)
    with pytest.raises(AutoSegError, match="x.json does not exist"):
        determine_postprocessing(pred, gt, dataset_json_file=pred / "x.json", num_processes=1)
    (gt / "dataset.json").write_text(json.dumps(
        {"channel_names": {"0": "MRI"}, "labels": {"background": 0, "a": 1}, "numTraining": 3,
         "file_ending": ".nii.gz"}))
    with pytest.raises(PostprocessingError, match="nope.json does not exist"):
        determine_postprocessing(pred, gt, plans_file=tmp_path / "nope.json",
                                 dataset_json_file=gt / "dataset.json", num_processes=1)
