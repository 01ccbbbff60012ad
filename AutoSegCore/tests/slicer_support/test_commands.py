"""The subprocess command builders: every command parses with the real ``autoseg`` parser."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from autoseg.cli.main import build_parser
from autoseg.errors import AutoSegError, DatasetError
from autoseg.paths import Workspace
from autoseg.slicer_support.commands import (
    AutoSegCommand,
    WorkspaceFolders,
    apply_postprocessing_command,
    export_inputs,
    export_progress,
    export_segmentations_command,
    find_best_command,
    install_zip_command,
    parse_time_budget,
    plan_and_preprocess_command,
    predict_command,
    preprocess_command,
    rank_cases_command,
    train_command,
)

DATASET = "Dataset005_Prostate"


@pytest.fixture()
def ws(tmp_path) -> WorkspaceFolders:
    workspace = WorkspaceFolders.from_root(tmp_path / "my workspace")
    (workspace.raw / DATASET).mkdir(parents=True)
    return workspace


def _parse(command: AutoSegCommand):
    assert command.args[:2] == ["-m", "autoseg.cli.main"]
    return build_parser().parse_args(command.args[2:])


def test_workspace_folders_match_workspace_and_environment(ws, tmp_path):
    assert isinstance(ws, Workspace)
    assert (ws.raw, ws.preprocessed, ws.results) == tuple(
        getattr(Workspace.from_root(tmp_path / "my workspace"), n) for n in ("raw", "preprocessed", "results"))
    env = ws.environment()
    assert env["nnUNet_raw"] == str(ws.raw) and env["nnUNet_results"] == str(ws.results)
    assert env["nnUNet_preprocessed"] == str(ws.preprocessed) and env["PYTHONUNBUFFERED"] == "1"
    # the child resolves the same workspace from this environment
    assert Workspace.from_environment(env).raw == ws.raw
    assert ws.dataset_name(5) == DATASET


def test_plan_and_preprocess(ws):
    command = plan_and_preprocess_command(
        ws, 5, ["3d_fullres"], verify=True, gpu_memory_target_gb=11.5, num_processes=2
    )
    args = _parse(command)
    assert args.command == "plan_and_preprocess" and args.dataset == ["5"] and args.configurations == ["3d_fullres"]
    assert args.verify_dataset_integrity and args.gpu_memory_target == 11.5
    assert args.num_processes == [2] and args.num_fingerprint_processes == 2
    assert command.progress_file is None and command.environment["nnUNet_raw"] == str(ws.raw)
    assert command.description == f"Planning and preprocessing {DATASET}"
    plain = _parse(plan_and_preprocess_command(ws, 5, verify=False))
    assert not plain.verify_dataset_integrity and plain.configurations == ["2d", "3d_fullres", "3d_lowres"]
    assert plain.gpu_memory_target is None and plain.num_processes is None
    with pytest.raises(AutoSegError, match="GPU memory target must be positive"):
        plan_and_preprocess_command(ws, 5, gpu_memory_target_gb=0)


def test_preprocess_keeps_the_plans(ws):
    command = preprocess_command(ws, 5, ["3d_fullres", "2d"], plans_name="nnUNetResEncUNetMPlans", num_processes=3)
    args = _parse(command)
    assert args.command == "preprocess" and args.dataset == [DATASET] and args.configurations == ["3d_fullres", "2d"]
    assert args.plans_name == "nnUNetResEncUNetMPlans" and args.num_processes == [3]
    assert command.description == f"Preprocessing the new cases of {DATASET} (3d_fullres, 2d)"
    assert _parse(preprocess_command(ws, 5, ["3d_fullres"])).plans_name == "nnUNetPlans"
    with pytest.raises(AutoSegError, match="plan and preprocess the dataset first"):
        preprocess_command(ws, 5, [])


def test_train(ws):
    command = train_command(ws, "5", "3d_fullres", 2, epochs=10, iterations_per_epoch=5, device="cpu")
    args = _parse(command)
    assert (args.command, args.dataset, args.configuration, args.folds) == ("train", DATASET, "3d_fullres", ["2"])
    assert args.trainer == "nnUNetTrainer" and args.plans == "nnUNetPlans" and args.device == "cpu"
    assert args.epochs == 10 and args.iterations_per_epoch == 5 and args.npz and not args.resume and args.no_pbar
    assert command.progress_file == (ws.results / DATASET / "nnUNetTrainer__nnUNetPlans__3d_fullres" / "fold_2"
                                     / "progress.jsonl")
    assert command.description == f"Training 3d_fullres fold 2 of {DATASET}"
    resumed = train_command(ws, DATASET, "2d", "all", trainer="nnUNetTrainer_5epochs", plans="nnUNetResEncUNetMPlans",
                            resume=True, save_npz=False)
    args = _parse(resumed)
    assert args.resume and not args.npz and args.folds == ["all"] and args.epochs is None and args.device == "auto"
    assert args.trainer == "nnUNetTrainer_5epochs" and args.plans == "nnUNetResEncUNetMPlans"
    assert resumed.progress_file.parent.name == "fold_all"
    assert resumed.progress_file.parent.parent.name == "nnUNetTrainer_5epochs__nnUNetResEncUNetMPlans__2d"
    with pytest.raises(DatasetError, match="No dataset with id 7"):
        train_command(ws, 7, "2d", 0)
    with pytest.raises(AutoSegError, match="Invalid fold 'five'"):
        train_command(ws, 5, "2d", "five")


def test_train_to_a_time_budget_and_update(ws):
    command = train_command(ws, 5, "3d_fullres", 0, epochs=1000, iterations_per_epoch=5, time_budget=" 1h30m ",
                            update=True, update_lr=0.002)
    args = _parse(command)
    assert args.time_budget == "1h30m" and args.update and args.update_lr == 0.002
    assert args.epochs is None  # the budget sizes the epochs: --epochs would only be ignored with a warning
    assert command.description == f"Updating 3d_fullres fold 0 of {DATASET} within 1 h 30 min"
    update = _parse(train_command(ws, 5, "3d_fullres", 0, epochs=7, update=True))
    assert update.update and update.epochs == 7 and update.time_budget is None and update.update_lr is None
    plain = _parse(train_command(ws, 5, "3d_fullres", 0, time_budget="  "))
    assert plain.time_budget is None and not plain.update
    with pytest.raises(AutoSegError, match="Time budget 'soon': give a duration such as 45m, 1h30m, 600s"):
        train_command(ws, 5, "3d_fullres", 0, time_budget="soon")
    with pytest.raises(AutoSegError, match="cannot be combined"):
        train_command(ws, 5, "3d_fullres", 0, update=True, resume=True)
    with pytest.raises(AutoSegError, match="only applies when updating"):
        train_command(ws, 5, "3d_fullres", 0, update_lr=0.01)
    with pytest.raises(AutoSegError, match="update learning rate must be positive"):
        train_command(ws, 5, "3d_fullres", 0, update=True, update_lr=0)


@pytest.mark.parametrize("text, seconds", [("45m", 2700), ("1h30m", 5400), ("600s", 600), ("90", 5400),
                                           ("", None), (None, None), ("  ", None)])
def test_parse_time_budget(text, seconds):
    assert parse_time_budget(text) == seconds


@pytest.mark.parametrize("text", ["soon", "0m", "-5m", "5 minutes"])
def test_parse_time_budget_refuses_with_the_accepted_forms(text):
    with pytest.raises(AutoSegError, match="or leave it empty to train for the number of epochs"):
        parse_time_budget(text)


def test_rank_cases(tmp_path):
    model = tmp_path / "results" / DATASET / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    command = rank_cases_command(None, tmp_path / "un labelled", tmp_path / "rankings" / "1", model, [0, "1"],
                                 device="cpu", tta=False)
    args = _parse(command)
    assert args.command == "rank_cases" and args.model_folder == str(model) and args.folds == ["0", "1"]
    assert args.input == str(tmp_path / "un labelled") and args.output == str(tmp_path / "rankings" / "1")
    assert args.device == "cpu" and args.disable_tta and args.save_maps and args.no_pbar
    assert args.checkpoint == "checkpoint_final.pth" and command.progress_file is None
    assert command.description == f"Ranking the cases of {tmp_path / 'un labelled'} with {DATASET} 3d_fullres " \
                                  "(folds 0, 1)"
    plain = _parse(rank_cases_command(None, "in", "out", model, save_maps=False))
    assert plain.folds is None and not plain.disable_tta and not plain.save_maps and plain.device == "auto"


def test_find_best(ws):
    command = find_best_command(ws, 5, ["2d", "3d_fullres"], ["0", 1, "2"])
    args = _parse(command)
    assert args.command == "find_best_configuration" and args.dataset == DATASET
    assert args.configurations == ["2d", "3d_fullres"] and args.folds == [0, 1, 2]
    assert args.trainers == ["nnUNetTrainer"] and args.plans == ["nnUNetPlans"]
    with pytest.raises(AutoSegError, match="not 'all'"):
        find_best_command(ws, 5, ["2d"], ["all"])


def test_predict(tmp_path):
    model = tmp_path / "results" / DATASET / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    progress = tmp_path / "progress.jsonl"
    command = predict_command(None, tmp_path / "in put", tmp_path / "out", model, [0, "1"], device="cuda",
                              step_size=0.75, tta=True, save_probabilities=True, checkpoint="checkpoint_best.pth",
                              progress_file=progress, previous_stage=tmp_path / "lowres", engine="torch")
    args = _parse(command)
    assert args.engine == "torch"
    assert args.command == "predict" and args.model_folder == str(model) and args.dataset is None
    assert args.input == str(tmp_path / "in put") and args.output == str(tmp_path / "out")
    assert args.folds == ["0", "1"] and args.device == "cuda" and args.step_size == 0.75
    assert not args.disable_tta and args.save_probabilities and args.checkpoint == "checkpoint_best.pth"
    assert args.progress_file == str(progress) and args.prev_stage_predictions == str(tmp_path / "lowres")
    assert command.progress_file == progress and "nnUNet_raw" not in command.environment
    assert command.description == f"Predicting with {DATASET} 3d_fullres (folds 0, 1)"
    plain = _parse(predict_command(None, "in", "out", model, None))
    assert plain.folds is None and plain.disable_tta and not plain.save_probabilities and plain.progress_file is None
    assert plain.engine == "auto"  # OpenVINO on the CPU when installed: the Inference module needs no PyTorch
    with pytest.raises(AutoSegError, match="step size"):
        predict_command(None, "in", "out", model, None, step_size=0)


def test_apply_postprocessing_and_install(ws, tmp_path):
    args = _parse(apply_postprocessing_command("in", "out", tmp_path / "postprocessing.pkl", tmp_path / "plans.json",
                                               None))
    assert args.command == "apply_postprocessing" and args.input == "in" and args.output == "out"
    assert args.pp_pkl_file == str(tmp_path / "postprocessing.pkl") and args.plans_json == str(tmp_path / "plans.json")
    assert args.dataset_json is None
    command = install_zip_command(ws, tmp_path / "model.zip")
    args = _parse(command)
    assert args.command == "install_pretrained_model_from_zip" and args.zip == str(tmp_path / "model.zip")
    assert command.environment["nnUNet_results"] == str(ws.results)


def test_export_segmentations(ws, tmp_path):
    command = export_segmentations_command(ws, tmp_path / "segs", 12, "Liver", {"1": "PET", "0": "CT"}, ".nrrd",
                                           overwrite=True, dry_run=True)
    assert command.args[2:] == ["export_segmentations", "-i", str(tmp_path / "segs"), "-d", "12", "-n", "Liver",
                                "-channel_names", "CT", "PET", "-file_ending", ".nrrd", "--overwrite", "--dry_run"]
    args = _parse(command)
    assert args.command == "export_segmentations" and args.inputs == [str(tmp_path / "segs")]
    assert args.dataset == "12" and args.name == "Liver" and args.channel_names == ["CT", "PET"]
    assert args.overwrite and args.dry_run and command.environment["nnUNet_raw"] == str(ws.raw)
    assert command.description == f"Checking the export of the segmentations in {tmp_path / 'segs'} to dataset 12"
    minimal = export_segmentations_command(ws, "segs", DATASET, None, None, None, overwrite=False, dry_run=False)
    assert minimal.args[2:] == ["export_segmentations", "-i", "segs", "-d", DATASET]
    several = export_segmentations_command(ws, [tmp_path / "a", tmp_path / "b" / "x.seg.nrrd"], DATASET)
    args = _parse(several)
    assert args.inputs == [str(tmp_path / "a"), str(tmp_path / "b" / "x.seg.nrrd")] and args.dataset == DATASET
    assert not args.overwrite and not args.dry_run and args.name is None and args.channel_names is None
    assert several.description == f"Exporting the segmentations in 2 folders and files to dataset {DATASET}"
    with pytest.raises(AutoSegError, match="no cases"):
        export_segmentations_command(ws, [], DATASET)


def test_export_inputs_name_whole_folders_and_keep_the_order(tmp_path):
    full, partial = tmp_path / "full", tmp_path / "partial"
    for folder, cases in ((full, "ab"), (partial, "cde")):
        folder.mkdir()
        for case in cases:
            (folder / f"{case}.seg.nrrd").touch()
            (folder / f"{case}.nrrd").touch()
    (full / ".hidden.seg.nrrd").touch()  # never a case (find_cases_in_folder skips it)
    assert export_inputs([full / "a.seg.nrrd", full / "b.seg.nrrd"]) == [full]
    assert export_inputs([full / "b.seg.nrrd", full / "a.seg.nrrd"]) == [full / "b.seg.nrrd", full / "a.seg.nrrd"]
    assert export_inputs([partial / "c.seg.nrrd", partial / "e.seg.nrrd", full / "a.seg.nrrd", full / "b.seg.nrrd",
                          partial / "d.seg.nrrd"]) == [partial / "c.seg.nrrd", partial / "e.seg.nrrd", full,
                                                       partial / "d.seg.nrrd"]
    assert export_inputs([]) == []


def test_export_progress_reads_the_cli_s_case_lines():
    assert export_progress("[2/5] case_007") == (2, 5, "case_007")
    assert export_progress("[10/10] my case\n") == (10, 10, "my case")
    assert export_progress("Exported 2 case(s) to /ws/nnUNet_raw/Dataset012_X.") is None
    assert export_progress("  1  Liver (new): 2/2 case(s)") is None


def _annotated_case(folder: Path, case: str, names: dict[int, str]) -> None:
    import numpy as np
    import SimpleITK as sitk

    from autoseg.imageio.ras_geometry import Geometry
    from autoseg.imageio.segmentation_file import write_segmentation_file

    folder.mkdir(parents=True, exist_ok=True)
    labels = np.zeros((6, 8, 8), np.uint8)
    labels[1:4, 2:6, 2:6] = 1
    labels[4:6, 1:3, 5:8] = 2
    geometry = Geometry(spacing=(0.9, 0.8, 1.5), origin=(4.0, -20.0, 11.0), direction=(1, 0, 0, 0, 1, 0, 0, 0, 1))
    image = sitk.GetImageFromArray((100.0 * labels).astype(np.float32))
    image.SetSpacing(geometry.spacing)
    image.SetOrigin(geometry.origin)
    sitk.WriteImage(image, str(folder / f"{case}.nrrd"))
    write_segmentation_file(folder / f"{case}.seg.nrrd", labels, geometry, names)


def test_exported_cases_are_exactly_the_selected_ones_in_order(ws, tmp_path, monkeypatch):
    """The built command, run by the real CLI: a whole folder, a folder's single case, and a one-case folder."""
    from autoseg.cli.main import main

    _annotated_case(tmp_path / "folder", "b", {1: "Kidney", 2: "Liver"})
    _annotated_case(tmp_path / "folder", "c", {1: "liver", 2: "kidney"})
    _annotated_case(tmp_path / "staging" / "a", "a", {1: "Liver", 2: "Spleen"})
    (tmp_path / "folder" / "broken.seg.nrrd").write_text("not read: the case is not selected")
    (tmp_path / "folder" / "broken.nrrd").write_text("")
    selected = [tmp_path / "staging" / "a" / "a.seg.nrrd", tmp_path / "folder" / "c.seg.nrrd"]
    inputs = export_inputs(selected)
    assert inputs == [tmp_path / "staging" / "a", tmp_path / "folder" / "c.seg.nrrd"]
    command = export_segmentations_command(ws, inputs, 31, "Selected", ["CT"])
    for name, value in command.environment.items():
        monkeypatch.setenv(name, value)
    assert main(command.args[2:]) == 0
    dataset = ws.raw / "Dataset031_Selected"
    assert sorted(p.name for p in (dataset / "labelsTr").iterdir()) == ["a.nii.gz", "c.nii.gz"]
    # labels are numbered in the order the cases were given: a's names first
    assert json.loads((dataset / "dataset.json").read_text())["labels"] == {
        "background": 0, "Liver": 1, "Spleen": 2, "kidney": 3}
    assert main(["export_segmentations", "-i", str(tmp_path / "folder" / "b.nrrd"), "-d", "31"]) == 1
    assert main(["export_segmentations", "-i", str(tmp_path / "folder"), "-d", "31"]) == 1  # broken is in there


def test_command_line_and_display(ws, tmp_path):
    command = train_command(ws, 5, "3d_fullres", 0)
    argv = command.command_line("/opt/Slicer 5.8/bin/PythonSlicer")
    assert argv[0] == "/opt/Slicer 5.8/bin/PythonSlicer" and argv[1:] == command.args
    posix = command.display("/opt/Slicer 5.8/bin/PythonSlicer", windows=False)
    assert shlex.split(posix) == argv
    windows = command.display(r"C:\Program Files\Slicer\bin\PythonSlicer.exe", windows=True)
    assert windows.startswith(r'"C:\Program Files\Slicer\bin\PythonSlicer.exe" -m autoseg.cli.main train')
    assert command.display().startswith("PythonSlicer -m autoseg.cli.main train ")


def test_built_command_runs_as_a_subprocess(ws, tmp_path):
    """A real child process with the command's environment: the parser accepts it and -h exits cleanly."""
    command = predict_command(ws, tmp_path / "in", tmp_path / "out", tmp_path / "model", None)
    result = subprocess.run([*command.command_line(sys.executable), "-h"], env={**command.environment, "PATH": ""},
                            capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[2])
    assert result.returncode == 0, result.stderr
    assert "-progress_file FILE" in result.stdout
