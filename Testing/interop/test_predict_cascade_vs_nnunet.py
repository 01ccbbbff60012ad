"""``autoseg predict -prev_stage_predictions`` against ``nnUNetv2_predict`` on a real 3d_cascade_fullres model.

The model is built by nnU-Net itself (``nnunet_models``, kind ``cascade``): 6 generated 48x112x112 volumes
planned with a small GPU memory target so that nnU-Net plans 3d_lowres (about 1.35 mm, a different grid
than fullres) and 3d_cascade_fullres. 3d_lowres is trained on fold "all" with validation, which writes
``predicted_next_stage/3d_cascade_fullres`` for every case; 3d_cascade_fullres fold 0 trains on those.

Then, on the held-out case (1.2x0.9x0.9 mm, so its image and its previous-stage segmentation are resampled
to the 1 mm fullres grid): ``nnUNetv2_predict -c 3d_lowres`` -> L; ``nnUNetv2_predict -c 3d_cascade_fullres
-prev_stage_predictions L`` -> N; ``autoseg predict -m <cascade model> -prev_stage_predictions L`` -> A;
N and A must agree (>= 99.9% identical voxels, identical geometry).
"""

from __future__ import annotations

import json

import pytest
from nnunet_models import model_ids, predict_with_nnunet, write_prediction_inputs
from test_predict_vs_nnunet import _autoseg_predict, assert_same_predictions

from autoseg.cli.main import main as autoseg_main

pytestmark = pytest.mark.oracle


@pytest.fixture(scope="module")
def cascade(nnunet_model_factory):
    return nnunet_model_factory("cascade", ["3d_lowres", "3d_cascade_fullres"], [0],
                                train_folds={"3d_lowres": ["all"]}, validation=["3d_lowres"], validation_tta=False)


@pytest.fixture(scope="module")
def lowres_predictions(cascade, tmp_path_factory):
    """(inputs, nnU-Net's 3d_lowres predictions of them): the previous stage for both predictors."""
    root = tmp_path_factory.mktemp("cascade_inputs")
    inputs = root / "inputs"
    write_prediction_inputs(cascade, inputs, n=1)
    lowres = predict_with_nnunet(cascade["workspace"], model_ids(cascade, "3d_lowres"), inputs, root / "lowres",
                                 ["all"], ["--disable_tta"])
    return inputs, lowres


def test_model_is_a_cascade(cascade):
    plans = json.loads((cascade["model_folders"]["3d_cascade_fullres"] / "plans.json").read_text())
    assert plans["configurations"]["3d_cascade_fullres"]["previous_stage"] == "3d_lowres"
    assert plans["configurations"]["3d_lowres"]["next_stage"] in ("3d_cascade_fullres", ["3d_cascade_fullres"])
    # the lowres grid differs from the fullres one, so the previous stage really is resampled
    assert plans["configurations"]["3d_lowres"]["spacing"] != plans["configurations"]["3d_fullres"]["spacing"]
    predicted = cascade["model_folders"]["3d_lowres"] / "predicted_next_stage" / "3d_cascade_fullres"
    assert len(list(predicted.iterdir())) >= len(cascade["training_cases"])


def test_lowres_matches_nnunet(cascade, lowres_predictions, tmp_path):
    inputs, lowres = lowres_predictions
    _autoseg_predict(cascade["model_folders"]["3d_lowres"], inputs, tmp_path / "autoseg", "-f", "all", "--disable_tta")
    assert_same_predictions(lowres, tmp_path / "autoseg", cascade["file_ending"])


def test_cascade_with_previous_stage_matches_nnunet(cascade, lowres_predictions, tmp_path):
    inputs, lowres = lowres_predictions
    flags = ["--disable_tta", "-prev_stage_predictions", str(lowres)]
    theirs = predict_with_nnunet(cascade["workspace"], model_ids(cascade, "3d_cascade_fullres"), inputs,
                                 tmp_path / "nnunet", [0], flags)
    _autoseg_predict(cascade["model_folders"]["3d_cascade_fullres"], inputs, tmp_path / "autoseg", "-f", "0", *flags)
    assert_same_predictions(theirs, tmp_path / "autoseg", cascade["file_ending"])


def test_cascade_without_previous_stage_fails(cascade, lowres_predictions, tmp_path, capsys):
    inputs, _ = lowres_predictions
    code = autoseg_main(["predict", "-i", str(inputs), "-o", str(tmp_path / "autoseg"), "-m",
                         str(cascade["model_folders"]["3d_cascade_fullres"]), "-f", "0", "-device", "cpu",
                         "--no_pbar", "--disable_tta"])
    assert code == 1
    assert "-prev_stage_predictions" in capsys.readouterr().err
