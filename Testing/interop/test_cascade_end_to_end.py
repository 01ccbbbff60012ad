"""The cascade, end to end with AutoSeg only: plan -> 3d_lowres -> predicted_next_stage -> 3d_cascade_fullres.

Dataset: 5 generated 48x112x112 volumes (``nnunet_models`` kind ``cascade``) planned with a 0.2 GB GPU memory
target, so the fullres patch covers < 25% of the median image and the planner adds 3d_lowres (1.34 mm) and
3d_cascade_fullres. AutoSeg plans, preprocesses and trains 3d_lowres on fold ``all`` (its final validation
writes ``predicted_next_stage/3d_cascade_fullres`` for every case), then trains 3d_cascade_fullres fold 0 on
those predictions, then predicts a held-out case (1.2x0.9x0.9 mm: image and previous stage are resampled)
with ``-prev_stage_predictions``. ``nnUNetv2_predict`` runs the AutoSeg-trained cascade on the same
3d_lowres predictions and must agree (>= 99.9% voxels, same geometry).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import SimpleITK as sitk
from nnunet_models import KINDS, make_raw_dataset, predict_with_nnunet, write_prediction_inputs
from test_predict_vs_nnunet import _autoseg_predict, assert_same_predictions

from autoseg.cli.main import main as autoseg_main
from autoseg.paths import Workspace

pytestmark = pytest.mark.oracle

KIND = KINDS["cascade"]
# NoMirroring: the final validations (all 5 cases for 3d_lowres) predict without the 8 mirrored copies
TRAINER = "nnUNetTrainerNoMirroring"
BUDGET = ["-tr", TRAINER, "--epochs", "1", "--iterations_per_epoch", "6", "--val_iterations", "1", "-device", "cpu",
          "--no_pbar"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A workspace with the cascade dataset planned and preprocessed by AutoSeg; the env points at it."""
    ws = Workspace.from_root(tmp_path_factory.mktemp("cascade_e2e"))
    make_raw_dataset(ws, "cascade")
    saved = {k: os.environ.get(k) for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    os.environ.update(nnUNet_raw=str(ws.raw), nnUNet_preprocessed=str(ws.preprocessed), nnUNet_results=str(ws.results))
    assert autoseg_main(["plan_and_preprocess", "-d", str(KIND.dataset_id), "-gpu_memory_target", "0.2",
                         "-c", "3d_lowres", "3d_fullres", "-np", "2"]) == 0
    yield ws
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _model(ws: Workspace, configuration: str):
    return ws.results / KIND.dataset_name / f"{TRAINER}__nnUNetPlans__{configuration}"


@pytest.fixture(scope="module")
def lowres(workspace):
    assert autoseg_main(["train", str(KIND.dataset_id), "3d_lowres", "all", *BUDGET]) == 0
    return _model(workspace, "3d_lowres")


def test_plans_have_a_cascade(workspace):
    plans = json.loads((workspace.preprocessed / KIND.dataset_name / "nnUNetPlans.json").read_text())
    configurations = plans["configurations"]
    assert configurations["3d_lowres"]["next_stage"] in ("3d_cascade_fullres", ["3d_cascade_fullres"])
    assert configurations["3d_cascade_fullres"]["previous_stage"] == "3d_lowres"
    assert configurations["3d_lowres"]["spacing"] != configurations["3d_fullres"]["spacing"]


def test_lowres_validation_writes_the_next_stage_on_the_fullres_grid(workspace, lowres):
    predicted = lowres / "predicted_next_stage" / "3d_cascade_fullres"
    fullres_data = workspace.preprocessed / KIND.dataset_name / "nnUNetPlans_3d_fullres"
    cases = sorted(p.stem for p in fullres_data.glob("case_*.json"))
    assert len(cases) == KIND.num_training
    for case in cases:
        segmentation = np.load(predicted / f"{case}.npy")
        image = np.load(fullres_data / f"{case}.npy", mmap_mode="r")
        assert segmentation.shape == image.shape[1:], case
        assert set(np.unique(segmentation)) <= {0, 1, 2}, case


def test_cascade_refuses_missing_previous_stage(workspace, lowres, capsys):
    predicted = lowres / "predicted_next_stage" / "3d_cascade_fullres" / "case_004.npy"
    moved = predicted.with_name("case_004.npy.away")
    predicted.rename(moved)
    try:
        code = autoseg_main(["train", str(KIND.dataset_id), "3d_cascade_fullres", "0", *BUDGET])
    finally:
        moved.rename(predicted)
    assert code == 1
    error = capsys.readouterr().err
    assert "case_004" in error and "predicted_next_stage" in error
    assert not (_model(workspace, "3d_cascade_fullres") / "fold_0" / "checkpoint_final.pth").exists()


def test_cascade_trains_and_predicts_like_nnunet(workspace, lowres, tmp_path):
    assert autoseg_main(["train", str(KIND.dataset_id), "3d_cascade_fullres", "0", *BUDGET]) == 0
    cascade = _model(workspace, "3d_cascade_fullres")
    assert (cascade / "fold_0" / "checkpoint_final.pth").is_file()
    summary = json.loads((cascade / "fold_0" / "validation" / "summary.json").read_text())
    assert summary["metric_per_case"], "the cascade's final validation evaluated no case"

    inputs = tmp_path / "inputs"
    (case,) = write_prediction_inputs("cascade", inputs, n=1)
    previous = tmp_path / "lowres"
    _autoseg_predict(lowres, inputs, previous, "-f", "all", "--disable_tta")
    ours = tmp_path / "autoseg"
    _autoseg_predict(cascade, inputs, ours, "-f", "0", "--disable_tta", "-prev_stage_predictions", str(previous))
    ending = ".nii.gz"
    image = sitk.ReadImage(str(inputs / f"{case}_0000{ending}"))
    prediction = sitk.ReadImage(str(ours / f"{case}{ending}"))
    assert prediction.GetSize() == image.GetSize() and prediction.GetSpacing() == image.GetSpacing()
    assert prediction.GetOrigin() == image.GetOrigin() and prediction.GetDirection() == image.GetDirection()

    theirs = predict_with_nnunet(workspace, {"dataset": str(KIND.dataset_id), "configuration": "3d_cascade_fullres",
                                                         "trainer": TRAINER},
                                 inputs, tmp_path / "nnunet", [0],
                                 ["--disable_tta", "-prev_stage_predictions", str(previous)])
    assert_same_predictions(theirs, ours, ending)

