"""``autoseg export_model_to_zip``: nnU-Net's file selection and names, subsets of folds/checkpoints, strictness."""

from __future__ import annotations

import zipfile

import pytest
from model_sharing_helpers import (
    DATASET_NAME,
    ENSEMBLE_EXPORTED,
    ENSEMBLE_OTHER,
    LOWRES,
    MODEL,
    make_results,
    set_workspace_env,
    zip_names,
)

from autoseg.cli.main import main as autoseg_main
from autoseg.errors import ModelSharingError
from autoseg.model_sharing.export_zip import ExportRequest, export_model_to_zip, plan_export
from autoseg.paths import Workspace


@pytest.fixture()
def workspace(tmp_path, monkeypatch):
    ws = Workspace.from_root(tmp_path / "ws")
    make_results(ws)
    set_workspace_env(monkeypatch, ws)
    return ws


def _export(tmp_path, *flags: str) -> tuple[int, set[str]]:
    output = tmp_path / "out" / "model.zip"
    code = autoseg_main(["export_model_to_zip", "-d", "777", "-o", str(output), *flags])
    return code, (zip_names(output) if output.exists() else set())


def test_one_configuration_fold_0_final_checkpoint_only(workspace, tmp_path):
    code, names = _export(tmp_path, "-c", "3d_fullres", "-f", "0")
    assert code == 0
    prefix = f"{DATASET_NAME}/{MODEL}"
    assert names == {
        f"{prefix}/plans.json", f"{prefix}/dataset.json", f"{prefix}/dataset_fingerprint.json",
        f"{prefix}/fold_0/checkpoint_final.pth", f"{prefix}/fold_0/debug.json", f"{prefix}/fold_0/progress.png",
        f"{prefix}/fold_0/validation/summary.json",
        f"{DATASET_NAME}/inference_information.json", f"{DATASET_NAME}/inference_instructions.txt",
    }  # no crossval_results_folds_0_1 (not the exported folds), no ensembles (3d_lowres not exported)


def test_both_folds_with_best_checkpoint_crossval_and_ensembles(workspace, tmp_path):
    code, names = _export(tmp_path, "-c", "3d_fullres", "3d_lowres", "-f", "0", "1", "--not_strict",
                          "-chk", "checkpoint_final.pth", "checkpoint_best.pth")
    assert code == 0
    prefix = f"{DATASET_NAME}/{MODEL}"
    for fold in (0, 1):
        assert {f"{prefix}/fold_{fold}/checkpoint_final.pth", f"{prefix}/fold_{fold}/checkpoint_best.pth"} <= names
    assert f"{DATASET_NAME}/{LOWRES}/fold_0/checkpoint_best.pth" in names
    assert not any(n.startswith(f"{DATASET_NAME}/{LOWRES}/fold_1") for n in names)  # lowres has no fold 1
    assert {f"{prefix}/crossval_results_folds_0_1/{n}" for n in ("summary.json", "postprocessing.pkl",
                                                                  "postprocessing.json")} <= names
    assert f"{prefix}/crossval_results_folds_0_1/case_0.nii.gz" not in names  # predictions only with --exp_cv_preds
    assert f"{DATASET_NAME}/ensembles/{ENSEMBLE_EXPORTED}/summary.json" in names
    assert not any(ENSEMBLE_OTHER in n for n in names)  # its 2d member is not exported
    assert not any("training_log" in n or n.endswith((".npz", ".pkl")) and "validation" in n for n in names)
    assert not any("unrelated_notes" in n for n in names)


def test_exp_cv_preds_adds_predictions_but_never_npz_or_pkl(workspace, tmp_path):
    code, names = _export(tmp_path, "-c", "3d_fullres", "-f", "0", "1", "--exp_cv_preds")
    assert code == 0
    prefix = f"{DATASET_NAME}/{MODEL}"
    assert f"{prefix}/fold_0/validation/case_0.nii.gz" in names
    assert f"{prefix}/crossval_results_folds_0_1/case_0.nii.gz" in names
    assert not any(n.endswith(".npz") or n.endswith("case_0.pkl") for n in names)


def test_default_configurations_are_the_trained_ones(workspace):
    plan = plan_export(workspace, ExportRequest(dataset="777", folds=(0,)))
    assert plan.configurations == ["3d_lowres", "3d_fullres"]  # nnU-Net's default order; 2d/cascade are not trained
    assert plan.ensembles == [ENSEMBLE_EXPORTED]


def test_strict_errors_name_what_is_missing(workspace, tmp_path, capsys):
    code, _ = _export(tmp_path, "-c", "3d_fullres", "-f", "0", "1", "2")
    assert code == 1
    assert "fold_2 does not exist" in capsys.readouterr().err
    code, _ = _export(tmp_path, "-c", "3d_fullres", "2d", "-f", "0")
    assert code == 1
    assert "no trained 2d model" in capsys.readouterr().err
    code, _ = _export(tmp_path, "-c", "3d_fullres", "-f", "0", "-chk", "checkpoint_latest.pth")
    assert code == 1
    err = capsys.readouterr().err
    assert "no checkpoint_latest.pth" in err and "checkpoint_best.pth, checkpoint_final.pth" in err
    out = tmp_path / "out"
    assert not out.exists() or not any(out.iterdir())  # no zip, no partial temporary file


def test_not_strict_skips_missing_folds_and_configurations(workspace, tmp_path, capsys):
    code, names = _export(tmp_path, "-c", "3d_fullres", "2d", "-f", "0", "2", "--not_strict")
    assert code == 0
    out = capsys.readouterr().out
    assert "Skipped fold_2" in out and "Skipped configuration 2d" in out
    assert f"{DATASET_NAME}/{MODEL}/fold_0/checkpoint_final.pth" in names
    assert not any("fold_2" in n for n in names)


def test_nothing_to_export_is_an_error(workspace, tmp_path):
    with pytest.raises(ModelSharingError, match="Nothing to export.*it has: .*3d_fullres"):
        plan_export(workspace, ExportRequest(dataset="777", configurations=("2d",), strict=False))
    with pytest.raises(ModelSharingError, match="Nothing to export"):
        plan_export(workspace, ExportRequest(dataset="777", trainer="OtherTrainer", folds=(0,)))
    with pytest.raises(ModelSharingError, match="is a folder"):
        export_model_to_zip(workspace, tmp_path, ExportRequest(dataset="777", folds=(0,)))


def test_zip_is_written_atomically_and_replaces_an_old_one(workspace, tmp_path):
    output = tmp_path / "model.zip"
    output.write_bytes(b"old")
    export_model_to_zip(workspace, output, ExportRequest(dataset=DATASET_NAME, configurations=("3d_fullres",),
                                                         folds=(0,)), log=lambda _: None)
    with zipfile.ZipFile(output) as archive:
        assert archive.testzip() is None
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in archive.infolist())
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
