"""The Slicer extension's files, checked without Slicer: syntax, .ui names, parameter bindings, CMake, imports.

Slicer cannot run in CI, so these tests read the module files as text/AST and check what would
otherwise only fail when a user opens the module: a ``self.ui.x`` with no widget ``x`` in the .ui, a
parameter-node field no widget binds to, a resource file CMake does not install, an ``autoseg``
name the module imports that does not exist, a syntax error under the Python of Slicer 5.8.
"""

from __future__ import annotations

import ast
import importlib
import json
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
MODULES = ("AutoSegPlanner", "AutoSegTrainer", "AutoSegInference")
SLICER_PYTHON_FILES = sorted(
    [ROOT / m / f"{m}.py" for m in MODULES]
    + list((ROOT / "AutoSegSlicerLib").glob("*.py"))
    + list((ROOT / "Testing" / "Python").glob("*.py"))
)
#: The Slicer-side files must parse in Slicer 5.8 (Python 3.9), so that they can tell its user that AutoSeg needs
#: Slicer 5.10 (see test_slicer_supported_versions.py).
OLDEST_SLICER_PYTHON = (3, 9)
EXTENSION_METADATA = ("EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY", "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION",
                      "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS", "EXTENSION_DEPENDS")


def _ui_file(module: str) -> Path:
    return ROOT / module / "Resources" / "UI" / f"{module}.ui"


def _ui_widgets(module: str) -> dict[str, ElementTree.Element]:
    tree = ElementTree.parse(_ui_file(module))
    return {w.get("name"): w for w in tree.iter("widget")}


def _parameter_bindings(module: str) -> dict[str, str]:
    """Widget name -> the SlicerParameterName it binds to."""
    bindings = {}
    for name, element in _ui_widgets(module).items():
        for prop in element.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                bindings[name] = prop.find("string").text
    return bindings


