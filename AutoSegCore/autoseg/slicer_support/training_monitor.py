"""Follow a training run through its fold folder's ``progress.jsonl`` (curves, progress, ETA, one-line status).

The trainer writes ``start`` (epoch, num_epochs, iterations_per_epoch, ...), ``iteration`` (epoch,
iteration, loss; throttled), ``epoch`` (epoch, train_loss, val_loss, mean_fg_dice, ema_fg_dice, lr,
eta_seconds, ...), then the final ``validation`` (case, done, total) and ``end`` (mean_validation_dice);
``error`` (message, epoch) when it fails. An update (``--update``) ends with ``update`` (from_version,
to_version, dice_before, dice_after: the mean validation Dice of the old and the new model on the same
cases), shown in the status message. With a time budget (``--time_budget``) the trainer re-sizes the
epochs to end training and validation within it: the ETA and the progress follow the budget's clock.
Epoch numbers are 0-based in the file, as in nnU-Net's logs; ``TrainingStatus.epoch`` is 1-based for
display. A resumed run (``--c``) appends a new ``start`` whose epoch is the checkpoint's: curve points
from that epoch on are dropped and re-filled.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autoseg.slicer_support.event_follower import FollowingMonitor

#: Share of the whole run given to the final validation in ``TrainingStatus.fraction``.
VALIDATION_SHARE = 0.05


def format_duration(seconds: float | None) -> str:
    """``"45 s"``, ``"12 min"``, ``"1 h 02 min"``; ``""`` for None or not-a-number."""
    if seconds is None or math.isnan(seconds):
        return ""
    seconds = max(0.0, seconds)
    if seconds < 59.5:
        return f"{round(seconds)} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return None if math.isnan(value) or math.isinf(value) else float(value)


@dataclass
class TrainingCurves:
    """One point per finished epoch (0-based epoch numbers, as written by the trainer)."""

    epochs: list[int] = field(default_factory=list)
    train_loss: list[float | None] = field(default_factory=list)
    val_loss: list[float | None] = field(default_factory=list)
    pseudo_dice: list[float | None] = field(default_factory=list)  # mean foreground pseudo Dice
    ema_dice: list[float | None] = field(default_factory=list)
    learning_rate: list[float | None] = field(default_factory=list)

    def _series(self) -> tuple[list, ...]:
        return (self.train_loss, self.val_loss, self.pseudo_dice, self.ema_dice, self.learning_rate)

    def set_point(self, epoch: int, values: tuple[float | None, ...]) -> None:
        """Add the point of ``epoch``, replacing an earlier point of the same epoch, keeping epochs sorted."""
        if epoch in self.epochs:
            index = self.epochs.index(epoch)
            for series, value in zip(self._series(), values):
                series[index] = value
            return
        index = sum(1 for e in self.epochs if e < epoch)
        self.epochs.insert(index, epoch)
        for series, value in zip(self._series(), values):
            series.insert(index, value)

    def truncate(self, first_dropped_epoch: int) -> None:
        """Drop the points of ``first_dropped_epoch`` and later (a resumed run re-trains them)."""
        keep = sum(1 for e in self.epochs if e < first_dropped_epoch)
        del self.epochs[keep:]
        for series in self._series():
            del series[keep:]


@dataclass(frozen=True)
class UpdateResult:
    """The ``update`` event of ``train --update``: the model version it made and the Dice before and after."""

    from_version: int
    to_version: int
    dice_before: float | None
    dice_after: float | None

    def text(self) -> str:
        """``updated version 1 → 2, mean validation Dice 0.7812 → 0.8104``."""
        def dice(value: float | None) -> str:
            return "?" if value is None else f"{value:.4f}"

        return (f"updated version {self.from_version} \u2192 {self.to_version}, mean validation Dice "
                f"{dice(self.dice_before)} \u2192 {dice(self.dice_after)}")


@dataclass
class TrainingStatus:
    state: str = "waiting"  # waiting, running, validating, finished, failed
    epoch: int | None = None  # 1-based epoch in progress (the last one once training is over)
    num_epochs: int | None = None
    iteration: int | None = None
    iterations_per_epoch: int | None = None
    fraction: float = 0.0  # of the whole run, training epochs then the final validation
    eta_seconds: float | None = None
    message: str = "Waiting for the training to start."
    mean_validation_dice: float | None = None
    update: UpdateResult | None = None  # set by an update's last event
    time_budget_s: float | None = None


def _mean_dice(event: dict[str, Any]) -> float | None:
    mean = _number(event.get("mean_fg_dice"))
    if mean is not None:
        return mean
    values = [v for v in (_number(d) for d in event.get("pseudo_dice") or []) if v is not None]
    return sum(values) / len(values) if values else None


class TrainingMonitor(FollowingMonitor):
    """Polls one fold's ``progress.jsonl``; :attr:`curves` and :attr:`status` follow the training.

    ``time_budget_s``: the run's ``--time_budget`` (its clock starts when the monitor is made, as the run starts;
    without it, the budget a ``start`` event names is used from that event on).
    ``ignore_before``: events written before this time belong to an earlier run of the fold and are skipped (an
    update follows the fold's file, which still holds the trained model's run until the update archives it).
    """

    def __init__(self, progress_file: str | Path, clock: Callable[[], float] = time.time,
                 time_budget_s: float | None = None, ignore_before: float | None = None) -> None:
        self.time_budget_s = time_budget_s
        self._budget_given = time_budget_s is not None
        self.ignore_before = ignore_before
        self._budget_start = clock()
        super().__init__(progress_file, clock)

    def _reset(self) -> None:
        self.curves = TrainingCurves()
        self.status = TrainingStatus(time_budget_s=self.time_budget_s)
        self._completed_epochs = 0
        self._last_loss: float | None = None
        self._last_dice: float | None = None
        self._trainer_eta: tuple[float, float] | None = None  # (eta at event, event time)
        self._session: tuple[float, float] | None = None  # (start time, fraction at start)
        self._validation_started: float | None = None
        self._validation: tuple[int, int] | None = None
        self._error: str | None = None

    # -- events ---------------------------------------------------------------------------------------
    def _apply(self, event: dict[str, Any]) -> None:
        when = _number(event.get("time"))
        if self.ignore_before is not None and when is not None and when < self.ignore_before:
            return
        handler = getattr(self, f"_on_{event.get('type')}", None)
        if handler is not None:
            handler(event)

    def _event_time(self, event: dict[str, Any]) -> float:
        value = _number(event.get("time"))
        return value if value is not None else self._clock()

    def _on_start(self, event: dict[str, Any]) -> None:
        status = self.status
        status.state, self._error = "running", None
        epoch = int(event.get("epoch") or 0)
        status.num_epochs = event.get("num_epochs", status.num_epochs)
        status.iterations_per_epoch = event.get("iterations_per_epoch", status.iterations_per_epoch)
        status.iteration = 0
        status.mean_validation_dice = None
        status.update = None
        if not self._budget_given:  # the budget the run names, its clock from its start
            self.time_budget_s = status.time_budget_s = _number(event.get("time_budget_s"))
            self._budget_start = self._event_time(event)
        self.curves.truncate(epoch)
        self._completed_epochs = epoch
        self._trainer_eta = None
        self._validation_started, self._validation = None, None
        self._session = (self._event_time(event), self._training_fraction())

    def _on_iteration(self, event: dict[str, Any]) -> None:
        self.status.state = "running"
        self._completed_epochs = int(event.get("epoch", self._completed_epochs))
        self.status.iteration = event.get("iteration")
        self.status.iterations_per_epoch = event.get("iterations_per_epoch", self.status.iterations_per_epoch)
        self._last_loss = _number(event.get("loss"))

    def _on_epoch(self, event: dict[str, Any]) -> None:
        epoch = int(event["epoch"])
        self.status.num_epochs = event.get("num_epochs", self.status.num_epochs)
        dice = _mean_dice(event)
        self.curves.set_point(epoch, (_number(event.get("train_loss")), _number(event.get("val_loss")), dice,
                                      _number(event.get("ema_fg_dice")), _number(event.get("lr"))))
        self._completed_epochs = epoch + 1
        self.status.iteration = 0
        self._last_loss = _number(event.get("train_loss"))
        self._last_dice = dice
        eta = _number(event.get("eta_seconds"))
        self._trainer_eta = (eta, self._event_time(event)) if eta is not None else None
        if self._session is None:
            self._session = (self._event_time(event), self._training_fraction())

    def _on_validation(self, event: dict[str, Any]) -> None:
        self.status.state = "validating"
        if self.status.num_epochs:
            self._completed_epochs = max(self._completed_epochs, int(self.status.num_epochs))
        done, total = int(event.get("done") or 0), int(event.get("total") or 0)
        if self._validation_started is None:
            self._validation_started = self._event_time(event)
        self._validation = (done, total)

    def _on_end(self, event: dict[str, Any]) -> None:
        self.status.state = "finished"
        self.status.mean_validation_dice = _number(event.get("mean_validation_dice"))

    def _on_update(self, event: dict[str, Any]) -> None:
        self.status.update = UpdateResult(int(event.get("from_version") or 0), int(event.get("to_version") or 0),
                                          _number(event.get("dice_before")), _number(event.get("dice_after")))

    def _on_error(self, event: dict[str, Any]) -> None:
        self.status.state = "failed"
        self._error = str(event.get("message") or "unknown error")
        if "epoch" in event and event["epoch"] is not None:
            self._completed_epochs = int(event["epoch"])

    # -- status ---------------------------------------------------------------------------------------
    def _training_fraction(self) -> float:
        num_epochs = self.status.num_epochs
        if not num_epochs:
            return 0.0
        within = 0.0
        if self.status.iteration and self.status.iterations_per_epoch:
            within = min(1.0, self.status.iteration / self.status.iterations_per_epoch)
        return min(1.0, (self._completed_epochs + within) / num_epochs)

    def _fraction(self) -> float:
        state = self.status.state
        if state == "finished":
            return 1.0
        if state == "validating" or (state == "failed" and self._validation is not None):
            done, total = self._validation or (0, 0)
            return 1.0 - VALIDATION_SHARE + VALIDATION_SHARE * (done / total if total else 0.0)
        if self.time_budget_s and state == "running":  # the epochs are re-sized: the clock is steadier
            return min(1.0 - VALIDATION_SHARE, (self._clock() - self._budget_start) / self.time_budget_s)
        return (1.0 - VALIDATION_SHARE) * self._training_fraction()

    def _eta(self) -> float | None:
        now = self._clock()
        state = self.status.state
        if state == "validating" and self._validation and self._validation_started is not None:
            done, total = self._validation
            elapsed = now - self._validation_started
            return elapsed / done * (total - done) if done and elapsed > 0 else None
        if state != "running":
            return 0.0 if state == "finished" else None
        if self.time_budget_s:  # training and the final validation end within the budget
            return max(0.0, self._budget_start + self.time_budget_s - now)
        if self._trainer_eta is not None:
            eta, at = self._trainer_eta
            return max(0.0, eta - (now - at))
        if self._session is not None:
            started, fraction_at_start = self._session
            progress = self._training_fraction() - fraction_at_start
            elapsed = now - started
            if progress > 0 and elapsed > 0:
                return elapsed / progress * (1.0 - self._training_fraction())
        return None

    def _update_status(self) -> None:
        status = self.status
        if status.state == "waiting":
            return
        num_epochs = status.num_epochs
        in_training = status.state == "running" or (status.state == "failed" and self._validation is None)
        status.epoch = self._completed_epochs + 1 if in_training else self._completed_epochs
        if num_epochs:
            status.epoch = max(1, min(status.epoch, int(num_epochs)))
        status.fraction = self._fraction()
        status.eta_seconds = self._eta()
        status.message = self._message()

    def _message(self) -> str:
        status = self.status
        epoch_text = f"Epoch {status.epoch}/{status.num_epochs}" if status.num_epochs else f"Epoch {status.epoch}"
        if status.state == "failed":
            return f"Failed at epoch {status.epoch}: {self._error}" if status.epoch else f"Failed: {self._error}"
        if status.state == "finished":
            dice = status.mean_validation_dice
            text = "Finished" + (f": mean validation Dice {dice:.4f}" if dice is not None else "")
            if status.update is not None:
                return f"{text}; {status.update.text()}"
            return text if dice is not None else text + "."
        eta = format_duration(status.eta_seconds)
        if status.state == "validating":
            done, total = self._validation or (0, 0)
            return f"Final validation: case {done}/{total}" + (f", ETA {eta}" if eta else "")
        parts = [epoch_text]
        if self._last_loss is not None:
            parts.append(f"loss {self._last_loss:.3f}")
        if self._last_dice is not None:
            parts.append(f"pseudo Dice {self._last_dice:.3f}")
        if eta:
            budget = f" (time budget {format_duration(self.time_budget_s)})" if self.time_budget_s else ""
            parts.append(f"ETA {eta}{budget}")
        return ", ".join(parts)
