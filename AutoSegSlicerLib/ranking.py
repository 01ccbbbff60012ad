"""The annotation loop in the AutoSeg Planner: which dataset cases are new, and which case to annotate next.

- New cases: the dataset's cases that no trained fold used (``autoseg.slicer_support.dataset_status``), marked
  in the Planner's "Dataset cases" table: what updating the model would add. "Preprocess new cases" runs
  ``autoseg preprocess`` (incremental, with the existing plans) so that the Trainer can update the model.
- "Annotate these first": ``autoseg rank_cases`` runs in the background on a folder of unlabelled images with a
  model of the workspace (each run writes into a new ``<workspace>/AutoSegRankings/<dataset>/<timestamp>``
  folder, with uncertainty maps); the ranking fills a table, and "Show" loads a case's image with its
  uncertainty map as a coloured foreground overlay in the slice views.

``PlannerLoopLogicMixin`` gives the Planner's Logic these methods (usable without the GUI);
``PlannerLoopWidgetMixin`` wires them to the Planner's widgets. AutoSegCore is imported only inside functions.
"""

from pathlib import Path

import slicer
from slicer.i18n import tr as _

from AutoSegSlicerLib.widgets import fillTable

#: colour tables for the uncertainty map, the first one in the scene is used (Inferno and ColdToHotRainbow are
#: Slicer's colour files; Iron is built in)
UNCERTAINTY_COLORS = ("Inferno", "ColdToHotRainbow", "Iron")
UNCERTAINTY_OPACITY = 0.5
SOURCE_FILE_ATTRIBUTE = "AutoSeg.SourceFile"


class CaseRanking:
    """One ``autoseg rank_cases`` run: its command and output folder; when done its ``returncode``, ``rows``
    (``autoseg.slicer_support.rankings.RankingRow``, most uncertain first) or ``error``."""

    def __init__(self, command, outputFolder, onFinished=None):
        self.command = command
        self.outputFolder = Path(outputFolder)
        self.onFinished = onFinished or (lambda ranking: None)
        self.returncode = None
        self.rows = []
        self.error = ""


def _loadOnce(path, name):
    """The scalar volume loaded from ``path`` (again only if it is no longer in the scene)."""
    for node in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode"):
        if node.GetAttribute(SOURCE_FILE_ATTRIBUTE) == str(path):
            return node
    node = slicer.util.loadVolume(str(path), {"name": name, "show": False})
    node.SetAttribute(SOURCE_FILE_ATTRIBUTE, str(path))
    return node


def uncertaintyColorNode():
    """The first of ``UNCERTAINTY_COLORS`` in the scene (None if none is)."""
    for name in UNCERTAINTY_COLORS:
        node = slicer.mrmlScene.GetFirstNodeByName(name)
        if node is not None and node.IsA("vtkMRMLColorNode"):
            return node
    return None


def showUncertaintyVolumes(row):
    """Load the case's image (channel 0) and its uncertainty map; show the map over the image. Returns both nodes."""
    if not row.images:
        raise ValueError(_("The image of {case} is no longer in the folder that was ranked.").format(case=row.case))
    if row.uncertainty_map is None or not Path(row.uncertainty_map).is_file():
        raise ValueError(_("{case} has no uncertainty map: that ranking was made without maps.").format(case=row.case))
    image = _loadOnce(row.images[0], row.case)
    uncertainty = _loadOnce(row.uncertainty_map, _("{case} uncertainty").format(case=row.case))
    display = uncertainty.GetDisplayNode()
    color = uncertaintyColorNode()
    if display is not None:
        if color is not None:
            display.SetAndObserveColorNodeID(color.GetID())
        display.AutoWindowLevelOff()
        display.SetWindowLevelMinMax(0.0, 1.0)  # normalised entropy
    fit = getattr(slicer.app, "layoutManager", None) is not None  # none without Slicer's main window
    slicer.util.setSliceViewerLayers(background=image, foreground=uncertainty,
                                     foregroundOpacity=UNCERTAINTY_OPACITY, fit=fit)
    return image, uncertainty


