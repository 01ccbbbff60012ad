"""Controlling a training run from outside: its time budget as text, and the "finish now" request.

Torch-free, so that the Slicer modules (and scripts) can check a budget and ask a run to finish without
loading PyTorch. A file named :data:`FINISH_FILE` in the fold folder (``touch fold_0/finish_now``; the Slicer
Trainer's "Finish now" writes it) ends the training after the current epoch with a final checkpoint and the
final validation, as a normal end does; the trainer deletes the file when it acts on it.
"""

from __future__ import annotations

import re
from pathlib import Path

from autoseg.errors import AutoSegError

FINISH_FILE = "finish_now"
_DURATION = re.compile(r"^\s*(?:(?P<h>\d+(?:\.\d+)?)h)?\s*(?:(?P<m>\d+(?:\.\d+)?)m(?:in)?)?\s*"
                       r"(?:(?P<s>\d+(?:\.\d+)?)s)?\s*$")


def parse_duration(text: str) -> float:
    """Seconds of ``45m``, ``1h30m``, ``90s``, ``2h`` or a plain number of minutes (``45``)."""
    value = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        seconds = float(value) * 60
    else:
        match = _DURATION.match(value)
        if not match or not any(match.groupdict().values()):
            raise AutoSegError(f"--time_budget {text!r}: give a duration such as 45m, 1h30m, 90s or 2h.")
        parts = {k: float(v) for k, v in match.groupdict().items() if v}
        seconds = parts.get("h", 0) * 3600 + parts.get("m", 0) * 60 + parts.get("s", 0)
    if seconds <= 0:
        raise AutoSegError(f"--time_budget {text!r} must be longer than zero.")
    return seconds


def finish_requested(fold_folder: Path) -> Path | None:
    """The finish-now file when someone asked the run in ``fold_folder`` to end after this epoch."""
    path = fold_folder / FINISH_FILE
    return path if path.exists() else None
