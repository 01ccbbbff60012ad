"""AutoSegTrainer: train configurations and folds in the background, watch the curves, pick the best model.

Each run is ``autoseg train DATASET CONFIG FOLD`` in a ``PythonSlicer`` process; the module follows the
run's ``progress.jsonl`` (``autoseg.slicer_support.training_monitor``) into a plot and a progress bar
with ETA, keeps a queue of runs, and runs ``autoseg find_best_configuration`` when the queue is done.
Runs can train to a time budget (``--time_budget``), update a trained fold with the cases added since
(``--update``), and be asked to finish now: end after the current epoch with a validated checkpoint.
"""

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import slicer
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
    ProcessRunner,
    fillTable,
    requireSupportedSlicer,
    setUpDependencyPanel,
    showUnsupportedSlicer,
)
from AutoSegSlicerLib.trainingplot import TrainingPlotLogicMixin

CONFIGURATION_CHECKBOXES = {
    "2d": "train2d",
    "3d_fullres": "train3dFullres",
    "3d_lowres": "train3dLowres",
    "3d_cascade_fullres": "train3dCascade",
}


class AutoSegTrainer(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("AutoSeg Trainer")
        # one "Segmentation" category in a translated Slicer: translated in the context Slicer uses for it
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation") + ".AutoSeg"]
        self.parent.dependencies = []
        self.parent.contributors = ["AutoSeg developers"]
        self.parent.helpText = _(
            "Train nnU-Net-compatible models on a planned dataset: choose configurations, folds, device and epochs; "
            "runs are queued and trained in the background with live loss and pseudo-Dice curves. When the queue is "
            "done, the best configuration (or ensemble) and its postprocessing are chosen by cross-validation. Runs "
            "can train to a time budget, update a trained model with new cases, or finish now with a validated model.")
        self.parent.acknowledgementText = _(
            "AutoSeg is compatible with nnU-Net v2 (Isensee et al., Nature Methods 2021)."
        )


@parameterNodeWrapper
class AutoSegTrainerParameterNode:
    workspaceFolder: Path
    train2d: bool = False
    train3dFullres: bool = True
    train3dLowres: bool = False
    train3dCascade: bool = False
    folds: str = "0 1 2 3 4"
    device: Annotated[str, Choice(["auto", "cuda", "cpu", "mps"])] = "auto"
    epochs: Annotated[int, WithinRange(1, 100000)] = 1000
    iterationsPerEpoch: Annotated[int, WithinRange(1, 100000)] = 250
    trainer: str = "nnUNetTrainer"
    plans: str = "nnUNetPlans"
    resume: bool = False
    findBestWhenDone: bool = True
    timeBudget: str = ""
    updateModel: bool = False


class AutoSegTrainerWidget(ParameterNodeWidgetMixin, ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        if showUnsupportedSlicer(self.layout):
            return
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/AutoSegTrainer.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = AutoSegTrainerLogic()
        self.logic.onOutput = self.ui.logTextEdit.appendPlainText
        self.logic.onProgress = self.onProgress
        self.logic.onQueueChanged = self.refreshQueueTable
        self.logic.onFindBestDone = self.showBestConfiguration

        self.plotWidget = slicer.qMRMLPlotWidget()
        self.plotWidget.setMRMLScene(slicer.mrmlScene)
        self.plotWidget.minimumHeight = 220
        self.ui.plotFrame.layout().addWidget(self.plotWidget)

        self.observeSceneClose()
        self.ui.refreshDatasetsButton.clicked.connect(self.refreshDatasets)
        self.ui.addToQueueButton.clicked.connect(self.onAddToQueue)
        self.ui.startButton.clicked.connect(self.onStart)
        self.ui.cancelButton.clicked.connect(self.onCancel)
        self.ui.finishNowButton.clicked.connect(self.onFinishNow)
        self.ui.clearQueueButton.clicked.connect(self.onClearQueue)
        self.ui.findBestButton.clicked.connect(self.onFindBest)
        self.initializeParameterNode()
        self.followWorkspaceFolder(self.refreshDatasets)
        self.refreshDatasets()
        setUpDependencyPanel(self.ui.dependenciesFrame, self.ui.dependenciesLabel, self.ui.installDependenciesButton,
                             "AutoSeg Trainer")
        self.updateButtons()

    def updateButtons(self, caller=None, event=None):
        running = self.logic.runner.isRunning
        self.ui.startButton.enabled = not running and self.logic.queue.next_pending() is not None
        self.ui.cancelButton.enabled = running
        self.ui.finishNowButton.enabled = running and self.logic.currentRun is not None  # a training, not find_best
        self.ui.findBestButton.enabled = not running and bool(self.ui.datasetComboBox.currentText)

    def refreshDatasets(self):
        current = self.ui.datasetComboBox.currentText
        self.ui.datasetComboBox.clear()
        self.ui.datasetComboBox.addItems(self.logic.plannedDatasets(self._parameterNode.workspaceFolder))
        if current:
            self.ui.datasetComboBox.setCurrentText(current)
        self.updateButtons()

    def selectedConfigurations(self):
        return [name for name, attribute in CONFIGURATION_CHECKBOXES.items() if getattr(self._parameterNode, attribute)]

    def onAddToQueue(self):
        with slicer.util.tryWithErrorDisplay(_("Could not add the runs."), waitCursor=True):
            configurations = self.selectedConfigurations()
            if not configurations:
                raise ValueError(_("Tick at least one configuration."))
            self.logic.addRuns(configurations, self.logic.parseFolds(self._parameterNode.folds))

    def onStart(self):
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Could not start training."), waitCursor=True):
            self.logic.setDataset(p.workspaceFolder, self.ui.datasetComboBox.currentText)
            # an update trains a quarter of the model's epochs unless told otherwise; a budget sizes the epochs
            self.logic.startQueue(device=p.device, epochs=None if p.updateModel else p.epochs,
                                  iterationsPerEpoch=p.iterationsPerEpoch, trainer=p.trainer.strip(),
                                  plans=p.plans.strip(), resume=p.resume, findBestWhenDone=p.findBestWhenDone,
                                  timeBudget=p.timeBudget.strip() or None, update=p.updateModel)
            self.showCurves()
        self.updateButtons()

    def showCurves(self):
        viewNode = self.plotWidget.mrmlPlotViewNode()
        if viewNode is None or slicer.mrmlScene.GetNodeByID(viewNode.GetID()) is None:
            viewNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLPlotViewNode", "AutoSeg training plot view")
            self.plotWidget.setMRMLPlotViewNode(viewNode)
        viewNode.SetPlotChartNodeID(self.logic.chartNode.GetID())

    def onCancel(self):
        self.logic.cancel()
        self.updateButtons()

    def onFinishNow(self):
        with slicer.util.tryWithErrorDisplay(_("Could not ask the training to finish."), waitCursor=True):
            self.logic.finishNow()
            self.ui.statusLabel.text = _("Finishing after the current epoch, then the final validation...")
        self.updateButtons()

    def onClearQueue(self):
        self.logic.clearFinishedRuns()

    def onFindBest(self):
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Could not start find_best_configuration."), waitCursor=True):
            self.logic.setDataset(p.workspaceFolder, self.ui.datasetComboBox.currentText)
            self.logic.startFindBest(self.selectedConfigurations() or ["3d_fullres"], self.logic.parseFolds(p.folds),
                                     p.trainer.strip(), p.plans.strip())
        self.updateButtons()

    def refreshQueueTable(self):
        rows = self.logic.queue.as_rows()
        fillTable(self.ui.queueTable, rows)
        self.updateButtons()

    def onProgress(self, status):
        self.ui.progressBar.setValue(int(round(100 * (status.fraction or 0))))
        self.ui.statusLabel.text = status.message

    def showBestConfiguration(self, columns, rows, summary):
        fillTable(self.ui.resultsTable, rows, columns)
        self.ui.statusLabel.text = summary
        self.updateButtons()


@dataclass
class TrainingOptions:
    """How the queued runs are trained (``train_command``'s options), and whether find_best follows."""

    device: str = "auto"
    epochs: Optional[int] = None
    iterationsPerEpoch: Optional[int] = None
    trainer: str = "nnUNetTrainer"
    plans: str = "nnUNetPlans"
    resume: bool = False
    findBestWhenDone: bool = True
    timeBudget: Optional[str] = None  # per run, e.g. "45m" (``--time_budget``); None: train for the epochs
    update: bool = False  # ``--update``: fine-tune each fold's trained model with the cases added since


class AutoSegTrainerLogic(TrainingPlotLogicMixin, ScriptedLoadableModuleLogic):
    """Queue of training runs in background processes; usable from the Python console without the GUI."""

    def __init__(self, processFactory=None):
        requireSupportedSlicer()
        from autoseg.slicer_support.run_queue import RunQueue

        ScriptedLoadableModuleLogic.__init__(self)
        self.queue = RunQueue()
        self.runner = ProcessRunner(onOutput=lambda line: self.onOutput(line), onProgress=self._progress,
                                    onFinished=self._finished, processFactory=processFactory)
        self.onOutput = print
        self.onProgress = lambda status: None
        self.onQueueChanged = lambda: None
        self.onFindBestDone = lambda columns, rows, summary: None
        self.workspaceFolders = None
        self.dataset = None
        self.runOptions = TrainingOptions()
        self.currentRun = None
        self.currentCommand = None
        self.monitor = None
        self.finishRequests = []  # finish-now files written for the current run
        self.finishRequested = False  # Finish now was pressed since the queue started

    def getParameterNode(self):
        return AutoSegTrainerParameterNode(super().getParameterNode())

    @staticmethod
    def parseFolds(text):
        folds = text.replace(",", " ").split()
        for fold in folds:
            if fold != "all" and not fold.isdigit():
                raise ValueError(_("Folds are numbers (0 1 2 3 4) or 'all'; got {fold!r}.").format(fold=fold))
        if not folds:
            raise ValueError(_("Give at least one fold, e.g. 0 1 2 3 4."))
        return folds

    def plannedDatasets(self, workspaceFolder):
        from autoseg.slicer_support.commands import WorkspaceFolders

        preprocessed = WorkspaceFolders.from_root(workspaceFolder).preprocessed
        if not preprocessed.is_dir():
            return []
        notPlans = {"dataset.json", "dataset_fingerprint.json", "splits_final.json"}
        return sorted(
            {p.parent.name for p in preprocessed.glob("Dataset[0-9][0-9][0-9]_*/*.json") if p.name not in notPlans}
        )

    def setDataset(self, workspaceFolder, dataset):
        from autoseg.slicer_support.commands import WorkspaceFolders

        if not dataset:
            raise ValueError(_("Choose a planned dataset (plan it in the AutoSeg Planner module first)."))
        self.workspaceFolders = WorkspaceFolders.from_root(workspaceFolder)
        self.dataset = dataset

    def addRuns(self, configurations, folds):
        """Queue one run per configuration and fold (one already pending or running is not added again)."""
        added = [run for configuration in configurations for run in self.queue.add(configuration, folds)]
        self.onQueueChanged()
        return added

    def clearFinishedRuns(self):
        """Remove the done, failed and cancelled runs from the queue."""
        self.queue.clear_finished()
        self.onQueueChanged()

    def startQueue(self, device="auto", epochs=None, iterationsPerEpoch=None, trainer="nnUNetTrainer",
                   plans="nnUNetPlans", resume=False, findBestWhenDone=True, timeBudget=None, update=False):
        """Train every pending run of ``queue`` one after another.

        ``timeBudget`` (each run's, e.g. ``"45m"``, ``"1h30m"``, ``"600s"``, plain minutes) sizes the epochs so
        that training and validation end within it (``epochs`` is then not used); ``update`` fine-tunes each fold's
        trained model with the cases added since (``epochs``: the update's; None: a quarter of the model's).
        """
        from autoseg.slicer_support.commands import parse_time_budget

        if self.queue.next_pending() is None:
            raise ValueError(_("The queue has no pending run: add configurations and folds first."))
        parse_time_budget(timeBudget)  # a clear message before anything starts (train_command checks the rest)
        self.runOptions = TrainingOptions(device=device, epochs=epochs, iterationsPerEpoch=iterationsPerEpoch,
                                          trainer=trainer, plans=plans, resume=resume,
                                          findBestWhenDone=findBestWhenDone, timeBudget=timeBudget, update=update)
        self.finishRequested = False
        self._ensurePlot()
        self._startNextRun()

    def _startNextRun(self):
        from autoseg.slicer_support.commands import parse_time_budget, train_command
        from autoseg.slicer_support.training_monitor import TrainingMonitor

        run = self.queue.next_pending()
        if run is None:
            return False
        options = self.runOptions
        command = train_command(self.workspaceFolders, self.dataset, run.configuration, run.fold,
                                trainer=options.trainer, plans=options.plans, device=options.device,
                                epochs=options.epochs, resume=options.resume, save_npz=True,
                                iterations_per_epoch=options.iterationsPerEpoch, time_budget=options.timeBudget,
                                update=options.update)
        self.currentRun, self.currentCommand, self.finishRequests = run, command, []
        # an update's fold file still holds the trained model's run until the update archives it: skip that
        self.monitor = TrainingMonitor(command.progress_file, time_budget_s=parse_time_budget(options.timeBudget),
                                       ignore_before=time.time() if options.update else None)
        self.queue.mark(run, "running", command.description)
        self.onQueueChanged()
        self.runner.start(command, self.monitor)
        return True

    def startFindBest(self, configurations, folds, trainer="nnUNetTrainer", plans="nnUNetPlans"):
        from autoseg.slicer_support.commands import find_best_command

        self.currentRun = None
        self.monitor = None
        self.runner.start(find_best_command(self.workspaceFolders, self.dataset, configurations, folds, trainer, plans))

    def finishNow(self):
        """End the training that runs now after its current epoch, with its final checkpoint and validation.

        Writes ``finish_now`` into the run's fold folder (the trainer reads it after each epoch; it is taken back
        if the run ends without reading it). The runs still pending are not started: they are marked cancelled
        ("not started: Finish now"), and find_best_configuration does not follow. Returns the files written.
        """
        from autoseg.slicer_support.training_control import progress_fold_folder, request_finish

        if self.currentRun is None or not self.runner.isRunning:
            raise ValueError(_("No training is running."))
        path = request_finish(progress_fold_folder(self.currentCommand.progress_file))
        self.finishRequests.append(path)
        self.finishRequested = True
        self.queue.cancel_pending(_("not started: Finish now"))
        self.onOutput(_("Finish now: {run} ends after its current epoch ({path}).").format(
            run=self.currentCommand.description, path=path))
        self.onQueueChanged()
        return [path]

    def cancel(self):
        self.queue.cancel_pending(_("cancelled"))
        self.runner.cancel()
        self.onQueueChanged()

    def _progress(self, status):
        self._updateCurves()
        self.onProgress(status)

    def _finished(self, command, returncode):
        if self.currentRun is None:  # find_best_configuration
            if returncode == 0:
                self.onFindBestDone(*self.bestConfigurationTable())
            return
        from autoseg.slicer_support.training_control import withdraw_finish_request

        run, self.currentRun = self.currentRun, None
        finishedEarly = False
        for path in self.finishRequests:  # not read: it would end the next training of this fold at once
            if withdraw_finish_request(path):
                self.onOutput(_("Removed {path}: the run ended without reading it.").format(path=path))
            else:
                finishedEarly = True
        self.finishRequests = []
        if self.monitor is not None:
            self.monitor.poll()
            self._updateCurves()
            if self.monitor.status.update is not None:
                self.onOutput(f"{run.configuration} fold {run.fold}: {self.monitor.status.update.text()}")
        if returncode == 0:
            early = _(" (finished early: Finish now)") if finishedEarly else ""
            self.queue.mark(run, "done", self.monitor.status.message + early)
        else:
            self.queue.mark(
                run, "cancelled" if returncode == -1 else "failed", _("exit code {code}").format(code=returncode)
            )
        self.onQueueChanged()
        if returncode != 0:
            return
        findBest = self.runOptions.findBestWhenDone and not self.finishRequested  # finish now: stop there
        if not self._startNextRun() and findBest and self.queue.all_done():
            done = [r for r in self.queue.runs if r.state == "done"]
            self.startFindBest(sorted({r.configuration for r in done}), sorted({str(r.fold) for r in done}),
                               self.runOptions.trainer, self.runOptions.plans)

    def bestConfigurationTable(self):
        """(columns, rows, summary line) from find_best_configuration's inference_information.json."""
        path = self.workspaceFolders.results / self._datasetName() / "inference_information.json"
        information = json.loads(path.read_text(encoding="utf-8"))
        best = information["best_model_or_ensemble"]
        chosen = " + ".join(m["configuration"] for m in best["selected_model_or_models"])
        rows = [
            (name, f"{dice:.4f}") for name, dice in sorted(information["all_results"].items(), key=lambda kv: -kv[1])
        ]
        summary = _("Best: {chosen} — cross-validation Dice {pre:.4f}, {post:.4f} with postprocessing").format(
            chosen=chosen, pre=best["result_on_crossval_pre_pp"], post=best["result_on_crossval_post_pp"])
        return ("model or ensemble", "mean foreground Dice"), rows, summary

    def _datasetName(self):
        from autoseg.paths import find_dataset_name

        ws = self.workspaceFolders
        return find_dataset_name(self.dataset, [ws.preprocessed, ws.raw, ws.results])


class AutoSegTrainerTest(ScriptedLoadableModuleTest):
    """The queue, curves, progress, Finish now and an update's result, with an injected process that replays a
    training's progress stream (N epochs, fewer when asked to finish, then the end; an update's last event)."""

    REPLAY = (
        "import pathlib, sys, time; from autoseg.utils.progress_stream import ProgressStream\n"
        "s, n = ProgressStream(sys.argv[1]), int(sys.argv[2])\n"
        "finish = pathlib.Path(sys.argv[1]).parent / 'finish_now'\n"
        "s.emit('start', epoch=0, num_epochs=n, iterations_per_epoch=2, val_iterations=1)\n"
        "for e in range(n):\n"
        "    s.emit('epoch', epoch=e, num_epochs=n, train_loss=1.0 - e / 3, val_loss=1.1 - e / 3, "
        "pseudo_dice=[0.2 * e], mean_fg_dice=0.2 * e, ema_fg_dice=0.1 * e, lr=0.01, epoch_time=0.1, "
        "eta_seconds=0.1 * (n - 1 - e))\n"
        "    if finish.exists():\n"
        "        finish.unlink(); break\n"
        "    time.sleep(0.2)\n"
        "s.emit('end', mean_validation_dice=0.5)\n"
        "if '--update' in sys.argv:\n"
        "    s.emit('update', from_version=1, to_version=2, dice_before=0.4, dice_after=0.5)\n"
    )

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_queue_and_curves_with_injected_process()
        self.test_finish_now_time_budget_and_update()

    def _logic(self, commands):
        import sys
        import tempfile

        from autoseg.slicer_support.background_process import BackgroundProcess

        def replayTraining(command):
            commands.append(command)
            epochs = command.args[command.args.index("--epochs") + 1] if "--epochs" in command.args else "1000"
            return BackgroundProcess([sys.executable, "-c", self.REPLAY, str(command.progress_file), epochs,
                                      *command.args])

        workspace = Path(tempfile.mkdtemp(prefix="AutoSegTrainerTest-"))
        (workspace / "nnUNet_preprocessed" / "Dataset007_Fake").mkdir(parents=True)
        (workspace / "nnUNet_preprocessed" / "Dataset007_Fake" / "nnUNetPlans.json").write_text("{}")
        logic = AutoSegTrainerLogic(processFactory=replayTraining)
        self.assertEqual(logic.plannedDatasets(workspace), ["Dataset007_Fake"])
        logic.setDataset(workspace, "Dataset007_Fake")
        logic.addRuns(["3d_fullres"], logic.parseFolds("0, 1"))
        return logic

    def test_queue_and_curves_with_injected_process(self):
        logic = self._logic([])
        logic.startQueue(device="cpu", epochs=3, iterationsPerEpoch=2, findBestWhenDone=False)
        logic.runner.waitForCompletion(timeoutSeconds=120)
        self.assertEqual([run.state for run in logic.queue.runs], ["done", "done"])
        epochs = slicer.util.arrayFromTableColumn(logic.tableNode, "epoch")
        self.assertEqual(list(epochs), [0, 1, 2])
        self.assertAlmostEqual(float(slicer.util.arrayFromTableColumn(logic.tableNode, "pseudo Dice")[2]), 0.4)
        self.assertEqual(logic.monitor.status.state, "finished")
        self.assertRaises(ValueError, logic.parseFolds, "zero")

    def test_finish_now_time_budget_and_update(self):
        commands = []
        logic = self._logic(commands)
        self.assertRaisesRegex(Exception, "45m, 1h30m", logic.startQueue, timeBudget="soon")
        self.assertEqual(commands, [])  # refused before anything started
        logic.startQueue(device="cpu", timeBudget="10m", update=True, findBestWhenDone=True)
        args = commands[0].args
        self.assertEqual(args[args.index("--time_budget") + 1], "10m")
        self.assertIn("--update", args)
        self.assertNotIn("--epochs", args)
        written = logic.finishNow()  # the run ends after its epoch, fold 1 is not started, no find_best
        self.assertEqual(written, [commands[0].progress_file.parent / "finish_now"])
        logic.runner.waitForCompletion(timeoutSeconds=120)
        self.assertEqual([run.state for run in logic.queue.runs], ["done", "cancelled"])
        self.assertEqual(len(commands), 1)
        self.assertFalse(written[0].exists())
        self.assertEqual(logic.monitor.status.update.to_version, 2)
        self.assertIn("0.4000 \u2192 0.5000", logic.queue.runs[0].message)
        self.assertIn("Finish now", logic.queue.runs[0].message)
