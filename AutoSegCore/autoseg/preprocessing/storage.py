"""On-disk format of preprocessed cases: ``{case}.npy`` (float32 data), ``{case}_seg.npy``, ``{case}.json``.

Uncompressed ``.npy`` is memory-mapped for training, so a random patch is read without loading the
case and without decompression; properties are JSON (never pickle). Every file is written atomically;
the JSON is written last and marks a case as complete.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np

from autoseg.utils.files import atomic_path, save_json

DATA_SUFFIX = ".npy"
SEG_SUFFIX = "_seg.npy"
PROPERTIES_SUFFIX = ".json"


def case_files(folder: Path, identifier: str) -> tuple[Path, Path, Path]:
    """Data, segmentation and properties paths of one preprocessed case."""
    return (
        folder / f"{identifier}{DATA_SUFFIX}",
        folder / f"{identifier}{SEG_SUFFIX}",
        folder / f"{identifier}{PROPERTIES_SUFFIX}",
    )


def save_case(folder: Path, identifier: str, data: np.ndarray, seg: np.ndarray, properties: dict[str, Any]) -> None:
    """Write one case atomically (properties last: their presence means the case is complete)."""
    data_file, seg_file, properties_file = case_files(folder, identifier)
    for array, target in ((data, data_file), (seg, seg_file)):
        with atomic_path(target, suffix=".npy") as tmp:
            np.save(tmp, np.ascontiguousarray(array))
    save_json(properties, properties_file, indent=None)


def load_case(
    folder: Path, identifier: str, mmap: bool = True
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Read one case; arrays are memory-mapped read-only unless ``mmap`` is False."""
    data_file, seg_file, properties_file = case_files(folder, identifier)
    mode: Literal["r"] | None = "r" if mmap else None
    properties = json.loads(properties_file.read_text(encoding="utf-8"))
    return np.load(data_file, mmap_mode=mode), np.load(seg_file, mmap_mode=mode), properties


def is_complete(folder: Path, identifier: str) -> bool:
    return all(p.is_file() for p in case_files(folder, identifier))


def list_cases(folder: Path) -> list[str]:
    """Identifiers of the complete cases in a preprocessed folder."""
    ids = [p.name[: -len(PROPERTIES_SUFFIX)] for p in folder.glob(f"*{PROPERTIES_SUFFIX}")]
    return sorted(i for i in ids if is_complete(folder, i))
