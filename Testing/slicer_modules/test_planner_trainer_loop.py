"""The annotation loop in the AutoSeg Planner and Trainer modules, on Slicer's real libraries (``slicer_env``) with
real ``autoseg`` runs on a tiny dataset (5 synthetic 16x32x32 cases, fold 0 trained for one 2-iteration epoch, a
sixth case added afterwards):

- the Planner marks the added case "new" and preprocesses it (incremental, same plans); the Trainer's update learns
  it, shows the Dice before and after, and the case is no longer new;
- "Finish now" ends a real training after its epoch with a final checkpoint and validation, pending runs not started;
- the Planner ranks unlabelled images with the trained model, fills its table, and shows a case's uncertainty map
  over its image on the image's geometry;
- the Trainer's time budget and update options reach the command; a bad budget is refused before anything starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from autoseg.demo.synthetic import synthetic_case
from autoseg.errors import AutoSegError
from autoseg.slicer_support.commands import WorkspaceFolders, plan_and_preprocess_command, train_command

WORKSPACE_KEY = "AutoSeg/WorkspaceFolder"
NAME = "Dataset960_Loop"
MODEL = "nnUNetTrainer__nnUNetPlans__3d_fullres"
TINY_TRAINING = ["--val_iterations", "1", "--seed", "0", "-num_workers", "0"]
SPACING = (1.5, 1.5, 2.0)  # x, y, z


def _environment(command) -> dict[str, str]:
    return {**command.environment, "OMP_NUM_THREADS": "2"}


def _process(command):
    """The module's command, run by this Python; trainings get the tiny validation and no loader workers."""
    from autoseg.slicer_support.background_process import BackgroundProcess

    extra = TINY_TRAINING if command.args[2] == "train" else []
    return BackgroundProcess([*command.command_line(sys.executable), *extra], environment=_environment(command))


def _run(command, *extra: str) -> None:
    result = subprocess.run([*command.command_line(sys.executable), *extra], capture_output=True, text=True,
                            env={**os.environ, **_environment(command)}, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]


def _write_image(array: np.ndarray, path: Path, oblique: bool = False) -> None:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(SPACING)
    if oblique:
        image.SetOrigin((12.5, -30.25, 7.0))
        image.SetDirection((0.0, 1.0, 0.0, -0.8, 0.0, 0.6, 0.6, 0.0, 0.8))
    sitk.WriteImage(image, str(path))


def _add_case(raw: Path, index: int) -> None:
    image, label = synthetic_case(index, shape=(16, 32, 32), spacing=SPACING[::-1])
    _write_image(image, raw / "imagesTr" / f"c{index}_0000.nii.gz")
    _write_image(label, raw / "labelsTr" / f"c{index}.nii.gz")
    (raw / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT"}, "labels": {"background": 0, "organ": 1, "lesion": 2},
        "numTraining": len(list((raw / "labelsTr").iterdir())), "file_ending": ".nii.gz"}))


@pytest.fixture(scope="module")
def loop_workspace(tmp_path_factory) -> WorkspaceFolders:
    """5 cases planned, fold 0 trained for one tiny epoch; then a sixth case added to nnUNet_raw (not preprocessed)."""
    ws = WorkspaceFolders.from_root(tmp_path_factory.mktemp("loop"))
    raw = ws.raw / NAME
    (raw / "imagesTr").mkdir(parents=True)
    (raw / "labelsTr").mkdir()
    for index in range(5):
        _add_case(raw, index)
    _run(plan_and_preprocess_command(ws, NAME, ["3d_fullres"], verify=True, gpu_memory_target_gb=8.0,
                                     num_processes=1))
    _run(train_command(ws, NAME, "3d_fullres", 0, device="cpu", epochs=1, iterations_per_epoch=2), *TINY_TRAINING)
    _add_case(raw, 5)
    return ws


def _open(environment, module: str, ws: WorkspaceFolders):
    import qt

    qt.QSettings().setValue(WORKSPACE_KEY, str(ws.raw.parent))
    widget = environment.open_module(module)
    widget.logic.runner.processFactory = _process
    return widget


def _table(table) -> list[tuple[str, ...]]:
    return [tuple(table.item(r, c).text() for c in range(table.columnCount())) for r in range(table.rowCount())]


