"""Which raw cases are new since the last training (the Planner's "new" marker), from the folds' debug.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "ranking"))
from ranking_model import CONFIGURATION, PLANS

from autoseg.errors import AutoSegError
from autoseg.inference.model_versions import archive_current_version, set_current_version
from autoseg.paths import Workspace
from autoseg.slicer_support.dataset_status import (
    dataset_status,
    preprocessed_configurations,
    trained_fold_files,
    workspace_dataset_status,
)

NAME = "Dataset012_Loop"
MODEL = "nnUNetTrainer__nnUNetPlans__3d_fullres"


def _raw(ws: Workspace, cases: list[str], unlabelled: tuple[str, ...] = ()) -> Path:
    raw = ws.raw / NAME
    (raw / "imagesTr").mkdir(parents=True)
    (raw / "labelsTr").mkdir()
    (raw / "dataset.json").write_text(json.dumps({"channel_names": {"0": "CT"}, "labels": {"background": 0, "a": 1},
                                                  "numTraining": len(cases), "file_ending": ".nii.gz"}))
    for case in cases:
        (raw / "imagesTr" / f"{case}_0000.nii.gz").write_bytes(b"image")
        if case not in unlabelled:
            (raw / "labelsTr" / f"{case}.nii.gz").write_bytes(b"label")
    return raw


def _fold(ws: Workspace, fold: str, train: list[str], val: list[str], model: str = MODEL,
          finished: bool = True) -> Path:
    folder = ws.results / NAME / model / f"fold_{fold}"
    folder.mkdir(parents=True)
    (folder / "debug.json").write_text(json.dumps({"training_cases": train, "validation_cases": val, "fold": fold}))
    if finished:
        (folder / "checkpoint_final.pth").write_bytes(b"weights")
    return folder


@pytest.fixture()
def ws(tmp_path) -> Workspace:
    return Workspace.from_root(tmp_path / "workspace")


def test_without_a_trained_model_no_case_is_new(ws):
    _raw(ws, ["c1", "c2"], unlabelled=("c2",))
    status = workspace_dataset_status(ws, 12)
    assert not status.trained and status.new_cases == [] and status.trained_folds == []
    assert status.rows() == [("c1", "", "yes"), ("c2", "", "no")]
    assert status.summary() == "2 case(s); no trained model yet: the first training uses them all."
    _fold(ws, "0", ["c1"], ["c2"], finished=False)  # a training still running made no model yet
    assert not workspace_dataset_status(ws, NAME).trained


def test_cases_no_trained_fold_of_any_model_used_are_new(ws):
    raw = _raw(ws, ["c1", "c2", "c3", "c4", "c5"])
    _fold(ws, "0", ["c1", "c2"], ["c3"])
    _fold(ws, "all", ["c4"], [], model="nnUNetTrainer__nnUNetPlans__2d")  # another configuration counts too
    _fold(ws, "1", ["c5"], [], finished=False)  # running: its cases are not in a model yet
    (ws.results / NAME / "ensembles" / "fold_0").mkdir(parents=True)  # not a model folder
    status = dataset_status(raw, ws.results / NAME)
    assert status.trained and status.new_cases == ["c5"]
    assert [c.case for c in status.cases] == ["c1", "c2", "c3", "c4", "c5"]
    assert status.rows("NEW")[-1] == ("c5", "NEW", "yes")
    assert status.summary() == "5 case(s), 1 new since the last training (2 trained fold(s))."
    assert len(trained_fold_files(ws.results / NAME)) == 2


def test_during_an_update_the_archived_version_s_cases_count(ws):
    raw = _raw(ws, ["c1", "c2", "c3"])
    fold = _fold(ws, "0", ["c1"], ["c2"])
    archive_current_version(fold, {})  # the update to version 2 started: debug.json moved into versions/v1
    (fold / "debug.json").write_text(json.dumps({"training_cases": ["c1", "c3"], "validation_cases": ["c2"]}))
    assert dataset_status(raw, ws.results / NAME).new_cases == ["c3"]  # checkpoint_final.pth is still version 1
    assert trained_fold_files(ws.results / NAME) == [fold / "versions" / "v1" / "debug.json"]
    set_current_version(fold, 2, {})  # the update finished
    assert dataset_status(raw, ws.results / NAME).new_cases == []


def test_an_explicit_dataset_map_and_missing_results(ws, tmp_path):
    raw = ws.raw / NAME
    raw.mkdir(parents=True)
    (tmp_path / "x.nii.gz").write_bytes(b"")
    (raw / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT"}, "labels": {"background": 0, "a": 1}, "numTraining": 2, "file_ending": ".nii.gz",
        "dataset": {"m1": {"images": [str(tmp_path / "x.nii.gz")], "label": str(tmp_path / "x.nii.gz")},
                    "m2": {"images": [str(tmp_path / "x.nii.gz")], "label": str(tmp_path / "missing.nii.gz")}}}))
    status = dataset_status(raw, ws.results / NAME)
    assert [(c.case, c.new, c.labelled) for c in status.cases] == [("m1", False, True), ("m2", False, False)]
    _fold(ws, "0", ["m1"], [])
    assert dataset_status(raw, ws.results / NAME).new_cases == ["m2"]


def test_errors_name_the_file(ws):
    with pytest.raises(AutoSegError, match="is not an nnUNet_raw dataset folder"):
        dataset_status(ws.raw / NAME, ws.results / NAME)
    raw = _raw(ws, ["c1"])
    fold = _fold(ws, "0", ["c1"], [])
    (fold / "debug.json").write_text("{not json")
    with pytest.raises(AutoSegError, match=r"Cannot read .*debug\.json"):
        dataset_status(raw, ws.results / NAME)


def test_preprocessed_configurations_are_those_with_data(ws):
    folder = ws.preprocessed / NAME
    assert preprocessed_configurations(folder) == []  # not planned
    folder.mkdir(parents=True)
    configurations = {
        "3d_fullres": CONFIGURATION, "3d_lowres": {**CONFIGURATION, "data_identifier": "nnUNetPlans_3d_lowres"},
        "2d_like": {**CONFIGURATION, "data_identifier": "nnUNetPlans_2d"},
        "3d_cascade_fullres": {"inherits_from": "3d_fullres", "previous_stage": "3d_lowres"}}
    (folder / "nnUNetPlans.json").write_text(json.dumps({**PLANS, "configurations": configurations}))
    (folder / "nnUNetPlans_3d_fullres").mkdir()
    (folder / "nnUNetPlans_3d_lowres").mkdir()
    assert preprocessed_configurations(folder) == ["3d_fullres", "3d_lowres"]  # the cascade shares 3d_fullres's data
    assert preprocessed_configurations(folder, "nnUNetResEncUNetMPlans") == []
