"""The machine-readable training progress stream: one JSON object per line, appended and flushed.

The Slicer Trainer module (and any script) follows ``progress.jsonl`` in the fold folder; each line is an
event with a ``type`` (``start``, ``iteration``, ``epoch``, ``validation``, ``end``, ``error``) and its
values (epoch, iteration, losses, pseudo Dice, learning rate, ETA in seconds). Readers skip a last line
that is still being written.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

STREAM_NAME = "progress.jsonl"


class ProgressStream:
    """Appends events to a JSON-lines file; NaN/inf become null so every line is valid JSON."""

    def __init__(self, path: str | Path, enabled: bool = True) -> None:
        self.path = Path(path)
        self.enabled = enabled  # False on DDP ranks other than 0
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def emit(self, event_type: str, **values: Any) -> dict[str, Any]:
        event = {"type": event_type, "time": time.time(), **{k: _clean(v) for k, v in values.items()}}
        if not self.enabled:
            return event
        with self.path.open("a", encoding="utf-8") as stream:
            stream.write(json.dumps(event, allow_nan=False) + "\n")
            stream.flush()
        return event


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return _clean(value.item())
    return value


def read_events(path: str | Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Complete events written after byte ``offset``, and the offset to continue from (for polling)."""
    path = Path(path)
    if not path.is_file():
        return [], offset
    with path.open("rb") as stream:
        stream.seek(offset)
        data = stream.read()
    end = data.rfind(b"\n") + 1  # an unfinished last line is read next time
    events = [json.loads(line) for line in data[:end].decode("utf-8").splitlines() if line.strip()]
    return events, offset + end


def iterate_events(path: str | Path) -> Iterator[dict[str, Any]]:
    yield from read_events(path)[0]


def eta_seconds(epoch_durations: list[float], epochs_done: int, num_epochs: int) -> float | None:
    """Remaining time from the mean of the last (up to) 5 epoch durations."""
    if not epoch_durations:
        return None
    recent = epoch_durations[-5:]
    return sum(recent) / len(recent) * max(0, num_epochs - epochs_done)