def _wait_until(environment, condition, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        environment.process_events(0.1)


def test_a_new_case_is_marked_then_learnt_by_an_update_from_the_trainer(real_slicer_oldest, loop_workspace):
    ws = loop_workspace
    planner = _open(real_slicer_oldest, "AutoSegPlanner", ws)
    planner.ui.datasetComboBox.setCurrentText(NAME)
    assert _table(planner.ui.datasetCasesTable) == [(f"c{i}", "new" if i == 5 else "", "yes") for i in range(6)]
    assert planner.ui.datasetCasesLabel.text == "6 case(s), 1 new since the last training."

    assert planner.ui.preprocessNewCasesButton.enabled
    planner.onPreprocessNewCases()  # with the plans the model was trained with: only the new case
    assert planner.logic.runner.current[0].args[2:] == ["preprocess", "-d", NAME, "-c", "3d_fullres", "-plans_name",
                                                        "nnUNetPlans"]
    planner.logic.runner.waitForCompletion(timeoutSeconds=300)
    log = planner.ui.logTextEdit.toPlainText()
    assert planner.ui.statusLabel.text == "Preprocessing finished.", log[-3000:]
    assert "5 case(s) up to date, 1 new" in log

    trainer = _open(real_slicer_oldest, "AutoSegTrainer", ws)
    parameters = trainer._parameterNode
    parameters.folds, parameters.iterationsPerEpoch, parameters.findBestWhenDone = "0", 2, False
    parameters.updateModel = True
    trainer.onAddToQueue()
    trainer.onStart()
    args = trainer.logic.currentCommand.args
    assert "--update" in args and "--epochs" not in args  # a quarter of the model's epochs: one
    trainer.logic.runner.waitForCompletion(timeoutSeconds=300)
    log = trainer.ui.logTextEdit.toPlainText()
    [(configuration, fold, state, message)] = _table(trainer.ui.queueTable)
    assert (configuration, fold, state) == ("3d_fullres", "0", "done"), log[-3000:]
    assert "updated version 1 \u2192 2, mean validation Dice " in message
    assert "3d_fullres fold 0: updated version 1 \u2192 2" in log
    assert trainer.ui.statusLabel.text.startswith("Finished: mean validation Dice ")
    fold = ws.results / NAME / MODEL / "fold_0"
    assert json.loads((fold / "model_version.json").read_text())["version"] == 2
    assert (fold / "versions" / "v1" / "checkpoint_final.pth").is_file()

    planner.refreshDatasetCases(NAME)  # the updated fold used the new case
    assert [row[1] for row in _table(planner.ui.datasetCasesTable)] == [""] * 6


def test_finish_now_ends_a_real_training_after_its_epoch_with_a_validated_checkpoint(real_slicer_oldest,
                                                                                     loop_workspace):
    from autoseg.network.checkpoint import load_checkpoint

    ws = loop_workspace
    trainer = _open(real_slicer_oldest, "AutoSegTrainer", ws)
    parameters = trainer._parameterNode
    parameters.folds, parameters.epochs, parameters.iterationsPerEpoch = "1 2", 200, 2
    parameters.findBestWhenDone, parameters.device = True, "cpu"
    trainer.onAddToQueue()
    assert not trainer.ui.finishNowButton.enabled
    trainer.onStart()
    assert trainer.ui.finishNowButton.enabled
    _wait_until(real_slicer_oldest, lambda: trainer.logic.monitor.status.state == "running")
    trainer.onFinishNow()
    fold = ws.results / NAME / MODEL / "fold_1"
    assert trainer.logic.finishRequests == [fold / "finish_now"] and (fold / "finish_now").is_file()
    assert trainer.ui.statusLabel.text.startswith("Finishing after the current epoch")
    trainer.logic.runner.waitForCompletion(timeoutSeconds=300)
    rows = _table(trainer.ui.queueTable)
    assert [row[:3] for row in rows] == [("3d_fullres", "1", "done"), ("3d_fullres", "2", "cancelled")], rows
    assert rows[0][3].endswith("(finished early: Finish now)") and rows[1][3] == "not started: Finish now"
    assert 1 <= load_checkpoint(fold / "checkpoint_final.pth")["current_epoch"] < 200
    assert (fold / "validation" / "summary.json").is_file() and not (fold / "finish_now").exists()
    assert not (ws.results / NAME / MODEL / "fold_2").exists()
    assert not (ws.results / NAME / "inference_information.json").exists()  # no find_best after Finish now
    assert not trainer.ui.finishNowButton.enabled


def test_ranking_fills_the_table_and_shows_the_map_on_the_image_geometry(real_slicer_oldest, loop_workspace,
                                                                         tmp_path):
    ws, slicer = loop_workspace, real_slicer_oldest.slicer
    images = tmp_path / "unlabelled"
    images.mkdir()
    _write_image(synthetic_case(50, shape=(16, 32, 32), spacing=SPACING[::-1])[0], images / "u1_0000.nii.gz",
                 oblique=True)
    _write_image(np.random.default_rng(0).normal(0, 300, (14, 30, 33)).astype(np.float32), images / "u2_0000.nii.gz")
    planner = _open(real_slicer_oldest, "AutoSegPlanner", ws)
    assert [m.folder for m in planner.rankingModelList] == [ws.results / NAME / MODEL]
    parameters = planner._parameterNode
    parameters.rankImagesFolder, parameters.rankDevice, parameters.rankTta = images, "cpu", False
    planner.onRankCases()
    assert not planner.ui.rankButton.enabled and planner.ui.cancelButton.enabled
    planner.logic.runner.waitForCompletion(timeoutSeconds=300)
    ranking = planner.logic.ranking
    assert ranking.returncode == 0 and ranking.error == "", planner.ui.logTextEdit.toPlainText()[-3000:]
    assert ranking.outputFolder.parent == ws.raw.parent / "AutoSegRankings" / NAME
    rows = _table(planner.ui.rankingTable)
    assert sorted(row[1] for row in rows) == ["u1", "u2"] and [row[0] for row in rows] == ["1", "2"]
    assert float(rows[0][2]) >= float(rows[1][2]) and all(row[3] for row in rows)
    assert planner.ui.progressBar.value == 100 and planner.ui.showUncertaintyButton.enabled
    assert [r.table_row() for r in planner.logic.loadRanking(ranking.outputFolder)] == rows

    composite = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSliceCompositeNode")  # what a slice view has
    planner.ui.rankingTable.selectRow(rows.index(next(r for r in rows if r[1] == "u1")))
    planner.onShowUncertainty()
    image = slicer.mrmlScene.GetFirstNodeByName("u1")
    uncertainty = slicer.mrmlScene.GetFirstNodeByName("u1 uncertainty")
    assert composite.GetBackgroundVolumeID() == image.GetID()
    assert composite.GetForegroundVolumeID() == uncertainty.GetID() and composite.GetForegroundOpacity() == 0.5
    assert uncertainty.GetDisplayNode().GetColorNode().GetName() in ("Inferno", "ColdToHotRainbow", "Iron")
    assert image.GetImageData().GetDimensions() == uncertainty.GetImageData().GetDimensions() == (32, 32, 16)

    def matrix(node):
        import vtk

        ijk_to_ras = vtk.vtkMatrix4x4()
        node.GetIJKToRASMatrix(ijk_to_ras)
        return slicer.util.arrayFromVTKMatrix(ijk_to_ras)

    np.testing.assert_allclose(matrix(uncertainty), matrix(image), atol=1e-5)
    assert not np.allclose(matrix(image)[:3, :3], np.diag(np.diag(matrix(image)[:3, :3])))  # really oblique
    values = slicer.util.arrayFromVolume(uncertainty)
    assert values.shape == (16, 32, 32) and values.min() >= 0 and values.max() <= 1
    planner.onShowUncertainty()  # again: the loaded volumes are reused
    assert len(slicer.util.getNodes("u1 uncertainty*")) == 1


def test_trainer_options_reach_the_command_and_a_bad_budget_is_refused(real_slicer, tmp_path):
    import qt

    from autoseg.slicer_support.background_process import BackgroundProcess

    workspace = tmp_path / "ws"
    (workspace / "nnUNet_preprocessed" / "Dataset007_Fake").mkdir(parents=True)
    (workspace / "nnUNet_preprocessed" / "Dataset007_Fake" / "nnUNetPlans.json").write_text("{}")
    qt.QSettings().setValue(WORKSPACE_KEY, str(workspace))
    trainer = real_slicer.open_module("AutoSegTrainer")
    commands = []
    trainer.logic.runner.processFactory = lambda command: commands.append(command) or BackgroundProcess(
        [sys.executable, "-c", "import time; time.sleep(0.5)"])
    parameters = trainer._parameterNode
    parameters.folds, parameters.timeBudget, parameters.findBestWhenDone = "0", "soon", False
    trainer.onAddToQueue()
    with pytest.raises(AutoSegError, match="Time budget 'soon': give a duration such as 45m, 1h30m, 600s"):
        trainer.onStart()  # in Slicer: an error box; under testing tryWithErrorDisplay raises
    assert commands == [] and not trainer.logic.runner.isRunning
    trainer.ui.timeBudgetLineEdit.text = "1h30m"  # the widgets are bound to the parameter node
    trainer.ui.updateCheckBox.checked = True
    assert parameters.timeBudget == "1h30m" and parameters.updateModel
    trainer.onStart()
    args = commands[0].args
    assert args[args.index("--time_budget") + 1] == "1h30m" and "--update" in args and "--epochs" not in args
    assert trainer.logic.monitor.time_budget_s == 5400 and trainer.ui.finishNowButton.enabled
    trainer.logic.runner.waitForCompletion(timeoutSeconds=60)
    assert [run.state for run in trainer.logic.queue.runs] == ["done"] and not trainer.ui.finishNowButton.enabled
