"""Stand-in for PythonQt's ``qt`` module: the Qt application parts the AutoSeg modules and Slicer's own
Python library touch, behaving as PythonQt does.

PythonQt semantics kept here: Qt properties are plain attributes (``label.text = ...``,
``button.enabled``), signals are attributes with ``connect``/``disconnect``/``emit``, a slot may take fewer
arguments than the signal carries, signals fire on programmatic changes too (``setCurrentPath`` emits
``currentPathChanged``, ``setValue`` emits ``valueChanged``), and slots run in connection order. Setting an
attribute that is not a property of the class raises, so a misspelt property cannot pass unnoticed.
Only the event loop is simulated: ``slicer.app.processEvents()`` fires due timers.
"""

from __future__ import annotations

import inspect
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from pathlib import Path
from typing import Any


class Signal:
    """A bound signal: slots called in connection order with as many arguments as they accept."""

    def __init__(self) -> None:
        self._slots: list[Callable] = []

    def connect(self, slot: Callable) -> None:
        self._slots.append(slot)

    def disconnect(self, slot: Callable | None = None) -> None:
        if slot is None:
            self._slots.clear()
        elif slot in self._slots:
            self._slots.remove(slot)
        else:
            raise RuntimeError("disconnect: the slot is not connected")  # PythonQt raises too

    def emit(self, *args: Any) -> None:
        for slot in list(self._slots):
            slot(*args[:_accepted_arguments(slot, len(args))])


def _accepted_arguments(slot: Callable, available: int) -> int:
    try:
        parameters = inspect.signature(slot).parameters.values()
    except (TypeError, ValueError):
        return available
    if any(p.kind == p.VAR_POSITIONAL for p in parameters):
        return available
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return min(available, len(positional))


