"""AutoSeg Inference's "Correct and add to dataset" (the annotation loop) on Slicer's real libraries.

A model's result (a segmentation node with the model's segment names, on an oblique volume) is corrected by
changing voxels and added with ``AutoSegInferenceLogic.addCorrectedCase``: the real ``autoseg
export_segmentations`` runs in a background process through the module's ``ProcessRunner``, as in Slicer.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

MODEL_LABELS = {"background": 0, "liver": 1, "tumour": 2, "spleen": 3}
MODEL_JSON = {"channel_names": {"0": "CT", "1": "PET"}, "labels": MODEL_LABELS, "numTraining": 20,
              "file_ending": ".nii.gz", "description": "a model installed from a zip"}
DATASET = "Dataset321_Loop"


def _model(workspace: Path, model_json: dict) -> Path:
    """A trained model folder as the module lists it (the checkpoint is never read here)."""
    folder = workspace / "nnUNet_results" / DATASET / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    (folder / "fold_0").mkdir(parents=True)
    (folder / "fold_0" / "checkpoint_final.pth").write_bytes(b"weights")
    (folder / "dataset.json").write_text(json.dumps(model_json))
    return folder


def _recording_process(staged: list):
    """Runs the real command with this Python; records what was staged for it (the ``-i`` folder) first."""
    from autoseg.slicer_support.background_process import BackgroundProcess

    def factory(command):
        folder = Path(command.args[command.args.index("-i") + 1])
        sidecars = {p.name: json.loads(p.read_text()) for p in folder.glob("*.annotated_slices.json")}
        staged.append((sorted(p.name for p in folder.iterdir()), sidecars))
        return BackgroundProcess(command.command_line(sys.executable), environment=command.environment)
    return factory


def _result(slicer, name: str, seed: int):
    """A model's result on an oblique volume: segments named as the model's labels (spleen empty, as predicted)."""
    from AutoSegSlicerLib.testing import makeAnnotatedCase

    volume, segmentation, labels = makeAnnotatedCase(name, ["Tumour", "liver "], seed=seed)  # sphere, box
    segmentation.GetSegmentation().AddEmptySegment("spleen", "spleen")
    return volume, segmentation, np.array([0, 2, 1], np.uint8)[labels]  # values by name


def _correct(slicer, segmentation, volume, values: np.ndarray) -> np.ndarray:
    """What the user does in the Segment Editor: erase part of the tumour, paint more liver elsewhere."""
    corrected = values.copy()
    corrected[:12][corrected[:12] == 2] = 0
    corrected[14:20, 30:36, 2:8] = 1
    for name, value in (("Tumour", 2), ("liver ", 1)):
        segmentId = segmentation.GetSegmentation().GetSegmentIdBySegmentName(name)
        slicer.util.updateSegmentBinaryLabelmapFromArray((corrected == value).astype(np.uint8), segmentation,
                                                         segmentId, volume)
    return corrected


def _lps_geometry(volume):
    """SimpleITK's (spacing, origin, direction) of a volume node's IJK-to-RAS."""
    import vtk

    matrix = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(matrix)
    m = np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])
    spacing = np.linalg.norm(m[:3, :3], axis=0)
    direction = np.diag([-1.0, -1.0, 1.0]) @ (m[:3, :3] / spacing)
    return spacing, np.diag([-1.0, -1.0, 1.0]) @ m[:3, 3], direction.ravel()


def _tree(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))}


def test_corrected_cases_join_the_model_s_dataset_and_never_overwrite(real_slicer_oldest, tmp_path):
    slicer = real_slicer_oldest.slicer
    module = real_slicer_oldest.load_module("AutoSegInference")
    workspace = tmp_path / "ws"
    model = _model(workspace, MODEL_JSON)
    staged, done = [], []
    logic = module.AutoSegInferenceLogic(processFactory=_recording_process(staged))
    volume, segmentation, values = _result(slicer, "patient 7 (CT)", seed=1)
    pet = slicer.modules.volumes.logic().CloneVolume(slicer.mrmlScene, volume, "patient 7 PET")
    slicer.util.updateVolumeFromArray(pet, (slicer.util.arrayFromVolume(volume) * 0.5 + 3).astype(np.float32))
    corrected = _correct(slicer, segmentation, volume, values)
    assert np.count_nonzero(corrected != values) > 200  # the correction changed voxels of both segments
    assert not (workspace / "nnUNet_raw").exists()  # an installed model: no raw dataset yet

    caseId = logic.addCorrectedCase([volume, pet], segmentation, model, workspace, onFinished=done.append)
    assert caseId == "patient_7_CT" and logic.runner.isRunning
    logic.runner.waitForCompletion(timeoutSeconds=120)
    assert [(case.caseId, case.error, case.createdDataset) for case in done] == [(caseId, "", True)]
    assert staged[0] == (["patient_7_CT.seg.nrrd", "patient_7_CT_0000.nrrd", "patient_7_CT_0001.nrrd"], {})
    assert not done[0].stagingFolder.exists()
    dataset = workspace / "nnUNet_raw" / DATASET
    assert json.loads((dataset / "dataset.json").read_text()) == {**MODEL_JSON, "numTraining": 1}
    label = sitk.ReadImage(str(dataset / "labelsTr" / "patient_7_CT.nii.gz"))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(label), corrected)  # the model's values, corrected voxels
    image = sitk.ReadImage(str(dataset / "imagesTr" / "patient_7_CT_0000.nii.gz"))
    spacing, origin, direction = _lps_geometry(volume)  # the label image is on channel 0's (oblique) grid
    for geometry in (label, image):
        np.testing.assert_allclose(geometry.GetSpacing(), spacing, atol=1e-5)
        np.testing.assert_allclose(geometry.GetOrigin(), origin, atol=1e-4)
        np.testing.assert_allclose(geometry.GetDirection(), direction, atol=1e-5)
    second = sitk.GetArrayFromImage(sitk.ReadImage(str(dataset / "imagesTr" / "patient_7_CT_0001.nii.gz")))
    np.testing.assert_allclose(second, slicer.util.arrayFromVolume(pet), atol=1e-3)  # channel order kept

    before = (dataset / "labelsTr" / "patient_7_CT.nii.gz").read_bytes()
    assert logic.addCorrectedCase([volume, pet], segmentation, model, workspace, None, done.append) == "patient_7_CT_2"
    logic.runner.waitForCompletion(timeoutSeconds=120)
    assert done[-1].error == "" and (dataset / "labelsTr" / "patient_7_CT.nii.gz").read_bytes() == before
    assert sorted(os.listdir(dataset / "labelsTr")) == ["patient_7_CT.nii.gz", "patient_7_CT_2.nii.gz"]
    assert json.loads((dataset / "dataset.json").read_text())["numTraining"] == 2

    segmentation.GetSegmentation().AddEmptySegment("Kidney", "Kidney")  # not a label of the model
    segmentation.GetSegmentation().AddEmptySegment("vessels", "vessels")
    files, temporary = _tree(dataset), set(os.listdir(real_slicer_oldest.app.temporaryPath))
    with pytest.raises(Exception, match="'Kidney', 'vessels' match no label of the model") as error:
        logic.addCorrectedCase([volume, pet], segmentation, model, workspace, None, done.append)
    assert "nothing was written" in str(error.value)
    assert _tree(dataset) == files and set(os.listdir(real_slicer_oldest.app.temporaryPath)) == temporary
    assert not logic.runner.isRunning and len(done) == 2


def test_a_partially_corrected_case_is_ignore_outside_its_slices(real_slicer_oldest, tmp_path):
    slicer = real_slicer_oldest.slicer
    module = real_slicer_oldest.load_module("AutoSegInference")
    workspace = tmp_path / "ws"
    model = _model(workspace, {**MODEL_JSON, "channel_names": {"0": "CT"}})
    staged, done = [], []
    logic = module.AutoSegInferenceLogic(processFactory=_recording_process(staged))
    volume, segmentation, values = _result(slicer, "scan", seed=2)
    corrected = _correct(slicer, segmentation, volume, values)

    assert logic.addCorrectedCase([volume], segmentation, model, workspace, "K:5-9,12", done.append) == "scan"
    logic.runner.waitForCompletion(timeoutSeconds=120)
    assert logic.addCorrectedCase([volume], segmentation, model, workspace, "j:auto", done.append) == "scan_2"
    logic.runner.waitForCompletion(timeoutSeconds=120)
    assert [case.error for case in done] == ["", ""]
    assert staged[0][1] == {"scan.annotated_slices.json": {"axis": "K", "slices": ["5-9", 12]}}
    assert staged[1][1] == {"scan_2.annotated_slices.json": {"axis": "J", "slices": "auto"}}
    dataset = workspace / "nnUNet_raw" / DATASET
    assert json.loads((dataset / "dataset.json").read_text())["labels"] == {**MODEL_LABELS, "ignore": 4}
    expected = np.full_like(corrected, 4)  # K = array axis 0
    expected[[5, 6, 7, 8, 9, 12]] = corrected[[5, 6, 7, 8, 9, 12]]
    label = sitk.GetArrayFromImage(sitk.ReadImage(str(dataset / "labelsTr" / "scan.nii.gz")))
    np.testing.assert_array_equal(label, expected)
    rows = np.any(corrected != 0, axis=(0, 2))  # J = array axis 1: the slices holding any segment
    label = sitk.GetArrayFromImage(sitk.ReadImage(str(dataset / "labelsTr" / "scan_2.nii.gz")))
    np.testing.assert_array_equal(label[:, rows], corrected[:, rows])
    assert rows.sum() < rows.size and np.all(label[:, ~rows] == 4)

    with pytest.raises(Exception, match=r"slice\(s\) 24-30 along K are out of range: the volume has 24"):
        logic.addCorrectedCase([volume], segmentation, model, workspace, "K:20-30", done.append)
    assert len(staged) == 2 and sorted(os.listdir(dataset / "labelsTr")) == ["scan.nii.gz", "scan_2.nii.gz"]


class _SegmentEditor:
    """Stand-in for the Segment Editor module (its widget's ``editor``), which needs the Qt application."""

    def __init__(self):
        self.editor = self
        self.nodes = {}

    def widgetRepresentation(self):
        return self

    def self(self):
        return self

    def setSegmentationNode(self, node):
        self.nodes["segmentation"] = node

    def setSourceVolumeNode(self, node):
        self.nodes["source"] = node


def test_the_module_opens_the_segment_editor_then_adds_the_case(real_slicer, tmp_path, monkeypatch):
    import qt

    slicer = real_slicer.slicer
    workspace = tmp_path / "ws"
    _model(workspace, {**MODEL_JSON, "channel_names": {"0": "CT"}})
    qt.QSettings().setValue("AutoSeg/WorkspaceFolder", str(workspace))
    volume, segmentation, values = _result(slicer, "abdomen", seed=3)
    widget = real_slicer.open_module("AutoSegInference")
    widget.logic.runner.processFactory = _recording_process([])
    assert widget._parameterNode.inputVolume is volume and not widget.ui.addCaseButton.enabled
    widget._parameterNode.outputSegmentation = segmentation  # the result of "Segment"
    assert widget.ui.correctButton.enabled and widget.ui.addCaseButton.enabled
    assert not widget.ui.annotatedSlicesFrame.enabled

    editor, selected, errors = _SegmentEditor(), [], []
    monkeypatch.setattr(slicer.modules, "segmenteditor", editor, raising=False)
    monkeypatch.setattr(slicer.util, "selectModule", selected.append)
    monkeypatch.setattr(slicer.util, "errorDisplay", lambda text, **kwargs: errors.append(text))
    widget.ui.correctButton.click()
    assert selected == ["SegmentEditor"] and editor.nodes == {"segmentation": segmentation, "source": volume}
    assert "Add corrected case" in widget.ui.statusLabel.text

    widget.ui.partiallyAnnotatedCheckBox.checked = True
    assert widget._parameterNode.partiallyAnnotated and widget.ui.annotatedSlicesFrame.enabled
    widget.ui.annotatedSlicesLineEdit.text = "2-21"
    widget.ui.addCaseButton.click()
    assert not widget.ui.addCaseButton.enabled and widget.ui.cancelButton.enabled  # exporting in the background
    widget.logic.runner.waitForCompletion(timeoutSeconds=120)
    dataset = workspace / "nnUNet_raw" / DATASET
    assert widget.ui.statusLabel.text == f"Added abdomen to {dataset} (created from the model's dataset.json)"
    assert errors == []
    assert widget.ui.addCaseButton.enabled
    label = sitk.GetArrayFromImage(sitk.ReadImage(str(dataset / "labelsTr" / "abdomen.nii.gz")))
    np.testing.assert_array_equal(label[2:22], values[2:22])
    assert np.all(label[:2] == 4) and np.all(label[22:] == 4)

    segmentation.GetSegmentation().GetNthSegment(0).SetName("lesion")
    monkeypatch.setattr(real_slicer.app, "testingEnabled", lambda: False)  # show errors as a user sees them
    with pytest.raises(Exception, match="'lesion'"):  # tryWithErrorDisplay shows it, then Qt's slot caller logs it
        widget.ui.addCaseButton.click()  # refused before anything is written: one message
    assert len(errors) == 1 and "'lesion'" in errors[0] and not widget.logic.runner.isRunning
    assert os.listdir(dataset / "labelsTr") == ["abdomen.nii.gz"]


def test_a_model_trained_with_ignore_gives_results_that_can_be_added_back(real_slicer_oldest, tmp_path):
    """The next round of the loop: a model of a partially annotated dataset has an ``ignore`` label, which it never
    predicts; its result has no ``ignore`` segment (which the export would refuse), so it goes back as it is."""
    from autoseg.slicer_support.models import ModelInfo

    slicer = real_slicer_oldest.slicer
    module = real_slicer_oldest.load_module("AutoSegInference")
    from AutoSegSlicerLib.annotation import segmentNames

    labels = {**MODEL_LABELS, "ignore": 4}
    folder = _model(tmp_path / "ws", {**MODEL_JSON, "channel_names": {"0": "CT"}, "labels": labels})
    volume, _segmentation, values = _result(slicer, "next", seed=5)
    labelmap = slicer.modules.volumes.logic().CreateAndAddLabelVolume(volume, "prediction")
    slicer.util.updateVolumeFromArray(labelmap, values)
    assert slicer.util.exportNode(labelmap, str(tmp_path / "prediction.nrrd"), {})
    model = ModelInfo(folder=folder, dataset_name=DATASET, trainer="nnUNetTrainer", plans="nnUNetPlans",
                      configuration="3d_fullres", folds=["0"], channel_names={"0": "CT"}, labels=labels,
                      file_ending=".nii.gz", needs_previous_stage=False, postprocessing_file=None)
    result = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "result")
    module.AutoSegInferenceLogic.loadResult(tmp_path / "prediction.nrrd", volume, model, result)
    assert sorted(segmentNames(result)) == ["liver", "spleen", "tumour"]
    logic, done = module.AutoSegInferenceLogic(processFactory=_recording_process([])), []
    assert logic.addCorrectedCase([volume], result, model, tmp_path / "ws", None, done.append) == "next"
    logic.runner.waitForCompletion(timeoutSeconds=120)
    dataset = tmp_path / "ws" / "nnUNet_raw" / DATASET
    assert done[0].error == "" and json.loads((dataset / "dataset.json").read_text())["labels"] == labels
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(dataset / "labelsTr" / "next.nii.gz"))),
                                  values)
