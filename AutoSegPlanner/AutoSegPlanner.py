"""AutoSegPlanner: curate annotated cases into an nnUNet_raw dataset, then verify, plan and preprocess it.

The export itself (label table, labelmaps on the reference volume's geometry, dataset.json) is
``autoseg.dataset.export.segmentations``; this module only writes scene nodes to files, shows the
tables, asks before replacing cases, and runs the export (``autoseg export_segmentations``) and planning
in a background process. For the annotation loop it marks the dataset's cases that are new since the last
training and ranks unlabelled cases by model uncertainty (``autoseg rank_cases``; ``AutoSegSlicerLib.ranking``).
"""

import logging
import tempfile
from pathlib import Path
from typing import Annotated

import qt
import slicer
from slicer import vtkMRMLSegmentationNode
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
    ParameterNodeWidgetMixin,
    PlannerExport,
    ProcessRunner,
    fillTable,
    requireSupportedSlicer,
    setUpDependencyPanel,
    showUnsupportedSlicer,
)
from AutoSegSlicerLib.ranking import PlannerLoopLogicMixin, PlannerLoopWidgetMixin
from AutoSegSlicerLib.stagedcases import StagedCasesLogicMixin

NEW_DATASET = "(new dataset)"


class AutoSegPlanner(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("AutoSeg Planner")
        # one "Segmentation" category in a translated Slicer: translated in the context Slicer uses for it
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation") + ".AutoSeg"]
        self.parent.dependencies = []
        self.parent.contributors = ["AutoSeg developers"]
        self.parent.helpText = _(
            "Turn segmentations made in Slicer into an nnU-Net v2 dataset (nnUNet_raw), then verify, plan and "
            "preprocess it for training. Segments are matched to labels by name across cases; labelmaps are "
            "written on each case's reference volume geometry. Cases new since the last training are marked; "
            "'Annotate these first' ranks unlabelled images by model uncertainty. See the AutoSeg README.")
        self.parent.acknowledgementText = _(
            "AutoSeg is compatible with nnU-Net v2 (Isensee et al., Nature Methods 2021)."
        )


@parameterNodeWrapper
class AutoSegPlannerParameterNode:
    workspaceFolder: Path
    datasetId: Annotated[int, WithinRange(1, 999)] = 501
    datasetName: str = "MyDataset"
    channelNames: str = "CT"
    fileEnding: Annotated[str, Choice([".nii.gz", ".nrrd", ".mha"])] = ".nii.gz"
    caseId: str = "case_001"
    segmentation: vtkMRMLSegmentationNode
    verifyIntegrity: bool = True
    gpuMemoryTargetGb: Annotated[float, WithinRange(1.0, 200.0)] = 8.0
    rankImagesFolder: Path
    rankDevice: Annotated[str, Choice(["auto", "cuda", "cpu", "mps"])] = "auto"
    rankTta: bool = True


class AutoSegPlannerWidget(PlannerLoopWidgetMixin, ParameterNodeWidgetMixin, ScriptedLoadableModuleWidget,
                           VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._exportPlan = None

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        if showUnsupportedSlicer(self.layout):
            return
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/AutoSegPlanner.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = AutoSegPlannerLogic()
        self.logic.onOutput = self.ui.logTextEdit.appendPlainText
        self.logic.onExportProgress = self.onExportProgress
        self.logic.onExportDone = self.onExportDone
        self.logic.onPlanningDone = self.onPlanningFinished

        self.observeSceneClose()
        self.ui.datasetComboBox.currentTextChanged.connect(self.onDatasetChanged)
        self.ui.refreshDatasetsButton.clicked.connect(self.refreshDatasets)
        self.ui.volumesSelector.checkedNodesChanged.connect(self.updateButtons)
        self.ui.addSceneCaseButton.clicked.connect(self.onAddSceneCase)
        self.ui.addFolderButton.clicked.connect(self.onAddFolder)
        self.ui.removeCaseButton.clicked.connect(self.onRemoveCase)
        self.ui.updateLabelsButton.clicked.connect(self.onUpdateLabelTable)
        self.ui.exportButton.clicked.connect(self.onExport)
        self.ui.planButton.clicked.connect(self.onPlan)
        self.ui.cancelButton.clicked.connect(self.logic.runner.cancel)
        self.initializeParameterNode()
        self.followWorkspaceFolder(self.refreshWorkspace)
        self.setupPlannerLoop()
        self.refreshDatasets()
        setUpDependencyPanel(self.ui.dependenciesFrame, self.ui.dependenciesLabel, self.ui.installDependenciesButton,
                             "AutoSeg Planner")

    def updateButtons(self, caller=None, event=None):
        p = self._parameterNode
        hasCase = bool(p and p.segmentation and self.ui.volumesSelector.checkedNodes() and p.caseId.strip())
        self.ui.addSceneCaseButton.enabled = hasCase
        busy = self.logic.runner.isRunning
        self.ui.exportButton.enabled = self._exportPlan is not None and not self._exportPlan.problems and not busy
        self.ui.planButton.enabled = not busy
        self.ui.cancelButton.enabled = busy
        self.updatePlannerLoopButtons(busy)

    def refreshWorkspace(self):
        self.refreshDatasets()
        self.refreshRankingModels()

    # Dataset --------------------------------------------------------------------------------------

    def refreshDatasets(self):
        current = self.ui.datasetComboBox.currentText
        self.ui.datasetComboBox.clear()
        self.ui.datasetComboBox.addItems(
            [NEW_DATASET] + self.logic.existingDatasets(self._parameterNode.workspaceFolder)
        )
        self.ui.datasetComboBox.setCurrentText(current or NEW_DATASET)

    def onDatasetChanged(self, name):
        existing = bool(name) and name != NEW_DATASET
        self.ui.datasetIdSpinBox.enabled = not existing
        self.ui.datasetNameLineEdit.enabled = not existing
        if existing:
            datasetJson = self.logic.datasetJson(self._parameterNode.workspaceFolder, name) or {}
            channels = datasetJson.get("channel_names", {})
            self._parameterNode.channelNames = ", ".join(channels[k] for k in sorted(channels, key=int))
            if datasetJson.get("file_ending") in (".nii.gz", ".nrrd", ".mha"):
                self._parameterNode.fileEnding = datasetJson["file_ending"]
        self._exportPlan = None
        self.refreshDatasetCases(name if existing else None)
        self.updateButtons()

    def datasetIdentifier(self):
        name = self.ui.datasetComboBox.currentText
        if name and name != NEW_DATASET:
            return name, None
        return str(self._parameterNode.datasetId), self._parameterNode.datasetName.strip()

    # Cases ----------------------------------------------------------------------------------------

    def onAddSceneCase(self):
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Could not add the case."), waitCursor=True):
            volumes = self.logic.orderVolumesByChannel(self.ui.volumesSelector.checkedNodes(), self.channelNames())
            self.logic.addSceneCase(p.caseId.strip(), volumes, p.segmentation)
            self.refreshCasesTable()
            p.caseId = self.logic.nextCaseId(p.caseId.strip())

    def onAddFolder(self):
        folder = qt.QFileDialog.getExistingDirectory(None, _("Folder of .seg.nrrd files and their volumes"))
        if not folder:
            return
        with slicer.util.tryWithErrorDisplay(_("Could not read the folder."), waitCursor=True):
            self.logic.addFolderCases(folder)
            self.refreshCasesTable()

    def onRemoveCase(self):
        self.logic.removeCases({index.row() for index in self.ui.casesTable.selectedIndexes()})
        self.refreshCasesTable()

    def refreshCasesTable(self):
        fillTable(self.ui.casesTable, [(case.case_id, ", ".join(p.name for p in case.images), case.segmentation.name)
                                       for case in self.logic.cases])
        self._exportPlan = None
        self.updateButtons()

    def channelNames(self):
        names = [n.strip() for n in self._parameterNode.channelNames.split(",") if n.strip()]
        return {str(i): n for i, n in enumerate(names)} or {"0": "CT"}

    # Export ---------------------------------------------------------------------------------------

    def onUpdateLabelTable(self):
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Could not build the label table."), waitCursor=True):
            dataset, name = self.datasetIdentifier()
            self._exportPlan = self.logic.planExport(
                p.workspaceFolder, dataset, name, self.channelNames(), p.fileEnding
            )
            self.showExportPlan(self._exportPlan)
        self.updateButtons()

    def showExportPlan(self, plan):
        rows = self.logic.labelTableRows(plan)
        fillTable(self.ui.labelsTable, rows)
        self.ui.problemsLabel.text = "\n".join(plan.problems) if plan.problems else _(
            "{cases} case(s) ready for {folder}").format(cases=len(plan.cases), folder=plan.dataset_folder)

    def onExport(self):
        plan = self._exportPlan
        overwrite = False
        if plan.existing_cases:
            overwrite = slicer.util.confirmYesNoDisplay(
                _("These cases already exist in {folder} and would be replaced:\n{cases}\n\nReplace them?").format(
                    folder=plan.dataset_folder, cases=", ".join(plan.existing_cases)))
            if not overwrite:
                return
        with slicer.util.tryWithErrorDisplay(_("Could not start the export."), waitCursor=True):
            self.logic.startExport(plan, overwrite)
            self.ui.progressBar.setValue(0)
            self.ui.statusLabel.text = _("Exporting...")
        self.updateButtons()

    def onExportProgress(self, export):
        self.ui.progressBar.setValue(int(100 * export.done / export.total))
        self.ui.statusLabel.text = _("Exported {case} ({done}/{total})").format(
            case=export.lastCase, done=export.done, total=export.total)

    def onExportDone(self, export):
        self._exportPlan = None
        if export.cancelled:
            self.ui.statusLabel.text = _("Export cancelled.")
        elif export.error:
            self.ui.statusLabel.text = _("Export failed; see the log.")
            slicer.util.errorDisplay(_("Export failed: {error}").format(error=export.error))
        else:
            message = _("Exported {count} case(s) to {folder}").format(count=export.total, folder=export.datasetFolder)
            self.ui.statusLabel.text = message
            self.ui.logTextEdit.appendPlainText(message)
            self.refreshDatasets()
            self.ui.datasetComboBox.setCurrentText(export.datasetFolder.name)
        self.updateButtons()

    # Planning -------------------------------------------------------------------------------------

    def onPlan(self):
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Could not start planning."), waitCursor=True):
            dataset, _name = self.datasetIdentifier()
            self.logic.startPlanning(p.workspaceFolder, dataset, p.verifyIntegrity, p.gpuMemoryTargetGb)
            self.ui.statusLabel.text = _("Planning and preprocessing (see the log)...")
        self.updateButtons()

    def onPlanningFinished(self, command, returncode):
        self.updateButtons()
        preprocessing = command.args[2] == "preprocess"  # "Preprocess new cases" (PlannerLoopWidgetMixin)
        if returncode != 0:
            self.ui.statusLabel.text = (_("Preprocessing failed or was cancelled (exit code {code}); see the log.")
                                        if preprocessing else _("Planning failed or was cancelled (exit code {code}); "
                                                                "see the log.")).format(code=returncode)
            return
        self.ui.statusLabel.text = _("Preprocessing finished.") if preprocessing else _("Planning finished.")
        dataset, _name = self.datasetIdentifier()
        with slicer.util.tryWithErrorDisplay(_("Could not read the plans."), waitCursor=True):
            columns, rows = self.logic.plansSummary(self._parameterNode.workspaceFolder, dataset)
            fillTable(self.ui.plansTable, rows, columns)


class AutoSegPlannerLogic(StagedCasesLogicMixin, PlannerLoopLogicMixin, ScriptedLoadableModuleLogic):
    """Curation and planning without the GUI (usable from the Python console and self-tests).

    Long work runs in ``runner`` (one command at a time from the module); the Logic reports through
    ``onOutput(line)``, ``onExportProgress(export)``, ``onExportDone(export)`` and
    ``onPlanningDone(command, returncode)``. The list of cases to add is ``StagedCasesLogicMixin``'s; the
    annotation loop's methods (``datasetCaseStatus``,
    ``rankingModels``, ``newRankingFolder``, ``rankCases``, ``loadRanking``, ``showUncertainty``) come from
    ``PlannerLoopLogicMixin``.
    """

    def __init__(self, processFactory=None):
        requireSupportedSlicer()
        ScriptedLoadableModuleLogic.__init__(self)
        self.cases = []  # autoseg ExportCase list, in the order added
        self.stagingFolder = Path(tempfile.mkdtemp(prefix="AutoSegPlanner-", dir=slicer.app.temporaryPath))
        self.runner = ProcessRunner(onOutput=self._output, onProgress=lambda status: self.onRankingProgress(status),
                                    onFinished=self._finished, processFactory=processFactory)
        self.onOutput = lambda line: logging.info(line)
        self.onExportProgress = lambda export: None
        self.onExportDone = lambda export: None
        self.onPlanningDone = lambda command, returncode: None
        self.onRankingProgress = lambda status: None  # while ``rankCases`` runs (PlannerLoopLogicMixin)
        self.export = None  # the PlannerExport (AutoSegSlicerLib.export) running, or the last one

    def getParameterNode(self):
        return AutoSegPlannerParameterNode(super().getParameterNode())

    @staticmethod
    def workspace(folder):
        from autoseg.slicer_support.commands import WorkspaceFolders

        return WorkspaceFolders.from_root(folder)

    def existingDatasets(self, workspaceFolder):
        raw = self.workspace(workspaceFolder).raw
        return sorted(p.name for p in raw.glob("Dataset[0-9][0-9][0-9]_*") if p.is_dir()) if raw.is_dir() else []

    def datasetJson(self, workspaceFolder, datasetName):
        import json

        path = self.workspace(workspaceFolder).raw / datasetName / "dataset.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    def planExport(self, workspaceFolder, dataset, datasetName, channelNames, fileEnding):
        from autoseg.dataset.export.segmentations import plan_export

        if not self.cases:
            raise ValueError(_("Add at least one case first."))
        return plan_export(self.cases, self.workspace(workspaceFolder).raw, dataset, dataset_name=datasetName,
                           channel_names=channelNames, file_ending=fileEnding)

    @staticmethod
    def labelTableRows(plan):
        """(value, label, cases that have it, cases missing it) as text; labels new to the dataset are marked."""
        new = set(plan.label_table.new_labels)
        return [(str(value), name + (_(" (new)") if name in new else ""), str(count), ", ".join(missing))
                for value, name, count, missing in plan.label_rows()]

    def startExport(self, plan, overwrite=False):
        """Write the planned cases with ``autoseg export_segmentations`` in the background (see ``onExportDone``).

        The child plans again from the same files, target, channel names and file ending, so it writes what
        ``plan`` shows (or refuses, listing the problems).
        """
        from autoseg.slicer_support.commands import export_inputs, export_segmentations_command

        if self.runner.isRunning:
            raise RuntimeError(_("Another AutoSeg command is running: wait for it to finish or cancel it."))
        if plan.problems:
            raise ValueError("\n".join(plan.problems))
        folder = Path(plan.dataset_folder)
        workspace = self.workspace(folder.parent.parent)  # planExport's nnUNet_raw is <workspace>/nnUNet_raw
        command = export_segmentations_command(
            workspace, export_inputs([case.segmentation for case in plan.cases]), folder.name,
            channel_names=plan.channel_names, file_ending=plan.file_ending, overwrite=overwrite)
        self.export = PlannerExport(command=command, datasetFolder=folder, total=len(plan.cases))
        try:
            self.runner.start(command)
        except Exception:
            self.export = None
            raise
        return self.export

    def _isCurrent(self, command):
        return self.runner.current is not None and self.runner.current[0] is command

    def _output(self, line):
        export = self.export
        ours = export is not None and export.returncode is None and self._isCurrent(export.command)
        if ours and export.readLine(line):
            self.onExportProgress(export)
        self.onOutput(line)

    def _finished(self, command, returncode):
        if self.rankingFinished(command, returncode):
            return
        export = self.export
        if export is None or command is not export.command:
            self.onPlanningDone(command, returncode)
            return
        export.finish(returncode)
        self.onExportDone(export)

    def startPlanning(self, workspaceFolder, dataset, verify=True, gpuMemoryTargetGb=8.0):
        from autoseg.paths import find_dataset_name, parse_dataset_id
        from autoseg.slicer_support.commands import plan_and_preprocess_command

        ws = self.workspace(workspaceFolder)
        datasetId = parse_dataset_id(find_dataset_name(dataset, [ws.raw]))
        command = plan_and_preprocess_command(ws, datasetId, verify=verify, gpu_memory_target_gb=gpuMemoryTargetGb)
        self.runner.start(command)
        return command

    def plansSummary(self, workspaceFolder, dataset):
        from autoseg.paths import find_dataset_name
        from autoseg.planning.summary import SUMMARY_COLUMNS, plans_summary_rows
        from autoseg.plans.model import Plans

        ws = self.workspace(workspaceFolder)
        name = find_dataset_name(dataset, [ws.raw, ws.preprocessed])
        plans = Plans.load(ws.preprocessed / name / "nnUNetPlans.json")
        return SUMMARY_COLUMNS, plans_summary_rows(plans)


class AutoSegPlannerTest(ScriptedLoadableModuleTest):
    """Scene -> files -> nnUNet_raw on an oblique volume; the labelmap lands on the painted voxels. The annotation
    loop: cases no trained fold used are new; a ranking's case is shown with its map on the image's geometry."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_export_two_scene_cases()
        self.test_new_cases_and_uncertainty_overlay()

    def test_export_two_scene_cases(self):
        import numpy as np
        import SimpleITK as sitk

        from AutoSegSlicerLib.testing import makeAnnotatedCase, testProcessFactory

        workspace = Path(tempfile.mkdtemp(prefix="AutoSegPlannerTest-"))
        logic = AutoSegPlannerLogic(processFactory=testProcessFactory())
        done = []
        logic.onExportDone = done.append
        painted = {}
        for index, segmentNames in enumerate((["Liver", "Kidney"], [" liver", "KIDNEY "])):
            volume, segmentation, labels = makeAnnotatedCase(f"case{index}", segmentNames, seed=index)
            painted[f"case{index}"] = labels
            logic.addSceneCase(f"case{index}", [volume], segmentation)
        plan = logic.planExport(workspace, "42", "PlannerTest", {"0": "MR"}, ".nii.gz")
        self.assertEqual(plan.problems, [])
        self.assertEqual(plan.label_table.labels, {"background": 0, "Liver": 1, "Kidney": 2})
        logic.startExport(plan, overwrite=False)  # `autoseg export_segmentations` in a background process
        logic.runner.waitForCompletion(timeoutSeconds=300)
        self.assertEqual([(export.returncode, export.error, export.done) for export in done], [(0, "", 2)])
        folder = workspace / "nnUNet_raw" / "Dataset042_PlannerTest"
        for caseId, labels in painted.items():
            image = sitk.ReadImage(str(folder / "imagesTr" / f"{caseId}_0000.nii.gz"))
            label = sitk.ReadImage(str(folder / "labelsTr" / f"{caseId}.nii.gz"))
            self.assertEqual(label.GetDirection(), image.GetDirection())
            self.assertEqual(label.GetOrigin(), image.GetOrigin())
            np.testing.assert_array_equal(sitk.GetArrayFromImage(label), labels)
        # a second export of the same cases is refused without overwrite, and the files stay as they were
        again = logic.planExport(workspace, "Dataset042_PlannerTest", None, {"0": "MR"}, ".nii.gz")
        self.assertEqual(sorted(again.existing_cases), ["case0", "case1"])
        logic.startExport(again, overwrite=False)
        logic.runner.waitForCompletion(timeoutSeconds=300)
        self.assertEqual(done[-1].returncode, 1)
        self.assertIn("case0", done[-1].error)

    def test_new_cases_and_uncertainty_overlay(self):
        import json

        import numpy as np
        import SimpleITK as sitk

        workspace = Path(tempfile.mkdtemp(prefix="AutoSegPlannerTest-"))
        raw = workspace / "nnUNet_raw" / "Dataset043_Loop"
        model = workspace / "nnUNet_results" / "Dataset043_Loop" / "nnUNetTrainer__nnUNetPlans__3d_fullres"
        for folder in (raw / "imagesTr", raw / "labelsTr", model / "fold_0", workspace / "unlabelled"):
            folder.mkdir(parents=True)
        (raw / "dataset.json").write_text(json.dumps({"channel_names": {"0": "MR"}, "labels": {
            "background": 0, "organ": 1}, "numTraining": 3, "file_ending": ".nii.gz"}))
        (model / "dataset.json").write_text((raw / "dataset.json").read_text())
        for case in ("a", "b", "c"):
            (raw / "imagesTr" / f"{case}_0000.nii.gz").write_bytes(b"")
            (raw / "labelsTr" / f"{case}.nii.gz").write_bytes(b"")
        logic = AutoSegPlannerLogic()
        self.assertEqual(logic.datasetCaseStatus(workspace, 43).new_cases, [])  # nothing trained yet
        (model / "fold_0" / "checkpoint_final.pth").write_bytes(b"")
        (model / "fold_0" / "debug.json").write_text(json.dumps({"training_cases": ["a"], "validation_cases": ["b"]}))
        self.assertEqual(logic.datasetCaseStatus(workspace, "Dataset043_Loop").new_cases, ["c"])

        image = sitk.GetImageFromArray(np.random.default_rng(0).normal(size=(6, 7, 8)).astype(np.float32))
        image.SetSpacing((0.8, 0.9, 2.5))
        image.SetOrigin((3.0, -4.0, 5.0))
        image.SetDirection((0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
        output = logic.newRankingFolder(workspace, model)
        output.mkdir(parents=True)
        sitk.WriteImage(image, str(workspace / "unlabelled" / "x_0000.nii.gz"))
        sitk.WriteImage(sitk.Abs(image) / 4, str(output / "x_uncertainty.nii.gz"))
        (output / "ranking.json").write_text(json.dumps({"model_folder": str(model), "input_folder": str(
            workspace / "unlabelled"), "cases": [{"rank": 1, "case": "x", "score": 0.7, "reason": "r",
                                                  "uncertainty_map": str(output / "x_uncertainty.nii.gz")}]}))
        [row] = logic.loadRanking(output)
        self.assertEqual(row.table_row(), ("1", "x", "0.700", "r"))
        composite = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSliceCompositeNode")
        imageNode, mapNode = logic.showUncertainty(row)
        self.assertEqual(composite.GetForegroundVolumeID(), mapNode.GetID())
        self.assertAlmostEqual(composite.GetForegroundOpacity(), 0.5)
        self.assertEqual(imageNode.GetImageData().GetDimensions(), mapNode.GetImageData().GetDimensions())
        self.assertTrue(np.allclose(slicer.util.arrayFromVTKMatrix(_ijkToRas(imageNode)),
                                    slicer.util.arrayFromVTKMatrix(_ijkToRas(mapNode)), atol=1e-6))


def _ijkToRas(volumeNode):
    import vtk

    matrix = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(matrix)
    return matrix