class signal:
    """Class attribute declaring a signal; each instance gets its own :class:`Signal`."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type) -> Any:
        if instance is None:
            return self
        signals = instance.__dict__.setdefault("_signals", {})
        return signals.setdefault(self.name, Signal())


class QObject:
    destroyed = signal()

    def __init__(self, parent: QObject | None = None) -> None:
        self._parent: QObject | None = None
        self._children: list[QObject] = []
        self._dynamic: dict[str, Any] = {}
        self.objectName = ""
        if parent is not None:
            self.setParent(parent)

    def __setattr__(self, name: str, value: Any) -> None:
        if not name.startswith("_") and not hasattr(type(self), name):
            raise AttributeError(f"{type(self).__name__} has no property {name!r}")
        object.__setattr__(self, name, value)

    objectName: str = ""

    @property
    def name(self) -> str:  # PythonQt exposes objectName as .name too
        return self.objectName

    def setObjectName(self, name: str) -> None:
        self.objectName = name

    def parent(self) -> QObject | None:
        return self._parent

    def setParent(self, parent: QObject | None) -> None:
        if self._parent is not None:
            self._parent._children.remove(self)
        self._parent = parent
        if parent is not None:
            parent._children.append(self)

    def children(self) -> list[QObject]:
        return list(self._children)

    def findChildren(self, cls: type = None) -> list[QObject]:
        found = []
        for child in self._children:
            if cls is None or isinstance(child, cls):
                found.append(child)
            found += child.findChildren(cls)
        return found

    def property(self, name: str) -> Any:
        return self._dynamic.get(name)

    def setProperty(self, name: str, value: Any) -> None:
        self._dynamic[name] = value

    def className(self) -> str:
        return type(self).__name__

    def isWidgetType(self) -> bool:
        return False


class QTimer(QObject):
    """Fires from ``slicer.app.processEvents()`` once its interval has passed."""

    active: list[QTimer] = []
    timeout = signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.interval = 0
        self.singleShot_ = False
        self._due = 0.0

    interval: int = 0
    singleShot_: bool = False

    def setInterval(self, milliseconds: int) -> None:
        self.interval = milliseconds

    def setSingleShot(self, single: bool) -> None:
        self.singleShot_ = single

    def start(self, milliseconds: int | None = None) -> None:
        if milliseconds is not None:
            self.interval = milliseconds
        self._due = time.monotonic() + self.interval / 1000
        if self not in QTimer.active:
            QTimer.active.append(self)

    def stop(self) -> None:
        if self in QTimer.active:
            QTimer.active.remove(self)

    def isActive(self) -> bool:
        return self in QTimer.active

    @staticmethod
    def singleShot(milliseconds: int, callback: Callable) -> None:
        timer = QTimer()
        timer.setSingleShot(True)
        timer.timeout.connect(callback)
        timer.start(milliseconds)

    @classmethod
    def fire_due(cls) -> None:
        now = time.monotonic()
        for timer in list(cls.active):
            if timer._due <= now and timer in cls.active:
                if timer.singleShot_:
                    timer.stop()
                else:
                    timer._due = now + timer.interval / 1000
                timer.timeout.emit()


class QSettings(QObject):
    """Application settings: one in-memory store per test environment (like one Slicer.ini)."""

    store: dict[str, Any] = {}

    def value(self, key: str, default: Any = None) -> Any:
        return QSettings.store.get(key, default)

    def setValue(self, key: str, value: Any) -> None:
        QSettings.store[key] = value

    def contains(self, key: str) -> bool:
        return key in QSettings.store

    def remove(self, key: str) -> None:
        QSettings.store.pop(key, None)


class QColor:
    def __init__(self, *args: Any) -> None:
        self._value = args

    def name(self, *args: Any) -> str:
        return str(self._value)


class QFile:
    ReadOnly = 1

    def __init__(self, path: str) -> None:
        self._path = Path(path)

    def exists(self) -> bool:
        return self._path.is_file()

    def open(self, mode: int) -> bool:
        return self.exists()


class QMessageBox:
    Ok, Yes, No, Cancel, Critical, Question, Information, Warning = 1024, 16384, 65536, 4194304, 3, 4, 1, 2


class QApplication:
    @staticmethod
    def setOverrideCursor(cursor: Any) -> None:
        pass

    @staticmethod
    def restoreOverrideCursor() -> None:
        pass


class Qt:
    WaitCursor = 16


# Widgets ------------------------------------------------------------------------------------------


class QWidget(QObject):
    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._layout: QLayout | None = None
        self.enabled = True
        self.visible = True
        self.toolTip = ""
        self.minimumHeight = 0

    enabled: bool = True
    visible: bool = True
    toolTip: str = ""
    minimumHeight: int = 0

    def isWidgetType(self) -> bool:
        return True

    def setEnabled(self, enabled: bool) -> None:
        self.enabled = enabled

    def setVisible(self, visible: bool) -> None:
        self.visible = visible

    def show(self) -> None:
        self.visible = True

    def hide(self) -> None:
        self.visible = False

    def layout(self) -> QLayout | None:
        return self._layout

    def setLayout(self, layout: QLayout) -> None:
        self._layout = layout
        layout._owner = self


class QFrame(QWidget):
    pass


class QLabel(QWidget):
    def __init__(self, text: str = "", parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.text = text
        self.wordWrap = False

    text: str = ""
    wordWrap: bool = False

    def setText(self, text: str) -> None:
        self.text = text


class _ValueProperty:
    """A Qt property whose setter emits ``<signal>`` when the value changes (as Qt's setters do)."""

    def __init__(self, signal_name: str, default: Any, normalize: Callable[[Any, Any], Any] = lambda w, v: v,
                 *extra: str) -> None:
        self.signal_name, self.default, self.normalize, self.extra = signal_name, default, normalize, extra

    def __set_name__(self, owner: type, name: str) -> None:
        self.attribute = f"_{name}_value"

    def __get__(self, instance: Any, owner: type) -> Any:
        return self if instance is None else instance.__dict__.get(self.attribute, self.default)

    def __set__(self, instance: Any, value: Any) -> None:
        value = self.normalize(instance, value)
        if instance.__dict__.get(self.attribute, self.default) == value:
            return
        instance.__dict__[self.attribute] = value
        getattr(instance, self.signal_name).emit(value)
        for name in self.extra:
            getattr(instance, name).emit(value)


class QAbstractButton(QWidget):
    clicked = signal()
    toggled = signal()
    stateChanged = signal()
    checked = _ValueProperty("toggled", False, lambda w, v: bool(v), "stateChanged")

    def __init__(self, text: str = "", parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.text = text
        self.checkable = False

    text: str = ""
    checkable: bool = False

    def click(self) -> None:
        if not self.enabled:
            return
        if self.checkable:
            self.checked = not self.checked
        self.clicked.emit(self.checked)

    def isChecked(self) -> bool:
        return self.checked

    def setChecked(self, checked: bool) -> None:
        self.checked = checked


class QPushButton(QAbstractButton):
    pass


class QCheckBox(QAbstractButton):
    def __init__(self, text: str = "", parent: QObject | None = None) -> None:
        super().__init__(text, parent)
        self.checkable = True


class QLineEdit(QWidget):
    textChanged = signal()
    text = _ValueProperty("textChanged", "", lambda w, v: str(v))
    placeholderText: str = ""

    def setText(self, text: str) -> None:
        self.text = text


def _clamp_int(widget: Any, value: Any) -> int:
    return int(min(max(int(value), widget.minimum), widget.maximum))


def _clamp_float(widget: Any, value: Any) -> float:
    factor = 10 ** widget.decimals
    return float(min(max(round(float(value) * factor) / factor, widget.minimum), widget.maximum))


class QSpinBox(QWidget):
    valueChanged = signal()
    value = _ValueProperty("valueChanged", 0, _clamp_int)
    minimum: int = 0
    maximum: int = 99
    singleStep: int = 1

    def setRange(self, minimum: int, maximum: int) -> None:
        self.minimum, self.maximum = minimum, maximum
        self.value = self.value

    def setMinimum(self, minimum: int) -> None:
        self.setRange(minimum, max(minimum, self.maximum))

    def setMaximum(self, maximum: int) -> None:
        self.setRange(min(self.minimum, maximum), maximum)

    def setValue(self, value: int) -> None:
        self.value = value


class QDoubleSpinBox(QSpinBox):
    value = _ValueProperty("valueChanged", 0.0, _clamp_float)
    minimum: float = 0.0
    maximum: float = 99.99
    decimals: int = 2
    singleStep: float = 1.0


class QProgressBar(QWidget):
    valueChanged = signal()
    value = _ValueProperty("valueChanged", 0, lambda w, v: int(v))

    def setValue(self, value: int) -> None:
        self.value = value


class QPlainTextEdit(QWidget):
    readOnly: bool = False
    plainText: str = ""

    def appendPlainText(self, text: str) -> None:
        self.plainText = f"{self.plainText}\n{text}" if self.plainText else str(text)

    def toPlainText(self) -> str:
        return self.plainText


class QComboBox(QWidget):
    currentIndexChanged = signal()
    currentTextChanged = signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._items: list[str] = []
        self._current = -1

    @property
    def currentIndex(self) -> int:
        return self._current

    @currentIndex.setter
    def currentIndex(self, index: int) -> None:
        index = index if 0 <= index < len(self._items) else -1
        if index != self._current:
            self._current = index
            self.currentIndexChanged.emit(index)
            self.currentTextChanged.emit(self.currentText)

    @property
    def currentText(self) -> str:
        return self._items[self._current] if self._current >= 0 else ""

    @property
    def count(self) -> int:
        return len(self._items)

    def setCurrentIndex(self, index: int) -> None:
        self.currentIndex = index

    def setCurrentText(self, text: str) -> None:
        if text in self._items:
            self.currentIndex = self._items.index(text)

    def addItem(self, text: str) -> None:
        self._items.append(str(text))
        if self._current < 0:
            self.currentIndex = 0

    def addItems(self, texts: list[str]) -> None:
        for text in texts:
            self.addItem(text)

    def itemText(self, index: int) -> str:
        return self._items[index]

    def findText(self, text: str) -> int:
        return self._items.index(text) if text in self._items else -1

    def clear(self) -> None:
        self._items = []
        self.currentIndex = -1


class QTextEdit(QWidget):
    textChanged = signal()
    plainText = _ValueProperty("textChanged", "", lambda w, v: str(v))


class QSlider(QSpinBox):
    pass


class QIcon:
    def __init__(self, path: str = "") -> None:
        self.path = path


class QTableWidgetItem:
    def __init__(self, text: str = "") -> None:
        self._text = text

    def text(self) -> str:
        return self._text


class _ModelIndex:
    def __init__(self, row: int, column: int) -> None:
        self._row, self._column = row, column

    def row(self) -> int:
        return self._row

    def column(self) -> int:
        return self._column


class QTableWidget(QWidget):
    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows, self._columns = 0, 0
        self._items: dict[tuple[int, int], QTableWidgetItem] = {}
        self._headers: list[str] = []
        self._selected: list[tuple[int, int]] = []

    def rowCount(self) -> int:
        return self._rows

    def columnCount(self) -> int:
        return self._columns

    def setRowCount(self, rows: int) -> None:
        self._rows = rows
        self._items = {k: v for k, v in self._items.items() if k[0] < rows}

    def setColumnCount(self, columns: int) -> None:
        self._columns = columns

    def setHorizontalHeaderLabels(self, labels: list[str]) -> None:
        self._headers = list(labels)
        self._columns = max(self._columns, len(labels))

    def horizontalHeaderLabels(self) -> list[str]:  # test helper (Qt reads headerItem(i).text())
        return list(self._headers)

    def setItem(self, row: int, column: int, item: QTableWidgetItem) -> None:
        if row >= self._rows or column >= self._columns:
            return  # Qt ignores items outside the table
        self._items[(row, column)] = item

    def item(self, row: int, column: int) -> QTableWidgetItem | None:
        return self._items.get((row, column))

    def resizeColumnsToContents(self) -> None:
        pass

    def selectRow(self, row: int) -> None:
        self._selected = [(row, c) for c in range(self._columns)]

    def selectedIndexes(self) -> list[_ModelIndex]:
        return [_ModelIndex(r, c) for r, c in self._selected if r < self._rows]


# Layouts ------------------------------------------------------------------------------------------


class QLayout(QObject):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__()
        self._owner: QWidget | None = None
        self._rows: list[tuple[Any, ...]] = []
        if parent is not None:
            parent.setLayout(self)

    def addWidget(self, widget: QWidget, *args: Any) -> None:
        self._adopt(widget)
        self._rows.append((widget,))

    def addLayout(self, layout: QLayout, *args: Any) -> None:
        self._rows.append((layout,))

    def addStretch(self, *args: Any) -> None:
        pass

    def _adopt(self, widget: Any) -> None:
        if isinstance(widget, QWidget) and self._owner is not None:
            widget.setParent(self._owner)

    def count(self) -> int:
        return len(self._rows)

    def widgets(self) -> list[Any]:  # test helper
        return [item for row in self._rows for item in row if isinstance(item, QWidget)]


class QVBoxLayout(QLayout):
    pass


class QHBoxLayout(QLayout):
    pass


class QGridLayout(QLayout):
    pass


class QFormLayout(QLayout):
    def addRow(self, label: Any, field: Any = None) -> None:
        row = (QLabel(label) if isinstance(label, str) else label, field) if field is not None else (label,)
        for item in row:
            self._adopt(item)
        self._rows.append(row)

    def removeRow(self, item: Any) -> None:
        for row in self._rows:
            if item in row:
                self._rows.remove(row)
                for widget in row:
                    if isinstance(widget, QObject):
                        widget.setParent(None)
                return
        raise ValueError("removeRow: not in this layout")

    def rowCount(self) -> int:
        return len(self._rows)


class QFileDialog:
    """Tests set ``answers`` to what the user would pick; an unanswered dialog fails the test."""

    answers: list[str] = []

    @classmethod
    def _answer(cls) -> str:
        if not cls.answers:
            raise AssertionError("a file dialog opened that the test did not expect")
        return cls.answers.pop(0)

    @classmethod
    def getExistingDirectory(cls, *args: Any) -> str:
        return cls._answer()

    @classmethod
    def getOpenFileName(cls, *args: Any) -> str:
        return cls._answer()


# The .ui loader (PythonQt's QUiLoader) ----------------------------------------------------------------


class QUiLoader:
    """Builds the widget tree of a Qt Designer file from the classes registered in :data:`WIDGET_CLASSES`."""

    def load(self, qfile: QFile) -> QWidget:
        root = ElementTree.parse(qfile._path).getroot()
        top = root.find("widget")
        widget = self._widget(top, None)
        for connection in root.iter("connection"):
            self._connect(widget, connection)
        return widget

    def _widget(self, element: ElementTree.Element, parent: QWidget | None) -> QWidget:
        class_name = element.get("class")
        if class_name not in WIDGET_CLASSES:
            raise RuntimeError(f"the stand-in QUiLoader has no widget class {class_name!r}")
        widget = WIDGET_CLASSES[class_name]()
        widget.objectName = element.get("name") or ""
        if parent is not None:
            widget.setParent(parent)
        for prop in element.findall("property"):
            _apply_property(widget, prop)
        columns = [column.findtext("property/string") or "" for column in element.findall("column")]
        if columns and isinstance(widget, QTableWidget):  # a table's <column>s: its columns and their headers
            widget.setHorizontalHeaderLabels(columns)
        layout = element.find("layout")
        if layout is not None:
            self._layout(layout, widget)
        for child in element.findall("widget"):
            self._widget(child, widget)
        return widget

    def _layout(self, element: ElementTree.Element, owner: QWidget) -> QLayout:
        layout = LAYOUT_CLASSES[element.get("class")]()
        layout.objectName = element.get("name") or ""
        owner.setLayout(layout)
        for item in element.findall("item"):
            child = item.find("widget")
            if child is not None:
                widget = self._widget(child, owner)
                layout._rows.append((widget,))
            nested = item.find("layout")
            if nested is not None:
                inner = LAYOUT_CLASSES[nested.get("class")]()
                inner._owner = owner
                for nested_item in nested.findall("item"):
                    nested_child = nested_item.find("widget")
                    if nested_child is not None:
                        inner._rows.append((self._widget(nested_child, owner),))
                layout._rows.append((inner,))
        return layout

    @staticmethod
    def _connect(top: QWidget, connection: ElementTree.Element) -> None:
        sender = connection.findtext("sender")
        receiver = connection.findtext("receiver")
        signal_text, slot_text = connection.findtext("signal"), connection.findtext("slot")
        widgets = {w.objectName: w for w in [top, *top.findChildren(QWidget)]}
        source, target = widgets[sender], widgets[receiver]
        getattr(source, signal_text.split("(")[0]).connect(getattr(target, slot_text.split("(")[0]))


def _apply_property(widget: QWidget, element: ElementTree.Element) -> None:
    name = element.get("name")
    value_element = next(iter(element))
    tag, text = value_element.tag, value_element.text or ""
    if tag == "string":
        value: Any = text
    elif tag == "bool":
        value = text == "true"
    elif tag == "number":
        value = int(text)
    elif tag == "double":
        value = float(text)
    elif tag == "stringlist":
        value = [s.text or "" for s in value_element.findall("string")]
    else:
        return  # geometry, size policies, fonts, enums: layout only
    if name in ("SlicerParameterName", "SlicerPackParameterName"):
        widget.setProperty(name, value)
    elif hasattr(type(widget), name):
        setattr(widget, name, value)
    elif name not in _LAYOUT_ONLY_PROPERTIES:
        raise RuntimeError(f"{type(widget).__name__}.{name} set in the .ui has no stand-in property")


_LAYOUT_ONLY_PROPERTIES = {"geometry", "sizePolicy", "minimumSize", "maximumSize", "frameShape", "frameShadow",
                           "alignment", "textFormat", "openExternalLinks", "textInteractionFlags", "title",
                           "collapsed", "editable", "selectionBehavior", "selectionMode", "editTriggers",
                           "showGrid", "sortingEnabled", "filters", "settingKey", "showCheckedNodesOnly",
                           "horizontalHeaderStretchLastSection", "verticalHeaderVisible", "lineWrapMode",
                           "maximumBlockCount", "suffix", "prefix", "format", "styleSheet", "flat",
                           "showHidden", "showChildNodeTypes", "renameEnabled", "removeEnabled", "editEnabled",
                           "baseName", "orientation"}

WIDGET_CLASSES: dict[str, type] = {
    cls.__name__: cls for cls in (QWidget, QFrame, QLabel, QPushButton, QCheckBox, QLineEdit, QSpinBox,
                                  QDoubleSpinBox, QProgressBar, QPlainTextEdit, QComboBox, QTableWidget)
}
LAYOUT_CLASSES: dict[str, type] = {cls.__name__: cls for cls in (QVBoxLayout, QHBoxLayout, QFormLayout, QGridLayout)}

