"""Small Qt conveniences shared by the AutoSeg module widgets."""

from pathlib import Path

import qt


def fillTable(table, rows, columns=None):
    """Replace the content of a QTableWidget with ``rows`` (sequences of text); set headers when given."""
    if columns is not None:
        table.setColumnCount(len(columns))
        table.setHorizontalHeaderLabels(list(columns))
    table.setRowCount(len(rows))
    for row, values in enumerate(rows):
        for column, text in enumerate(values):
            table.setItem(row, column, qt.QTableWidgetItem(str(text)))
    table.resizeColumnsToContents()


class ParameterNodeWidgetMixin:
    """Parameter-node plumbing shared by the AutoSeg module widgets (Slicer's scripted-module template).

    The widget provides ``self.ui``, ``self.logic`` (with ``getParameterNode()`` and ``runner``) and
    ``updateButtons()``; the parameter node has a ``workspaceFolder``. ``onParameterNodeReady`` is the
    hook for module-specific defaults.
    """

    _parameterNode = None
    _parameterNodeGuiTag = None

    def observeSceneClose(self):
        import slicer

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

    def cleanup(self):
        self.removeObservers()
        if self.logic is not None:  # None where setup() stopped at the unsupported-Slicer message
            self.logic.runner.cancel()

    def enter(self):
        if self.logic is not None:
            self.initializeParameterNode()

    def exit(self):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None

    def onSceneStartClose(self, caller, event):
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self):
        from AutoSegSlicerLib.settings import workspaceFolder

        parameterNode = self.logic.getParameterNode()
        if str(parameterNode.workspaceFolder) in ("", "."):  # a new scene: the saved workspace, before the GUI sees it
            parameterNode.workspaceFolder = workspaceFolder()
        self.setParameterNode(parameterNode)
        self.onParameterNodeReady()

    def followWorkspaceFolder(self, refresh):
        """When the user picks another workspace folder: save it and call ``refresh()``.

        Connect this after ``initializeParameterNode()``: ``connectGui`` writes the parameter into the path
        widget, which emits ``currentPathChanged``. The slot takes the path from the signal and writes the
        parameter itself, so it does not depend on running after the parameter node's own slot (which is
        connected again on every ``enter()``).
        """
        from AutoSegSlicerLib.settings import setWorkspaceFolder

        def changed(path):
            if not path or path == ".":
                return
            if self._parameterNode and str(self._parameterNode.workspaceFolder) != path:
                self._parameterNode.workspaceFolder = Path(path)
            setWorkspaceFolder(path)
            refresh()

        self.ui.workspacePathLineEdit.currentPathChanged.connect(changed)

    def onParameterNodeReady(self):
        pass

    def setParameterNode(self, inputParameterNode):
        import vtk

        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)
            self.updateButtons()
