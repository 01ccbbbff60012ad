"""Run nnU-Net v2 (the reference implementation, installed in the test environment) in a subprocess.

nnU-Net reads its folders from environment variables at import time, so every call runs in a fresh
process with ``nnUNet_raw``/``nnUNet_preprocessed``/``nnUNet_results`` pointing at the test workspace.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from external_test_data import TEST_DATA

from autoseg.paths import Workspace

BIN = Path(sys.executable).parent
SHARED_DATA = TEST_DATA  # AUTOSEG_TEST_DATA, default ../shared/data


def nnunet_env(workspace: Workspace) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        nnUNet_raw=str(workspace.raw),
        nnUNet_preprocessed=str(workspace.preprocessed),
        nnUNet_results=str(workspace.results),
        nnUNet_def_n_proc="2",
        nnUNet_n_proc_DA="1",
        OMP_NUM_THREADS="1",
    )
    return env


def run_nnunet(
    command: str, args: list[str], workspace: Workspace, timeout: float = 900
) -> subprocess.CompletedProcess:
    """Run ``nnUNetv2_<command> args...``; raise with its output when it fails."""
    executable = BIN / f"nnUNetv2_{command}"
    result = subprocess.run(
        [str(executable), *args], env=nnunet_env(workspace), capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"nnUNetv2_{command} {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result


def run_nnunet_python(code: str, workspace: Workspace, timeout: float = 900) -> str:
    """Run a Python snippet that imports nnunetv2; returns its stdout."""
    result = subprocess.run(
        [sys.executable, "-c", code], env=nnunet_env(workspace), capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise RuntimeError(f"nnunetv2 snippet failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout


def link_dataset(source: Path, workspace: Workspace, name: str) -> Path:
    """Make a raw dataset available under ``name`` (symlinks to the read-only files)."""
    target = workspace.raw / name
    target.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.is_dir():
            (target / item.name).mkdir(exist_ok=True)
            for f in item.iterdir():
                link = target / item.name / f.name
                if not link.exists():
                    link.symlink_to(f)
        elif item.name == "dataset.json":
            shutil.copyfile(item, target / item.name)
    return target


def load_json(path: Path):
    return json.loads(Path(path).read_text())
