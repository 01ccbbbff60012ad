"""The annotation loop in Slicer: correct a model's result in the Segment Editor and add it to the model's dataset.

``openInSegmentEditor`` shows the result and its source volume in Slicer's Segment Editor. A
``CorrectedCaseExport`` then adds the corrected case to the raw dataset the model was trained on
(``<workspace>/nnUNet_raw/DatasetXXX_Name``), as the Planner exports a scene case:

1. ``autoseg.slicer_support.add_case.plan_add_case`` checks everything at once and writes nothing: segment
   names against the model's labels, the raw dataset's labels and channels, the annotated slices; it picks
   a case id from channel 0's name that the dataset does not use yet (never overwriting);
2. the volumes and the segmentation are written in channel 0's frame to a staging folder (``casefiles``),
   with ``CASE.annotated_slices.json`` for a partially corrected case;
3. a missing raw dataset is created from the model's ``dataset.json``;
4. ``autoseg export_segmentations -i FOLDER -d DATASET`` runs in the module's ``ProcessRunner`` (label image on
   channel 0's grid, values by name from the dataset's labels, ``ignore`` outside the annotated slices,
   dataset.json extended), followed like the Planner's export (``PlannerExport``).
"""

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import slicer
from slicer.i18n import tr as _

from AutoSegSlicerLib.casefiles import writeCaseVolumes, writeSegmentationInFrameOf
from AutoSegSlicerLib.export import PlannerExport

AXES = ("I", "J", "K")


def openInSegmentEditor(segmentationNode, sourceVolumeNode):
    """Switch to the Segment Editor with ``segmentationNode`` and its source volume selected; returns the editor."""
    if segmentationNode is None or sourceVolumeNode is None:
        raise ValueError(_("Segment a volume first (or choose the output segmentation and its volume)."))
    slicer.util.selectModule("SegmentEditor")
    editor = slicer.modules.segmenteditor.widgetRepresentation().self().editor
    editor.setSegmentationNode(segmentationNode)
    editor.setSourceVolumeNode(sourceVolumeNode)
    return editor


def segmentNames(segmentationNode):
    """The names of a segmentation node's segments, in order."""
    segmentation = segmentationNode.GetSegmentation()
    return [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]


def annotatedSlicesRequest(axis, slices):
    """``"K:10-20,35"`` (``-annotated_slices``' form) from the module's axis and slices fields; ``auto`` if empty."""
    axis = (axis or "K").strip().upper()
    if axis not in AXES:
        raise ValueError(_("The slice axis must be one of I, J, K, not {axis}.").format(axis=axis))
    return f"{axis}:{(slices or '').strip() or 'auto'}"


@dataclass
class CorrectedCase:
    """One corrected case being added (or added): where it goes and how its export ended."""

    caseId: str
    datasetFolder: Path
    stagingFolder: Path  # deleted when the export ends
    export: PlannerExport
    createdDataset: bool = False
    onFinished: Callable[[Any], None] = lambda case: None

    @property
    def error(self):
        """Why the export failed ("" while running and after a success)."""
        return self.export.error

    @property
    def succeeded(self):
        return self.export.returncode == 0


