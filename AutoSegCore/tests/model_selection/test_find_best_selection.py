"""``autoseg find_best_configuration`` on generated results whose best choice is known (the ensemble)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from selection_cases import CASES, DATASET, add_model, copy_model, environment, make_workspace

from autoseg.cli.main import main
from autoseg.model_selection.instructions import command_lines

ENSEMBLE = "ensemble___nnUNetTrainer__nnUNetPlans__2d___nnUNetTrainer__nnUNetPlans__3d_fullres___0_1"
NNUNET_INFORMATION_KEYS = {"folds", "dataset_name_or_id", "considered_models", "ensembling_allowed", "all_results",
                           "best_model_or_ensemble"}
NNUNET_BEST_KEYS = {"result_on_crossval_pre_pp", "result_on_crossval_post_pp", "postprocessing_file",
                    "some_plans_file", "selected_model_or_models"}


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    workspace = make_workspace(tmp_path)
    add_model(workspace, "2d", good_cases=CASES[:2])
    add_model(workspace, "3d_fullres", good_cases=CASES[2:])
    environment(monkeypatch, workspace)
    return workspace


def test_the_ensemble_wins_and_everything_is_written(workspace, capsys):
    results = workspace.results / DATASET
    copy_model(results / "nnUNetTrainer__nnUNetPlans__2d", "nnUNetTrainerPartial", folds=[0])
    code = main(["find_best_configuration", "950", "-tr", "nnUNetTrainer", "nnUNetTrainerPartial", "-f", "0", "1",
                 "-np", "1"])
    out = capsys.readouterr().out
    assert code == 0, out
    # skipped models: a missing fold, configurations that were not planned
    assert "Skipping nnUNetTrainerPartial__nnUNetPlans__2d: fold(s) 1 have no validation predictions" in out
    assert "Skipping nnUNetTrainer__nnUNetPlans__3d_lowres: configuration 3d_lowres is not in plans" in out
    assert "autoseg train Dataset950_Select 2d 1 -tr nnUNetTrainerPartial -p nnUNetPlans --npz" in out

    for model in ("2d", "3d_fullres"):
        crossval = results / f"nnUNetTrainer__nnUNetPlans__{model}" / "crossval_results_folds_0_1"
        assert sorted(p.name for p in crossval.glob("*.nii.gz")) == [f"{c}.nii.gz" for c in CASES]
        summary = json.loads((crossval / "summary.json").read_text())
        assert summary["foreground_mean"]["Dice"] == pytest.approx(0.5)
    ensemble = results / "ensembles" / ENSEMBLE
    assert json.loads((ensemble / "summary.json").read_text())["foreground_mean"]["Dice"] == pytest.approx(1.0)
    assert (ensemble / "postprocessing.pkl").is_file() and (ensemble / "postprocessed" / "summary.json").is_file()

    information = json.loads((results / "inference_information.json").read_text())
    assert (
        set(information) == NNUNET_INFORMATION_KEYS and set(information["best_model_or_ensemble"]) == NNUNET_BEST_KEYS
    )
    assert information["folds"] == [0, 1] and information["dataset_name_or_id"] == DATASET
    assert information["considered_models"] == [
        {"plans": "nnUNetPlans", "configuration": "2d", "trainer": "nnUNetTrainer"},
        {"plans": "nnUNetPlans", "configuration": "3d_fullres", "trainer": "nnUNetTrainer"}]
    assert information["all_results"] == pytest.approx(
        {"nnUNetTrainer__nnUNetPlans__2d": 0.5, "nnUNetTrainer__nnUNetPlans__3d_fullres": 0.5, ENSEMBLE: 1.0})
    best = information["best_model_or_ensemble"]
    assert best["selected_model_or_models"] == [
        {"configuration": "2d", "trainer": "nnUNetTrainer", "plans_identifier": "nnUNetPlans"},
        {"configuration": "3d_fullres", "trainer": "nnUNetTrainer", "plans_identifier": "nnUNetPlans"}]
    assert best["result_on_crossval_pre_pp"] == best["result_on_crossval_post_pp"] == pytest.approx(1.0)
    assert best["postprocessing_file"] == str(ensemble / "postprocessing.pkl")
    assert best["some_plans_file"] == str(ensemble / "plans.json")

    text = (results / "inference_instructions.txt").read_text()
    assert text in out  # printed as well
    commands = command_lines(text)
    assert commands == [
        ["autoseg", "predict", "-d", DATASET, "-i", "INPUT_FOLDER", "-o", "OUTPUT_FOLDER_MODEL_1", "-f", "0", "1",
         "-tr", "nnUNetTrainer", "-c", "2d", "-p", "nnUNetPlans", "--save_probabilities"],
        ["autoseg", "predict", "-d", DATASET, "-i", "INPUT_FOLDER", "-o", "OUTPUT_FOLDER_MODEL_2", "-f", "0", "1",
         "-tr", "nnUNetTrainer", "-c", "3d_fullres", "-p", "nnUNetPlans", "--save_probabilities"],
        ["autoseg", "ensemble", "-i", "OUTPUT_FOLDER_MODEL_1", "OUTPUT_FOLDER_MODEL_2", "-o", "OUTPUT_FOLDER",
         "-np", "1"],
        ["autoseg", "apply_postprocessing", "-i", "OUTPUT_FOLDER", "-o", "OUTPUT_FOLDER_PP", "-pp_pkl_file",
         str(ensemble / "postprocessing.pkl"), "-np", "1", "-plans_json", str(ensemble / "plans.json"),
         "-dataset_json", str(ensemble / "dataset.json")],
    ]
    # the table: one row per model and ensemble, the ensemble marked as chosen
    rows = {line.split("  ")[0].strip(): line for line in out.splitlines() if line.startswith(("2d", "3d_fullres"))}
    assert set(rows) == {"2d", "3d_fullres", "2d + 3d_fullres"}
    assert "<== best" in rows["2d + 3d_fullres"] and "<== best" not in rows["2d"]
    assert "anterior (1)" in out and "posterior (2)" in out
    assert "1.0000" in rows["2d + 3d_fullres"] and "0.5000" in rows["2d"]


def test_disable_ensembling_and_no_overwrite(workspace, capsys):
    assert main(["find_best_configuration", DATASET, "-c", "2d", "3d_fullres", "-f", "0", "1", "-np", "1",
                 "--disable_ensembling"]) == 0
    results = workspace.results / DATASET
    assert not (results / "ensembles").exists()
    information = json.loads((results / "inference_information.json").read_text())
    assert information["ensembling_allowed"] is False
    # a tie (0.5 and 0.5) goes to the first model
    assert information["best_model_or_ensemble"]["selected_model_or_models"][0]["configuration"] == "2d"
    commands = command_lines((results / "inference_instructions.txt").read_text())
    assert [c[:2] for c in commands] == [["autoseg", "predict"], ["autoseg", "apply_postprocessing"]]
    assert "--save_probabilities" not in commands[0] and commands[0][commands[0].index("-o") + 1] == "OUTPUT_FOLDER"

    crossval = results / "nnUNetTrainer__nnUNetPlans__2d" / "crossval_results_folds_0_1"
    (crossval / "marker.txt").write_text("kept")
    assert main(["find_best_configuration", DATASET, "-c", "2d", "-f", "0", "1", "-np", "1", "--no_overwrite",
                 "--disable_ensembling"]) == 0
    assert (crossval / "marker.txt").is_file()
    assert (
        main(["find_best_configuration", DATASET, "-c", "2d", "-f", "0", "1", "-np", "1", "--disable_ensembling"]) == 0
    )
    assert not (crossval / "marker.txt").exists()  # rebuilt from the folds


def test_a_model_without_probabilities_is_left_out_of_ensembles(tmp_path, monkeypatch, capsys):
    workspace = make_workspace(tmp_path)
    add_model(workspace, "2d", good_cases=CASES[:2])
    add_model(workspace, "3d_fullres", good_cases=CASES[2:], npz=False)
    environment(monkeypatch, workspace)
    assert main(["find_best_configuration", DATASET, "-c", "2d", "3d_fullres", "-f", "0", "1", "-np", "1"]) == 0
    out = capsys.readouterr().out
    assert "nnUNetTrainer__nnUNetPlans__3d_fullres is left out of ensembles" in out and "--val --npz" in out
    information = json.loads((workspace.results / DATASET / "inference_information.json").read_text())
    assert set(information["all_results"]) == {
        "nnUNetTrainer__nnUNetPlans__2d",
        "nnUNetTrainer__nnUNetPlans__3d_fullres",
    }


def test_no_usable_model_is_one_clear_error(workspace, capsys):
    assert main(["find_best_configuration", DATASET, "-f", "0", "1", "2", "-np", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        "autoseg find_best_configuration: error: No trained model of Dataset950_Select has all of folds 0, 1, 2"
    )
    assert "nnUNetTrainer__nnUNetPlans__2d: fold(s) 2 have no validation predictions" in err
    assert not (workspace.results / DATASET / "inference_information.json").exists()


def test_accumulate_crossval_results_cli(workspace, tmp_path, capsys):
    assert main(["accumulate_crossval_results", "950", "-c", "3d_fullres", "-f", "0", "1"]) == 0
    default = workspace.results / DATASET / "nnUNetTrainer__nnUNetPlans__3d_fullres" / "crossval_results_folds_0_1"
    assert json.loads((default / "summary.json").read_text())["foreground_mean"]["Dice"] == pytest.approx(0.5)
    assert "crossval_results_folds_0_1" in capsys.readouterr().out

    out = tmp_path / "cv_fold0"
    assert (
        main(["accumulate_crossval_results", DATASET, "-c", "3d_fullres", "-f", "0", "-o", str(out), "-np", "1"]) == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(Path(c["prediction_file"]).name for c in summary["metric_per_case"]) == [
        "case_0.nii.gz",
        "case_2.nii.gz",
    ]
    assert main(["accumulate_crossval_results", DATASET, "-c", "3d_fullres", "-f", "0", "-o", str(out)]) == 1
    assert "exists and is not empty" in capsys.readouterr().err
    assert main(["accumulate_crossval_results", DATASET, "-c", "2d", "-f", "0", "3"]) == 1
    assert "Fold 3 of" in capsys.readouterr().err


def test_a_pair_that_cannot_be_ensembled_is_skipped(tmp_path, monkeypatch, capsys):
    workspace = make_workspace(tmp_path)
    add_model(workspace, "2d", good_cases=CASES[:2])
    add_model(workspace, "3d_fullres", good_cases=CASES, split={0: ["case_0", "case_2"], 1: ["case_1"]})
    environment(monkeypatch, workspace)
    assert main(["find_best_configuration", DATASET, "-c", "2d", "3d_fullres", "-f", "0", "1", "-np", "1"]) == 0
    out = capsys.readouterr().out
    assert f"Skipping {ENSEMBLE}: The folders to ensemble must hold the probabilities of the same cases" in out
    assert "case_3.npz" in out
    information = json.loads((workspace.results / DATASET / "inference_information.json").read_text())
    assert information["best_model_or_ensemble"]["selected_model_or_models"][0]["configuration"] == "3d_fullres"
