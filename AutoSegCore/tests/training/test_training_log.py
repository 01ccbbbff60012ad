"""Pseudo Dice, its moving average and the nnU-Net-compatible logging dict."""

from __future__ import annotations

import math

import numpy as np

from autoseg.training.training_log import TrainingLog, pseudo_dice


def test_pseudo_dice_and_ema():
    assert pseudo_dice([10, 0], [0, 0], [10, 0])[0] == 2 * 10 / (2 * 10 + 10)
    assert math.isnan(pseudo_dice([10, 0], [0, 0], [10, 0])[1])
    log = TrainingLog()
    assert log.log_validation([0.5, 0.7]) == 0.6  # first epoch: the value itself
    second = log.log_validation([0.9, float("nan")])
    assert second == 0.9 * 0.6 + 0.1 * 0.9
    assert log.mean_fg_dice == [0.6, 0.9] and log.ema_fg_dice[-1] == second


def test_round_trip_and_truncation_of_a_killed_epoch():
    log = TrainingLog()
    for epoch in range(3):
        log.train_losses.append(-0.1 * epoch)
        log.val_losses.append(-0.2 * epoch)
        log.lrs.append(0.01)
        log.epoch_start_timestamps.append(float(epoch))
        log.epoch_end_timestamps.append(epoch + 0.5)
        log.log_validation([0.5])
    raw = log.to_checkpoint()
    raw["train_losses"].append(np.float32(-1.0))  # the killed epoch logged only its training loss
    raw["mean_fg_dice"] = [np.float64(v) for v in raw["mean_fg_dice"]]  # numpy scalars as nnU-Net stores them
    back = TrainingLog.from_checkpoint(raw)
    assert back.num_epochs_logged == 3 and len(back.train_losses) == 3
    assert back.to_checkpoint() == log.to_checkpoint()
    assert all(type(v) is float for v in back.mean_fg_dice)
