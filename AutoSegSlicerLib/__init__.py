"""Slicer-side helpers shared by AutoSegPlanner, AutoSegTrainer and AutoSegInference.

Everything that can be written without Slicer lives in ``autoseg.slicer_support`` (tested in CI);
this package only adds what needs ``slicer``/``qt``: installing dependencies, running AutoSeg commands
in the background from a Qt timer (and following the Planner's export through its output), writing scene
nodes to case files, adding a corrected result to its model's dataset (the annotation loop), and the
workspace folder kept in the application settings. It imports AutoSegCore
only inside functions, so that an unsupported Slicer gets ``compatibility``'s explanation instead of an
import error.
"""

from AutoSegSlicerLib.annotation import (
    CorrectedCaseExport,
    CorrectedCaseWidgetMixin,
    annotatedSlicesRequest,
    openInSegmentEditor,
)
from AutoSegSlicerLib.casefiles import imageVolumeNodes, writeCaseVolumes, writeSegmentationInFrameOf
from AutoSegSlicerLib.compatibility import (
    requireSupportedSlicer,
    showUnsupportedSlicer,
    unsupportedSlicerMessage,
)
from AutoSegSlicerLib.dependencies import dependenciesMissing, ensureDependencies, setUpDependencyPanel
from AutoSegSlicerLib.export import PlannerExport
from AutoSegSlicerLib.process import ProcessRunner, pythonSlicerExecutable
from AutoSegSlicerLib.settings import defaultWorkspaceFolder, setWorkspaceFolder, workspaceFolder
from AutoSegSlicerLib.widgets import ParameterNodeWidgetMixin, fillTable

__all__ = [
    "CorrectedCaseExport",
    "CorrectedCaseWidgetMixin",
    "ParameterNodeWidgetMixin",
    "PlannerExport",
    "ProcessRunner",
    "annotatedSlicesRequest",
    "defaultWorkspaceFolder",
    "dependenciesMissing",
    "ensureDependencies",
    "fillTable",
    "imageVolumeNodes",
    "openInSegmentEditor",
    "pythonSlicerExecutable",
    "requireSupportedSlicer",
    "setUpDependencyPanel",
    "setWorkspaceFolder",
    "showUnsupportedSlicer",
    "unsupportedSlicerMessage",
    "workspaceFolder",
    "writeCaseVolumes",
    "writeSegmentationInFrameOf",
]
