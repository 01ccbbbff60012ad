"""Follow ``autoseg predict -progress_file FILE``: fraction over cases x windows, ETA, one-line status.

Events (see :mod:`autoseg.inference.progress_file`): ``start`` {num_cases}, ``window`` {case_index,
num_cases, case, done, total}, ``case`` {case_index, num_cases, case, seconds}, ``end`` {num_cases,
seconds}, ``error`` {message}.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from autoseg.slicer_support.event_follower import FollowingMonitor
from autoseg.slicer_support.training_monitor import format_duration


@dataclass
class PredictionStatus:
    state: str = "waiting"  # waiting, running, finished, failed
    case_index: int | None = None  # 0-based case being predicted
    num_cases: int | None = None
    case: str | None = None
    window: int | None = None
    num_windows: int | None = None
    fraction: float = 0.0  # over cases x windows
    eta_seconds: float | None = None
    message: str = "Waiting for the prediction to start."
    seconds: float | None = None  # total time, once finished


class PredictionMonitor(FollowingMonitor):
    """Polls a prediction progress file; :attr:`status` follows the run."""

    def _reset(self) -> None:
        self.status = PredictionStatus()
        self._started_at: float | None = None
        self._error: str | None = None
        self.case_seconds: dict[str, float] = {}

    def _apply(self, event: dict[str, Any]) -> None:
        status, kind = self.status, event.get("type")
        if self._started_at is None and kind in ("start", "window", "case"):
            self._started_at = float(event.get("time") or self._clock())
        if kind in ("start", "window", "case"):
            status.state = "running"
            status.num_cases = event.get("num_cases", status.num_cases)
        if kind in ("window", "case"):
            status.case_index, status.case = event.get("case_index"), event.get("case")
        if kind == "window":
            status.window, status.num_windows = event.get("done"), event.get("total")
        elif kind == "case":
            status.window = status.num_windows
            self.case_seconds[str(event.get("case"))] = float(event.get("seconds") or 0.0)
        elif kind == "end":
            status.state, status.num_cases = "finished", event.get("num_cases", status.num_cases)
            status.seconds = event.get("seconds")
        elif kind == "error":
            status.state, self._error = "failed", str(event.get("message") or "unknown error")

    def _fraction(self) -> float:
        status = self.status
        if status.state == "finished":
            return 1.0
        if not status.num_cases or status.case_index is None:
            return 0.0
        within = status.window / status.num_windows if status.window and status.num_windows else 0.0
        return min(1.0, (status.case_index + within) / status.num_cases)

    def _update_status(self) -> None:
        status = self.status
        if status.state == "waiting":
            return
        status.fraction = self._fraction()
        status.eta_seconds = None
        if status.state == "finished":
            status.eta_seconds = 0.0
        elif status.state == "running" and self._started_at is not None and status.fraction > 0:
            elapsed = self._clock() - self._started_at
            status.eta_seconds = max(0.0, elapsed / status.fraction * (1.0 - status.fraction))
        status.message = self._message()

    def _message(self) -> str:
        status = self.status
        if status.state == "failed":
            return f"Prediction failed: {self._error}"
        if status.state == "finished":
            took = format_duration(status.seconds)
            return f"Predicted {status.num_cases} case(s)" + (f" in {took}." if took else ".")
        if status.case_index is None:
            return f"Starting the prediction of {status.num_cases} case(s)."
        text = f"Case {status.case_index + 1}/{status.num_cases}"
        if status.num_windows:
            text += f": window {status.window}/{status.num_windows}"
        eta = format_duration(status.eta_seconds)
        return text + (f", ETA {eta}" if eta else "")
