"""``accumulate_crossval_results``: copying the folds' predictions, evaluation, rebuilds and bad layouts."""

from __future__ import annotations

import json

import pytest
from selection_cases import CASES, DATASET, add_model, make_workspace

from autoseg.errors import EvaluationError, ModelFolderError
from autoseg.model_selection.accumulate_crossval import (
    accumulate_crossval_results,
    crossval_folder_name,
    reference_folder,
)


@pytest.fixture
def model(tmp_path):
    workspace = make_workspace(tmp_path)
    return workspace, add_model(workspace, "2d", good_cases=CASES[:1])


def test_merge_and_evaluate(model):
    workspace, folder = model
    references = reference_folder(workspace, DATASET)
    assert references == workspace.preprocessed / DATASET / "gt_segmentations"
    output, summary = accumulate_crossval_results(folder, references, (0, 1), num_processes=1)
    assert output == folder / crossval_folder_name((0, 1)) and output.name == "crossval_results_folds_0_1"
    assert sorted(p.name for p in output.iterdir()) == ["case_0.nii.gz", "case_1.nii.gz", "case_2.nii.gz",
                                                        "case_3.nii.gz", "dataset.json", "plans.json", "summary.json"]
    for case in CASES:  # copies, not links: the fold's file stays untouched whatever happens to the merged one
        source = next(folder.glob(f"fold_*/validation/{case}.nii.gz"))
        assert (output / f"{case}.nii.gz").read_bytes() == source.read_bytes()
        assert not (output / f"{case}.nii.gz").is_symlink()
    assert summary.foreground_mean["Dice"] == pytest.approx(0.25)  # one of four cases right
    on_disk = json.loads((output / "summary.json").read_text())
    assert on_disk["foreground_mean"]["Dice"] == pytest.approx(0.25) and set(on_disk["mean"]) == {"1", "2"}


def test_rebuild_removes_stale_files_and_no_overwrite_reuses_the_summary(model):
    workspace, folder = model
    references = reference_folder(workspace, DATASET)
    output, _ = accumulate_crossval_results(folder, references, (0, 1), num_processes=1)
    (output / "postprocessing.pkl").write_bytes(b"stale")
    summary_mtime = (output / "summary.json").stat().st_mtime_ns
    accumulate_crossval_results(folder, references, (0, 1), num_processes=1, overwrite=False)
    assert (output / "summary.json").stat().st_mtime_ns == summary_mtime and (output / "postprocessing.pkl").exists()
    accumulate_crossval_results(folder, references, (0, 1), num_processes=1)
    assert not (output / "postprocessing.pkl").exists() and (output / "summary.json").is_file()


def test_bad_layouts(model, tmp_path):
    workspace, folder = model
    references = reference_folder(workspace, DATASET)
    with pytest.raises(ModelFolderError, match="Fold 2 of .* is missing"):
        accumulate_crossval_results(folder, references, (0, 1, 2))
    (folder / "fold_1" / "validation" / "case_0.nii.gz").write_bytes(
        (folder / "fold_0" / "validation" / "case_0.nii.gz").read_bytes()
    )
    with pytest.raises(ModelFolderError, match="case_0.nii.gz is predicted by more than one fold"):
        accumulate_crossval_results(folder, references, (0, 1))
    with pytest.raises(ModelFolderError, match="does not exist"):
        accumulate_crossval_results(tmp_path / "nothing", references, (0,))
    assert not (folder / "crossval_results_folds_0_1").exists()


def test_reference_folder_falls_back_to_labels_tr(model):
    workspace, _ = model
    gt = workspace.preprocessed / DATASET / "gt_segmentations"
    gt.rename(gt.with_name("moved"))
    assert reference_folder(workspace, DATASET) == workspace.raw / DATASET / "labelsTr"
    (workspace.raw / DATASET / "labelsTr").rename(workspace.raw / DATASET / "moved")
    with pytest.raises(EvaluationError, match="gt_segmentations"):
        reference_folder(workspace, DATASET)
