"""``debug.json``: the settings and environment of a training run, for bug reports and reproducibility."""

from __future__ import annotations

import dataclasses
import platform
import socket
import sys
from pathlib import Path
from typing import Any

import torch

from autoseg import __version__
from autoseg.utils.files import save_json


def environment() -> dict[str, Any]:
    info: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "torch_version": torch.__version__,
        "autoseg_version": __version__,
        "cpu_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info.update(gpu_name=torch.cuda.get_device_name(), cuda_version=torch.version.cuda,
                    cudnn_version=torch.backends.cudnn.version())
    return info


def write_debug_json(path: Path, **run_facts: Any) -> None:
    """Write run facts (dataclasses and paths made JSON-friendly) plus the environment."""
    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {k: plain(v) for k, v in dataclasses.asdict(value).items()}
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, (str, int, float, bool)) or value is None:
            return value
        return str(value)

    save_json({**plain(run_facts), "environment": environment()}, path)
