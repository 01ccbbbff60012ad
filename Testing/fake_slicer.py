"""A minimal stand-in for Slicer's Python API, so the modules' Logic classes run in CI without Slicer.

It implements only what the Logic code paths under test touch: the scripted-module base classes, a
parameter-node decorator, ``tr``, a Qt timer driven by ``slicer.app.processEvents()``, temporary
folders, and table/plot nodes that record what was written to them. Anything else raises, so a test
cannot pass by silently skipping Slicer behaviour. The real thing is exercised by the Slicer self-tests.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


class _Signal:
    def __init__(self) -> None:
        self._slots = []

    def connect(self, slot) -> None:
        self._slots.append(slot)

    def emit(self, *args) -> None:
        for slot in list(self._slots):
            slot(*args)


class QTimer:
    """Fires when ``slicer.app.processEvents()`` runs (the only event loop here)."""

    active: list[QTimer] = []

    def __init__(self) -> None:
        self.timeout = _Signal()
        self.interval = 0

    def setInterval(self, milliseconds: int) -> None:
        self.interval = milliseconds

    def start(self) -> None:
        if self not in QTimer.active:
            QTimer.active.append(self)

    def stop(self) -> None:
        if self in QTimer.active:
            QTimer.active.remove(self)

    def isActive(self) -> bool:
        return self in QTimer.active


class _App:
    def __init__(self, temporary: Path) -> None:
        self.temporaryPath = str(temporary)
        self.slicerHome = str(temporary)

    @staticmethod
    def processEvents() -> None:
        for timer in list(QTimer.active):
            timer.timeout.emit()


class TableNode:
    """Records the columns written by ``slicer.util.updateTableFromArray``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.columns: dict[str, np.ndarray] = {}
        self.id = f"vtkMRMLTableNode_{name}"

    def GetID(self) -> str:
        return self.id


class _RecordingNode:
    """Plot chart/series nodes: every setter is recorded; nothing is rendered."""

    PlotTypeScatter = 1
    MarkerStyleNone = 0

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[tuple[str, tuple]] = []

    def GetID(self) -> str:
        return f"node_{self.name}"

    def __getattr__(self, method: str):
        if not method[:1].isupper():
            raise AttributeError(method)
        return lambda *args: self.calls.append((method, args))


class _Scene:
    def __init__(self) -> None:
        self.nodes: dict[str, object] = {}

    def AddNewNodeByClass(self, class_name: str, name: str = ""):
        node = TableNode(name) if class_name == "vtkMRMLTableNode" else _RecordingNode(name)
        self.nodes[node.GetID()] = node
        return node

    def GetNodeByID(self, node_id: str):
        return self.nodes.get(node_id)


def _update_table_from_array(node: TableNode, array, column_names) -> None:
    array = np.asarray(array)
    node.columns = {name: array[:, i] for i, name in enumerate(column_names)}


def _unavailable(name: str):
    def call(*args, **kwargs):
        raise NotImplementedError(f"slicer.{name} is not available in the fake Slicer used by CI")
    return call


def install(temporary: Path) -> types.ModuleType:
    """Put fake ``slicer``, ``qt``, ``vtk`` modules into ``sys.modules``; returns the fake ``slicer``."""
    slicer = types.ModuleType("slicer")
    slicer.app = _App(temporary)
    slicer.mrmlScene = _Scene()
    slicer.vtkMRMLScalarVolumeNode = type("vtkMRMLScalarVolumeNode", (), {})
    slicer.vtkMRMLSegmentationNode = type("vtkMRMLSegmentationNode", (), {})
    util = types.ModuleType("slicer.util")
    util.startupEnvironment = lambda: dict(os.environ)
    util.updateTableFromArray = _update_table_from_array
    util.VTKObservationMixin = type("VTKObservationMixin", (), {})
    for name in ("exportNode", "loadLabelVolume", "confirmOkCancelDisplay", "pip_install", "errorDisplay"):
        setattr(util, name, _unavailable(f"util.{name}"))
    slicer.util = util
    i18n = types.ModuleType("slicer.i18n")
    i18n.tr = lambda text: text
    wrapper = types.ModuleType("slicer.parameterNodeWrapper")
    wrapper.parameterNodeWrapper = lambda cls: cls
    wrapper.Choice = lambda choices: ("Choice", tuple(choices))
    wrapper.WithinRange = lambda low, high: ("WithinRange", low, high)
    scripted = types.ModuleType("slicer.ScriptedLoadableModule")

    class ScriptedLoadableModuleLogic:
        def __init__(self, parent=None) -> None:
            pass

    scripted.ScriptedLoadableModuleLogic = ScriptedLoadableModuleLogic
    for name in ("ScriptedLoadableModule", "ScriptedLoadableModuleWidget"):
        setattr(scripted, name, type(name, (), {}))
    scripted.ScriptedLoadableModuleTest = type("ScriptedLoadableModuleTest", (), {})
    qt = types.ModuleType("qt")
    qt.QTimer = QTimer
    vtk = types.ModuleType("vtk")
    vtk.vtkCommand = types.SimpleNamespace(ModifiedEvent=33)
    modules = {"slicer": slicer, "slicer.util": util, "slicer.i18n": i18n, "slicer.parameterNodeWrapper": wrapper,
               "slicer.ScriptedLoadableModule": scripted, "qt": qt, "vtk": vtk}
    sys.modules.update(modules)
    sys.path.insert(0, str(ROOT))  # AutoSegSlicerLib
    return slicer


def load_module(name: str) -> types.ModuleType:
    """Import ``<ROOT>/<name>/<name>.py`` (a Slicer module file) under the fake Slicer."""
    spec = importlib.util.spec_from_file_location(name, ROOT / name / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def uninstall() -> None:
    for name in [n for n in sys.modules if n.split(".")[0] in {"slicer", "qt", "vtk", "AutoSegSlicerLib",
                                                               "AutoSegPlanner", "AutoSegTrainer", "AutoSegInference"}]:
        del sys.modules[name]
    if str(ROOT) in sys.path:
        sys.path.remove(str(ROOT))
    QTimer.active.clear()


def temporary_folder() -> Path:
    return Path(tempfile.mkdtemp(prefix="fake-slicer-"))
