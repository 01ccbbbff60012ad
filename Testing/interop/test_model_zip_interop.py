"""Model zips are interchangeable with nnU-Net's, in both directions.

A real nnU-Net model (Hippocampus 3d_fullres, fold 0, trained and validated by nnU-Net itself):

- ``nnUNetv2_export_model_to_zip`` → ``autoseg install_pretrained_model_from_zip`` → ``autoseg predict``
  agrees with ``nnUNetv2_predict`` on the original model (>= 99.9% voxels);
- ``autoseg export_model_to_zip`` holds exactly the files nnU-Net's export holds, and
  ``nnUNetv2_install_pretrained_model_from_zip`` of it → ``nnUNetv2_predict`` gives nnU-Net's prediction.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from nnunet_models import model_ids, predict_with_nnunet, write_prediction_inputs
from oracle import run_nnunet

from autoseg.cli.main import main as autoseg_main
from autoseg.paths import Workspace

pytestmark = pytest.mark.oracle

MIN_AGREEMENT = 0.999
CONFIGURATION = "3d_fullres"


@pytest.fixture(scope="module")
def model(nnunet_model_factory, tmp_path_factory) -> dict:
    """The session's Hippocampus model (shared with other oracle tests), fold 0 of 3d_fullres copied into a
    workspace of its own with the ``validation/summary.json`` that nnU-Net's export requires (the factory's
    training skips the final validation that writes it)."""
    shared = nnunet_model_factory("hippocampus", ["3d_fullres", "2d"], [0, 1])
    workspace = Workspace.from_root(tmp_path_factory.mktemp("zip_model"))
    source = shared["model_folders"][CONFIGURATION]
    target = workspace.results / shared["dataset_name"] / source.name
    (target / "fold_0" / "validation").mkdir(parents=True)
    for name in ("plans.json", "dataset.json", "dataset_fingerprint.json", "fold_0/checkpoint_final.pth",
                 "fold_0/checkpoint_best.pth", "fold_0/debug.json", "fold_0/progress.png"):
        shutil.copyfile(source / name, target / name)
    (target / "fold_0" / "validation" / "summary.json").write_text(json.dumps({"foreground_mean": {"Dice": 0.5}}))
    return {**shared, "workspace": workspace, "model_folders": {CONFIGURATION: target}}


@pytest.fixture(scope="module")
def reference(model, tmp_path_factory) -> tuple[Path, Path]:
    """(input folder, nnUNetv2_predict's output on the original model)."""
    root = tmp_path_factory.mktemp("zip_reference")
    write_prediction_inputs(model, root / "input", n=2)
    predicted = predict_with_nnunet(model["workspace"], model_ids(model, CONFIGURATION), root / "input",
                                    root / "nnunet", folds=[0], extra_args=["--disable_tta"])
    return root / "input", predicted


def _set_env(monkeypatch, workspace: Workspace) -> None:
    monkeypatch.setenv("nnUNet_raw", str(workspace.raw))
    monkeypatch.setenv("nnUNet_preprocessed", str(workspace.preprocessed))
    monkeypatch.setenv("nnUNet_results", str(workspace.results))


def _names(path: Path) -> set[str]:
    with zipfile.ZipFile(path) as archive:
        return set(archive.namelist())


def _compare(theirs: Path, ours: Path, exact: bool) -> None:
    files = sorted(theirs.glob("*.nii.gz"))
    assert files
    for file in files:
        a = sitk.GetArrayFromImage(sitk.ReadImage(str(file)))
        b = sitk.GetArrayFromImage(sitk.ReadImage(str(ours / file.name)))
        assert len(np.unique(a)) > 1
        agreement = float((a == b).mean())
        assert agreement == 1.0 if exact else agreement >= MIN_AGREEMENT, (file.name, agreement)


def test_nnunet_zip_installs_and_predicts_in_autoseg(model, reference, tmp_path, monkeypatch):
    model_zip = tmp_path / "nnunet_export.zip"
    run_nnunet("export_model_to_zip", ["-d", str(model["dataset_id"]), "-o", str(model_zip), "-c", CONFIGURATION,
                                       "-f", "0"], model["workspace"])
    fresh = Workspace.from_root(tmp_path / "fresh")
    _set_env(monkeypatch, fresh)
    assert autoseg_main(["install_pretrained_model_from_zip", str(model_zip)]) == 0
    installed = fresh.results / model["dataset_name"] / model["model_folders"][CONFIGURATION].name
    assert (installed / "fold_0" / "checkpoint_final.pth").is_file()
    inputs, theirs = reference
    assert autoseg_main(["predict", "-i", str(inputs), "-o", str(tmp_path / "ours"), "-m", str(installed), "-f", "0",
                         "--disable_tta", "-device", "cpu", "--no_pbar"]) == 0
    _compare(theirs, tmp_path / "ours", exact=False)


def test_autoseg_zip_matches_nnunet_export_and_runs_in_nnunet(model, reference, tmp_path, monkeypatch):
    ours_zip, theirs_zip = tmp_path / "autoseg_export.zip", tmp_path / "nnunet_export.zip"
    _set_env(monkeypatch, model["workspace"])
    assert autoseg_main(["export_model_to_zip", "-d", str(model["dataset_id"]), "-o", str(ours_zip), "-c",
                         CONFIGURATION, "-f", "0"]) == 0
    run_nnunet("export_model_to_zip", ["-d", str(model["dataset_id"]), "-o", str(theirs_zip), "-c", CONFIGURATION,
                                       "-f", "0"], model["workspace"])
    assert _names(ours_zip) == _names(theirs_zip)
    fresh = Workspace.from_root(tmp_path / "fresh")
    run_nnunet("install_pretrained_model_from_zip", [str(ours_zip)], fresh)
    inputs, theirs = reference
    predicted = predict_with_nnunet(fresh, model_ids(model, CONFIGURATION), inputs, tmp_path / "nnunet_installed",
                                    folds=[0], extra_args=["--disable_tta"])
    _compare(theirs, predicted, exact=True)