def _parameter_fields(module: str) -> set[str]:
    tree = ast.parse((ROOT / module / f"{module}.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(
                isinstance(d, ast.Name) and d.id == "parameterNodeWrapper" for d in node.decorator_list):
            return {s.target.id for s in node.body if isinstance(s, ast.AnnAssign)}
    raise AssertionError(f"{module}.py has no @parameterNodeWrapper class")


def _cmake_list(text: str, variable: str, module: str) -> list[str]:
    match = re.search(rf"set\({variable}\s+(.*?)\)", text, re.S)
    assert match, f"{variable} is not set"
    return [item.replace("${MODULE_NAME}", module) for item in match.group(1).split()]


@pytest.mark.parametrize("path", SLICER_PYTHON_FILES, ids=lambda p: p.name)
def test_slicer_files_compile_for_slicer_python(path):
    source = path.read_text(encoding="utf-8")
    compile(source, str(path), "exec")
    ast.parse(source, feature_version=OLDEST_SLICER_PYTHON)


@pytest.mark.parametrize("module", MODULES)
def test_every_ui_name_used_exists_in_the_ui_file(module):
    source = (ROOT / module / f"{module}.py").read_text()
    used = set(re.findall(r"self\.ui\.(\w+)", source))
    widgets = _ui_widgets(module)
    layouts = {e.get("name") for e in ElementTree.parse(_ui_file(module)).iter("layout")}
    missing = sorted(used - set(widgets) - layouts)
    assert not missing, f"{module}.py uses self.ui.{missing} but {_ui_file(module).name} has no such widget"
    assert len(used) >= 15  # the scan found the module's widgets at all


@pytest.mark.parametrize("module", MODULES)
def test_ui_is_a_slicer_module_widget(module):
    root = ElementTree.parse(_ui_file(module)).getroot()
    top = root.find("widget")
    assert top.get("class") == "qMRMLWidget" and top.get("name") == module
    # every MRML selector receives the scene from the module widget
    receivers = {
        c.findtext("receiver") for c in root.iter("connection") if c.findtext("slot") == "setMRMLScene(vtkMRMLScene*)"
    }
    selectors = {
        n
        for n, w in _ui_widgets(module).items()
        if w.get("class", "").startswith("qMRML") and w.get("class") != "qMRMLWidget"
    }
    assert selectors <= receivers


@pytest.mark.parametrize("module", MODULES)
def test_parameter_node_fields_and_widgets_match(module):
    fields = _parameter_fields(module)
    bound = set(_parameter_bindings(module).values())
    assert bound <= fields, f"widgets bind to unknown parameters {sorted(bound - fields)}"
    assert fields <= bound, f"parameters without a widget: {sorted(fields - bound)}"
    assert len(bound) == len(_parameter_bindings(module))  # one widget per parameter


@pytest.mark.parametrize("module", MODULES)
def test_module_cmake_lists_every_resource_and_script(module):
    folder = ROOT / module
    text = (folder / "CMakeLists.txt").read_text()
    assert re.search(rf"set\(MODULE_NAME {module}\)", text)
    resources = _cmake_list(text, "MODULE_PYTHON_RESOURCES", module)
    scripts = _cmake_list(text, "MODULE_PYTHON_SCRIPTS", module)
    on_disk = sorted(str(p.relative_to(folder)) for p in (folder / "Resources").rglob("*") if p.is_file())
    assert sorted(resources) == on_disk
    assert all((folder / s).is_file() for s in scripts) and f"{module}.py" in scripts
    assert "WITH_GENERIC_TESTS" in text and "slicerMacroBuildScriptedModule" in text
    assert "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in text


@pytest.mark.parametrize("module", MODULES)
def test_module_icon_is_128_png(module):
    with Image.open(ROOT / module / "Resources" / "Icons" / f"{module}.png") as icon:
        assert icon.format == "PNG" and icon.size == (128, 128)


@pytest.mark.parametrize("module", MODULES)
def test_module_file_is_a_thin_slicer_module(module):
    source = (ROOT / module / f"{module}.py").read_text()
    assert len(source.splitlines()) <= 500
    classes = {n.name for n in ast.parse(source).body if isinstance(n, ast.ClassDef)}
    assert {module, f"{module}Widget", f"{module}Logic", f"{module}Test", f"{module}ParameterNode"} <= classes
    assert "tryWithErrorDisplay" in source and "ParameterNodeWidgetMixin" in source
    assert "connectGui(self.ui)" in (ROOT / "AutoSegSlicerLib" / "widgets.py").read_text()


def test_extension_cmake_metadata_and_subdirectories():
    text = (ROOT / "CMakeLists.txt").read_text()
    for variable in EXTENSION_METADATA:
        match = re.search(rf'set\({variable} "([^"]+)"\)', text)
        assert match and match.group(1).strip(), f"{variable} is missing or empty"
    assert re.search(r'set\(EXTENSION_DEPENDS "PyTorch"\)', text)
    for folder in re.findall(r"add_subdirectory\(([\w/]+)\)", text):
        assert (ROOT / folder / "CMakeLists.txt").is_file(), folder
    assert set(MODULES) | {"AutoSegCore", "AutoSegSlicerLib"} <= set(re.findall(r"add_subdirectory\((\w+)\)", text))
    # every Slicer self-test file in Testing/Python is registered
    testing = (ROOT / "Testing" / "Python" / "CMakeLists.txt").read_text()
    for test_file in (ROOT / "Testing" / "Python").glob("*.py"):
        assert f"SCRIPT {test_file.name}" in testing


def test_catalog_entry_matches_the_extension():
    entry = json.loads((ROOT / "ExtensionsIndex" / "AutoSeg.json").read_text())
    assert entry["$schema"].startswith("https://raw.githubusercontent.com/Slicer/Slicer/")
    assert entry["build_dependencies"] == ["PyTorch"]
    assert entry["category"] == "Segmentation" and entry["build_subdirectory"] == "."
    assert entry["scm_url"].endswith(".git") and entry["scm_revision"]


def _autoseg_imports(path: Path) -> list[tuple[str, str]]:
    pairs = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "autoseg":
            pairs += [(node.module, alias.name) for alias in node.names]
    return pairs


@pytest.mark.parametrize("path", SLICER_PYTHON_FILES, ids=lambda p: p.name)
def test_autoseg_names_used_by_slicer_files_exist(path):
    for module_name, name in _autoseg_imports(path):
        module = importlib.import_module(module_name)
        assert hasattr(module, name), f"{path.name}: {module_name} has no {name}"


def test_core_never_imports_slicer():
    forbidden = {"slicer", "qt", "ctk", "vtk", "SimpleITKUtils", "sitkUtils"}
    offenders = []
    for path in (ROOT / "AutoSegCore" / "autoseg").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in forbidden]
    assert not offenders
