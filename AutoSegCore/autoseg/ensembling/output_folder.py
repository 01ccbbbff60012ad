"""Rebuild a results folder without ever leaving a half-written one in its place.

The new content is written into a hidden sibling folder; only when it is complete is the old folder
moved aside, the new one renamed into place and the old one deleted. A run killed in between leaves
the previous results (or a hidden leftover that the next run removes).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def rebuilt_folder(target: str | Path) -> Iterator[Path]:
    """Yield an empty folder next to ``target``; on success it replaces ``target`` (created if absent)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(target)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=target.parent))
    try:
        yield staging
        if target.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, retired / target.name)
            os.replace(staging, target)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _remove_leftovers(target: Path) -> None:
    """Hidden staging/retired folders of ``target`` left by a killed run."""
    for prefix in (f".{target.name}.new-", f".{target.name}.old-"):
        for leftover in target.parent.glob(f"{prefix}*"):
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
