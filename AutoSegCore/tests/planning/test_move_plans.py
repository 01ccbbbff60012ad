"""``autoseg move_plans_between_datasets``: renamed dataset/plans/data identifiers, target reader, no silent
overwrite."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from autoseg.cli.main import main as autoseg_main
from autoseg.errors import DatasetError, PlanError
from autoseg.paths import Workspace
from autoseg.planning.move_plans import move_plans_between_datasets, renamed_data_identifier

SOURCE = "Dataset041_Source"
TARGET = "Dataset042_Target"
_CONFIGURATION = {
    "data_identifier": "nnUNetPlans_3d_fullres", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2,
    "patch_size": [16, 16, 16], "median_image_size_in_voxels": [20.0, 20.0, 20.0], "spacing": [1.0, 1.0, 1.0],
    "normalization_schemes": ["CTNormalization"], "use_mask_for_norm": [False],
    "resampling_fn_data": "resample_data_or_seg_to_shape", "resampling_fn_seg": "resample_data_or_seg_to_shape",
    "resampling_fn_data_kwargs": {}, "resampling_fn_seg_kwargs": {}, "resampling_fn_probabilities": "x",
    "resampling_fn_probabilities_kwargs": {},
    "architecture": {"network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
                     "arch_kwargs": {"n_stages": 2}, "_kw_requires_import": ["conv_op"]},
    "batch_dice": True,
}
SOURCE_PLANS = {
    "dataset_name": SOURCE, "plans_name": "nnUNetPlans", "original_median_spacing_after_transp": [1.0, 1.0, 1.0],
    "original_median_shape_after_transp": [20, 20, 20], "image_reader_writer": "NibabelIO",
    "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
    "configurations": {
        "3d_fullres": _CONFIGURATION,
        "2d": {**_CONFIGURATION, "data_identifier": "custom_2d", "patch_size": [16, 16]},
        "3d_custom": {"inherits_from": "3d_fullres", "data_identifier": "nnUNetPlans_3d_custom", "batch_size": 4},
        "3d_bigger": {"inherits_from": "3d_fullres", "patch_size": [32, 32, 32]},
    },
    "experiment_planner_used": "ExperimentPlanner", "label_manager": "LabelManager",
    "foreground_intensity_properties_per_channel": {"0": {"mean": 5.0, "std": 2.0}},
    "some_future_key": {"kept": True},
}


@pytest.fixture()
def workspace(tmp_path) -> Workspace:
    ws = Workspace.from_root(tmp_path)
    (ws.preprocessed / SOURCE).mkdir(parents=True)
    (ws.preprocessed / SOURCE / "nnUNetPlans.json").write_text(json.dumps(SOURCE_PLANS))
    raw = ws.raw / TARGET
    (raw / "imagesTr").mkdir(parents=True)
    (raw / "labelsTr").mkdir()
    (raw / "dataset.json").write_text(json.dumps({"channel_names": {"0": "CT"}, "labels": {"background": 0, "a": 1},
                                                  "numTraining": 1, "file_ending": ".nrrd"}))
    image = sitk.GetImageFromArray(np.zeros((4, 5, 6), dtype=np.float32))
    sitk.WriteImage(image, str(raw / "imagesTr" / "case_0000.nrrd"))
    sitk.WriteImage(sitk.Cast(image, sitk.sitkUInt8), str(raw / "labelsTr" / "case.nrrd"))
    return ws


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


def test_same_identifier_keeps_data_identifiers_and_sets_target_names(workspace):
    written = move_plans_between_datasets(workspace, "41", "42", "nnUNetPlans")
    assert written == workspace.preprocessed / TARGET / "nnUNetPlans.json"
    plans = _read(written)
    expected = copy.deepcopy(SOURCE_PLANS)
    expected.update(dataset_name=TARGET, image_reader_writer="SimpleITKIO")  # the target's .nrrd images
    assert plans == expected


def test_new_identifier_renames_data_identifiers(workspace):
    written = move_plans_between_datasets(workspace, SOURCE, TARGET, "nnUNetPlans", "nnUNetPlansFrom41")
    assert written.name == "nnUNetPlansFrom41.json"
    plans = _read(written)
    assert plans["plans_name"] == "nnUNetPlansFrom41" and plans["dataset_name"] == TARGET
    configurations = plans["configurations"]
    assert configurations["3d_fullres"]["data_identifier"] == "nnUNetPlansFrom41_3d_fullres"
    assert configurations["2d"]["data_identifier"] == "nnUNetPlansFrom41_custom_2d"
    assert configurations["3d_custom"] == {
        "inherits_from": "3d_fullres",
        "data_identifier": "nnUNetPlansFrom41_3d_custom",
        "batch_size": 4,
    }
    assert configurations["3d_bigger"] == SOURCE_PLANS["configurations"]["3d_bigger"]
    for key in ("foreground_intensity_properties_per_channel", "some_future_key", "transpose_forward"):
        assert plans[key] == SOURCE_PLANS[key]
    assert configurations["3d_fullres"]["architecture"] == _CONFIGURATION["architecture"]


def test_reader_named_in_target_dataset_json_wins(workspace):
    dataset_json = workspace.raw / TARGET / "dataset.json"
    dataset_json.write_text(
        json.dumps({**_read(dataset_json), "overwrite_image_reader_writer": "SimpleITKIOWithReorient"})
    )
    written = move_plans_between_datasets(workspace, SOURCE, TARGET, "nnUNetPlans", "P2")
    assert _read(written)["image_reader_writer"] == "SimpleITKIOWithReorient"


def test_existing_target_plans_are_not_overwritten_silently(workspace):
    target = workspace.preprocessed / TARGET / "nnUNetPlans.json"
    target.parent.mkdir(parents=True)
    target.write_text('{"mine": true}')
    with pytest.raises(PlanError, match=r"nnUNetPlans.json already exists.*-tp.*--overwrite"):
        move_plans_between_datasets(workspace, SOURCE, TARGET, "nnUNetPlans")
    assert _read(target) == {"mine": True}
    move_plans_between_datasets(workspace, SOURCE, TARGET, "nnUNetPlans", overwrite=True)
    assert _read(target)["dataset_name"] == TARGET


def test_missing_inputs_are_clear_errors(workspace):
    with pytest.raises(PlanError, match=r"Source plans .*nnUNetResEncUNetMPlans.json do not exist.*nnUNetPlans"):
        move_plans_between_datasets(workspace, SOURCE, TARGET, "nnUNetResEncUNetMPlans")
    with pytest.raises(PlanError, match="same file"):
        move_plans_between_datasets(workspace, SOURCE, SOURCE, "nnUNetPlans")
    (workspace.raw / TARGET / "dataset.json").unlink()
    with pytest.raises(DatasetError, match="dataset.json does not exist"):
        move_plans_between_datasets(workspace, SOURCE, TARGET, "nnUNetPlans", "P3")
    (workspace.raw / "Dataset043_NoPreprocessed").mkdir()
    with pytest.raises(PlanError, match="Run `autoseg plan_and_preprocess -d 43`"):
        move_plans_between_datasets(workspace, "43", TARGET, "nnUNetPlans", "P3")
    assert not (workspace.preprocessed / TARGET).exists()


def test_renamed_data_identifier():
    assert renamed_data_identifier("nnUNetPlans_3d_fullres", "nnUNetPlans", "X") == "X_3d_fullres"
    assert renamed_data_identifier("other", "nnUNetPlans", "X") == "X_other"


def test_cli_flags(workspace, monkeypatch, capsys):
    for name, folder in (("nnUNet_raw", workspace.raw), ("nnUNet_preprocessed", workspace.preprocessed),
                         ("nnUNet_results", workspace.results)):
        monkeypatch.setenv(name, str(folder))
    assert autoseg_main(["move_plans_between_datasets", "-s", "41", "-t", "42", "-sp", "nnUNetPlans",
                         "-tp", "nnUNetPlansFrom41"]) == 0
    assert "nnUNetPlansFrom41.json" in capsys.readouterr().out
    assert autoseg_main(["move_plans_between_datasets", "-s", "41", "-t", "42", "--sp", "nnUNetPlans",
                         "--tp", "nnUNetPlansFrom41"]) == 1
    assert "already exists" in capsys.readouterr().err
