"""Prediction progress as JSON lines (``autoseg predict -progress_file FILE``), for the Slicer module.

Events (each with ``type`` and ``time``): ``start`` {num_cases}, ``window`` {case_index, num_cases, case,
done, total} (at most every :data:`WINDOW_INTERVAL` seconds, plus the last window of each case), ``case``
{case_index, num_cases, case, seconds} when a case's network work is done, ``end`` {num_cases, seconds}
and ``error`` {message}. The file is started afresh by each run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from autoseg.errors import AutoSegError
from autoseg.utils.progress_stream import ProgressStream

WINDOW_INTERVAL = 0.5


class PredictionProgressFile:
    """Writes one prediction run's events; :meth:`window` has the ``predict_folder`` progress signature."""

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path)
        try:
            self.path.unlink(missing_ok=True)  # a new run: followers see the file restart
            self.stream = ProgressStream(self.path)
        except OSError as err:
            raise AutoSegError(f"Cannot write the progress file {self.path} ({err.strerror or err}); "
                               f"give -progress_file a file path in a writable folder.") from err
        self._clock = clock
        self._started_at = clock()
        self._case_started_at = self._started_at
        self._started = False
        self._last_window = float("-inf")
        self._case = -1

    def _start(self, num_cases: int) -> None:
        if not self._started:
            self._started = True
            self.stream.emit("start", num_cases=num_cases)

    def window(self, case_index: int, num_cases: int, case: str, done: int, total: int) -> None:
        self._start(num_cases)
        now = self._clock()
        if case_index != self._case:
            self._case = case_index
            self._last_window = float("-inf")
        if now - self._last_window >= WINDOW_INTERVAL or done >= total:
            self.stream.emit("window", case_index=case_index, num_cases=num_cases, case=case, done=done, total=total)
            self._last_window = now
        if done >= total:
            self.stream.emit("case", case_index=case_index, num_cases=num_cases, case=case,
                             seconds=round(now - self._case_started_at, 3))
            self._case_started_at = now

    def finish(self, num_cases: int) -> None:
        self._start(num_cases)
        self.stream.emit("end", num_cases=num_cases, seconds=round(self._clock() - self._started_at, 3))

    def fail(self, message: str) -> None:
        self.stream.emit("error", message=message)
