"""Atomic file writing and JSON helpers.

Every file AutoSeg writes goes through a temporary file in the same folder followed by an atomic
rename, so a killed process leaves either the previous file or the complete new one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np


@contextmanager
def atomic_path(target: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it onto ``target`` when the block succeeds.

    ``suffix`` keeps extension-sensitive writers (SimpleITK, numpy) happy, e.g. ``.nii.gz``.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{suffix}", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.exists():
            os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp creates 0600; follow the umask like open()
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(target: str | os.PathLike[str], writer: Callable[[Path], Any], suffix: str = "") -> None:
    """Call ``writer(tmp_path)`` and atomically move the result onto ``target``."""
    with atomic_path(target, suffix) as tmp:
        writer(tmp)


def _to_jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k) if not isinstance(k, str) else k: _to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _to_jsonable(obj.tolist())
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def save_json(obj: Any, path: str | os.PathLike[str], indent: int | None = 4, sort_keys: bool = False) -> None:
    """Write ``obj`` (numpy scalars/arrays and tuples allowed) as JSON, atomically."""
    text = json.dumps(_to_jsonable(obj), indent=indent, sort_keys=sort_keys)
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def read_json(path: str | os.PathLike[str], error: type[Exception], label: str | None = None, tail: str = ".") -> Any:
    """Read a JSON file; undecodable content raises ``error("<label> is not valid JSON (<why>)<tail>")``.

    ``label`` defaults to the path; ``tail`` ends the message (e.g. ``"; re-run the prediction."``).
    """
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise error(f"{label or path} is not valid JSON ({err}){tail}") from err


def load_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file (no error translation: callers add context)."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)
