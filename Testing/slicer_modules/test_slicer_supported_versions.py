"""The supported Slicer versions, proven: AutoSeg needs Slicer 5.10 or later (Python 3.10+).

- AutoSegCore runs on Python 3.10 (``vermin`` checks syntax *and* standard-library use, e.g. ``zip(strict=)``,
  ``X | Y`` aliases evaluated at run time);
- what an older Slicer loads before the version check (the module files, AutoSegSlicerLib, the self-test)
  runs on Python 3.9, so Slicer 5.8 shows the explanation (test_slicer_modules_gui.py checks the panel and
  that the modules load with AutoSegCore blocked);
- every statement of the minimum agrees: compatibility.py, pyproject, the extension's CMake check and
  metadata, the README; Slicer's Python library of 5.10 (the oldest supported) runs the modules in CI
  (``slicer_env``).
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import tomllib
from external_test_data import SLICER_PYTHON

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("autoseg_slicer_compatibility",
                                               ROOT / "AutoSegSlicerLib" / "compatibility.py")
compatibility = importlib.util.module_from_spec(_spec)  # the file alone: it imports neither Slicer nor AutoSegCore
_spec.loader.exec_module(compatibility)

SLICER_SIDE = [ROOT / "AutoSegSlicerLib", *(ROOT / m / f"{m}.py" for m in ("AutoSegPlanner", "AutoSegTrainer",
                                                                          "AutoSegInference")),
               ROOT / "Testing" / "Python"]


def _vermin(target: tuple[int, int], paths: list[Path]) -> subprocess.CompletedProcess:
    # 'long' is torch's Tensor.long(), not Python 2's long type
    runner = "import sys, vermin; sys.argv[0] = 'vermin'; sys.exit(vermin.main())"
    return subprocess.run([sys.executable, "-c", runner, "--no-tips", "--violations", "--eval-annotations",
                           "--exclude", "long", f"--target={target[0]}.{target[1]}-", *map(str, paths)],
                          capture_output=True, text=True, timeout=300)


def test_autoseg_core_runs_on_the_oldest_python_it_claims():
    result = _vermin(compatibility.MINIMUM_PYTHON, [ROOT / "AutoSegCore" / "autoseg"])
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "requires" not in result.stdout


def test_the_check_itself_would_catch_a_newer_feature(tmp_path):
    (tmp_path / "uses_311.py").write_text("import tomllib\n")
    assert _vermin(compatibility.MINIMUM_PYTHON, [tmp_path]).returncode != 0


def test_what_an_old_slicer_loads_runs_on_python_3_9():
    result = _vermin((3, 9), SLICER_SIDE)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_every_statement_of_the_minimum_agrees():
    minimum_python = ".".join(map(str, compatibility.MINIMUM_PYTHON))
    pyproject = tomllib.loads((ROOT / "AutoSegCore" / "pyproject.toml").read_text())
    assert pyproject["project"]["requires-python"] == f">={minimum_python}"
    cmake = (ROOT / "CMakeLists.txt").read_text()
    assert f'set(AUTOSEG_MINIMUM_SLICER_VERSION "{compatibility.MINIMUM_SLICER}")' in cmake
    assert "VERSION_LESS AUTOSEG_MINIMUM_SLICER_VERSION" in cmake and "FATAL_ERROR" in cmake
    description = re.search(r'set\(EXTENSION_DESCRIPTION "([^"]+)"\)', cmake).group(1)
    assert f"Slicer {compatibility.MINIMUM_SLICER} or later" in description
    readme = (ROOT / "README.md").read_text()
    assert "5.10 or later" in readme and "5.8 or later" not in readme
    assert (SLICER_PYTHON / compatibility.MINIMUM_SLICER / "slicer").is_dir()  # the tests run the oldest Slicer


def test_unsupported_message_names_the_fix(monkeypatch):
    monkeypatch.setattr(compatibility, "RUNNING_PYTHON", (3, 9))
    message = compatibility.unsupportedSlicerMessage()
    assert "Slicer 5.10 or later" in message and "Python 3.9" in message and "download.slicer.org" in message
    monkeypatch.setattr(compatibility, "RUNNING_PYTHON", (3, 12))
    assert compatibility.unsupportedSlicerMessage() is None
