"""Following a fold's progress.jsonl, written with ProgressStream exactly as the trainer writes it."""

from __future__ import annotations

import math
import time

import pytest

from autoseg.slicer_support.training_monitor import TrainingMonitor, format_duration
from autoseg.utils.progress_stream import ProgressStream


class Clock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _start(stream: ProgressStream, epoch: int = 0, num_epochs: int = 4, iterations: int = 10) -> dict:
    return stream.emit("start", epoch=epoch, num_epochs=num_epochs, iterations_per_epoch=iterations, val_iterations=2,
                       fold="0", configuration="3d_fullres", trainer="nnUNetTrainer", plans="nnUNetPlans",
                       device="cpu", precision="fp32")


def _epoch(stream: ProgressStream, epoch: int, dice: float, num_epochs: int = 4, eta: float | None = 30.0) -> dict:
    return stream.emit(
        "epoch",
        epoch=epoch,
        num_epochs=num_epochs,
        train_loss=0.5 - 0.1 * epoch,
        val_loss=-0.05 * epoch,
        pseudo_dice=[dice, float("nan")],
        mean_fg_dice=dice,
        ema_fg_dice=dice / 2,
        lr=0.01 / (epoch + 1),
        epoch_time=10.0,
        best_ema=dice / 2,
        eta_seconds=eta,
    )


def test_format_duration():
    assert [format_duration(s) for s in (None, float("nan"), -3, 0, 44.6, 59.4, 60, 719, 3599, 3600, 3720, 90000)] == [
        "",
        "",
        "0 s",
        "0 s",
        "45 s",
        "59 s",
        "1 min",
        "12 min",
        "1 h 00 min",
        "1 h 00 min",
        "1 h 02 min",
        "25 h 00 min",
    ]


def test_waiting_until_the_file_appears(tmp_path):
    monitor = TrainingMonitor(tmp_path / "fold_0" / "progress.jsonl")
    assert monitor.poll() == [] and monitor.status.state == "waiting" and monitor.status.fraction == 0.0
    assert monitor.status.message.startswith("Waiting")
    _start(ProgressStream(tmp_path / "fold_0" / "progress.jsonl"))
    events = monitor.poll()
    assert [e["type"] for e in events] == ["start"] and monitor.status.state == "running"
    assert (monitor.status.epoch, monitor.status.num_epochs, monitor.status.iterations_per_epoch) == (1, 4, 10)
    assert monitor.poll() == []  # nothing new


def test_iterations_epochs_curves_and_eta(tmp_path):
    path = tmp_path / "progress.jsonl"
    stream, clock = ProgressStream(path), Clock()
    start = _start(stream)
    clock.now = start["time"] + 20
    stream.emit("iteration", epoch=0, iteration=5, iterations_per_epoch=10, loss=0.5)
    monitor = TrainingMonitor(path, clock=clock)
    monitor.poll()
    status = monitor.status
    assert status.state == "running" and status.epoch == 1 and status.iteration == 5
    assert status.fraction == pytest.approx(0.95 * 0.5 / 4)
    assert status.eta_seconds == pytest.approx(20 / (0.5 / 4) * (1 - 0.5 / 4), rel=0.05)  # from the session's rate
    assert status.message.startswith("Epoch 1/4, loss 0.500, ETA ")

    event = _epoch(stream, 0, 0.6, eta=30.0)
    clock.now = event["time"] + 10
    monitor.poll()
    assert monitor.curves.epochs == [0] and monitor.curves.pseudo_dice == [0.6] and monitor.curves.ema_dice == [0.3]
    assert monitor.curves.learning_rate == [0.01] and monitor.curves.train_loss[0] == 0.5
    assert status.epoch == 2 and status.fraction == pytest.approx(0.95 / 4)
    assert status.eta_seconds == pytest.approx(20.0, abs=0.01)  # the trainer's ETA minus the time since
    assert status.message == "Epoch 2/4, loss 0.500, pseudo Dice 0.600, ETA 20 s"

    _epoch(stream, 1, 0.7)
    stream.emit("iteration", epoch=2, iteration=10, iterations_per_epoch=10, loss=-0.25)
    monitor.poll()
    assert monitor.curves.epochs == [0, 1] and status.fraction == pytest.approx(0.95 * 3 / 4)
    assert "loss -0.250" in status.message and "pseudo Dice 0.700" in status.message


