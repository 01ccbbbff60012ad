"""Opening results folders: layout errors, fold selection, safe checkpoint loading."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from autoseg.errors import ModelFolderError
from autoseg.inference.model_folder import available_folds, open_model_folder
from autoseg.network.checkpoint import clean_state_dict, load_checkpoint

PLANS = {
    "dataset_name": "Dataset001_Test", "plans_name": "nnUNetPlans", "original_median_spacing_after_transp": [1, 1, 1],
    "original_median_shape_after_transp": [20, 20, 20], "image_reader_writer": "SimpleITKIO",
    "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2], "experiment_planner_used": "ExperimentPlanner",
    "label_manager": "LabelManager", "foreground_intensity_properties_per_channel": {},
    "configurations": {"3d_fullres": {
        "data_identifier": "nnUNetPlans_3d_fullres", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2,
        "patch_size": [16, 16, 16], "median_image_size_in_voxels": [20, 20, 20], "spacing": [1, 1, 1],
        "normalization_schemes": ["ZScoreNormalization"], "use_mask_for_norm": [False],
        "resampling_fn_data": "resample_data_or_seg_to_shape", "resampling_fn_seg": "resample_data_or_seg_to_shape",
        "resampling_fn_data_kwargs": {}, "resampling_fn_seg_kwargs": {}, "resampling_fn_probabilities": "x",
        "resampling_fn_probabilities_kwargs": {}, "batch_dice": False,
        "architecture": {"network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
                         "arch_kwargs": {}, "_kw_requires_import": []},
    }},
}
DATASET = {
    "channel_names": {"0": "MRI"},
    "labels": {"background": 0, "a": 1},
    "numTraining": 1,
    "file_ending": ".nii.gz",
}


def _checkpoint(fold: int | str) -> dict:
    return {
        "network_weights": {"_orig_mod.w": torch.ones(2)}, "optimizer_state": {}, "grad_scaler_state": None,
        "logging": {"mean_fg_dice": [np.float64(0.5)], "epoch_end_timestamps": [1.0]}, "_best_ema": np.float64(0.4),
        "current_epoch": 3, "trainer_name": "nnUNetTrainer", "inference_allowed_mirroring_axes": (0, 1, 2),
        "init_args": {"plans": PLANS, "configuration": "3d_fullres", "fold": fold, "dataset_json": DATASET,
                      "device": torch.device("cpu")},
    }


def _model(tmp_path: Path, folds=(0, 1)) -> Path:
    folder = tmp_path / "Dataset001_Test" / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    folder.mkdir(parents=True)
    (folder / "plans.json").write_text(json.dumps(PLANS))
    (folder / "dataset.json").write_text(json.dumps(DATASET))
    for fold in folds:
        (folder / f"fold_{fold}").mkdir()
        torch.save(_checkpoint(fold), folder / f"fold_{fold}" / "checkpoint_final.pth")
    return folder


def test_opens_nnunet_style_checkpoints_with_numpy_content(tmp_path):
    model = open_model_folder(_model(tmp_path))
    assert [f.fold for f in model.folds] == [0, 1]
    assert model.configuration_name == "3d_fullres" and model.trainer_name == "nnUNetTrainer"
    assert model.mirror_axes == (0, 1, 2)
    assert list(model.folds[0].state_dict) == ["w"]  # torch.compile prefix removed
    assert model.num_input_channels == 1 and model.num_output_channels == 2


def test_fold_selection_and_errors(tmp_path):
    folder = _model(tmp_path, folds=(0, 2))
    assert available_folds(folder) == [0, 2]
    assert [f.fold for f in open_model_folder(folder, ["2"]).folds] == [2]
    with pytest.raises(ModelFolderError, match=r"no fold 1 \(available: 0, 2\)"):
        open_model_folder(folder, [0, 1])
    with pytest.raises(ModelFolderError, match="checkpoint_best.pth does not exist.*checkpoint_final.pth"):
        open_model_folder(folder, [0], checkpoint_name="checkpoint_best.pth")


def test_missing_files_and_folders(tmp_path):
    with pytest.raises(ModelFolderError, match="does not exist.*plans.json"):
        open_model_folder(tmp_path / "nope")
    folder = _model(tmp_path, folds=())
    with pytest.raises(ModelFolderError, match="No fold of .* has checkpoint_final.pth"):
        open_model_folder(folder)
    (folder / "plans.json").unlink()
    with pytest.raises(ModelFolderError, match="no plans.json"):
        open_model_folder(folder)


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    folder = _model(tmp_path, folds=(0,))
    path = folder / "fold_0" / "checkpoint_final.pth"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ModelFolderError, match="unreadable or truncated"):
        open_model_folder(folder)
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ModelFolderError, match="unreadable or truncated"):
        load_checkpoint(path)


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_checkpoint_that_would_run_code_is_refused(tmp_path):
    folder = _model(tmp_path, folds=(0,))
    path = folder / "fold_0" / "checkpoint_final.pth"
    checkpoint = _checkpoint(0)
    checkpoint["logging"] = _RunsCode()
    torch.save(checkpoint, path)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with pytest.raises(ModelFolderError, match="could run arbitrary code"):
            open_model_folder(folder)
    finally:
        os.chdir(cwd)
    assert not (tmp_path / "pwned").exists()


def test_clean_state_dict_prefixes():
    assert list(clean_state_dict({"module.a": 1, "_orig_mod.b": 2, "c": 3})) == ["a", "b", "c"]
