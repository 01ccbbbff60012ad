"""Stand-in for the Qt half of the Slicer application (``slicer.app``, ``slicer.modules``), over real MRML.

What Slicer's ``qSlicerApplication`` does through Qt is done here with the same real MRML objects, in the
same order as Slicer's C++ (``Base/QTCore/qSlicerCoreIOManager.cxx``, ``qSlicerNodeWriter``,
``qSlicerVolumesReader``, ``qSlicerSegmentationsReader``):

- ``exportNodes`` copies each node into a temporary scene (deep copy when hardening), hardens its parent
  transform there when asked, adds the node's *default* storage node and writes with it, so a file gets
  exactly what Slicer's storage node writes (e.g. a segmentation's source representation only);
- ``fileWriterExtensions`` lists what that default storage node can write;
- ``loadNodes`` reads volumes with the Volumes logic (``AddArchetypeVolume``, label-map bit) and
  segmentations with the Segmentations logic.

The module logics are the real ones from ``slicer-core``, registered on a real application logic (the
Volumes logic needs the Colors logic); Python keeps the references.
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import qt
import slicer
import vtk

VOLUME_EXTENSIONS = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd", ".hdr", ".img", ".img.gz", ".tif", ".tiff")
SEGMENTATION_EXTENSIONS = (".seg.nrrd", ".seg.nhdr", ".seg.vtm")


class _ModuleManager:
    def connect(self, signal: str, slot: Any) -> None:
        pass

    def disconnect(self, signal: str, slot: Any) -> None:
        pass


class _LogicModule:
    """``slicer.modules.<name>``: the module's ``logic()`` and, for scripted modules, its ``path``."""

    def __init__(self, name: str, logic: Any = None, path: str = "") -> None:
        self.name, self._logic, self.path = name, logic, path

    def logic(self) -> Any:
        if self._logic is None:
            raise NotImplementedError(f"the stand-in Slicer has no logic for module {self.name}")
        return self._logic


class CoreIOManager:
    """The parts of ``qSlicerCoreIOManager`` that ``slicer.util`` calls."""

    def __init__(self, application: Application) -> None:
        self.application = application

    # writing ---------------------------------------------------------------------------------------

    @staticmethod
    def fileWriterExtensions(node: Any) -> list[str]:
        if not node.AddDefaultStorageNode():  # Slicer does this on the node itself, too
            return []
        types_ = node.GetStorageNode().GetSupportedWriteFileTypes()
        return [types_.GetValue(i) for i in range(types_.GetNumberOfValues())]

    def extractKnownExtension(self, file_name: str, node: Any) -> str:
        longest = ""
        for file_format in self.fileWriterExtensions(node):
            extension = slicer.vtkDataFileFormatHelper.GetFileExtensionFromFormatString(file_format)
            if extension and file_name.endswith(extension) and len(extension) > len(longest):
                longest = extension
        return longest

    def exportNodes(self, node_ids: list[str], file_names: list[str], properties: dict, harden_transforms: bool,
                    user_messages: Any = None) -> bool:
        scene = self.application.scene
        temporary = slicer.vtkMRMLScene()
        scene.CopyDefaultNodesToScene(temporary)
        scene.CopyRegisteredNodesToScene(temporary)
        scene.CopySingletonNodesToScene(temporary)
        temporary.SetDataIOManager(scene.GetDataIOManager())
        success = True
        for node_id, file_name in zip(node_ids, file_names):
            node = scene.GetNodeByID(node_id)
            if node is None or not node.IsA("vtkMRMLStorableNode"):
                if user_messages is not None:
                    user_messages.AddMessage(vtk.vtkCommand.ErrorEvent,
                                             f"Unable to find a storable node with ID {node_id}")
                success = False
                continue
            copy = temporary.AddNewNodeByClass(node.GetClassName())
            copy.CopyContent(node, harden_transforms)
            parent = node.GetParentTransformNode() if node.IsA("vtkMRMLTransformableNode") else None
            if harden_transforms and parent is not None:
                transform = vtk.vtkGeneralTransform()
                parent.GetTransformFromWorld(transform)
                composite = temporary.AddNewNodeByClass("vtkMRMLTransformNode")
                composite.SetAndObserveTransformFromParent(transform)
                copy.SetAndObserveTransformNodeID(composite.GetID())
                copy.HardenTransform()
            if not copy.AddDefaultStorageNode():
                success = False
                continue
            if node.IsA("vtkMRMLDisplayableNode") and node.GetDisplayNode() is not None:
                display = temporary.AddNewNodeByClass(node.GetDisplayNode().GetClassName())
                display.CopyContent(node.GetDisplayNode(), False)
                copy.SetAndObserveDisplayNodeID(display.GetID())
            storage = copy.GetStorageNode()
            storage.SetFileName(file_name)
            if properties.get("fileFormat"):
                storage.SetWriteFileFormat(properties["fileFormat"])
            storage.SetURI(None)
            if "useCompression" in properties:
                storage.SetUseCompression(int(properties["useCompression"]))
            if not storage.WriteData(copy):
                success = False
            if user_messages is not None and storage.GetUserMessages() is not None:
                user_messages.AddMessages(storage.GetUserMessages())
        temporary.Clear(1)
        return success

    # reading ---------------------------------------------------------------------------------------

    @staticmethod
    def fileType(file_name: str) -> str:
        lower = file_name.lower()
        if lower.endswith(SEGMENTATION_EXTENSIONS):
            return "SegmentationFile"
        if lower.endswith(VOLUME_EXTENSIONS):
            return "VolumeFile"
        raise NotImplementedError(f"the stand-in Slicer cannot tell the file type of {file_name}")

    def loadNodes(self, file_type: str, properties: dict, loaded_nodes: Any = None, user_messages: Any = None) -> bool:
        file_name = str(properties["fileName"])
        if file_type == "VolumeFile":
            node = self._loadVolume(file_name, properties, user_messages)
        elif file_type == "SegmentationFile":
            node = self.application.modules.segmentations.logic().LoadSegmentationFromFile(
                file_name, bool(properties.get("autoOpacities", True)), properties.get("name", ""))
        else:
            raise NotImplementedError(f"the stand-in Slicer has no reader for {file_type}")
        if node is None:
            if user_messages is not None and user_messages.GetNumberOfMessages() == 0:
                user_messages.AddMessage(vtk.vtkCommand.ErrorEvent, f"Loading {file_name} - load failed.")
            return False
        if loaded_nodes is not None:
            loaded_nodes.AddItem(node)
        return True

    def _loadVolume(self, file_name: str, properties: dict, user_messages: Any) -> Any:
        name = properties.get("name") or Path(file_name).name.split(".")[0]  # QFileInfo::baseName
        options = 0
        for bit, key in ((0x1, "labelmap"), (0x2, "center"), (0x4, "singleFile"), (0x8, "autoWindowLevel"),
                         (0x10, "discardOrientation")):
            if properties.get(key):
                options |= bit
        logic = self.application.modules.volumes.logic()
        node = logic.AddArchetypeVolume(file_name, name, options, None, user_messages)
        if node is not None and properties.get("colorNodeID") and node.GetDisplayNode() is not None:
            node.GetDisplayNode().SetAndObserveColorNodeID(properties["colorNodeID"])
        return node


