"""Shared benchmark helpers: run a command, sample the whole process tree's memory, report ratios."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "Testing"))
from external_test_data import TEST_DATA

BIN = Path(sys.executable).parent
SHARED_DATA = TEST_DATA  # AUTOSEG_TEST_DATA, default ../shared/data


@dataclass
class Measurement:
    wall_s: float
    peak_tree_rss_mb: float  # sum over the process and all its children, sampled every 50 ms
    peak_single_rss_mb: float  # largest single process


def measure(command: list[str], env: dict[str, str]) -> Measurement:
    """Run ``command`` to completion, returning wall time and peak memory of its process tree."""
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    root = psutil.Process(process.pid)
    peak_tree = peak_single = 0.0
    while process.poll() is None:
        try:
            procs = [root, *root.children(recursive=True)]
            rss = []
            for p in procs:
                with contextlib.suppress(psutil.Error):  # a child that just ended
                    rss.append(p.memory_info().rss)
            peak_tree = max(peak_tree, sum(rss))
            peak_single = max(peak_single, max(rss, default=0))
        except psutil.Error:
            pass
        time.sleep(0.05)
    wall = time.perf_counter() - start
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{process.stderr.read()[-3000:]}")
    return Measurement(wall, peak_tree / 2**20, peak_single / 2**20)


def workspace_env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(nnUNet_raw=str(root / "nnUNet_raw"), nnUNet_preprocessed=str(root / "nnUNet_preprocessed"),
               nnUNet_results=str(root / "nnUNet_results"))
    return env


def link_raw_dataset(source: Path, root: Path, name: str) -> None:
    target = root / "nnUNet_raw" / name
    target.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        dest = target / item.name
        if not dest.exists():
            dest.symlink_to(item)