def test_partial_last_line_is_read_once_complete(tmp_path):
    path = tmp_path / "progress.jsonl"
    _start(ProgressStream(path))
    monitor = TrainingMonitor(path)
    monitor.poll()
    with path.open("a", encoding="utf-8") as stream:
        stream.write('{"type": "iteration", "epoch": 0, "iteration": 3, "iterations_per_epoch": 10, "lo')
    assert monitor.poll() == []
    with path.open("a", encoding="utf-8") as stream:
        stream.write('ss": 0.25}\n')
    assert [e["iteration"] for e in monitor.poll()] == [3] and monitor.status.iteration == 3


def test_resume_continues_curves_without_duplicates(tmp_path):
    path = tmp_path / "progress.jsonl"
    stream = ProgressStream(path)
    _start(stream, num_epochs=6)
    for epoch, dice in enumerate((0.1, 0.2, 0.3, 0.4)):
        _epoch(stream, epoch, dice, num_epochs=6)
    stream.emit("error", message="interrupted", epoch=4)
    monitor = TrainingMonitor(path)
    monitor.poll()
    assert monitor.status.state == "failed" and monitor.status.message == "Failed at epoch 5: interrupted"
    assert monitor.status.eta_seconds is None
    # --c from the checkpoint of epoch 2: epochs 2 and 3 are trained again
    _start(stream, epoch=2, num_epochs=6)
    monitor.poll()
    assert monitor.status.state == "running" and monitor.status.epoch == 3
    assert monitor.curves.epochs == [0, 1] and monitor.curves.pseudo_dice == [0.1, 0.2]
    for epoch, dice in ((2, 0.35), (3, 0.45), (3, 0.46)):  # a re-emitted epoch replaces its point
        _epoch(stream, epoch, dice, num_epochs=6)
    monitor.poll()
    assert monitor.curves.epochs == [0, 1, 2, 3] and monitor.curves.pseudo_dice == [0.1, 0.2, 0.35, 0.46]
    assert len(monitor.curves.val_loss) == len(monitor.curves.learning_rate) == 4
    assert monitor.status.epoch == 5 and monitor.status.fraction == pytest.approx(0.95 * 4 / 6)


def test_validation_end_and_missing_values(tmp_path):
    path = tmp_path / "progress.jsonl"
    stream, clock = ProgressStream(path), Clock()
    _start(stream, num_epochs=2)
    _epoch(stream, 0, float("nan"), num_epochs=2)  # no foreground predicted yet: NaN becomes null
    _epoch(stream, 1, 0.8, num_epochs=2, eta=None)
    first = stream.emit("validation", case="case_1", done=1, total=4)
    monitor = TrainingMonitor(path, clock=clock)
    clock.now = first["time"] + 5
    monitor.poll()
    assert monitor.curves.pseudo_dice[0] is None and monitor.curves.pseudo_dice[1] == 0.8
    status = monitor.status
    assert status.state == "validating" and status.epoch == 2
    assert status.fraction == pytest.approx(0.95 + 0.05 / 4)
    stream.emit("validation", case="case_2", done=2, total=4)
    clock.now = first["time"] + 10
    monitor.poll()
    assert status.message.startswith("Final validation: case 2/4") and status.eta_seconds == pytest.approx(10, abs=0.5)
    stream.emit("validation", case="case_4", done=4, total=4)
    stream.emit("end", mean_validation_dice=0.8312)
    monitor.poll()
    assert status.state == "finished" and status.fraction == 1.0 and status.eta_seconds == 0.0
    assert status.mean_validation_dice == pytest.approx(0.8312)
    assert status.message == "Finished: mean validation Dice 0.8312"


def test_replaced_or_truncated_file_starts_over(tmp_path):
    path = tmp_path / "progress.jsonl"
    stream = ProgressStream(path)
    _start(stream)
    _epoch(stream, 0, 0.5)
    _epoch(stream, 1, 0.6)
    monitor = TrainingMonitor(path)
    monitor.poll()
    assert monitor.curves.epochs == [0, 1]
    path.unlink()  # a new training in a clean fold folder
    new = ProgressStream(path)
    _start(new, num_epochs=3)
    assert monitor.poll()[0]["type"] == "start"
    assert monitor.curves.epochs == [] and monitor.status.num_epochs == 3 and monitor.status.epoch == 1
    path.write_text("")  # truncated
    assert monitor.poll() == [] and monitor.status.state == "waiting"
    stream2 = ProgressStream(path)
    _start(stream2, num_epochs=5)
    for epoch in range(3):
        _epoch(stream2, epoch, 0.1, num_epochs=5)
    monitor.poll()
    assert monitor.curves.epochs == [0, 1, 2] and not math.isnan(monitor.status.fraction)


