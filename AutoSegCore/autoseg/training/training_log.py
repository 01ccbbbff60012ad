"""The per-epoch training log in nnU-Net's checkpoint layout (``checkpoint["logging"]``), the pseudo Dice
of validation patches and its moving average (which decides ``checkpoint_best``)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import numpy.typing as npt

EMA_MOMENTUM = 0.9


def pseudo_dice(tp: npt.ArrayLike, fp: npt.ArrayLike, fn: npt.ArrayLike) -> list[float]:
    """Per-class Dice from counts summed over all validation patches (NaN where a class never occurs)."""
    tp, fp, fn = (np.asarray(a, dtype=np.float64) for a in (tp, fp, fn))
    with np.errstate(invalid="ignore", divide="ignore"):
        return [float(d) for d in 2 * tp / (2 * tp + fp + fn)]


@dataclass
class TrainingLog:
    """One entry per epoch in every list (nnU-Net's keys, so either tool can resume the other's log)."""

    mean_fg_dice: list[float] = field(default_factory=list)
    ema_fg_dice: list[float] = field(default_factory=list)
    dice_per_class_or_region: list[list[float]] = field(default_factory=list)
    train_losses: list[float] = field(default_factory=list)
    val_losses: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    epoch_start_timestamps: list[float] = field(default_factory=list)
    epoch_end_timestamps: list[float] = field(default_factory=list)

    @property
    def num_epochs_logged(self) -> int:
        return min(len(getattr(self, f.name)) for f in fields(self))

    def log_validation(self, dice_per_class: list[float]) -> float:
        """Record an epoch's pseudo Dice; returns the updated moving average (EMA 0.9, first value as is)."""
        mean = float(np.nanmean(dice_per_class)) if not np.all(np.isnan(dice_per_class)) else float("nan")
        ema = mean if not self.ema_fg_dice else EMA_MOMENTUM * self.ema_fg_dice[-1] + (1 - EMA_MOMENTUM) * mean
        self.dice_per_class_or_region.append([float(d) for d in dice_per_class])
        self.mean_fg_dice.append(mean)
        self.ema_fg_dice.append(ema)
        return ema

    def to_checkpoint(self) -> dict[str, list]:
        return {f.name: list(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_checkpoint(cls, raw: dict[str, Any]) -> TrainingLog:
        """Read nnU-Net's or our logging dict; lists are cut to the epochs every key has (a killed epoch)."""
        log = cls(**{f.name: [_plain(v) for v in raw.get(f.name, [])] for f in fields(cls)})
        n = log.num_epochs_logged
        for f in fields(cls):
            setattr(log, f.name, getattr(log, f.name)[:n])
        return log


def _plain(value: Any) -> Any:
    """numpy scalars/arrays from nnU-Net checkpoints to Python floats/lists."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
