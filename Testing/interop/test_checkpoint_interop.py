"""A checkpoint written by AutoSeg's training code runs in ``nnUNetv2_predict`` (and in ``autoseg predict``)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from nnunet_models import predict_with_nnunet, write_prediction_inputs

from autoseg.dataset.dataset_json import DatasetJson
from autoseg.inference.model_folder import open_model_folder
from autoseg.network import build_network
from autoseg.network.checkpoint import build_checkpoint, init_args, load_checkpoint, save_checkpoint
from autoseg.plans.model import Plans
from autoseg.training.schedule import build_optimizer
from autoseg.training.training_log import TrainingLog

pytestmark = pytest.mark.oracle


def test_autoseg_checkpoint_runs_in_nnunet(nnunet_model_factory, tmp_path):
    model = nnunet_model_factory("hippocampus", ["3d_fullres", "2d"], [0, 1])
    source = model["model_folders"]["3d_fullres"]
    # an AutoSeg results folder: nnU-Net's plans/dataset.json, fold 0 re-written by our checkpoint code with
    # our network holding the same weights
    target = model["workspace"].results / model["dataset_name"] / "nnUNetTrainer__nnUNetPlans__3d_fullres_autoseg"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    for name in ("plans.json", "dataset.json", "dataset_fingerprint.json"):
        shutil.copy(source / name, target / name)
    plans, dataset_json = Plans.load(source / "plans.json"), DatasetJson.load(source / "dataset.json")
    loaded = open_model_folder(source, [0])
    network = build_network(plans.configuration("3d_fullres").architecture, 1, 3, deep_supervision=True)
    network.load_state_dict({k: torch.from_numpy(v) for k, v in loaded.folds[0].state_dict.items()})
    optimizer = build_optimizer(network.parameters())
    log = TrainingLog()
    log.log_validation([0.5, 0.6])
    checkpoint = build_checkpoint(
        network,
        optimizer,
        None,
        log,
        0.55,
        1,
        init_args(plans, "3d_fullres", 0, dataset_json, torch.device("cpu")),
        "nnUNetTrainer",
        (0, 1, 2),
    )
    save_checkpoint(checkpoint, target / "fold_0" / "checkpoint_final.pth")
    assert not [p for p in (target / "fold_0").iterdir() if p.name != "checkpoint_final.pth"]  # no temp file left
    reread = load_checkpoint(target / "fold_0" / "checkpoint_final.pth")
    assert reread["current_epoch"] == 1 and reread["logging"]["ema_fg_dice"] == [0.55]

    inputs = tmp_path / "in"
    write_prediction_inputs(model, inputs, n=1)
    ours = predict_with_nnunet(
        model["workspace"], target, inputs, tmp_path / "from_autoseg_checkpoint", [0], ["--disable_tta"]
    )
    theirs = predict_with_nnunet(
        model["workspace"], source, inputs, tmp_path / "from_nnunet_checkpoint", [0], ["--disable_tta"]
    )
    for file in theirs.glob("*.nii.gz"):
        a = sitk.GetArrayFromImage(sitk.ReadImage(str(file)))
        b = sitk.GetArrayFromImage(sitk.ReadImage(str(ours / file.name)))
        np.testing.assert_array_equal(a, b)
