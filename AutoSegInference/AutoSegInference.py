"""AutoSegInference: run an AutoSeg or nnU-Net v2 model on loaded volumes into a segmentation node.

Models are found in the workspace's nnUNet_results, in any results folder the user adds, or installed
from a zip. The prediction is ``autoseg predict -m MODEL`` in a background ``PythonSlicer`` process
(then ``autoseg apply_postprocessing`` when chosen); the result becomes a segmentation node on the input
volume's geometry with one named, coloured segment per label, to correct and add to the model's dataset (annotation.py).
"""

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import qt
import slicer
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from AutoSegSlicerLib import (
    CorrectedCaseExport,
    CorrectedCaseWidgetMixin,
    ParameterNodeWidgetMixin,
    ProcessRunner,
    imageVolumeNodes,
    requireSupportedSlicer,
    setUpDependencyPanel,
    showUnsupportedSlicer,
    writeCaseVolumes,
)

if TYPE_CHECKING:
    from autoseg.slicer_support.models import ModelInfo

MODEL_FOLDERS_KEY = "AutoSeg/ExtraModelFolders"
VOLUME_ENDINGS = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


class AutoSegInference(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("AutoSeg Inference")
        # one "Segmentation" category in a translated Slicer: translated in the context Slicer uses for it
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation") + ".AutoSeg"]
        self.parent.dependencies = []
        self.parent.contributors = ["AutoSeg developers"]
        self.parent.helpText = _(
            "Segment loaded volumes with a trained AutoSeg or nnU-Net v2 model (a results folder or an installed zip). "
            "Map each input channel to a volume, choose device, folds, test-time augmentation and step size, and get a "
            "segmentation with one named, coloured segment per label on the input volume's geometry.")
        self.parent.acknowledgementText = _(
            "AutoSeg is compatible with nnU-Net v2 (Isensee et al., Nature Methods 2021)."
        )


@parameterNodeWrapper
class AutoSegInferenceParameterNode:
    workspaceFolder: Path
    inputVolume: vtkMRMLScalarVolumeNode
    outputSegmentation: vtkMRMLSegmentationNode
    device: Annotated[str, Choice(["auto", "cuda", "cpu", "mps"])] = "auto"
    engine: Annotated[str, Choice(["auto", "openvino", "torch"])] = "auto"
    folds: str = ""
    testTimeAugmentation: bool = False
    stepSize: Annotated[float, WithinRange(0.1, 1.0)] = 0.5
    postprocessing: bool = True
    probabilities: bool = False
    partiallyAnnotated: bool = False
    annotatedSlices: str = "auto"
    annotatedAxis: Annotated[str, Choice(["I", "J", "K"])] = "K"


class AutoSegInferenceWidget(CorrectedCaseWidgetMixin, ParameterNodeWidgetMixin, ScriptedLoadableModuleWidget,
                             VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self.models = []
        self.channelSelectors = []

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        if showUnsupportedSlicer(self.layout):
            return
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/AutoSegInference.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = AutoSegInferenceLogic()
        self.logic.onOutput = self.ui.logTextEdit.appendPlainText
        self.logic.onProgress = self.onProgress
        self.logic.onDone = self.onDone
        self.logic.onInstalled = self.refreshModels

        self.observeSceneClose()
        self.ui.modelComboBox.currentIndexChanged.connect(self.onModelChanged)
        self.ui.refreshModelsButton.clicked.connect(self.refreshModels)
        self.ui.addModelFolderButton.clicked.connect(self.onAddModelFolder)
        self.ui.installZipButton.clicked.connect(self.onInstallZip)
        self.ui.applyButton.clicked.connect(self.onApply)
        self.ui.cancelButton.clicked.connect(self.logic.runner.cancel)
        self.ui.correctButton.clicked.connect(self.onCorrect)
        self.ui.addCaseButton.clicked.connect(self.onAddCase)
        self.initializeParameterNode()
        self.followWorkspaceFolder(self.refreshModels)
        self.refreshModels()
        setUpDependencyPanel(self.ui.dependenciesFrame, self.ui.dependenciesLabel, self.ui.installDependenciesButton,
                             "AutoSeg Inference", purpose="inference")

    def onParameterNodeReady(self):
        if not self._parameterNode.inputVolume:
            images = imageVolumeNodes()
            self._parameterNode.inputVolume = images[0] if images else None

    def updateButtons(self, caller=None, event=None):
        running = self.logic.runner.isRunning
        ready = self.currentModel() is not None and self._parameterNode and self._parameterNode.inputVolume
        self.ui.applyButton.enabled = bool(ready) and not running
        self.ui.cancelButton.enabled = running
        self.ui.correctButton.enabled = self.ui.addCaseButton.enabled = bool(
            ready and self._parameterNode.outputSegmentation) and not running
        self.ui.annotatedSlicesFrame.enabled = bool(self._parameterNode and self._parameterNode.partiallyAnnotated)

    # Models ---------------------------------------------------------------------------------------

    def currentModel(self):
        index = self.ui.modelComboBox.currentIndex
        return self.models[index] if 0 <= index < len(self.models) else None

    def refreshModels(self):
        with slicer.util.tryWithErrorDisplay(_("Could not list the models."), waitCursor=True):
            self.models = self.logic.findModels(self._parameterNode.workspaceFolder, self.extraModelFolders())
        self.ui.modelComboBox.clear()
        for model in self.models:
            self.ui.modelComboBox.addItem(model.title)
        self.onModelChanged()

    def extraModelFolders(self):
        value = qt.QSettings().value(MODEL_FOLDERS_KEY) or []
        return [value] if isinstance(value, str) else list(value)

    def onAddModelFolder(self):
        folder = qt.QFileDialog.getExistingDirectory(None, _("An nnU-Net v2 / AutoSeg results folder"))
        if folder:
            qt.QSettings().setValue(MODEL_FOLDERS_KEY, sorted(set(self.extraModelFolders() + [folder])))
            self.refreshModels()

    def onInstallZip(self):
        path = qt.QFileDialog.getOpenFileName(None, _("Model zip"), "", "Zip (*.zip)")
        if not path:
            return
        with slicer.util.tryWithErrorDisplay(_("Could not install the model."), waitCursor=True):
            self.logic.installZip(self._parameterNode.workspaceFolder, path)
            self.ui.statusLabel.text = _("Installing {zip}...").format(zip=Path(path).name)

    def onModelChanged(self, index=None):
        model = self.currentModel()
        layout = self.ui.channelsFrame.layout()
        for selector in self.channelSelectors:
            layout.removeRow(selector)
        self.channelSelectors = []
        self.ui.modelInfoLabel.text = self.logic.describeModel(model) if model else _(
            "No model found: train one, add a results folder or install a zip.")
        if model:
            volumes = imageVolumeNodes()
            order = self.logic.matchChannels(model, volumes)
            for channel, name in sorted(model.channel_names.items(), key=lambda kv: int(kv[0])):
                if channel == "0":
                    continue  # channel 0 is the parameter node's inputVolume selector
                selector = slicer.qMRMLNodeComboBox()
                selector.nodeTypes = ["vtkMRMLScalarVolumeNode"]
                selector.hideChildNodeTypes = ["vtkMRMLLabelMapVolumeNode"]
                selector.noneEnabled = True
                selector.addEnabled = False
                selector.setMRMLScene(slicer.mrmlScene)
                index = order[int(channel)]
                selector.setCurrentNode(volumes[index] if index is not None else None)
                layout.addRow(_("Channel {channel} ({name}):").format(channel=channel, name=name), selector)
                self.channelSelectors.append(selector)
            if order and order[0] is not None:
                self._parameterNode.inputVolume = volumes[order[0]]
            channel0 = model.channel_names.get("0", "")
            self.ui.inputVolumeLabel.text = _("Channel 0 ({name}):").format(name=channel0)
            self._parameterNode.postprocessing = model.postprocessing_file is not None
        self.ui.postprocessingCheckBox.enabled = bool(model and model.postprocessing_file)
        self.updateButtons()

    # Run ------------------------------------------------------------------------------------------

    def onApply(self):
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Segmentation could not start."), waitCursor=True):
            volumes = self.inputVolumes()
            if not p.outputSegmentation:
                p.outputSegmentation = slicer.mrmlScene.AddNewNodeByClass(
                    "vtkMRMLSegmentationNode", f"{p.inputVolume.GetName()} segmentation")
            options = dict(device=p.device, engine=p.engine, folds=p.folds.replace(",", " ").split() or None,
                           tta=p.testTimeAugmentation, stepSize=p.stepSize, postprocessing=p.postprocessing,
                           probabilities=p.probabilities)
            self.logic.startSegmentation(self.currentModel(), volumes, p.outputSegmentation, **options)
            self.ui.progressBar.setValue(0)
        self.updateButtons()

    def inputVolumes(self):
        return [self._parameterNode.inputVolume] + [s.currentNode() for s in self.channelSelectors]

    def onProgress(self, status):
        self.ui.progressBar.setValue(int(round(100 * (status.fraction or 0))))
        self.ui.statusLabel.text = status.message

    def onDone(self, segmentationNode, error):
        self.updateButtons()
        if error:
            self.ui.statusLabel.text = error
            slicer.util.errorDisplay(error)
            return
        self.ui.progressBar.setValue(100)
        self.ui.statusLabel.text = _("Done: {count} segments in {node}").format(
            count=segmentationNode.GetSegmentation().GetNumberOfSegments(), node=segmentationNode.GetName())


@dataclass
class SegmentationJob:
    """A prediction running in the background: the model, its temporary folder and the nodes it fills."""

    model: "ModelInfo"
    folder: Path  # temporary: input/, output/, postprocessed/, progress.jsonl; deleted when the job ends
    volume: vtkMRMLScalarVolumeNode  # channel 0: the result is loaded on its geometry
    segmentation: vtkMRMLSegmentationNode
    probabilities: bool
    output: Path  # the folder with the final label file (prediction or postprocessed)

    @property
    def resultFile(self) -> Path:
        return self.output / f"case{self.model.file_ending}"

    @property
    def probabilitiesFile(self) -> Path:
        return self.folder / "output" / "case.npz"


class AutoSegInferenceLogic(ScriptedLoadableModuleLogic):
    """Runs a model on volume nodes in the background; usable from the Python console without the GUI."""

    def __init__(self, processFactory=None):
        requireSupportedSlicer()
        ScriptedLoadableModuleLogic.__init__(self)
        self.runner = ProcessRunner(onOutput=self._output, onProgress=lambda s: self.onProgress(s),
                                    onFinished=self._finished, processFactory=processFactory)
        self.corrections = CorrectedCaseExport(self.runner)  # "Add corrected case" exports
        self.onOutput = print
        self.onProgress = lambda status: None
        self.onDone = lambda segmentationNode, error: None
        self.onInstalled = lambda: None
        self.job = None

    def getParameterNode(self):
        return AutoSegInferenceParameterNode(super().getParameterNode())

    @staticmethod
    def findModels(workspaceFolder, extraFolders=()):
        from autoseg.slicer_support.commands import WorkspaceFolders
        from autoseg.slicer_support.models import find_models

        folders = [WorkspaceFolders.from_root(workspaceFolder).results, *map(Path, extraFolders)]
        models = []
        for folder in folders:
            if folder.is_dir():
                models += [m for m in find_models(folder) if m.folder not in {n.folder for n in models}]
        return models

    @staticmethod
    def describeModel(model):
        labels = ", ".join(name for name in model.labels if name != "background")
        channels = ", ".join(model.channel_names[k] for k in sorted(model.channel_names, key=int))
        text = _("Channels: {channels}. Labels: {labels}. Folds: {folds}.").format(
            channels=channels, labels=labels, folds=" ".join(model.folds))
        if model.needs_previous_stage:
            text += _(
                " This cascade model needs 3d_lowres predictions: run the 3d_lowres model of this dataset instead."
            )
        return text

    @staticmethod
    def matchChannels(model, volumeNodes):
        from autoseg.slicer_support.models import match_channels

        return match_channels(model.channel_names, [v.GetName() for v in volumeNodes])

    def installZip(self, workspaceFolder, zipPath):
        from autoseg.slicer_support.commands import WorkspaceFolders, install_zip_command

        self.job = None
        self.runner.start(install_zip_command(WorkspaceFolders.from_root(workspaceFolder), Path(zipPath)))

    def startSegmentation(self, model, volumeNodes, segmentationNode, device="auto", folds=None, tta=False,
                          stepSize=0.5, postprocessing=True, probabilities=False, engine="auto"):
        """Write the volumes, predict in the background, then fill ``segmentationNode`` (see ``onDone``)."""
        from autoseg.slicer_support.commands import apply_postprocessing_command, predict_command
        from autoseg.slicer_support.prediction_monitor import PredictionMonitor

        if model.needs_previous_stage:
            raise ValueError(_("{model} is a cascade stage: run the dataset's 3d_lowres model, or predict the cascade "
                               "from the command line with -prev_stage_predictions.").format(model=model.title))
        if model.file_ending not in VOLUME_ENDINGS:
            raise ValueError(_("This model reads {ending} files (a 2D model); the Inference module runs 3D models "
                               "only. Use `autoseg predict` for 2D images.").format(ending=model.file_ending))
        if len(volumeNodes) != len(model.channel_names) or not all(volumeNodes):
            raise ValueError(_("The model needs {count} input volume(s): {names}.").format(
                count=len(model.channel_names), names=", ".join(model.channel_names.values())))
        folder = Path(tempfile.mkdtemp(prefix="AutoSegInference-", dir=slicer.app.temporaryPath))
        try:
            self.writeInputs(volumeNodes, folder, model.file_ending)
        except Exception:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        usePostprocessing = postprocessing and model.postprocessing_file is not None
        self.job = SegmentationJob(model=model, folder=folder, volume=volumeNodes[0], segmentation=segmentationNode,
                                   probabilities=probabilities,
                                   output=folder / ("postprocessed" if usePostprocessing else "output"))
        progressFile = folder / "progress.jsonl"
        self.runner.start(predict_command(None, folder / "input", folder / "output", model.folder, folds, device=device,
                                          engine=engine, step_size=stepSize, tta=tta, save_probabilities=probabilities,
                                          progress_file=progressFile), PredictionMonitor(progressFile))
        if usePostprocessing:
            self.runner.start(apply_postprocessing_command(folder / "output", folder / "postprocessed",
                                                           model.postprocessing_file, model.folder / "plans.json",
                                                           model.folder / "dataset.json"))

    @staticmethod
    def writeInputs(volumeNodes, folder, fileEnding):
        """``folder/input/case_CCCC<ending>``: channel 0 as it is, the others in its frame and on its grid."""
        from autoseg.dataset.export.write import write_channels_on_reference

        (folder / "staging").mkdir(parents=True)
        (folder / "input").mkdir()
        staged = writeCaseVolumes(volumeNodes, folder / "staging", "case", ".nrrd")
        targets = [folder / "input" / f"case_{channel:04d}{fileEnding}" for channel in range(len(staged))]
        write_channels_on_reference(staged, targets, fileEnding)
        shutil.rmtree(folder / "staging", ignore_errors=True)
        return targets

    def addCorrectedCase(self, volumeNodes, segmentationNode, model, workspaceFolder, annotatedSlices=None,
                         onFinished=None):
        """Add volumes + corrected segmentation to the model's raw dataset; the case id (CorrectedCaseExport.start)."""
        return self.corrections.start(volumeNodes, segmentationNode, model, workspaceFolder, annotatedSlices,
                                      onFinished).caseId

    def _output(self, line):
        self.corrections.readLine(line)
        self.onOutput(line)

    def _finished(self, command, returncode):
        if self.corrections.finish(command, returncode):
            return
        job = self.job
        if job is None:  # a zip installation
            if returncode == 0:
                self.onInstalled()
            return
        if returncode != 0:
            self.job = None
            self.onDone(None, _("Prediction failed or was cancelled (exit code {code}); see the log.").format(
                code=returncode))
            shutil.rmtree(job.folder, ignore_errors=True)
        elif self.runner.queue:  # postprocessing comes next
            return
        else:
            self.job = None
            error = None
            try:
                self.loadResult(job.resultFile, job.volume, job.model, job.segmentation)
                if job.probabilities:
                    self.loadProbabilities(job.probabilitiesFile, job.volume, job.model)
            except Exception as err:
                error = _("Could not load the result: {error}").format(error=err)
            finally:
                shutil.rmtree(job.folder, ignore_errors=True)
            self.onDone(job.segmentation, error)

    @staticmethod
    def loadResult(labelFile, volumeNode, model, segmentationNode):
        """Fill ``segmentationNode`` from a label file: one segment per label, named, coloured, on the volume's
        geometry."""
        from autoseg.slicer_support.output_segments import output_segments

        segments = output_segments(model.labels, model.regions_class_order)
        labelmap = slicer.util.loadLabelVolume(str(labelFile), {"show": False})
        colorNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLColorTableNode", "AutoSeg labels")
        try:
            colorNode.SetTypeToUser()
            colorNode.SetNumberOfColors(max([s.value for s in segments], default=0) + 1)
            colorNode.SetColor(0, "background", 0, 0, 0, 0)
            for segment in segments:
                colorNode.SetColor(segment.value, segment.name, *segment.color, 1.0)
            labelmap.GetDisplayNode().SetAndObserveColorNodeID(colorNode.GetID())
            # the label file is in the volume's own frame: labelmap and segmentation go under the volume's
            # transform *before* the import, so nothing is resampled through a transform
            labelmap.SetAndObserveTransformNodeID(volumeNode.GetTransformNodeID())
            segmentationNode.SetAndObserveTransformNodeID(volumeNode.GetTransformNodeID())
            segmentationNode.GetSegmentation().RemoveAllSegments()
            segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(volumeNode)
            slicer.modules.segmentations.logic().ImportLabelmapToSegmentationNode(labelmap, segmentationNode)
        finally:
            slicer.mrmlScene.RemoveNode(labelmap)
            slicer.mrmlScene.RemoveNode(colorNode)
        segmentation = segmentationNode.GetSegmentation()
        for segment in segments:  # labels absent from this image still get their (empty) segment
            segmentId = segmentation.GetSegmentIdBySegmentName(segment.name)
            if not segmentId:
                segmentId = segmentation.AddEmptySegment(segment.name, segment.name, list(segment.color))
            vtkSegment = segmentation.GetSegment(segmentId)
            vtkSegment.SetColor(*segment.color)
            if segment.terminology:
                vtkSegment.SetTag(vtkSegment.GetTerminologyEntryTagName(), segment.terminology)
        segmentationNode.CreateDefaultDisplayNodes()
        return segmentationNode

    @staticmethod
    def loadProbabilities(npzFile, volumeNode, model):
        """One scalar volume per output channel, on the input volume's geometry."""
        from autoseg.slicer_support.output_segments import probability_channel_names

        probabilities = np.load(npzFile)["probabilities"]
        nodes = []
        for channel, name in enumerate(probability_channel_names(model.labels, len(probabilities))):
            node = slicer.modules.volumes.logic().CloneVolumeWithoutImageData(
                slicer.mrmlScene, volumeNode, f"{volumeNode.GetName()} {name} probability")
            node.SetAndObserveTransformNodeID(volumeNode.GetTransformNodeID())
            slicer.util.updateVolumeFromArray(node, probabilities[channel].astype(np.float32))
            nodes.append(node)
        return nodes


class AutoSegInferenceTest(ScriptedLoadableModuleTest):
    """Result loading on an oblique volume: named, coloured segments on the input's exact geometry."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_load_result_on_oblique_volume()
        self.setUp()
        self.test_add_corrected_case()

    def test_load_result_on_oblique_volume(self):
        from autoseg.slicer_support.models import ModelInfo
        from AutoSegSlicerLib.testing import makeAnnotatedCase

        volume, _segmentation, labels = makeAnnotatedCase("case", ["a", "b"], seed=3)
        folder = Path(tempfile.mkdtemp(prefix="AutoSegInferenceTest-"))
        labelmapNode = slicer.modules.volumes.logic().CreateAndAddLabelVolume(volume, "result")
        slicer.util.updateVolumeFromArray(labelmapNode, labels)
        self.assertTrue(slicer.util.exportNode(labelmapNode, str(folder / "result.nrrd"), {}))
        slicer.mrmlScene.RemoveNode(labelmapNode)
        model = ModelInfo(folder=folder, dataset_name="Dataset001_Test", trainer="nnUNetTrainer", plans="nnUNetPlans",
                          configuration="3d_fullres", folds=["0"], channel_names={"0": "CT"},
                          labels={"background": 0, "liver": 1, "tumour": 2, "spleen": 3}, file_ending=".nrrd",
                          needs_previous_stage=False, postprocessing_file=None)
        segmentationNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode")
        AutoSegInferenceLogic.loadResult(folder / "result.nrrd", volume, model, segmentationNode)
        segmentation = segmentationNode.GetSegmentation()
        names = [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]
        self.assertEqual(sorted(names), ["liver", "spleen", "tumour"])  # spleen is absent from the image: empty
        colors = {tuple(np.round(segmentation.GetNthSegment(i).GetColor(), 3)) for i in range(len(names))}
        self.assertEqual(len(colors), 3)
        liverId = segmentation.GetSegmentIdBySegmentName("liver")
        liver = slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, liverId, volume)
        np.testing.assert_array_equal(liver > 0, labels == 1)

    def test_add_corrected_case(self):
        """A corrected result joins the model's raw dataset, created from the model's dataset.json: values by name."""
        import SimpleITK as sitk

        from AutoSegSlicerLib.testing import makeAnnotatedCase, testProcessFactory

        workspace = Path(tempfile.mkdtemp(prefix="AutoSegInferenceTest-"))
        model = workspace / "nnUNet_results" / "Dataset993_AddCase" / "nnUNetTrainer__nnUNetPlans__3d_fullres"
        model.mkdir(parents=True)
        (model / "dataset.json").write_text('{"channel_names": {"0": "CT"}, "labels": {"background": 0, "liver": 1, '
                                            '"tumour": 2}, "numTraining": 2, "file_ending": ".nii.gz"}')
        volume, segmentation, labels = makeAnnotatedCase("case 1", ["tumour", "Liver"], seed=4)  # sphere, box
        logic, done = AutoSegInferenceLogic(processFactory=testProcessFactory()), []
        self.assertEqual(logic.addCorrectedCase([volume], segmentation, model, workspace, None, done.append), "case_1")
        logic.runner.waitForCompletion(timeoutSeconds=300)
        self.assertEqual([(case.caseId, case.error) for case in done], [("case_1", "")])
        label = sitk.ReadImage(str(workspace / "nnUNet_raw" / "Dataset993_AddCase" / "labelsTr" / "case_1.nii.gz"))
        np.testing.assert_array_equal(sitk.GetArrayFromImage(label), np.array([0, 2, 1])[labels])
