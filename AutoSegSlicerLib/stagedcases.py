"""The AutoSeg Planner's list of cases to add: scene cases written to a staging folder, folders of ``.seg.nrrd``.

``StagedCasesLogicMixin`` gives the Planner's Logic ``cases`` management (``addSceneCase``, ``addFolderCases``,
``removeCases``, ``orderVolumesByChannel``, ``nextCaseId``); the Logic provides ``cases`` (autoseg ExportCase
list, in the order added) and ``stagingFolder``. AutoSegCore is imported only inside functions.
"""

import shutil
from pathlib import Path

from slicer.i18n import tr as _

from AutoSegSlicerLib.casefiles import writeCaseVolumes, writeSegmentationInFrameOf


class StagedCasesLogicMixin:
    """The cases waiting to be exported into the dataset."""

    @staticmethod
    def orderVolumesByChannel(volumeNodes, channelNames):
        """Volume nodes in channel order, matched by name; a single channel takes the single volume."""
        from autoseg.slicer_support.models import match_channels

        if len(volumeNodes) != len(channelNames):
            raise ValueError(_("Select one volume per channel ({channels}); {count} selected.").format(
                channels=", ".join(channelNames.values()), count=len(volumeNodes)))
        order = match_channels(channelNames, [v.GetName() for v in volumeNodes])
        if None in order:
            unmatched = [channelNames[str(i)] for i, index in enumerate(order) if index is None]
            raise ValueError(_("No selected volume matches channel(s) {names} by name. Name each volume after its "
                               "channel (for example 'case1_T2').").format(names=", ".join(unmatched)))
        return [volumeNodes[index] for index in order]

    def addSceneCase(self, caseId, volumeNodes, segmentationNode):
        """Write the volumes and the segmentation to the staging folder, in channel 0's frame (``casefiles``)."""
        from autoseg.dataset.export.segmentations import ExportCase

        if not caseId or any(c in caseId for c in "/\\:"):
            raise ValueError(_("Give the case a name without / \\ or : (for example case_001)."))
        if any(case.case_id.casefold() == caseId.casefold() for case in self.cases):  # one staging folder per case
            raise ValueError(_("A case named {case} is already in the list.").format(case=caseId))
        if segmentationNode is None or not volumeNodes:
            raise ValueError(_("Select the case's volume(s) and its segmentation."))
        folder = self.stagingFolder / caseId  # holds this case only: the export reads the folder
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        try:
            images = writeCaseVolumes(volumeNodes, folder, caseId, ".nrrd")
            segmentationPath = folder / f"{caseId}.seg.nrrd"
            writeSegmentationInFrameOf(segmentationNode, volumeNodes[0], segmentationPath)
        except Exception:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        case = ExportCase(case_id=caseId, images=images, segmentation=segmentationPath)
        self.cases.append(case)
        return case

    def addFolderCases(self, folder):
        from autoseg.dataset.export.segmentations import find_cases_in_folder

        found = find_cases_in_folder(Path(folder))
        known = {case.case_id for case in self.cases}
        clashes = [case.case_id for case in found if case.case_id in known]
        if clashes:
            raise ValueError(_("Cases already in the list: {cases}").format(cases=", ".join(clashes)))
        self.cases.extend(found)
        return found

    def removeCases(self, indexes):
        """Remove the cases at these list positions; the files staged for scene cases are deleted."""
        for index in sorted(set(indexes), reverse=True):
            case = self.cases.pop(index)
            if self.stagingFolder in case.segmentation.parents:
                shutil.rmtree(case.segmentation.parent, ignore_errors=True)

    @staticmethod
    def nextCaseId(caseId):
        """case_001 -> case_002; a name without a trailing number gets _2."""
        stem = caseId.rstrip("0123456789")
        digits = caseId[len(stem):]
        return f"{stem}{int(digits) + 1:0{len(digits)}d}" if digits else f"{caseId}_2"
