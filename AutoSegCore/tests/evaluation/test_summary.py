"""Folder evaluation: summary.json content and round trip, pairing rules, clear errors, the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from autoseg.cli.main import main
from autoseg.errors import EvaluationError
from autoseg.evaluation import (
    evaluate_with_dataset,
    evaluate_with_labels,
    format_summary_table,
    load_summary,
)

LABELS = {"background": 0, "liver": 1, "tumor": 2}


def write_seg(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(sitk.GetImageFromArray(array.astype(np.uint8)), str(path))


@pytest.fixture()
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """Two 3D cases: ``a`` perfect; ``b`` half of label 1 missed and label 2 absent in both (NaN)."""
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    ref_a = np.zeros((2, 4, 4))
    ref_a[0, :2, :2] = 1
    ref_a[1, 2:, 2:] = 2
    write_seg(gt / "a.nii.gz", ref_a)
    write_seg(pred / "a.nii.gz", ref_a)
    ref_b = np.zeros((2, 4, 4))
    ref_b[:, :2, :] = 1  # 16 voxels
    pred_b = ref_b.copy()
    pred_b[1] = 0  # 8 found, 8 missed
    write_seg(gt / "b.nii.gz", ref_b)
    write_seg(pred / "b.nii.gz", pred_b)
    (tmp_path / "dataset.json").write_text(json.dumps(
        {"channel_names": {"0": "CT"}, "labels": LABELS, "numTraining": 2, "file_ending": ".nii.gz"}))
    (tmp_path / "plans.json").write_text(json.dumps({"label_manager": "LabelManager"}))
    return gt, pred


def _evaluate(gt: Path, pred: Path, **kwargs):
    root = gt.parent
    return evaluate_with_dataset(gt, pred, root / "dataset.json", root / "plans.json", num_processes=1,
                                 **kwargs)


def test_summary_numbers_and_file_layout(folders):
    gt, pred = folders
    summary, names = _evaluate(gt, pred)
    assert names == {1: "liver", 2: "tumor"}
    a, b = summary.metric_per_case
    assert a.prediction_file == str(pred / "a.nii.gz") and a.reference_file == str(gt / "a.nii.gz")
    assert a.metrics[1]["Dice"] == 1.0 and a.metrics[2]["Dice"] == 1.0
    assert b.metrics[1] == {"Dice": 2 / 3, "FN": 8, "FP": 0, "IoU": 0.5, "TN": 16, "TP": 8,
                            "n_pred": 8, "n_ref": 16}
    assert math.isnan(b.metrics[2]["Dice"])
    assert summary.mean[1]["Dice"] == pytest.approx((1 + 2 / 3) / 2)
    assert summary.mean[2]["Dice"] == 1.0  # the NaN case is skipped
    assert summary.mean[1]["TP"] == 6.0 and isinstance(summary.mean[1]["TP"], float)
    assert summary.foreground_mean["Dice"] == pytest.approx(((1 + 2 / 3) / 2 + 1) / 2)

    text = (pred / "summary.json").read_text()
    raw = json.loads(text)
    assert list(raw) == ["foreground_mean", "mean", "metric_per_case"]
    assert list(raw["metric_per_case"][1]) == ["metrics", "prediction_file", "reference_file"]
    assert list(raw["mean"]) == ["1", "2"] and '"Dice": NaN' in text
    assert text.startswith('{\n    "foreground_mean"')


def test_load_summary_round_trip(folders):
    gt, pred = folders
    summary, _ = _evaluate(gt, pred)
    loaded = load_summary(pred / "summary.json")
    assert loaded.foreground_mean == summary.foreground_mean and loaded.mean == summary.mean
    assert math.isnan(loaded.metric_per_case[1].metrics[2]["Dice"])
    assert loaded.metric_per_case[1].metrics[1] == summary.metric_per_case[1].metrics[1]


def test_regions_are_keyed_by_tuple(folders, tmp_path):
    gt, pred = folders
    (tmp_path / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT"}, "labels": {"background": 0, "organ": [1, 2], "tumor": 2},
        "regions_class_order": [1, 2], "numTraining": 2, "file_ending": ".nii.gz"}))
    summary, names = _evaluate(gt, pred, output_file=tmp_path / "regions.json")
    assert list(summary.mean) == [(1, 2), 2] and names == {(1, 2): "organ", 2: "tumor"}
    assert list(json.loads((tmp_path / "regions.json").read_text())["mean"]) == ["(1, 2)", "2"]
    # case b: region (1, 2) in the reference = 16 voxels, 8 predicted
    assert summary.metric_per_case[1].metrics[(1, 2)]["Dice"] == pytest.approx(2 / 3)
    assert load_summary(tmp_path / "regions.json").mean.keys() == summary.mean.keys()


def test_evaluate_simple_with_ignore_label(tmp_path):
    ref = np.array([[[1, 1, 3, 3], [0, 0, 3, 0]]])
    pred = np.array([[[1, 0, 1, 0], [1, 0, 1, 0]]])
    write_seg(tmp_path / "gt" / "x.nii.gz", ref)
    write_seg(tmp_path / "pred" / "x.nii.gz", pred)
    (tmp_path / "gt" / "README.txt").write_text("not an image")  # ignored when picking the reader
    summary = evaluate_with_labels(tmp_path / "gt", tmp_path / "pred", [1], ignore_label=3, num_processes=1)
    assert summary.metric_per_case[0].metrics[1] == {
        "Dice": 0.5, "FN": 1, "FP": 1, "IoU": 1 / 3, "TN": 2, "TP": 1, "n_pred": 2, "n_ref": 2}
    assert (tmp_path / "pred" / "summary.json").is_file()


def test_prediction_without_reference_is_named(folders):
    gt, pred = folders
    write_seg(pred / "stray.nii.gz", np.zeros((2, 4, 4)))
    with pytest.raises(EvaluationError, match=r"no reference file.*stray\.nii\.gz"):
        _evaluate(gt, pred)


def test_missing_prediction_needs_chill(folders):
    gt, pred = folders
    (pred / "b.nii.gz").unlink()
    with pytest.raises(EvaluationError, match=r"no prediction.*b\.nii\.gz.*--chill"):
        _evaluate(gt, pred)
    summary, _ = _evaluate(gt, pred, chill=True)
    assert [Path(c.prediction_file).name for c in summary.metric_per_case] == ["a.nii.gz"]


def test_shape_mismatch_names_files_and_shapes(folders):
    gt, pred = folders
    write_seg(pred / "b.nii.gz", np.zeros((3, 4, 4)))
    with pytest.raises(EvaluationError) as info:
        _evaluate(gt, pred)
    message = str(info.value)
    assert str(pred / "b.nii.gz") in message and str(gt / "b.nii.gz") in message
    assert "(3, 4, 4)" in message and "(2, 4, 4)" in message


def test_empty_prediction_folder(folders):
    gt, pred = folders
    for path in pred.iterdir():
        path.unlink()
    with pytest.raises(EvaluationError, match="contains no \\*.nii.gz files"):
        _evaluate(gt, pred)


def test_table_lists_labels_with_names(folders):
    gt, pred = folders
    summary, names = _evaluate(gt, pred)
    table = format_summary_table(summary, names)
    assert "1 liver" in table and "2 tumor" in table and "foreground mean" in table
    assert f"{summary.mean[1]['Dice']:.4f}" in table and "(2 cases)" in table


def test_cli_evaluate_folder_parallel_and_errors(folders, capsys):
    gt, pred = folders
    root = gt.parent
    flags = ["-djfile", str(root / "dataset.json"), "--pfile", str(root / "plans.json")]
    assert main(["evaluate_folder", str(gt), str(pred), *flags, "-np", "2", "-o", str(root / "s.json")]) == 0
    out = capsys.readouterr().out
    assert "liver" in out and f"Summary written to {root / 's.json'}" in out
    assert len(load_summary(root / "s.json").metric_per_case) == 2
    assert main(["evaluate_folder", str(gt), str(root / "nowhere"), *flags]) == 1
    err = capsys.readouterr().err
    assert "prediction folder" in err and "does not exist" in err and "Traceback" not in err
    assert main(["evaluate_folder", str(gt), str(pred), *flags, "-o", str(root / "s.txt")]) == 1
    assert "must end with .json" in capsys.readouterr().err


def test_cli_evaluate_simple(folders, capsys):
    gt, pred = folders
    assert main(["evaluate_simple", str(gt), str(pred), "-l", "1", "2", "-np", "0"]) == 0
    assert "foreground mean" in capsys.readouterr().out
    assert sorted(json.loads((pred / "summary.json").read_text())["mean"]) == ["1", "2"]
