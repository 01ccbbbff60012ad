"""The nnU-Net model factory (``nnunet_models``) builds model folders that ``nnUNetv2_predict`` runs.

A Hippocampus 3d_fullres model with two folds, trained for a few iterations by nnU-Net's own
``nnUNetTrainer``; predictions keep the input geometry and contain several labels (decisive weights).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from nnunet_models import model_ids, nnunet_subprocess_env, predict_with_nnunet, write_prediction_inputs

pytestmark = pytest.mark.oracle

CHECKPOINT_KEYS = {"network_weights", "optimizer_state", "grad_scaler_state", "logging", "_best_ema", "current_epoch",
                   "init_args", "trainer_name", "inference_allowed_mirroring_axes"}


@pytest.fixture(scope="module")
def hippocampus_model(nnunet_model_factory):
    return nnunet_model_factory("hippocampus", ["3d_fullres"], [0, 1])


def test_model_folder_is_what_the_trainer_writes(hippocampus_model):
    folder = hippocampus_model["model_folders"]["3d_fullres"]
    assert folder.name == "nnUNetTrainer__nnUNetPlans__3d_fullres"
    for name in ("dataset.json", "plans.json", "dataset_fingerprint.json"):
        assert (folder / name).is_file()
    weights = []
    for fold in (0, 1):
        path = hippocampus_model["checkpoints"]["3d_fullres"][fold]
        assert path == folder / f"fold_{fold}" / "checkpoint_final.pth"
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        assert set(checkpoint) == CHECKPOINT_KEYS
        assert checkpoint["trainer_name"] == "nnUNetTrainer"
        assert set(checkpoint["init_args"]) == {"plans", "configuration", "fold", "dataset_json", "device"}
        assert checkpoint["init_args"]["configuration"] == "3d_fullres"
        assert checkpoint["init_args"]["fold"] == fold
        assert tuple(checkpoint["inference_allowed_mirroring_axes"]) == (0, 1, 2)
        assert checkpoint["current_epoch"] == 1
        weights.append(checkpoint["network_weights"])
    assert weights[0].keys() == weights[1].keys()
    assert not torch.equal(weights[0]["decoder.seg_layers.2.weight"], weights[1]["decoder.seg_layers.2.weight"])


def test_nnunet_predicts_with_input_geometry_and_several_labels(hippocampus_model, tmp_path):
    workspace = hippocampus_model["workspace"]
    cases = write_prediction_inputs(hippocampus_model, tmp_path / "input", n=2)
    assert not set(cases) & set(hippocampus_model["training_cases"])

    ensemble = predict_with_nnunet(workspace, model_ids(hippocampus_model, "3d_fullres"), tmp_path / "input",
                                   tmp_path / "ensemble", folds=[0, 1], extra_args=["--disable_tta"])
    single = predict_with_nnunet(workspace, hippocampus_model["model_folders"]["3d_fullres"], tmp_path / "input",
                                 tmp_path / "fold0", folds=[0], extra_args=["--disable_tta"])
    for case in cases:
        image = sitk.ReadImage(str(tmp_path / "input" / f"{case}_0000.nii.gz"))
        segmentations = []
        for output in (ensemble, single):
            seg = sitk.ReadImage(str(output / f"{case}.nii.gz"))
            assert seg.GetSize() == image.GetSize()
            assert seg.GetSpacing() == image.GetSpacing()
            assert seg.GetOrigin() == image.GetOrigin()
            assert seg.GetDirection() == image.GetDirection()
            array = sitk.GetArrayFromImage(seg)
            values, counts = np.unique(array, return_counts=True)
            assert set(values) <= {0, 1, 2}
            assert len(values) > 1 and counts.min() > 100, dict(zip(values.tolist(), counts.tolist()))
            segmentations.append(array)
        # the two folds differ, so their ensemble differs from fold 0 alone
        assert (segmentations[0] != segmentations[1]).any()


def test_timm_stub_lets_nnunet_find_other_trainers(hippocampus_model):
    """Without timm, looking up any trainer but nnUNetTrainer imports primus and fails; the stub fixes that."""
    code = ("from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name as find\n"
            "print(find('nnUNetTrainer_5epochs').__name__)")
    result = subprocess.run([sys.executable, "-c", code], env=nnunet_subprocess_env(hippocampus_model["workspace"]),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("nnUNetTrainer_5epochs")
