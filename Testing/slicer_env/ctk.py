"""Stand-in for CTK's Python module: the widgets the AutoSeg .ui files use, plus the class names Slicer's
parameter-node GUI connectors compare widget types against (never instantiated by the modules)."""

from __future__ import annotations

from qt import QAbstractButton, QComboBox, QDoubleSpinBox, QWidget, _ValueProperty, signal


class ctkPathLineEdit(QWidget):  # noqa: N801
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


class ctkCollapsibleButton(QWidget):  # noqa: N801
    contentsCollapsed = signal()
    text: str = ""
    collapsed: bool = False


class ctkCheckBox(QAbstractButton):  # noqa: N801
    pass


class ctkCheckablePushButton(QAbstractButton):  # noqa: N801
    pass


class ctkComboBox(QComboBox):  # noqa: N801
    pass


class ctkDoubleSpinBox(QDoubleSpinBox):  # noqa: N801
    pass


class ctkSliderWidget(QDoubleSpinBox):  # noqa: N801
    pass


class ctkDoubleSlider(QDoubleSpinBox):  # noqa: N801
    pass


class ctkRangeWidget(QWidget):  # noqa: N801
    pass


class ctkDoubleRangeSlider(QWidget):  # noqa: N801
    pass


class ctkDirectoryButton(QWidget):  # noqa: N801
    directoryChanged = signal()
    directory = _ValueProperty("directoryChanged", "", lambda w, v: str(v))


class ctkColorPickerButton(QWidget):  # noqa: N801
    colorChanged = signal()


WIDGET_CLASSES = {cls.__name__: cls for cls in (ctkPathLineEdit, ctkCollapsibleButton, ctkCheckBox, ctkComboBox,
                                                ctkDoubleSpinBox, ctkSliderWidget, ctkDirectoryButton)}
