"""``autoseg move_plans_between_datasets`` writes the same plans as ``nnUNetv2_move_plans_between_datasets``."""

from __future__ import annotations

import json
import shutil

import pytest
from oracle import SHARED_DATA, link_dataset, run_nnunet

from autoseg.cli.main import main as autoseg_main
from autoseg.paths import Workspace

pytestmark = pytest.mark.oracle

SOURCE = "Dataset041_Source"
TARGET = "Dataset042_Target"


def test_same_plans_as_nnunet(tmp_path, monkeypatch):
    workspace = Workspace.from_root(tmp_path)
    (workspace.preprocessed / SOURCE).mkdir(parents=True)
    (workspace.preprocessed / TARGET).mkdir(parents=True)  # nnU-Net does not create it
    plans = {
        "dataset_name": SOURCE, "plans_name": "nnUNetPlans", "original_median_spacing_after_transp": [1.0, 1.0, 1.0],
        "original_median_shape_after_transp": [36, 50, 35], "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
        "configurations": {
            "3d_fullres": {"data_identifier": "nnUNetPlans_3d_fullres", "batch_size": 2, "patch_size": [40, 56, 40]},
            "2d": {"data_identifier": "nnUNetPlans_2d", "batch_size": 366, "patch_size": [56, 40]},
            "3d_other": {"inherits_from": "3d_fullres", "data_identifier": "my_data"},
        },
        "experiment_planner_used": "ExperimentPlanner", "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {"0": {"mean": 1.0}},
    }
    for configuration in plans["configurations"].values():
        if "inherits_from" not in configuration:  # complete configurations, as the planner writes them
            configuration.update(
                {
                    "preprocessor_name": "DefaultPreprocessor",
                    "median_image_size_in_voxels": [36.0, 50.0, 35.0],
                    "spacing": [1.0, 1.0, 1.0],
                    "normalization_schemes": ["ZScoreNormalization"],
                    "use_mask_for_norm": [False],
                    "resampling_fn_data": "resample_data_or_seg_to_shape",
                    "resampling_fn_seg": "resample_data_or_seg_to_shape",
                    "resampling_fn_data_kwargs": {},
                    "resampling_fn_seg_kwargs": {},
                    "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
                    "resampling_fn_probabilities_kwargs": {},
                    "architecture": {
                        "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
                        "arch_kwargs": {"n_stages": 4},
                        "_kw_requires_import": ["conv_op"],
                    },
                    "batch_dice": False,
                }
            )
    (workspace.preprocessed / SOURCE / "nnUNetPlans.json").write_text(json.dumps(plans))
    target_raw = link_dataset(SHARED_DATA / "Hippocampus", workspace, TARGET)
    dataset_json = json.loads((target_raw / "dataset.json").read_text())
    dataset_json["overwrite_image_reader_writer"] = "NibabelIO"  # the target's reader must end up in the plans
    (target_raw / "dataset.json").write_text(json.dumps(dataset_json))

    for target_plans in ("nnUNetPlansFrom41", None):
        flags = ["-tp", target_plans] if target_plans else []
        written = workspace.preprocessed / TARGET / f"{target_plans or 'nnUNetPlans'}.json"
        run_nnunet("move_plans_between_datasets", ["-s", "41", "-t", "42", "-sp", "nnUNetPlans", *flags], workspace)
        theirs = json.loads(written.read_text())
        shutil.move(written, tmp_path / "theirs.json")
        for name, folder in (("nnUNet_raw", workspace.raw), ("nnUNet_preprocessed", workspace.preprocessed),
                             ("nnUNet_results", workspace.results)):
            monkeypatch.setenv(name, str(folder))
        assert autoseg_main(["move_plans_between_datasets", "-s", "41", "-t", "42", "-sp", "nnUNetPlans", *flags]) == 0
        ours = json.loads(written.read_text())
        assert ours == theirs
        assert ours["image_reader_writer"] == "NibabelIO" and ours["dataset_name"] == TARGET
        written.unlink()
