"""Stand-in for CTK's Python module: the widgets the AutoSeg .ui files use, plus the class names Slicer's
parameter-node GUI connectors compare widget types against (never instantiated by the modules)."""

from __future__ import annotations

from qt import QAbstractButton, QComboBox, QDoubleSpinBox, QWidget, _ValueProperty, signal


class ctkPathLineEdit(QWidget):
    """``currentPath`` emits ``currentPathChanged`` whenever its text changes, also when set from code."""

    currentPathChanged = signal()
    currentPath = _ValueProperty("currentPathChanged", "", lambda w, v: str(v))
    filters: int = 0
    nameFilters: list = []
    settingKey: str = ""
    label: str = ""

    def setCurrentPath(self, path: str) -> None:
        self.currentPath = path

    Dirs, Files, Drives, NoDot, NoDotDot, Readable, Writable, Executable = 1, 2, 4, 8192, 16384, 16, 32, 64


class ctkCollapsibleButton(QWidget):
    contentsCollapsed = signal()
    text: str = ""
    collapsed: bool = False


class ctkCheckBox(QAbstractButton):
    pass


class ctkCheckablePushButton(QAbstractButton):
    pass


class ctkComboBox(QComboBox):
    pass


class ctkDoubleSpinBox(QDoubleSpinBox):
    pass


class ctkSliderWidget(QDoubleSpinBox):
    pass


class ctkDoubleSlider(QDoubleSpinBox):
    pass


class ctkRangeWidget(QWidget):
    pass


class ctkDoubleRangeSlider(QWidget):
    pass


class ctkDirectoryButton(QWidget):
    directoryChanged = signal()
    directory = _ValueProperty("directoryChanged", "", lambda w, v: str(v))


class ctkColorPickerButton(QWidget):
    colorChanged = signal()


WIDGET_CLASSES = {cls.__name__: cls for cls in (ctkPathLineEdit, ctkCollapsibleButton, ctkCheckBox, ctkComboBox,
                                                ctkDoubleSpinBox, ctkSliderWidget, ctkDirectoryButton)}
