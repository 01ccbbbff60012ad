"""Training to a wall-time budget, and the "finish now" request.

``--time_budget 45m`` fixes when the run (training *and* the final validation) should end, not how many
epochs it has: after every epoch :class:`TimeBudget` re-sizes the number of epochs from the measured epoch
time and an estimate of the final validation, so the polynomial learning-rate schedule always runs to its
end (a complete schedule, not a truncated one). The estimate of the validation counts the sliding windows
of the fold's validation cases, times the mirrored copies, times the forward time of one patch measured on
the epoch's validation batches.

The duration parser and the "finish now" request live in :mod:`autoseg.training.run_control` (no torch:
the Slicer modules use them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from autoseg.inference.window_grid import compute_steps
from autoseg.preprocessing import storage

#: time not spent in epochs or validation windows: checkpoints, plots, export of the validation cases
VALIDATION_OVERHEAD = 1.15


def validation_windows(data_folder: Path, identifiers: Sequence[str], patch_size: Sequence[int],
                       step_size: float = 0.5) -> int:
    """Sliding windows the final validation predicts for these preprocessed cases (without mirroring)."""
    total = 0
    for identifier in identifiers:
        shape = np.load(storage.case_files(data_folder, identifier)[0], mmap_mode="r").shape[1:]
        padded = [max(s, p) for s, p in zip(shape[-len(patch_size):], patch_size)]
        steps = compute_steps(padded, patch_size, step_size)
        slices = int(np.prod(shape[: len(shape) - len(patch_size)])) if len(shape) > len(patch_size) else 1
        total += slices * math.prod(len(s) for s in steps)
    return total


@dataclass
class TimeBudget:
    """Sizes the number of epochs so that training + final validation end ``seconds`` after ``start``.

    An epoch's cost is measured from one epoch's end to the next (checkpoints and plots included). After the
    first epoch, which pays the warm-up (workers starting, first kernels), it is estimated from its median
    training step instead: otherwise a short budget would be sized from a warm-up that never recurs."""

    seconds: float
    start: float
    #: sliding windows x mirrored copies of the final validation
    validation_forwards: int
    cycles: list[float] = field(default_factory=list)
    first_epoch_estimate: float | None = None
    seconds_per_forward: float | None = None
    _last_end: float | None = None

    @property
    def deadline(self) -> float:
        return self.start + self.seconds

    def record_epoch(self, end: float, step_seconds: Sequence[float], val_seconds: float, val_patches: int,
                     train_seconds: float, train_patches: int) -> None:
        """An epoch that ended at ``end`` (``time.time()``): its training steps' times, and the measured forward
        time per patch (validation batches; else a third of a training step, forward + backward)."""
        if self._last_end is None:
            steady = float(np.median(step_seconds)) * len(step_seconds) if step_seconds else train_seconds
            self.first_epoch_estimate = steady + val_seconds
        else:
            self.cycles.append(end - self._last_end)
        self._last_end = end
        if val_patches:
            per_patch = val_seconds / val_patches
        else:
            per_patch = train_seconds / max(1, train_patches) / 3
        self.seconds_per_forward = per_patch if self.seconds_per_forward is None else (
            0.5 * self.seconds_per_forward + 0.5 * per_patch)

    def validation_estimate(self) -> float:
        return self.validation_forwards * (self.seconds_per_forward or 0.0) * VALIDATION_OVERHEAD

    def epoch_estimate(self) -> float:
        """The typical epoch cycle: the median of the last five measured, else the first epoch's steady estimate."""
        if self.cycles:
            return float(np.median(self.cycles[-5:]))
        return float(self.first_epoch_estimate or 0.0) or 1.0

    def total_epochs(self, epochs_done: int, now: float) -> int:
        """How many epochs the run should have in all, given that ``epochs_done`` are done at time ``now``."""
        left = self.deadline - now - self.validation_estimate()
        more = int(math.floor(left / self.epoch_estimate() + 0.5)) if left > 0 else 0
        return epochs_done + max(0, more)