class PlannerLoopLogicMixin:
    """New cases and case ranking for the Planner's Logic (which provides ``runner``, a ProcessRunner whose
    ``onProgress`` calls ``onRankingProgress``)."""

    ranking = None  # the CaseRanking running, or the last one
    onRankingProgress = staticmethod(lambda status: None)

    @staticmethod
    def datasetCaseStatus(workspaceFolder, dataset):
        """``autoseg.slicer_support.dataset_status.DatasetStatus``: the raw dataset's cases, new ones marked."""
        from autoseg.slicer_support.commands import WorkspaceFolders
        from autoseg.slicer_support.dataset_status import workspace_dataset_status

        return workspace_dataset_status(WorkspaceFolders.from_root(workspaceFolder), dataset)

    def startPreprocessing(self, workspaceFolder, dataset):
        """Preprocess the cases added since the last preprocessing, with the existing plans (never re-planned: an
        update refuses a model whose plans changed), for the configurations preprocessed before. Runs
        ``autoseg preprocess`` in the background; its end is reported like planning (``onPlanningDone``)."""
        from autoseg.slicer_support.commands import WorkspaceFolders, preprocess_command
        from autoseg.slicer_support.dataset_status import preprocessed_configurations

        if self.runner.isRunning:
            raise RuntimeError(_("Another AutoSeg command is running: wait for it to finish or cancel it."))
        ws = WorkspaceFolders.from_root(workspaceFolder)
        name = ws.dataset_name(dataset)
        command = preprocess_command(ws, name, preprocessed_configurations(ws.preprocessed / name))
        self.runner.start(command)
        return command

    @staticmethod
    def rankingModels(workspaceFolder):
        """The workspace's trained models a ranking can use (as the Inference module lists them; no cascade stage)."""
        from autoseg.slicer_support.commands import WorkspaceFolders
        from autoseg.slicer_support.models import find_models

        results = WorkspaceFolders.from_root(workspaceFolder).results
        return [m for m in find_models(results) if not m.needs_previous_stage] if results.is_dir() else []

    @staticmethod
    def newRankingFolder(workspaceFolder, modelFolder):
        """A new ``<workspace>/AutoSegRankings/<dataset>/<timestamp>`` folder name for a ranking with this model."""
        from autoseg.slicer_support.models import model_info
        from autoseg.slicer_support.rankings import new_ranking_folder

        model = model_info(modelFolder)
        return new_ranking_folder(workspaceFolder, model.dataset_name if model else Path(modelFolder).parent.name)

    def rankCases(self, modelFolder, imagesFolder, outputFolder, onFinished=None, device="auto", tta=True):
        """Rank the unlabelled cases of ``imagesFolder`` with the model in ``modelFolder`` in the background
        (``autoseg rank_cases --save_maps`` into the new folder ``outputFolder``). ``onFinished(ranking)`` gets the
        CaseRanking with its rows; ``onRankingProgress(status)`` a RankingStatus as cases are done."""
        from autoseg.dataset.cases import files_by_case
        from autoseg.slicer_support.commands import rank_cases_command
        from autoseg.slicer_support.models import model_info
        from autoseg.slicer_support.rankings import RankingMonitor

        if self.runner.isRunning:
            raise RuntimeError(_("Another AutoSeg command is running: wait for it to finish or cancel it."))
        model = model_info(modelFolder)
        if model is None:
            raise ValueError(_("{folder} has no trained fold.").format(folder=modelFolder))
        images = Path(imagesFolder)
        if str(imagesFolder) in ("", ".") or not files_by_case(images, model.file_ending):
            raise ValueError(_("Choose a folder of unlabelled images named like CASE_0000{ending} (one file per "
                               "channel); {folder} has none.").format(ending=model.file_ending, folder=images))
        command = rank_cases_command(None, images, outputFolder, model.folder, device=device, tta=tta)
        self.ranking = CaseRanking(command, outputFolder, onFinished)
        self.runner.start(command, RankingMonitor(images, outputFolder, model.file_ending))
        return self.ranking

    @staticmethod
    def loadRanking(outputFolder):
        """The rows of a finished ranking (``RankingRow``: rank, case, score, reason, files), most uncertain first."""
        from autoseg.slicer_support.rankings import read_ranking

        return read_ranking(outputFolder)

    @staticmethod
    def showUncertainty(row):
        """Load ``row``'s image and uncertainty map, the map as a coloured overlay; returns (image, map) nodes."""
        return showUncertaintyVolumes(row)

    def rankingFinished(self, command, returncode):
        """The runner's end of ``command``: True when it was the ranking (then its ``onFinished`` was called)."""
        ranking = self.ranking
        if ranking is None or command is not ranking.command:
            return False
        ranking.returncode = returncode
        if returncode == 0:
            try:
                ranking.rows = self.loadRanking(ranking.outputFolder)
            except Exception as err:  # an unreadable result: reported like a failed run
                ranking.error = str(err)
        else:
            ranking.error = _("cancelled") if returncode == -1 else _("exit code {code}").format(code=returncode)
        ranking.onFinished(ranking)
        return True


