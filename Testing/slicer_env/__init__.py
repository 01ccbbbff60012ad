"""Run the AutoSeg Slicer modules in CI on Slicer's real libraries.

- MRML scene, nodes, storage nodes and the Volumes/Segmentations/Colors/Transforms logics: the real
  compiled ones from the ``slicer-core`` wheel (``import slicer``).
- ``slicer.util``, ``slicer.i18n``, ``slicer.parameterNodeWrapper`` (typed parameter nodes and their GUI
  connectors) and ``slicer.ScriptedLoadableModule``: Slicer's own Python sources of a given release, read
  from ``../shared/slicer-python/<version>/slicer``.
- Stand-ins only for what needs the Qt application: ``qt``/``ctk`` (timers, settings, the widgets the
  modules' .ui files use), the ``slicer.qMRML*`` widgets, ``slicer.app`` with its IO manager, and
  ``slicer.modules`` (see :mod:`.application`).

``install(version, temporary)`` sets this up in ``sys.modules``; ``uninstall()`` takes it down again;
``load_module(name)`` imports ``<ROOT>/<name>/<name>.py`` as Slicer's module loader would.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SLICER_PYTHON = importlib.import_module("external_test_data").SLICER_PYTHON  # AUTOSEG_SLICER_PYTHON
VERSIONS = ("5.10", "main")
MODULES = ("AutoSegPlanner", "AutoSegTrainer", "AutoSegInference")
_SHARED_MODULES = ("util", "i18n", "parameterNodeWrapper", "ScriptedLoadableModule")
_OWN_MODULES = {"AutoSegSlicerLib", *MODULES, "AutoSegEndToEndTest"}


class Environment:
    """One installed Slicer environment: the real scene, the application stand-in, loaded modules."""

    #: The environment installed now (one per process at a time).
    current: Environment | None = None

    def __init__(self, version: str, slicer: types.ModuleType, application: object) -> None:
        self.version, self.slicer, self.app = version, slicer, application
        self.widgets: list = []

    @property
    def scene(self):
        return self.slicer.mrmlScene

    def load_module(self, name: str) -> types.ModuleType:
        """Import a scripted module file and register ``slicer.modules.<name lower>`` with its path."""
        path = ROOT / name / f"{name}.py" if (ROOT / name).is_dir() else ROOT / "Testing" / "Python" / f"{name}.py"
        module = _load_file(name, path)
        from .application import _LogicModule

        setattr(self.slicer.modules, name.lower(), _LogicModule(name, path=str(path)))
        return module

    def create_module(self, name: str) -> tuple[types.ModuleType, ModuleParent]:
        """Load a module file and construct its module class as Slicer's module factory does."""
        module = self.load_module(name)
        parent = ModuleParent(str(ROOT / name / f"{name}.py"))
        getattr(module, name)(parent)
        return module, parent

    def open_module(self, name: str):
        """The module's widget as Slicer shows it: constructed on a module panel, ``setup()``, ``enter()``."""
        module, _parent = self.create_module(name)
        panel = self.slicer.qSlicerScriptedLoadableModuleWidget()
        panel.setLayout(sys.modules["qt"].QVBoxLayout())
        panel.setMRMLScene(self.scene)
        widget = getattr(module, f"{name}Widget")(panel)
        widget.setup()
        panel.isEntered = True
        widget.enter()
        self.widgets.append(widget)
        return widget

    def process_events(self, seconds: float = 0.0) -> None:
        import time

        deadline = time.monotonic() + seconds
        while True:
            self.app.processEvents()
            if time.monotonic() >= deadline:
                return
            time.sleep(0.02)


class ModuleParent:
    """Stand-in for ``qSlicerScriptedLoadableModule``: the properties a scripted module's class sets."""

    __slots__ = ("path", "title", "categories", "dependencies", "contributors", "helpText", "acknowledgementText",
                 "icon")

    def __init__(self, path: str) -> None:
        self.path = path


def _load_file(name: str, path: Path, package_folder: Path | None = None) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(
        name, path, submodule_search_locations=[str(package_folder)] if package_folder else None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def install(version: str, temporary: Path, translations: dict[tuple[str, str], str] | None = None) -> Environment:
    """Set up ``slicer`` (real MRML + Slicer ``version``'s Python library + Qt stand-ins) for this process."""
    if version not in VERSIONS:
        raise ValueError(f"unknown Slicer version {version!r}; have {VERSIONS}")
    source = SLICER_PYTHON / version / "slicer"
    if not source.is_dir():
        raise FileNotFoundError(f"Slicer's Python library for {version} is missing: {source}")
    from . import qt as qt_module

    sys.modules["qt"] = qt_module
    qt_module.QTimer.active.clear()
    qt_module.QSettings.store.clear()
    qt_module.QFileDialog.answers.clear()
    from . import ctk as ctk_module

    sys.modules["ctk"] = ctk_module
    import slicer  # the slicer-core wheel: MRML and the module logics

    from . import mrml_widgets
    from .application import Application

    if not hasattr(slicer, "_wheel_util"):
        slicer._wheel_util = slicer.util
    for name, cls in mrml_widgets.CLASSES.items():
        setattr(slicer, name, cls)
    qt_module.WIDGET_CLASSES.update(ctk_module.WIDGET_CLASSES)
    qt_module.WIDGET_CLASSES.update(mrml_widgets.WIDGET_CLASSES)
    temporary.mkdir(parents=True, exist_ok=True)
    scene = slicer.vtkMRMLScene()
    application = Application(scene, temporary, translations)
    slicer.mrmlScene = scene
    slicer.app = application
    slicer.modules = application.modules
    for name in _SHARED_MODULES:  # Slicer's own Python, this release
        folder = source / name
        module = (_load_file(f"slicer.{name}", folder / "__init__.py", folder) if folder.is_dir()
                  else _load_file(f"slicer.{name}", source / f"{name}.py"))
        setattr(slicer, name, module)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))  # AutoSegSlicerLib, as Slicer's scripted-module path provides it
    Environment.current = Environment(version, slicer, application)
    return Environment.current


def uninstall() -> None:
    """Remove what :func:`install` put into ``sys.modules`` and release the scene and logics."""
    import slicer

    from . import mrml_widgets

    if Environment.current is not None:
        for widget in Environment.current.widgets:  # as Slicer does when it unloads a module
            widget.cleanup()
        Environment.current = None
    mrml_widgets.release_all()
    application = getattr(slicer, "app", None)
    if application is not None:
        application.release()
    for attribute in ("app", "mrmlScene", "modules", "selfTests"):
        if hasattr(slicer, attribute):
            delattr(slicer, attribute)
    if hasattr(slicer, "_wheel_util"):
        slicer.util = slicer._wheel_util
        sys.modules["slicer.util"] = slicer._wheel_util
    for name in list(sys.modules):
        top = name.split(".")[0]
        if top in _OWN_MODULES or name in ("qt", "ctk") or any(
                name == f"slicer.{shared}" or name.startswith(f"slicer.{shared}.") for shared in _SHARED_MODULES[1:]):
            del sys.modules[name]
    if str(ROOT) in sys.path:
        sys.path.remove(str(ROOT))