def test_corrupt_line_is_skipped(tmp_path):
    path = tmp_path / "progress.jsonl"
    stream = ProgressStream(path)
    _start(stream)
    with path.open("a", encoding="utf-8") as handle:
        handle.write("not json\n")
    _epoch(stream, 0, 0.5)
    monitor = TrainingMonitor(path)
    assert [e["type"] for e in monitor.poll()] == ["start", "epoch"] and monitor.curves.epochs == [0]


def test_an_update_shows_the_dice_before_and_after_and_skips_the_earlier_run(tmp_path):
    path = tmp_path / "progress.jsonl"
    stream = ProgressStream(path)
    _start(stream, num_epochs=1)  # the trained model's run, still in the fold's file when the update starts
    _epoch(stream, 0, 0.7, num_epochs=1)
    stream.emit("end", mean_validation_dice=0.7)
    time.sleep(0.01)
    monitor = TrainingMonitor(path, ignore_before=time.time())  # made as the update starts
    time.sleep(0.01)
    monitor.poll()
    assert monitor.status.state == "waiting" and monitor.curves.epochs == []
    path.unlink()  # the update archives the file into versions/v1 and writes a new one
    monitor.poll()
    _start(stream, num_epochs=2)
    _epoch(stream, 0, 0.75, num_epochs=2)
    _epoch(stream, 1, 0.8, num_epochs=2)
    stream.emit("end", mean_validation_dice=0.8104)
    stream.emit("update", from_version=1, to_version=2, dice_before=0.7812, dice_after=0.8104)
    monitor.poll()
    assert monitor.curves.epochs == [0, 1] and monitor.status.state == "finished"
    update = monitor.status.update
    assert (update.from_version, update.to_version, update.dice_before, update.dice_after) == (1, 2, 0.7812, 0.8104)
    assert monitor.status.message == ("Finished: mean validation Dice 0.8104; updated version 1 \u2192 2, mean "
                                      "validation Dice 0.7812 \u2192 0.8104")
    stream.emit("update", from_version=2, to_version=3, dice_before=None, dice_after=float("nan"))
    monitor.poll()
    assert monitor.status.update.text() == "updated version 2 \u2192 3, mean validation Dice ? \u2192 ?"


def test_a_time_budget_gives_the_eta_and_the_progress(tmp_path):
    path = tmp_path / "progress.jsonl"
    stream, clock = ProgressStream(path), Clock(1000.0)
    monitor = TrainingMonitor(path, clock=clock, time_budget_s=600)  # made as the run starts
    assert monitor.status.time_budget_s == 600
    _start(stream, num_epochs=1000)
    _epoch(stream, 0, 0.5, num_epochs=40, eta=9999.0)  # the trainer re-sized the epochs to the budget
    clock.now = 1150.0
    monitor.poll()
    status = monitor.status
    assert status.eta_seconds == pytest.approx(450) and status.fraction == pytest.approx(0.25)
    assert status.message.endswith("ETA 8 min (time budget 10 min)") and status.message.startswith("Epoch 2/40")
    clock.now = 1700.0  # past the budget: the ETA stays at zero and the progress below the validation's share
    monitor.poll()
    assert status.eta_seconds == 0.0 and status.fraction == pytest.approx(0.95)


def test_the_budget_a_start_event_names_when_the_monitor_was_not_told(tmp_path):
    path = tmp_path / "progress.jsonl"
    stream, clock = ProgressStream(path), Clock()
    start = stream.emit("start", epoch=0, num_epochs=1000, iterations_per_epoch=10, time_budget_s=300.0, update=None)
    monitor = TrainingMonitor(path, clock=clock)
    clock.now = start["time"] + 60
    monitor.poll()
    assert monitor.status.time_budget_s == 300 and monitor.status.eta_seconds == pytest.approx(240)
    _start(stream, num_epochs=4)  # a later run without a budget (e.g. continued with --c)
    monitor.poll()
    assert monitor.status.time_budget_s is None and monitor.time_budget_s is None
