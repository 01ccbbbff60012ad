"""The module widgets as Slicer shows them: ``setup()`` + ``enter()`` on real MRML with Slicer's own
parameter-node GUI connectors (5.10 and main); only the Qt widgets are stood in for (``slicer_env``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import slicer_env

WORKSPACE_KEY = "AutoSeg/WorkspaceFolder"


def _workspace(root: Path, dataset: str, channels: dict[str, str] | None = None) -> Path:
    """A workspace with one raw dataset, its plans, and a trained model (what each module lists)."""
    channels = channels or {"0": "CT"}
    (root / "nnUNet_raw" / dataset).mkdir(parents=True)
    (root / "nnUNet_preprocessed" / dataset).mkdir(parents=True)
    (root / "nnUNet_preprocessed" / dataset / "nnUNetPlans.json").write_text("{}")
    model = root / "nnUNet_results" / dataset / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    (model / "fold_0").mkdir(parents=True)
    (model / "fold_0" / "checkpoint_final.pth").write_bytes(b"not read by the module")
    (model / "dataset.json").write_text(json.dumps({"channel_names": channels, "labels": {"background": 0, "liver": 1},
                                                    "numTraining": 2, "file_ending": ".nii.gz"}))
    (model / "plans.json").write_text(json.dumps({"configurations": {"3d_fullres": {}}}))
    return root


def _listed(widget, module: str) -> list[str]:
    """What the module lists from the workspace: datasets (Planner, Trainer) or models (Inference)."""
    combo = widget.ui.modelComboBox if module == "AutoSegInference" else widget.ui.datasetComboBox
    items = [combo.itemText(i) for i in range(combo.count)]
    return [item for item in items if item != "(new dataset)"]


def _saved_workspace() -> str | None:
    import qt

    return qt.QSettings().value(WORKSPACE_KEY)


@pytest.mark.parametrize("module", slicer_env.MODULES)
def test_opening_a_module_keeps_the_saved_workspace_and_follows_a_new_one(real_slicer, tmp_path, module):
    import qt

    first = _workspace(tmp_path / "first", "Dataset001_First")
    second = _workspace(tmp_path / "second", "Dataset002_Second")
    qt.QSettings().setValue(WORKSPACE_KEY, str(first))
    widget = real_slicer.open_module(module)
    assert _saved_workspace() == str(first)  # opening the module never writes "." over it
    assert widget._parameterNode.workspaceFolder == first
    assert widget.ui.workspacePathLineEdit.currentPath == str(first)
    assert all("First" in item for item in _listed(widget, module)) and _listed(widget, module)

    widget.ui.workspacePathLineEdit.currentPath = str(second)  # the user picks another folder
    assert _saved_workspace() == str(second)
    assert widget._parameterNode.workspaceFolder == second
    assert _listed(widget, module) and all("Second" in item for item in _listed(widget, module))

    widget.exit()  # leaving and re-entering reconnects the parameter node's slots after the module's own
    widget.enter()
    widget.ui.workspacePathLineEdit.currentPath = str(first)
    assert _saved_workspace() == str(first)
    assert _listed(widget, module) and all("First" in item for item in _listed(widget, module))


def test_inference_never_offers_a_labelmap_as_an_input(real_slicer, tmp_path):
    import qt

    qt.QSettings().setValue(WORKSPACE_KEY, str(_workspace(tmp_path / "ws", "Dataset003_Two", {"0": "T1", "1": "T2"})))
    scene = real_slicer.scene
    for name in ("case T1-label", "case T2-label"):  # labelmaps first: the first "scalar volumes" in the scene
        scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", name)
    t1 = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "case T1")
    t2 = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "case T2")
    widget = real_slicer.open_module("AutoSegInference")
    assert widget._parameterNode.inputVolume is t1
    assert len(widget.channelSelectors) == 1
    selector = widget.channelSelectors[0]
    assert selector.currentNode() is t2
    assert [node.GetName() for node in selector.nodes()] == ["case T1", "case T2"]
    from AutoSegSlicerLib import imageVolumeNodes

    assert imageVolumeNodes() == [t1, t2]


def test_inference_engine_choice_reaches_the_prediction_command(real_slicer, tmp_path, monkeypatch):
    """The Engine combo box is bound to the parameter node (default auto: OpenVINO on the CPU, no PyTorch needed)
    and its value is what ``autoseg predict -engine`` gets."""
    import qt

    qt.QSettings().setValue(WORKSPACE_KEY, str(_workspace(tmp_path / "ws", "Dataset005_Engine", {"0": "CT"})))
    real_slicer.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "abdomen")
    widget = real_slicer.open_module("AutoSegInference")
    assert widget._parameterNode.engine == "auto" and widget.ui.engineComboBox.currentText == "auto"
    widget.ui.engineComboBox.currentIndex = 1  # the items: auto, openvino, torch
    assert widget._parameterNode.engine == "openvino"
    started = {}
    monkeypatch.setattr(widget.logic, "startSegmentation", lambda *args, **kwargs: started.update(kwargs))
    widget.onApply()
    assert started["engine"] == "openvino" and started["device"] == "auto"


def test_single_channel_fallback_ignores_labelmaps(real_slicer, tmp_path):
    import qt

    qt.QSettings().setValue(WORKSPACE_KEY, str(_workspace(tmp_path / "ws", "Dataset004_One", {"0": "CT"})))
    real_slicer.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "abdomen-label")
    volume = real_slicer.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "abdomen")  # not named after "CT"
    widget = real_slicer.open_module("AutoSegInference")
    assert widget._parameterNode.inputVolume is volume
    assert widget.ui.applyButton.enabled


def test_planner_export_runs_in_the_background_and_selects_the_new_dataset(real_slicer, tmp_path, monkeypatch):
    """Remove a case, build the label table, export (``autoseg export_segmentations`` through the module's
    ProcessRunner), then export again into the dataset: the replacement is confirmed and passes --overwrite."""
    import qt

    from autoseg.slicer_support.background_process import BackgroundProcess
    from AutoSegSlicerLib.testing import makeAnnotatedCase

    qt.QSettings().setValue(WORKSPACE_KEY, str(tmp_path / "ws"))
    widget = real_slicer.open_module("AutoSegPlanner")
    widget.logic.runner.processFactory = lambda command: BackgroundProcess(  # this Python instead of PythonSlicer
        command.command_line(sys.executable), environment=command.environment)
    for index in range(3):
        volume, segmentation, _labels = makeAnnotatedCase(f"case{index}", ["Liver", "Kidney"], seed=index)
        widget.logic.addSceneCase(f"case{index}", [volume], segmentation)
    widget.refreshCasesTable()
    widget.ui.casesTable.selectRow(1)
    widget.onRemoveCase()
    assert [case.case_id for case in widget.logic.cases] == ["case0", "case2"]
    assert widget.ui.casesTable.rowCount() == 2
    parameters = widget._parameterNode
    parameters.datasetId, parameters.datasetName, parameters.channelNames = 15, "Gui", "MR"
    widget.onUpdateLabelTable()
    assert widget.ui.exportButton.enabled
    widget.onExport()
    assert widget.ui.cancelButton.enabled and not widget.ui.exportButton.enabled and not widget.ui.planButton.enabled
    widget.logic.runner.waitForCompletion(timeoutSeconds=300)
    log = widget.ui.logTextEdit.toPlainText()
    assert widget.ui.datasetComboBox.currentText == "Dataset015_Gui", log
    assert widget.ui.progressBar.value == 100 and widget.ui.statusLabel.text.startswith("Exported 2 case(s) to ")
    assert " export_segmentations -i " in log and "[2/2] case2" in log
    assert widget.ui.planButton.enabled and not widget.ui.cancelButton.enabled and not widget.ui.exportButton.enabled

    widget.onUpdateLabelTable()
    assert sorted(widget._exportPlan.existing_cases) == ["case0", "case2"]
    first = widget.logic.export
    widget.onExport()  # Slicer's confirmation answers "No" under testing: nothing runs
    assert widget.logic.export is first and not widget.logic.runner.isRunning
    questions = []
    monkeypatch.setattr(real_slicer.slicer.util, "confirmYesNoDisplay",
                        lambda text, **kwargs: questions.append(text) or True)
    widget.onExport()
    assert "case0, case2" in questions[0] and "--overwrite" in widget.logic.export.command.args
    widget.logic.runner.waitForCompletion(timeoutSeconds=300)
    assert widget.logic.export.returncode == 0 and widget.ui.datasetComboBox.currentText == "Dataset015_Gui"


@pytest.mark.parametrize("version", slicer_env.VERSIONS)
def test_module_category_uses_slicer_s_translated_segmentation_category(tmp_path, version):
    """A translated Slicer shows one "Segmentation" category: AutoSeg's is translated in Slicer's context."""
    translations = {("qSlicerAbstractCoreModule", "Segmentation"): "Segmentación"}
    environment = slicer_env.install(version, tmp_path / "slicer-temp", translations)
    try:
        for module in slicer_env.MODULES:
            _loaded, parent = environment.create_module(module)
            assert parent.categories == ["Segmentación.AutoSeg"], module
    finally:
        slicer_env.uninstall()


@pytest.mark.parametrize("module", slicer_env.MODULES)
def test_an_unsupported_slicer_gets_an_explanation_not_a_traceback(real_slicer, monkeypatch, module):
    loaded = real_slicer.load_module(module)
    compatibility = sys.modules["AutoSegSlicerLib.compatibility"]
    monkeypatch.setattr(compatibility, "RUNNING_PYTHON", (3, 9))  # Slicer 5.8
    widget = real_slicer.open_module(module)
    labels = [w for w in widget.parent.findChildren() if type(w).__name__ == "QLabel"]
    assert len(labels) == 1 and "Slicer 5.10 or later" in labels[0].text and "Python 3.9" in labels[0].text
    assert not hasattr(widget, "ui")  # the module's panel stops at the explanation
    with pytest.raises(RuntimeError, match="Slicer 5.10 or later"):
        getattr(loaded, f"{module}Logic")()
    monkeypatch.setattr(compatibility, "RUNNING_PYTHON", (3, 10))
    assert compatibility.unsupportedSlicerMessage() is None


def test_modules_load_without_autoseg_core(tmp_path):
    """What an old Slicer runs before the version check must not import AutoSegCore (which needs Python 3.10)."""
    script = f"""
import sys
sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})

class BlockAutoSeg:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "autoseg":
            raise ImportError("AutoSegCore imported at module load: " + name)
        return None

sys.meta_path.insert(0, BlockAutoSeg())
for name in [n for n in sys.modules if n.split(".")[0] == "autoseg"]:
    del sys.modules[name]
import slicer_env
from pathlib import Path
environment = slicer_env.install("5.10", Path({str(tmp_path)!r}))
for module in slicer_env.MODULES:
    environment.create_module(module)
print("loaded", len(slicer_env.MODULES))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "loaded 3" in result.stdout