class CorrectedCaseExport:
    """Adds corrected cases through a ``ProcessRunner`` the module also uses for other commands.

    The Logic hands the runner's output lines to :meth:`readLine` and its ends to :meth:`finish`.
    """

    def __init__(self, runner):
        self.runner = runner
        self.current = None  # the CorrectedCase being exported

    def start(self, volumeNodes, segmentationNode, model, workspaceFolder, annotatedSlices=None, onFinished=None):
        """Check, stage and start exporting one corrected case; returns its ``CorrectedCase``.

        ``model``: a model folder or a ``ModelInfo``; ``annotatedSlices``: None, or ``"K:10-20,35"`` /
        ``"K:auto"`` for a case whose other slices are not annotated (they become ``ignore``).
        """
        from autoseg.dataset.export.annotated_slices import write_sidecar
        from autoseg.slicer_support.add_case import plan_add_case
        from autoseg.slicer_support.commands import WorkspaceFolders, export_segmentations_command

        if self.runner.isRunning:
            raise RuntimeError(_("Another AutoSeg command is running: wait for it to finish or cancel it."))
        if segmentationNode is None or not volumeNodes or not all(volumeNodes):
            raise ValueError(_("Choose the volume(s) and the corrected segmentation."))
        workspace = WorkspaceFolders.from_root(Path(workspaceFolder))
        imageData = volumeNodes[0].GetImageData()
        plan = plan_add_case(Path(getattr(model, "folder", model)), workspace.raw, segmentNames(segmentationNode),
                             volumeNodes[0].GetName(), len(volumeNodes), annotatedSlices,
                             imageData.GetDimensions() if imageData is not None else None)
        folder = Path(tempfile.mkdtemp(prefix="AutoSegAddCase-", dir=slicer.app.temporaryPath))
        try:
            writeCaseVolumes(volumeNodes, folder, plan.case_id, ".nrrd")
            segmentationFile = folder / f"{plan.case_id}.seg.nrrd"
            writeSegmentationInFrameOf(segmentationNode, volumeNodes[0], segmentationFile)
            if plan.annotated_slices is not None:
                write_sidecar(segmentationFile, plan.annotated_slices.axis, plan.sidecar_slices())
            created = plan.create_dataset()
            command = export_segmentations_command(workspace, folder, plan.dataset_folder.name)
            case = CorrectedCase(plan.case_id, plan.dataset_folder, folder,
                                 PlannerExport(command=command, datasetFolder=plan.dataset_folder, total=1), created)
            if onFinished is not None:
                case.onFinished = onFinished
            self.current = case
            self.runner.start(command)
        except Exception:
            self.current = None
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return case

    def _isCurrent(self, command):
        return self.current is not None and command is self.current.export.command

    def readLine(self, line):
        """Follow one output line of the runner (only lines of the running export are read)."""
        running = self.runner.current
        if running is not None and self._isCurrent(running[0]):
            self.current.export.readLine(line)

    def finish(self, command, returncode):
        """The runner's end of ``command``; True when it was this export (then ``onFinished(case)`` was called)."""
        if not self._isCurrent(command):
            return False
        case, self.current = self.current, None
        case.export.finish(returncode)
        shutil.rmtree(case.stagingFolder, ignore_errors=True)
        case.onFinished(case)
        return True


class CorrectedCaseWidgetMixin:
    """The Inference widget's "Correct and add to dataset" and "Add corrected case" buttons.

    The widget provides ``self.ui.statusLabel``, ``self._parameterNode`` (``inputVolume``, ``outputSegmentation``,
    ``workspaceFolder``, ``partiallyAnnotated``, ``annotatedAxis``, ``annotatedSlices``), ``inputVolumes()``,
    ``currentModel()``, ``self.logic.addCorrectedCase`` and ``updateButtons()``.
    """

    def onCorrect(self):
        """Open the result in the Segment Editor, with the channel-0 volume as its source volume."""
        with slicer.util.tryWithErrorDisplay(_("Could not open the Segment Editor."), waitCursor=True):
            openInSegmentEditor(self._parameterNode.outputSegmentation, self._parameterNode.inputVolume)
            self.ui.statusLabel.text = _("Correct the segments in the Segment Editor, then come back and press "
                                         "'Add corrected case'.")

    def onAddCase(self):
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Could not add the case."), waitCursor=True):
            slices = annotatedSlicesRequest(p.annotatedAxis, p.annotatedSlices) if p.partiallyAnnotated else None
            caseId = self.logic.addCorrectedCase(self.inputVolumes(), p.outputSegmentation, self.currentModel(),
                                                 p.workspaceFolder, slices, self.onCaseAdded)
            self.ui.statusLabel.text = _("Adding {case} to the dataset...").format(case=caseId)
        self.updateButtons()

    def onCaseAdded(self, case):
        """The export ended: the outcome in the status line; a failure also in one message box."""
        self.updateButtons()
        if case.error:
            message = _("Could not add {case}: {error}").format(case=case.caseId, error=case.error)
            self.ui.statusLabel.text = message
            slicer.util.errorDisplay(message)
        else:
            created = _(" (created from the model's dataset.json)") if case.createdDataset else ""
            self.ui.statusLabel.text = _("Added {case} to {folder}{created}").format(
                case=case.caseId, folder=case.datasetFolder, created=created)
