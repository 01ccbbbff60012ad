"""``autoseg find_best_configuration`` end to end on real Hippocampus cases.

One workspace for the module: 16 cases planned and preprocessed by AutoSeg, a 2-fold ``splits_final.json``
(4 validation cases per fold), 2d and 3d_fullres trained on both folds for a few iterations with ``--npz``
(noisy but non-empty
predictions). Then find_best_configuration must write nnU-Net's folders and files, print the table, skip
incomplete models with a message, write instructions whose commands run as printed on held-out images,
and agree with ``nnUNetv2_find_best_configuration`` on the same results.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from oracle import SHARED_DATA, nnunet_env

from autoseg.model_selection.instructions import command_lines, inference_information, instructions_text
from autoseg.model_selection.models import TrainedModel, previous_stage_of
from autoseg.paths import Workspace

SOURCE = SHARED_DATA / "Hippocampus"
DATASET_ID = "961"
DATASET = "Dataset961_FindBestHippo"
ALL_CASES = sorted(p.name[: -len(".nii.gz")] for p in (SOURCE / "labelsTr").iterdir())
TRAIN_CASES, HELDOUT_CASES = ALL_CASES[:16], ALL_CASES[16:18]
#: 2 folds validating 4 cases each (the other 8 cases only train): half the validation time of a full split
VALIDATED_CASES = TRAIN_CASES[:8]
CONFIGURATIONS = ("2d", "3d_fullres")
#: nnUNetTrainerNoMirroring (a stock nnU-Net trainer name): validation and prediction without mirroring, 8x faster
TRAINER = "nnUNetTrainerNoMirroring"
TINY = ["-tr", TRAINER, "--npz", "--epochs", "1", "--iterations_per_epoch", "4", "--val_iterations", "1", "--seed", "0",
        "-device", "cpu", "--no_pbar", "-num_workers", "1"]
MODEL = TRAINER + "__nnUNetPlans__{}"
ENSEMBLE = f"ensemble___{MODEL.format('2d')}___{MODEL.format('3d_fullres')}___0_1"
PLACEHOLDERS = ("INPUT_FOLDER", "OUTPUT_FOLDER", "OUTPUT_FOLDER_PP", "OUTPUT_FOLDER_MODEL_1", "OUTPUT_FOLDER_MODEL_2")


def _env(workspace: Workspace) -> dict[str, str]:
    return {**os.environ, "nnUNet_raw": str(workspace.raw), "nnUNet_preprocessed": str(workspace.preprocessed),
            "nnUNet_results": str(workspace.results), "OMP_NUM_THREADS": "2"}


def autoseg(workspace: Workspace, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([str(Path(sys.executable).parent / "autoseg"), *args], env=_env(workspace),
                            capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"autoseg {' '.join(args)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n"
                             f"{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Workspace:
    workspace = Workspace.from_root(tmp_path_factory.mktemp("find_best"))
    raw = workspace.raw / DATASET
    for sub in ("imagesTr", "labelsTr"):
        (raw / sub).mkdir(parents=True)
    for case in TRAIN_CASES:
        (raw / "imagesTr" / f"{case}_0000.nii.gz").symlink_to(SOURCE / "imagesTr" / f"{case}_0000.nii.gz")
        (raw / "labelsTr" / f"{case}.nii.gz").symlink_to(SOURCE / "labelsTr" / f"{case}.nii.gz")
    dataset = json.loads((SOURCE / "dataset.json").read_text())
    (raw / "dataset.json").write_text(json.dumps({**dataset, "numTraining": len(TRAIN_CASES)}))
    workspace.results.mkdir(parents=True)
    autoseg(workspace, "plan_and_preprocess", "-d", DATASET_ID, "-c", *CONFIGURATIONS, "-np", "2")
    splits = [{"train": TRAIN_CASES[4:], "val": VALIDATED_CASES[:4]},
              {"train": TRAIN_CASES[:4] + TRAIN_CASES[8:], "val": VALIDATED_CASES[4:]}]
    (workspace.preprocessed / DATASET / "splits_final.json").write_text(json.dumps(splits))
    for configuration in CONFIGURATIONS:
        autoseg(workspace, "train", DATASET_ID, configuration, "0", "1", *TINY)
    return workspace


@pytest.fixture(scope="module")
def found(trained) -> subprocess.CompletedProcess:
    return autoseg(
        trained,
        "find_best_configuration",
        DATASET_ID,
        "-c",
        *CONFIGURATIONS,
        "-f",
        "0",
        "1",
        "-tr",
        TRAINER,
        "-np",
        "2",
    )


def _copy_results(trained: Workspace, root: Path) -> Workspace:
    """Another workspace on the same raw/preprocessed data with the trained results minus checkpoints and outputs."""
    copy = Workspace.from_root(root)
    for source, target in ((trained.raw, copy.raw), (trained.preprocessed, copy.preprocessed)):
        target.mkdir(parents=True)
        (target / DATASET).symlink_to(source / DATASET)
    shutil.copytree(trained.results, copy.results, ignore=shutil.ignore_patterns(
        "*.pth", "crossval_results_*", "ensembles", "inference_*"))
    return copy


def test_folders_files_table_and_schema(found, trained, tmp_path):
    results = trained.results / DATASET
    information = json.loads((results / "inference_information.json").read_text())
    assert set(information) == {"folds", "dataset_name_or_id", "considered_models", "ensembling_allowed",
                                "all_results", "best_model_or_ensemble"}
    assert information["folds"] == [0, 1] and information["ensembling_allowed"] is True
    assert information["considered_models"] == [{"plans": "nnUNetPlans", "configuration": c, "trainer": TRAINER}
                                                for c in CONFIGURATIONS]
    sources = {MODEL.format(c): results / MODEL.format(c) / "crossval_results_folds_0_1" for c in CONFIGURATIONS}
    sources[ENSEMBLE] = results / "ensembles" / ENSEMBLE
    assert set(information["all_results"]) == set(sources)
    for name, folder in sources.items():
        predictions = sorted(p.name for p in folder.glob("*.nii.gz"))
        assert predictions == [f"{c}.nii.gz" for c in VALIDATED_CASES]
        assert (folder / "plans.json").is_file() and (folder / "dataset.json").is_file()
        summary = json.loads((folder / "summary.json").read_text())
        assert information["all_results"][name] == pytest.approx(summary["foreground_mean"]["Dice"])
        assert sum(case["metrics"]["1"]["n_pred"] + case["metrics"]["2"]["n_pred"]
                   for case in summary["metric_per_case"]) > 0  # the models predict foreground
    best = information["best_model_or_ensemble"]
    assert set(best) == {"result_on_crossval_pre_pp", "result_on_crossval_post_pp", "postprocessing_file",
                         "some_plans_file", "selected_model_or_models"}
    best_name = max(information["all_results"], key=information["all_results"].get)
    assert best["result_on_crossval_pre_pp"] == pytest.approx(information["all_results"][best_name])
    assert best["postprocessing_file"] == str(sources[best_name] / "postprocessing.pkl")
    assert Path(best["postprocessing_file"]).is_file() and Path(best["some_plans_file"]).is_file()
    assert (sources[best_name] / "postprocessed" / "summary.json").is_file()
    selected = [m["configuration"] for m in best["selected_model_or_models"]]
    assert selected == (list(CONFIGURATIONS) if best_name == ENSEMBLE else [best_name.split("__")[-1]])

    out = found.stdout
    table = [line for line in out.splitlines() if line.startswith(("2d", "3d_fullres", "model / ensemble"))]
    assert table[0].split() == ["model", "/", "ensemble", "fg", "mean", "Dice", "Anterior", "(1)", "Posterior", "(2)",
                                "chosen"]
    assert [line.split("  ")[0].strip() for line in table[1:]] == ["2d", "3d_fullres", "2d + 3d_fullres"]
    chosen = [line for line in table if "<== best" in line]
    best_row = "2d + 3d_fullres" if best_name == ENSEMBLE else best_name.split("__")[-1]
    assert len(chosen) == 1 and chosen[0].startswith(best_row + " ")
    assert (results / "inference_instructions.txt").read_text() in out

    # accumulate_crossval_results on its own gives the same cross-validation result
    autoseg(trained, "accumulate_crossval_results", DATASET_ID, "-c", "2d", "-f", "0", "1", "-tr", TRAINER,
            "-o", str(tmp_path / "cv"))
    alone = json.loads((tmp_path / "cv" / "summary.json").read_text())["foreground_mean"]["Dice"]
    assert alone == pytest.approx(information["all_results"][MODEL.format("2d")])


def _run_instructions(workspace: Workspace, text: str, folders: dict[str, Path]) -> None:
    for command in command_lines(text):
        assert command[0] == "autoseg"
        autoseg(workspace, *[str(folders[a]) if a in folders else a for a in command[1:]])


def _assert_matches_inputs(output: Path, inputs: Path) -> None:
    for case in HELDOUT_CASES:
        image = sitk.ReadImage(str(inputs / f"{case}_0000.nii.gz"))
        prediction = sitk.ReadImage(str(output / f"{case}.nii.gz"))
        assert prediction.GetSize() == image.GetSize() and prediction.GetSpacing() == image.GetSpacing()
        assert prediction.GetOrigin() == image.GetOrigin() and prediction.GetDirection() == image.GetDirection()
        assert set(np.unique(sitk.GetArrayFromImage(prediction))) <= {0, 1, 2}


def test_printed_instructions_run_as_printed(found, trained, tmp_path):
    """Run the commands of inference_instructions.txt as printed, placeholders replaced by real folders.

    When a single model won, the ensemble commands the same generator writes for the two models are run too,
    so that predicting with probabilities, ``autoseg ensemble`` and postprocessing an ensemble are covered.
    """
    inputs = tmp_path / "input"
    inputs.mkdir()
    for case in HELDOUT_CASES:
        shutil.copyfile(SOURCE / "imagesTr" / f"{case}_0000.nii.gz", inputs / f"{case}_0000.nii.gz")
    results = trained.results / DATASET
    text = (results / "inference_instructions.txt").read_text()
    folders = {name: tmp_path / "printed" / name.lower() for name in PLACEHOLDERS}
    folders["INPUT_FOLDER"] = inputs
    _run_instructions(trained, text, folders)
    _assert_matches_inputs(folders["OUTPUT_FOLDER_PP"], inputs)
    _assert_matches_inputs(folders["OUTPUT_FOLDER"], inputs)
    assert sorted(p.name for p in inputs.iterdir()) == [f"{c}_0000.nii.gz" for c in HELDOUT_CASES]  # inputs untouched

    information = json.loads((results / "inference_information.json").read_text())
    if len(information["best_model_or_ensemble"]["selected_model_or_models"]) == 1:
        models = [TrainedModel(TRAINER, "nnUNetPlans", c) for c in CONFIGURATIONS]
        best = information["best_model_or_ensemble"]
        ensemble_information = inference_information(
            DATASET, [0, 1], models, True, information["all_results"], models, best["result_on_crossval_pre_pp"],
            best["result_on_crossval_post_pp"], best["postprocessing_file"], best["some_plans_file"])
        text = instructions_text(
            ensemble_information,
            2,
            lambda m: previous_stage_of(results / m.identifier / "plans.json", m.configuration),
            Path(best["some_plans_file"]).parent / "dataset.json",
        )
        folders = {name: tmp_path / "ensemble" / name.lower() for name in PLACEHOLDERS}
        folders["INPUT_FOLDER"] = inputs
    assert "autoseg ensemble -i OUTPUT_FOLDER_MODEL_1 OUTPUT_FOLDER_MODEL_2 -o OUTPUT_FOLDER" in text
    if not folders["OUTPUT_FOLDER_PP"].exists():
        _run_instructions(trained, text, folders)
    for member in ("OUTPUT_FOLDER_MODEL_1", "OUTPUT_FOLDER_MODEL_2"):
        assert sorted(p.name for p in folders[member].glob("*.npz")) == [f"{c}.npz" for c in HELDOUT_CASES]
    _assert_matches_inputs(folders["OUTPUT_FOLDER"], inputs)
    _assert_matches_inputs(folders["OUTPUT_FOLDER_PP"], inputs)


def test_a_model_missing_a_fold_is_skipped(found, trained, tmp_path):
    workspace = _copy_results(trained, tmp_path / "ws")
    results = workspace.results / DATASET
    partial = results / "nnUNetTrainerPartial__nnUNetPlans__3d_fullres"
    shutil.copytree(results / MODEL.format("3d_fullres"), partial, ignore=shutil.ignore_patterns("fold_1"))
    result = autoseg(workspace, "find_best_configuration", DATASET_ID, "-tr", TRAINER, "nnUNetTrainerPartial",
                     "-c", "3d_fullres", "3d_lowres", "-f", "0", "1", "-np", "2", "--disable_ensembling")
    assert (
        "Skipping nnUNetTrainerPartial__nnUNetPlans__3d_fullres: fold(s) 1 have no validation predictions"
        in result.stdout
    )
    assert f"Skipping {MODEL.format('3d_lowres')}: configuration 3d_lowres is not in plans" in result.stdout
    information = json.loads((results / "inference_information.json").read_text())
    assert list(information["all_results"]) == [MODEL.format("3d_fullres")]
    assert not (partial / "crossval_results_folds_0_1").exists()

    failed = autoseg(workspace, "find_best_configuration", DATASET_ID, "-c", *CONFIGURATIONS, "-f", "0", "1", "2",
                     "-tr", TRAINER, check=False)
    assert failed.returncode == 1
    assert failed.stderr.startswith(
        f"autoseg find_best_configuration: error: No trained model of {DATASET} has all of folds"
    )
    assert "Traceback" not in failed.stderr


@pytest.mark.oracle
def test_nnunet_finds_the_same_results(found, trained, tmp_path):
    workspace = _copy_results(trained, tmp_path / "nnunet_ws")
    env = {**nnunet_env(workspace), "nnUNet_def_n_proc": "2"}
    subprocess.run(
        [
            str(Path(sys.executable).parent / "nnUNetv2_find_best_configuration"),
            DATASET_ID,
            "-c",
            *CONFIGURATIONS,
            "-f",
            "0",
            "1",
            "-tr",
            TRAINER,
            "-np",
            "2",
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )
    theirs = json.loads((workspace.results / DATASET / "inference_information.json").read_text())
    ours = json.loads((trained.results / DATASET / "inference_information.json").read_text())
    assert theirs["all_results"] == pytest.approx(ours["all_results"], abs=1e-9)
    assert (
        theirs["best_model_or_ensemble"]["selected_model_or_models"]
        == ours["best_model_or_ensemble"]["selected_model_or_models"]
    )
    assert theirs["best_model_or_ensemble"]["result_on_crossval_post_pp"] == pytest.approx(
        ours["best_model_or_ensemble"]["result_on_crossval_post_pp"], abs=1e-9)
    assert theirs["considered_models"] == ours["considered_models"] and theirs["folds"] == ours["folds"]