class Application:
    """``slicer.app``: temporary folder, event processing, translation, settings and the IO manager."""

    def __init__(self, scene: Any, temporary: Path, translations: dict[tuple[str, str], str] | None = None) -> None:
        self.scene = scene
        self.temporaryPath = str(temporary)
        self.slicerHome = str(temporary)
        self.applicationName = "Slicer"
        self.documentationBaseUrl = "https://slicer.readthedocs.io/en/latest/"
        self.translations = translations or {}
        self.applicationLogic = slicer.vtkSlicerApplicationLogic()
        self.applicationLogic.SetMRMLScene(scene)
        self.applicationLogic.SetHomeDirectory(str(temporary))
        (temporary / "share" / "ColorFiles").mkdir(parents=True, exist_ok=True)  # no default colour files
        self.applicationLogic.SetShareDirectory("share")
        self.dataIOManager = slicer.vtkDataIOManager()  # its file format helper lists the ITK writers
        scene.SetDataIOManager(self.dataIOManager)
        self.logics: dict[str, Any] = {}
        self._register("colors", "Colors", slicer.vtkSlicerColorLogic())
        self._register("volumes", "Volumes", slicer.vtkSlicerVolumesLogic())
        self._register("segmentations", "Segmentations", slicer.vtkSlicerSegmentationsModuleLogic())
        self._register("transforms", "Transforms", slicer.vtkSlicerTransformLogic())
        self.modules = types.SimpleNamespace(**{key: _LogicModule(key, logic) for key, logic in self.logics.items()})
        self._ioManager = CoreIOManager(self)
        self._moduleManager = _ModuleManager()

    def _register(self, key: str, name: str, logic: Any) -> None:
        logic.SetMRMLApplicationLogic(self.applicationLogic)
        logic.SetMRMLScene(self.scene)
        self.applicationLogic.SetModuleLogic(name, logic)
        self.logics[key] = logic  # Python must hold the logics (they are not owned by the application logic)

    def processEvents(self) -> None:
        qt.QTimer.fire_due()

    def testingEnabled(self) -> bool:
        return True  # as under ctest: message boxes are logged, confirmations answer their testing value

    def translate(self, context: str, text: str) -> str:
        return self.translations.get((context, text), text)

    def coreIOManager(self) -> CoreIOManager:
        return self._ioManager

    def moduleManager(self) -> _ModuleManager:
        return self._moduleManager

    def setOverrideCursor(self, cursor: Any) -> None:
        pass

    def restoreOverrideCursor(self) -> None:
        pass

    def userSettings(self) -> qt.QSettings:
        return qt.QSettings()

    def settings(self) -> qt.QSettings:
        return qt.QSettings()

    def moduleDocumentationUrl(self, module_name: str) -> str:
        return self.documentationBaseUrl + module_name

    def release(self) -> None:
        self.scene.Clear(1)
        for logic in self.logics.values():
            logic.SetMRMLScene(None)
        self.logics.clear()
