"""Follow a JSON-lines progress file that another process appends to (``tail -f`` for events).

Handles the file not existing yet, a last line still being written, and the file being truncated or
replaced by a new run (then :meth:`EventFollower.poll` reports ``restarted`` and reads from the start).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoseg.utils.progress_stream import read_events

HEAD_BYTES = 256


@dataclass
class PollResult:
    events: list[dict[str, Any]]
    restarted: bool  # the file was truncated or replaced: earlier events no longer apply


class EventFollower:
    """Reads the complete events appended to ``path`` since the previous :meth:`poll`."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.offset = 0
        self._identity: tuple[int, int] | None = None
        self._head = b""  # the file's first bytes, to notice a replacement that reuses the inode

    def _read_head(self) -> bytes:
        try:
            with self.path.open("rb") as stream:
                return stream.read(HEAD_BYTES)
        except OSError:
            return b""

    def _stat(self) -> os.stat_result | None:
        try:
            return self.path.stat()
        except OSError:
            return None

    def poll(self) -> PollResult:
        stat = self._stat()
        if stat is None:
            return PollResult([], False)
        identity = (stat.st_dev, stat.st_ino)
        restarted = False
        if self._identity is not None and (identity != self._identity or stat.st_size < self.offset
                                           or not self._read_head().startswith(self._head)):
            self.offset, restarted = 0, True
        self._identity = identity
        try:
            events, self.offset = read_events(self.path, self.offset)
        except ValueError:  # a corrupt line: keep the valid ones
            events, self.offset = _read_tolerant(self.path, self.offset)
        except OSError:
            events = []
        if len(self._head) < HEAD_BYTES and self.offset > len(self._head):
            self._head = self._read_head()[: self.offset]
        return PollResult([e for e in events if isinstance(e, dict) and "type" in e], restarted)


def _read_tolerant(path: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    with path.open("rb") as stream:
        stream.seek(offset)
        data = stream.read()
    end = data.rfind(b"\n") + 1
    events = []
    for line in data[:end].decode("utf-8", errors="replace").splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events, offset + end


class FollowingMonitor:
    """Base of the progress monitors: follows a file and feeds each new event to :meth:`_apply`.

    Subclasses implement ``_reset`` (fresh state; also called when the file restarts), ``_apply(event)``
    and ``_update_status`` (derive the status after a poll).
    """

    def __init__(self, progress_file: str | os.PathLike[str], clock: Callable[[], float] = time.time) -> None:
        self.follower = EventFollower(progress_file)
        self._clock = clock
        self._reset()

    @property
    def progress_file(self) -> Path:
        return self.follower.path

    def poll(self) -> list[dict[str, Any]]:
        """Read the events written since the last poll, update the status, return the events."""
        result = self.follower.poll()
        if result.restarted:
            self._reset()
        for event in result.events:
            self._apply(event)
        self._update_status()
        return result.events

    def _reset(self) -> None:
        raise NotImplementedError

    def _apply(self, event: dict[str, Any]) -> None:
        raise NotImplementedError

    def _update_status(self) -> None:
        raise NotImplementedError
