"""The Trainer module's queue of training runs (one configuration x fold each), run one after another."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from autoseg.errors import AutoSegError

PENDING, RUNNING, DONE, FAILED, CANCELLED = "pending", "running", "done", "failed", "cancelled"
STATES = (PENDING, RUNNING, DONE, FAILED, CANCELLED)
FINISHED_STATES = (DONE, FAILED, CANCELLED)


@dataclass(eq=False)  # runs are compared by identity: the same configuration/fold may be queued again later
class QueuedRun:
    configuration: str
    fold: str
    state: str = PENDING
    message: str = ""


class RunQueue:
    """Runs in the order added; a (configuration, fold) already pending or running is not added twice."""

    def __init__(self) -> None:
        self.runs: list[QueuedRun] = []

    def __len__(self) -> int:
        return len(self.runs)

    def add(self, configuration: str, folds: Iterable[str | int]) -> list[QueuedRun]:
        """Queue ``configuration`` for each fold; returns the runs actually added."""
        added: list[QueuedRun] = []
        for fold in folds:
            fold_text = str(fold).strip()
            if not (fold_text.isdigit() or fold_text == "all"):
                raise AutoSegError(f"Invalid fold {fold!r}: use a number (0-4) or 'all'.")
            fold_text = str(int(fold_text)) if fold_text.isdigit() else fold_text
            if any(r.configuration == configuration and r.fold == fold_text and r.state in (PENDING, RUNNING)
                   for r in self.runs):
                continue
            run = QueuedRun(configuration, fold_text)
            self.runs.append(run)
            added.append(run)
        return added

    def next_pending(self) -> QueuedRun | None:
        """The first pending run (None when nothing is left to start)."""
        return next((r for r in self.runs if r.state == PENDING), None)

    def running(self) -> QueuedRun | None:
        return next((r for r in self.runs if r.state == RUNNING), None)

    def mark(self, run: QueuedRun, state: str, message: str = "") -> None:
        if state not in STATES:
            raise AutoSegError(f"Unknown run state {state!r}; use one of {', '.join(STATES)}.")
        if run not in self.runs:
            raise AutoSegError(f"{run.configuration} fold {run.fold} is not in the queue.")
        run.state, run.message = state, message

    def cancel_pending(self, message: str = "cancelled") -> None:
        """Mark every pending run cancelled (the running one is left to the caller)."""
        for run in self.runs:
            if run.state == PENDING:
                run.state, run.message = CANCELLED, message

    def clear_finished(self) -> None:
        """Remove done, failed and cancelled runs."""
        self.runs = [r for r in self.runs if r.state not in FINISHED_STATES]

    def all_done(self) -> bool:
        """True when nothing is pending or running."""
        return all(r.state in FINISHED_STATES for r in self.runs)

    def as_rows(self) -> list[tuple[str, str, str, str]]:
        """(configuration, fold, state, message) per run, for a table."""
        return [(r.configuration, r.fold, r.state, r.message) for r in self.runs]
