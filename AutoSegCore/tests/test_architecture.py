"""The layer contract (import-linter, AutoSegCore/pyproject.toml) holds, and it catches an upward import."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint_imports(cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=cwd, capture_output=True, text=True,
                          env={"PATH": str(LINT_IMPORTS.parent), "PYTHONPATH": str(pythonpath)}, timeout=300)


def test_the_package_keeps_its_layers_and_an_upward_import_breaks_them(tmp_path):
    kept = _lint_imports(CORE, CORE)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert "0 broken" in kept.stdout

    copy = tmp_path / "src"
    shutil.copytree(CORE / "autoseg", copy / "autoseg", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(CORE / "pyproject.toml", tmp_path / "pyproject.toml")
    cases = copy / "autoseg" / "dataset" / "cases.py"
    cases.write_text(cases.read_text() + "\n\ndef _upward():\n    from autoseg.training import trainer  # noqa\n")
    broken = _lint_imports(tmp_path, copy)
    assert broken.returncode != 0
    assert "autoseg.dataset is not allowed to import autoseg.training" in broken.stdout, broken.stdout

    cases.write_text(
        cases.read_text().replace("autoseg.training import trainer", "autoseg.slicer_support import models")
    )
    broken = _lint_imports(tmp_path, copy)
    assert broken.returncode != 0 and "The core never imports the Slicer back-end BROKEN" in broken.stdout
