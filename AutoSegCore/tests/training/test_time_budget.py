"""Time budget arithmetic and the finish-now request (the end-to-end runs are in Testing/cli/test_model_update.py)."""

from __future__ import annotations

import numpy as np
import pytest

from autoseg.errors import AutoSegError
from autoseg.preprocessing import storage
from autoseg.training.run_control import finish_requested, parse_duration
from autoseg.training.time_budget import VALIDATION_OVERHEAD, TimeBudget, validation_windows


@pytest.mark.parametrize("text, seconds", [("45m", 2700), ("1h30m", 5400), ("90s", 90), ("2h", 7200),
                                           ("45", 2700), ("1.5h", 5400), ("10min", 600), (" 1h 5s ", 3605)])
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "-5m", "0m", "5 minutes", "m"])
def test_bad_durations_name_the_option(text):
    with pytest.raises(AutoSegError, match="--time_budget"):
        parse_duration(text)


def test_epochs_fill_the_budget_after_the_validation_estimate():
    budget = TimeBudget(seconds=1000, start=0.0, validation_forwards=400)
    # the first epoch pays a warm-up (a 12 s first step): its steady cost is the median step x steps + validation
    budget.record_epoch(end=30, step_seconds=[12, 1, 1, 1, 1], val_seconds=4, val_patches=20, train_seconds=26,
                        train_patches=100)
    validation = 400 * 0.2 * VALIDATION_OVERHEAD
    assert budget.validation_estimate() == pytest.approx(validation)
    assert budget.epoch_estimate() == pytest.approx(5 * 1 + 4)
    assert budget.total_epochs(1, now=30) == 1 + round((1000 - 30 - validation) / 9)
    for end in (40, 50, 61):  # later epochs: their measured cycles (end to end, saving included) decide
        budget.record_epoch(end=end, step_seconds=[1] * 5, val_seconds=4, val_patches=20, train_seconds=5,
                            train_patches=100)
    assert budget.epoch_estimate() == 10
    assert budget.total_epochs(4, now=61) == 4 + round((1000 - 61 - validation) / 10)
    # past the deadline: no more epochs, whatever was planned
    assert budget.total_epochs(40, now=990) == 40


def test_without_validation_batches_a_forward_is_a_third_of_a_training_step():
    budget = TimeBudget(seconds=100, start=0.0, validation_forwards=10)
    budget.record_epoch(end=9, step_seconds=[3, 3, 3], val_seconds=0, val_patches=0, train_seconds=9,
                        train_patches=30)
    assert budget.seconds_per_forward == pytest.approx(0.1)


def test_validation_windows_count_the_sliding_windows(tmp_path):
    data = np.zeros((1, 40, 56, 40), dtype=np.float32)  # 40/56/40 with patch 40/32/40, step 0.5: 1 x 3 x 1
    small = np.zeros((1, 10, 20, 30), dtype=np.float32)  # smaller than the patch: padded, one window
    for name, array in (("a", data), ("b", small)):
        storage.save_case(tmp_path, name, array, array.astype(np.int8), {})
    assert validation_windows(tmp_path, ["a", "b"], (40, 32, 40)) == 3 + 1
    # a 2d configuration predicts every slice of the first axis
    assert validation_windows(tmp_path, ["a"], (32, 40)) == 40 * 3


def test_finish_request_is_a_file_in_the_fold_folder(tmp_path):
    assert finish_requested(tmp_path) is None
    (tmp_path / "finish_now").touch()
    assert finish_requested(tmp_path) == tmp_path / "finish_now"