class PlannerLoopWidgetMixin:
    """The Planner widget's "Dataset cases" section and "Annotate these first" section (the widget provides
    ``datasetIdentifier()``, ``updateButtons()`` and the shared progress bar, status label and log)."""

    rankingModelList = ()

    def setupPlannerLoop(self):
        self.ui.preprocessNewCasesButton.clicked.connect(self.onPreprocessNewCases)
        self.ui.refreshRankModelsButton.clicked.connect(self.refreshRankingModels)
        self.ui.rankButton.clicked.connect(self.onRankCases)
        self.ui.showUncertaintyButton.clicked.connect(self.onShowUncertainty)
        self.logic.onRankingProgress = self.onRankingProgress
        self.refreshRankingModels()

    def updatePlannerLoopButtons(self, busy):
        self.ui.preprocessNewCasesButton.enabled = not busy and self.datasetIdentifier()[1] is None  # an existing one
        self.ui.rankButton.enabled = not busy and bool(self.rankingModelList)
        ranking = self.logic.ranking
        self.ui.showUncertaintyButton.enabled = bool(ranking is not None and ranking.rows)

    def refreshDatasetCases(self, datasetName):
        """Fill the dataset's case table, new cases (since the last training) marked."""
        rows, text = [], ""
        if datasetName:
            try:
                status = self.logic.datasetCaseStatus(self._parameterNode.workspaceFolder, datasetName)
                rows = status.rows(_("new"), _("yes"), _("no"))
                text = _("{count} case(s), {new} new since the last training.").format(
                    count=len(status.cases), new=len(status.new_cases)) if status.trained else _(
                    "{count} case(s); no trained model yet: the first training uses them all.").format(
                    count=len(status.cases))
            except Exception as err:  # a dataset being written or a broken file: say so, keep the module usable
                text = str(err)
        fillTable(self.ui.datasetCasesTable, rows)
        self.ui.datasetCasesLabel.text = text

    def onPreprocessNewCases(self):
        with slicer.util.tryWithErrorDisplay(_("Could not start preprocessing."), waitCursor=True):
            self.logic.startPreprocessing(self._parameterNode.workspaceFolder, self.datasetIdentifier()[0])
            self.ui.statusLabel.text = _("Preprocessing the new cases (see the log)...")
        self.updateButtons()

    def refreshRankingModels(self):
        try:
            self.rankingModelList = self.logic.rankingModels(self._parameterNode.workspaceFolder)
        except Exception as err:
            self.rankingModelList = []
            self.ui.rankingStatusLabel.text = str(err)
        self.ui.rankModelComboBox.clear()
        for model in self.rankingModelList:
            self.ui.rankModelComboBox.addItem(model.title)
        self.updateButtons()

    def onRankCases(self):
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Could not start the ranking."), waitCursor=True):
            index = self.ui.rankModelComboBox.currentIndex
            if not 0 <= index < len(self.rankingModelList):
                raise ValueError(_("Choose a trained model (train one in the AutoSeg Trainer module first)."))
            model = self.rankingModelList[index]
            folder = self.logic.newRankingFolder(p.workspaceFolder, model.folder)
            self.logic.rankCases(model.folder, p.rankImagesFolder, folder, onFinished=self.onRankingDone,
                                 device=p.rankDevice, tta=p.rankTta)
            self.ui.progressBar.setValue(0)
            self.ui.rankingStatusLabel.text = _("Ranking into {folder}...").format(folder=folder)
        self.updateButtons()

    def onRankingProgress(self, status):
        self.ui.progressBar.setValue(int(round(100 * status.fraction)))
        self.ui.statusLabel.text = status.message

    def onRankingDone(self, ranking):
        fillTable(self.ui.rankingTable, [row.table_row() for row in ranking.rows])
        if ranking.error:
            self.ui.rankingStatusLabel.text = _("Ranking failed ({error}); see the log.").format(error=ranking.error)
        else:
            self.ui.progressBar.setValue(100)
            self.ui.rankingStatusLabel.text = _("{count} case(s) ranked into {folder}: annotate the first ones first. "
                                                "Select a row and Show its uncertainty.").format(
                count=len(ranking.rows), folder=ranking.outputFolder)
        self.updateButtons()

    def onShowUncertainty(self):
        with slicer.util.tryWithErrorDisplay(_("Could not show the uncertainty map."), waitCursor=True):
            rows = {index.row() for index in self.ui.rankingTable.selectedIndexes()}
            if not rows:
                raise ValueError(_("Select a case in the ranking table."))
            self.logic.showUncertainty(self.logic.ranking.rows[min(rows)])
