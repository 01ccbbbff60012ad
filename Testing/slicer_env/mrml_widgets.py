"""Stand-ins for Slicer's Qt MRML widgets (``slicer.qMRML*``), driven by the real MRML scene.

``qMRMLNodeComboBox`` lists the scene's nodes as Slicer's does: every node that ``IsA`` one of
``nodeTypes`` (so subclasses are included unless ``showChildNodeTypes`` is off or they are in
``hideChildNodeTypes``), not hidden from editors; with ``noneEnabled`` off it selects the first such node
when the scene is set or a node is added, and it follows node removal.
"""

from __future__ import annotations

from typing import Any

from qt import QObject, QWidget, signal


class qMRMLWidget(QWidget):
    mrmlSceneChanged = signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._scene = None

    def setMRMLScene(self, scene: Any) -> None:
        self._scene = scene
        self.mrmlSceneChanged.emit(scene)

    def mrmlScene(self) -> Any:
        return self._scene


class qMRMLNodeComboBox(qMRMLWidget):
    #: Every combo box observing a scene, so that :func:`release_all` can stop them before the scene goes.
    observing: list = []

    currentNodeChanged = signal()
    currentNodeIDChanged = signal()
    nodeTypes: list = []
    hideChildNodeTypes: list = []
    showChildNodeTypes: bool = True
    noneEnabled: bool = False
    addEnabled: bool = True
    removeEnabled: bool = True
    renameEnabled: bool = False
    editEnabled: bool = False
    selectNodeUponCreation: bool = True
    baseName: str = ""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._current = None
        self._observations: list[int] = []

    def setMRMLScene(self, scene: Any) -> None:
        if self._scene is not None:
            for tag in self._observations:
                self._scene.RemoveObserver(tag)
        super().setMRMLScene(scene)
        self._observations = [scene.AddObserver(scene.NodeAddedEvent, self._onNodeAdded),
                              scene.AddObserver(scene.NodeRemovedEvent, self._onNodeRemoved)]
        qMRMLNodeComboBox.observing.append(self)
        if self._current is None and not self.noneEnabled:
            nodes = self.nodes()
            self.setCurrentNode(nodes[0] if nodes else None)

    def _accepts(self, node: Any) -> bool:
        if node is None or node.GetHideFromEditors():
            return False
        for node_type in self.nodeTypes:
            if node.IsA(node_type):
                exact = node.GetClassName() == node_type
                hidden = any(node.IsA(hidden) for hidden in self.hideChildNodeTypes)
                if exact or (self.showChildNodeTypes and not hidden):
                    return True
        return False

    def nodes(self) -> list[Any]:
        if self._scene is None:
            return []
        nodes = (self._scene.GetNthNode(i) for i in range(self._scene.GetNumberOfNodes()))
        return [node for node in nodes if self._accepts(node)]

    def nodeCount(self) -> int:
        return len(self.nodes())

    def currentNode(self) -> Any:
        return self._current

    def currentNodeID(self) -> str:
        return self._current.GetID() if self._current is not None else ""

    def setCurrentNode(self, node: Any) -> None:
        if node is not None and not self._accepts(node):
            return  # Qt: a node the combo box does not list cannot become current
        if node is self._current:
            return
        self._current = node
        self.currentNodeChanged.emit(node)
        self.currentNodeIDChanged.emit(self.currentNodeID())

    def setCurrentNodeID(self, node_id: str) -> None:
        self.setCurrentNode(self._scene.GetNodeByID(node_id) if node_id else None)

    def _onNodeAdded(self, scene: Any, event: Any) -> None:
        if self._current is None and not self.noneEnabled:
            nodes = self.nodes()
            if nodes:
                self.setCurrentNode(nodes[0])

    def _onNodeRemoved(self, scene: Any, event: Any) -> None:
        if self._current is not None and self._scene.GetNodeByID(self._current.GetID()) is None:
            nodes = self.nodes()
            self._current = None
            self.setCurrentNode(None if self.noneEnabled or not nodes else nodes[0])
            if self._current is None:
                self.currentNodeChanged.emit(None)


class qMRMLCheckableNodeComboBox(qMRMLNodeComboBox):
    checkedNodesChanged = signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._checked: list[Any] = []

    def checkedNodes(self) -> list[Any]:
        return [n for n in self._checked if self._scene is not None and self._scene.GetNodeByID(n.GetID()) is n]

    def setCheckState(self, node: Any, state: int) -> None:
        if state and node not in self._checked and self._accepts(node):
            self._checked.append(node)
        elif not state and node in self._checked:
            self._checked.remove(node)
        self.checkedNodesChanged.emit()


class qMRMLPlotWidget(qMRMLWidget):
    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._viewNode = None

    def setMRMLPlotViewNode(self, node: Any) -> None:
        self._viewNode = node

    def mrmlPlotViewNode(self) -> Any:
        return self._viewNode


class qSlicerScriptedLoadableModuleWidget(qMRMLWidget):
    """The panel Slicer gives a scripted module's widget: ``isEntered`` while the module is shown."""

    isEntered: bool = False


class qMRMLSliderWidget(QWidget):
    pass


class qMRMLSpinBox(QWidget):
    pass


class qMRMLRangeWidget(QWidget):
    pass


def release_all() -> None:
    """Remove the scene observers of every combo box (Qt destroys widgets before the scene)."""
    for combo in qMRMLNodeComboBox.observing:
        if combo._scene is not None:
            for tag in combo._observations:
                combo._scene.RemoveObserver(tag)
        combo._observations = []
    qMRMLNodeComboBox.observing.clear()


WIDGET_CLASSES = {cls.__name__: cls for cls in (qMRMLWidget, qMRMLNodeComboBox, qMRMLCheckableNodeComboBox,
                                                qMRMLPlotWidget)}
CLASSES = {cls.__name__: cls for cls in (qMRMLWidget, qMRMLNodeComboBox, qMRMLCheckableNodeComboBox, qMRMLPlotWidget,
                                         qSlicerScriptedLoadableModuleWidget, qMRMLSliderWidget, qMRMLSpinBox,
                                         qMRMLRangeWidget)}
