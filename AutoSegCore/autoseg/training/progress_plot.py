"""``progress.png``: training/validation loss, pseudo Dice and its moving average, learning rate and
epoch duration, redrawn after every epoch (atomically, so a viewer never sees half a file)."""

from __future__ import annotations

from pathlib import Path

from autoseg.training.training_log import TrainingLog
from autoseg.utils.files import atomic_path


def plot_progress(log: TrainingLog, path: str | Path) -> None:
    """Draw the three panels nnU-Net users know (losses + Dice, epoch time, learning rate)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    n = log.num_epochs_logged
    if n == 0:
        return
    epochs = list(range(n))
    figure = Figure(figsize=(12, 16), dpi=100)
    loss_axis, time_axis, lr_axis = figure.subplots(3, 1)
    dice_axis = loss_axis.twinx()
    loss_axis.plot(epochs, log.train_losses[:n], color="b", linewidth=2, label="loss_tr")
    loss_axis.plot(epochs, log.val_losses[:n], color="r", linewidth=2, label="loss_val")
    dice_axis.plot(epochs, log.mean_fg_dice[:n], color="g", linestyle="dotted", linewidth=2, label="pseudo dice")
    dice_axis.plot(epochs, log.ema_fg_dice[:n], color="g", linewidth=2, label="pseudo dice (mov. avg.)")
    loss_axis.set_xlabel("epoch")
    loss_axis.set_ylabel("loss")
    dice_axis.set_ylabel("pseudo dice")
    loss_axis.legend(loc=(0, 1))
    dice_axis.legend(loc=(0.2, 1))
    durations = [end - start for start, end in zip(log.epoch_start_timestamps[:n], log.epoch_end_timestamps[:n])]
    time_axis.plot(epochs, durations, color="b", linewidth=2, label="epoch duration")
    time_axis.set_xlabel("epoch")
    time_axis.set_ylabel("time [s]")
    time_axis.set_ylim(bottom=0)
    time_axis.legend(loc=(0, 1))
    lr_axis.plot(epochs, log.lrs[:n], color="b", linewidth=2, label="learning rate")
    lr_axis.set_xlabel("epoch")
    lr_axis.set_ylabel("learning rate")
    lr_axis.legend(loc=(0, 1))
    figure.tight_layout()
    with atomic_path(path, ".png") as tmp:
        figure.savefig(tmp, format="png")
