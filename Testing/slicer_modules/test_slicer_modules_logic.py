"""The Slicer modules' Logic classes on Slicer's real libraries (``slicer_env``: slicer-core MRML + Slicer's
own Python library of 5.10 and main): the Planner's export (``autoseg export_segmentations``) and planning
in background processes, the Trainer's queue/curves/find-best flow with real child processes, the Inference
module's model discovery and input checks, and the modules' own self-tests.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import slicer_env


def _python_process(script: str):
    from autoseg.slicer_support.background_process import BackgroundProcess

    def factory(command):
        return BackgroundProcess([sys.executable, "-c", script, str(command.progress_file or "")],
                                 environment=command.environment)
    return factory


def _autoseg_process(command):
    """The real command, run by this Python instead of PythonSlicer."""
    from autoseg.slicer_support.background_process import BackgroundProcess

    return BackgroundProcess(command.command_line(sys.executable), environment=command.environment)


REPLAY_TRAINING = (
    "import sys, time\n"
    "from autoseg.utils.progress_stream import ProgressStream\n"
    "s = ProgressStream(sys.argv[1])\n"
    "s.emit('start', epoch=0, num_epochs=3, iterations_per_epoch=2, val_iterations=1)\n"
    "for e in range(3):\n"
    "    s.emit('epoch', epoch=e, num_epochs=3, train_loss=1.0 - e / 3, val_loss=1.1 - e / 3, pseudo_dice=[0.2 * e],"
    " mean_fg_dice=0.2 * e, ema_fg_dice=0.1 * e, lr=0.01, epoch_time=0.1, eta_seconds=0.1 * (2 - e))\n"
    "    time.sleep(0.1)\n"
    "s.emit('end', mean_validation_dice=0.5)\n"
    "print('trained', flush=True)\n"
)


def _planned_workspace(root: Path) -> Path:
    dataset = root / "nnUNet_preprocessed" / "Dataset007_Fake"
    dataset.mkdir(parents=True)
    (dataset / "nnUNetPlans.json").write_text("{}")
    (dataset / "dataset.json").write_text("{}")
    (dataset / "nnUNetResEncUNetMPlans.json").write_text("{}")  # a second plans file: still one dataset
    (dataset / "splits_final.json").write_text("[]")
    (root / "nnUNet_preprocessed" / "Dataset008_Unplanned").mkdir()
    (root / "nnUNet_preprocessed" / "Dataset008_Unplanned" / "splits_final.json").write_text("[]")
    return root


@pytest.mark.parametrize("module", slicer_env.MODULES)
def test_module_self_test_passes(real_slicer, module, monkeypatch):
    """Each module's ScriptedLoadableModuleTest, as Slicer's self-test runner calls it."""
    monkeypatch.setenv("AUTOSEG_TEST_PYTHON", sys.executable)  # instead of PythonSlicer (AutoSegSlicerLib.testing)
    loaded, _parent = real_slicer.create_module(module)
    getattr(loaded, f"{module}Test")().runTest()


def test_trainer_queue_runs_in_order_and_fills_the_curves(real_slicer, tmp_path):
    trainer_module = real_slicer.load_module("AutoSegTrainer")
    logic = trainer_module.AutoSegTrainerLogic(processFactory=_python_process(REPLAY_TRAINING))
    output, changes = [], []
    logic.onOutput = output.append
    logic.onQueueChanged = lambda: changes.append([r.state for r in logic.queue.runs])
    workspace = _planned_workspace(tmp_path / "ws")
    assert logic.plannedDatasets(workspace) == ["Dataset007_Fake"]
    logic.setDataset(workspace, "Dataset007_Fake")
    logic.addRuns(["3d_fullres"], logic.parseFolds("0, 1"))
    assert changes == [["pending", "pending"]]  # the widget's queue table follows the Logic's queue
    logic.startQueue(device="cpu", epochs=3, iterationsPerEpoch=2, findBestWhenDone=False)
    assert logic.runOptions == trainer_module.TrainingOptions(device="cpu", epochs=3, iterationsPerEpoch=2,
                                                               findBestWhenDone=False)
    logic.runner.waitForCompletion(timeoutSeconds=120)
    assert [r.state for r in logic.queue.runs] == ["done", "done"]
    assert ["running", "pending"] in changes and ["done", "running"] in changes  # one at a time, in order
    assert output.count("trained") == 2 and any(line.startswith("$ ") and " train " in line for line in output)
    column = real_slicer.slicer.util.arrayFromTableColumn
    assert list(column(logic.tableNode, "epoch")) == [0, 1, 2]
    np.testing.assert_allclose(column(logic.tableNode, "pseudo Dice"), [0.0, 0.2, 0.4])
    np.testing.assert_allclose(column(logic.tableNode, "train loss"), [1.0, 2 / 3, 1 / 3])
    chart = logic.chartNode
    assert chart.GetNumberOfPlotSeriesNodes() == 4
    assert chart.GetNthPlotSeriesNode(0).GetTableNodeID() == logic.tableNode.GetID()
    assert logic.monitor.status.state == "finished"
    logic.clearFinishedRuns()
    assert logic.queue.runs == [] and changes[-1] == []
    with pytest.raises(ValueError, match="Folds"):
        logic.parseFolds("zero")
    with pytest.raises(ValueError, match="planned dataset"):
        logic.setDataset(workspace, "")


def test_trainer_failure_stops_the_queue_and_cancel_marks_runs(real_slicer, tmp_path):
    trainer_module = real_slicer.load_module("AutoSegTrainer")
    workspace = _planned_workspace(tmp_path / "ws")
    failing = trainer_module.AutoSegTrainerLogic(processFactory=_python_process("import sys; sys.exit(3)"))
    failing.setDataset(workspace, "Dataset007_Fake")
    failing.addRuns(["3d_fullres"], ["0", "1"])
    failing.startQueue(device="cpu")
    failing.runner.waitForCompletion(timeoutSeconds=60)
    assert [r.state for r in failing.queue.runs] == ["failed", "pending"]
    assert "exit code 3" in failing.queue.runs[0].message

    sleeping = trainer_module.AutoSegTrainerLogic(processFactory=_python_process("import time; time.sleep(60)"))
    sleeping.setDataset(workspace, "Dataset007_Fake")
    sleeping.addRuns(["2d"], ["0", "1"])
    sleeping.startQueue(device="cpu")
    real_slicer.app.processEvents()
    sleeping.cancel()
    sleeping.runner.waitForCompletion(timeoutSeconds=30)
    assert [r.state for r in sleeping.queue.runs] == ["cancelled", "cancelled"]


def test_trainer_runs_find_best_when_the_queue_is_done(real_slicer_oldest, tmp_path):
    trainer_module = real_slicer_oldest.load_module("AutoSegTrainer")
    workspace = _planned_workspace(tmp_path / "ws")
    results = workspace / "nnUNet_results" / "Dataset007_Fake"
    information = {
        "folds": [0],
        "dataset_name_or_id": "Dataset007_Fake",
        "considered_models": [],
        "ensembling_allowed": True,
        "all_results": {"nnUNetTrainer__nnUNetPlans__2d": 0.71, "nnUNetTrainer__nnUNetPlans__3d_fullres": 0.83},
        "best_model_or_ensemble": {
            "result_on_crossval_pre_pp": 0.83,
            "result_on_crossval_post_pp": 0.84,
            "postprocessing_file": "pp.pkl",
            "some_plans_file": "plans.json",
            "selected_model_or_models": [
                {"configuration": "3d_fullres", "trainer": "nnUNetTrainer", "plans_identifier": "nnUNetPlans"}
            ],
        },
    }
    # the process replays training, or (for find_best_configuration) writes what it writes
    script = REPLAY_TRAINING.replace(
        "s = ProgressStream(sys.argv[1])",
        "import json, os\n"
        "if not sys.argv[1]:\n"
        f"    os.makedirs({str(results)!r}, exist_ok=True)\n"
        f"    open({str(results / 'inference_information.json')!r}, 'w').write({json.dumps(information)!r})\n"
        "    sys.exit(0)\n"
        "s = ProgressStream(sys.argv[1])")
    logic = trainer_module.AutoSegTrainerLogic(processFactory=_python_process(script))
    shown = []
    logic.onFindBestDone = lambda columns, rows, summary: shown.append((columns, rows, summary))
    logic.setDataset(workspace, "7")
    logic.addRuns(["3d_fullres"], ["0"])
    logic.startQueue(device="cpu", findBestWhenDone=True)
    logic.runner.waitForCompletion(timeoutSeconds=120)
    assert len(shown) == 1
    columns, rows, summary = shown[0]
    assert rows[0] == ("nnUNetTrainer__nnUNetPlans__3d_fullres", "0.8300")
    assert "3d_fullres" in summary and "0.8400" in summary


def test_inference_logic_finds_models_and_checks_inputs(real_slicer, tmp_path):
    from autoseg.slicer_support.models import ModelInfo

    inference_module = real_slicer.load_module("AutoSegInference")
    logic = inference_module.AutoSegInferenceLogic()
    model_folder = tmp_path / "ws" / "nnUNet_results" / "Dataset009_Spleen" / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    (model_folder / "fold_0").mkdir(parents=True)
    (model_folder / "fold_0" / "checkpoint_final.pth").write_bytes(b"not read here")
    (model_folder / "dataset.json").write_text(
        json.dumps(
            {
                "channel_names": {"0": "CT"},
                "labels": {"background": 0, "spleen": 1},
                "numTraining": 1,
                "file_ending": ".nii.gz",
            }
        )
    )
    (model_folder / "plans.json").write_text(json.dumps({"configurations": {"3d_fullres": {}}}))
    models = logic.findModels(tmp_path / "ws", extraFolders=[str(model_folder)])
    assert [m.folder for m in models] == [model_folder]  # found twice, listed once
    assert "spleen" in logic.describeModel(models[0]) and "CT" in logic.describeModel(models[0])

    def model(**changes):
        fields = dict(
            folder=model_folder,
            dataset_name="Dataset009_Spleen",
            trainer="nnUNetTrainer",
            plans="nnUNetPlans",
            configuration="3d_fullres",
            folds=["0"],
            channel_names={"0": "CT"},
            labels={"background": 0, "spleen": 1},
            file_ending=".nii.gz",
            needs_previous_stage=False,
            postprocessing_file=None,
        )
        return ModelInfo(**{**fields, **changes})

    volume = real_slicer.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "CT")
    with pytest.raises(ValueError, match="cascade"):
        logic.startSegmentation(model(needs_previous_stage=True), [volume], None)
    with pytest.raises(ValueError, match="2D model"):
        logic.startSegmentation(model(file_ending=".png"), [volume], None)
    with pytest.raises(ValueError, match="2 input volume"):
        logic.startSegmentation(model(channel_names={"0": "T1", "1": "T2"}), [volume], None)
    labelmap = real_slicer.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "CT-label")
    with pytest.raises(ValueError, match="labelmap volume"):
        logic.startSegmentation(model(), [labelmap], real_slicer.scene.AddNewNodeByClass("vtkMRMLSegmentationNode"))
    assert not logic.runner.isRunning


def _write_case(folder: Path, case: str, names: list[str], seed: int) -> np.ndarray:
    from autoseg.imageio.ras_geometry import Geometry
    from autoseg.imageio.segmentation_file import write_segmentation_file

    rng = np.random.default_rng(seed)
    shape = (20, 28, 28)
    labels = np.zeros(shape, np.uint8)
    labels[5:12, 6:16, 6:16] = 1
    labels[12:17, 16:24, 14:24] = 2
    image = sitk.GetImageFromArray((rng.normal(100, 10, shape) + 150 * labels).astype(np.float32))
    geometry = Geometry(spacing=(0.9, 0.8, 1.5), origin=(4.0, -20.0, 11.0),
                        direction=(0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
    image.SetSpacing(geometry.spacing)
    image.SetOrigin(geometry.origin)
    image.SetDirection(geometry.direction)
    sitk.WriteImage(image, str(folder / f"{case}.nrrd"))
    write_segmentation_file(folder / f"{case}.seg.nrrd", labels, geometry, {1: names[0], 2: names[1]})
    return labels


def test_planner_exports_a_folder_and_plans_in_the_background(real_slicer_oldest, tmp_path):
    planner_module = real_slicer_oldest.load_module("AutoSegPlanner")
    source = tmp_path / "annotated"
    source.mkdir()
    painted = {f"case{i}": _write_case(source, f"case{i}", names, i)
               for i, names in enumerate((["Spleen", "Liver"], ["spleen ", "LIVER"], ["Spleen", "Liver"]))}
    logic = planner_module.AutoSegPlannerLogic(processFactory=_autoseg_process)
    found = logic.addFolderCases(source)
    assert sorted(c.case_id for c in found) == sorted(painted)
    with pytest.raises(ValueError, match="already in the list"):
        logic.addFolderCases(source)
    workspace = tmp_path / "ws"
    plan = logic.planExport(workspace, "12", "Organs", {"0": "CT"}, ".nii.gz")
    assert plan.problems == []
    assert [row[:3] for row in logic.labelTableRows(plan)] == [("1", "Spleen (new)", "3"), ("2", "Liver (new)", "3")]
    export = logic.startExport(plan, overwrite=False)
    assert export.command.args[2:5] == ["export_segmentations", "-i", str(source)]  # the whole folder: one path
    logic.runner.waitForCompletion(timeoutSeconds=300)
    assert (export.returncode, export.error, export.done) == (0, "", 3)
    dataset = workspace / "nnUNet_raw" / "Dataset012_Organs"
    for case, labels in painted.items():
        np.testing.assert_array_equal(
            sitk.GetArrayFromImage(sitk.ReadImage(str(dataset / "labelsTr" / f"{case}.nii.gz"))), labels
        )
    assert logic.existingDatasets(workspace) == ["Dataset012_Organs"]
    assert logic.datasetJson(workspace, "Dataset012_Organs")["labels"] == {"background": 0, "Spleen": 1, "Liver": 2}

    lines, planned = [], []
    logic.onOutput = lines.append
    logic.onExportDone = lambda export: pytest.fail("planning is not an export")
    logic.onPlanningDone = lambda command, returncode: planned.append(returncode)
    logic.startPlanning(workspace, "Dataset012_Organs", verify=True, gpuMemoryTargetGb=2.0)
    logic.runner.waitForCompletion(timeoutSeconds=600)
    assert planned == [0], "\n".join(lines[-30:])
    columns, rows = logic.plansSummary(workspace, "12")
    assert "3d_fullres" in [row[0] for row in rows], "\n".join(lines[-30:])
    assert columns[0] == "configuration"
    assert logic.nextCaseId("case_009") == "case_010" and logic.nextCaseId("liver") == "liver_2"


def test_planner_exports_scene_cases_in_a_background_process_and_can_cancel(real_slicer_oldest, tmp_path):
    """Scene cases -> staging folder -> ``autoseg export_segmentations`` run by the ProcessRunner, as the module
    does: progress per case, exactly the listed cases (a removed one is not exported), dataset.json; cancelled."""
    from AutoSegSlicerLib.testing import makeAnnotatedCase

    planner_module = real_slicer_oldest.load_module("AutoSegPlanner")
    logic = planner_module.AutoSegPlannerLogic(processFactory=_autoseg_process)
    output, progress, done = [], [], []
    logic.onOutput = output.append
    logic.onExportProgress = lambda export: progress.append((export.done, export.total, export.lastCase))
    logic.onExportDone = done.append
    painted = {}
    for index, names in enumerate((["Liver", "Kidney"], ["kidney", "LIVER"], [" liver", "KIDNEY "])):
        volume, segmentation, painted[f"case{index}"] = makeAnnotatedCase(f"case{index}", names, seed=index)
        logic.addSceneCase(f"case{index}", [volume], segmentation)
    with pytest.raises(ValueError, match="already in the list"):
        logic.addSceneCase("CASE1", [volume], segmentation)  # one staging folder per case, also where case is ignored
    staged = logic.cases[1].segmentation.parent
    logic.removeCases([1])
    assert [case.case_id for case in logic.cases] == ["case0", "case2"] and not staged.exists()

    workspace = tmp_path / "ws"
    plan = logic.planExport(workspace, "13", "Scene", {"0": "MR"}, ".nii.gz")
    assert plan.problems == []
    export = logic.startExport(plan)
    assert logic.runner.isRunning and logic.export is export
    with pytest.raises(RuntimeError, match="running"):
        logic.startExport(plan)
    logic.runner.waitForCompletion(timeoutSeconds=300)
    assert done == [export] and (export.returncode, export.error, export.cancelled) == (0, "", False), output[-20:]
    assert progress == [(1, 2, "case0"), (2, 2, "case2")]
    inputs = export.command.args[export.command.args.index("-i") + 1:export.command.args.index("-d")]
    assert inputs == [str(logic.stagingFolder / "case0"), str(logic.stagingFolder / "case2")]
    assert any(line.startswith("$ ") and " export_segmentations " in line for line in output)
    dataset = workspace / "nnUNet_raw" / "Dataset013_Scene"
    assert json.loads((dataset / "dataset.json").read_text()) == {
        "channel_names": {"0": "MR"}, "labels": {"background": 0, "Liver": 1, "Kidney": 2}, "numTraining": 2,
        "file_ending": ".nii.gz"}
    assert sorted(p.name for p in (dataset / "imagesTr").iterdir()) == ["case0_0000.nii.gz", "case2_0000.nii.gz"]
    for case in ("case0", "case2"):
        label = sitk.GetArrayFromImage(sitk.ReadImage(str(dataset / "labelsTr" / f"{case}.nii.gz")))
        np.testing.assert_array_equal(label, painted[case])

    # cancelled at once, before the child writes anything: no dataset (the CLI writes dataset.json last and
    # does not take back cases written before a cancel; the module then offers to overwrite them)
    cancelled = logic.startExport(logic.planExport(workspace, "14", "Cancelled", {"0": "MR"}, ".nii.gz"))
    logic.runner.cancel()
    logic.runner.waitForCompletion(timeoutSeconds=60)
    assert done[-1] is cancelled and cancelled.cancelled and cancelled.error == "cancelled"
    assert not (workspace / "nnUNet_raw" / "Dataset014_Cancelled").exists() and not logic.runner.isRunning


def test_end_to_end_self_test_export_plan_train_infer(real_slicer_oldest, monkeypatch):
    """``Testing/Python/AutoSegEndToEndTest.py`` (ctest's whole-extension test): two annotated oblique cases made
    in the scene -> export -> plan -> train one tiny epoch -> infer -> named segments on the volume's geometry."""
    import unittest

    for module in slicer_env.MODULES:  # importable by name, as in Slicer's module path
        real_slicer_oldest.load_module(module)
    monkeypatch.setenv("AUTOSEG_TEST_PYTHON", sys.executable)
    test_module = real_slicer_oldest.load_module("AutoSegEndToEndTest")
    result = unittest.TextTestRunner(verbosity=0).run(
        unittest.defaultTestLoader.loadTestsFromTestCase(test_module.AutoSegEndToEndTest))
    assert result.testsRun == 1 and result.wasSuccessful(), result.errors + result.failures
