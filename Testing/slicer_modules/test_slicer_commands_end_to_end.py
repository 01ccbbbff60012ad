"""The Slicer modules' background work, end to end without Slicer: the commands they build really run.

plan_and_preprocess_command -> train_command (followed live by TrainingMonitor) -> predict_command with a
progress file (followed by PredictionMonitor), on 8 real Hippocampus cases with a tiny training budget.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from nnunet_models import KINDS, make_raw_dataset, write_prediction_inputs

from autoseg.slicer_support.commands import (
    AutoSegCommand,
    WorkspaceFolders,
    plan_and_preprocess_command,
    predict_command,
    train_command,
)
from autoseg.slicer_support.models import find_models
from autoseg.slicer_support.prediction_monitor import PredictionMonitor
from autoseg.slicer_support.training_monitor import TrainingMonitor

CORE = Path(__file__).resolve().parents[2] / "AutoSegCore"


def _popen(command: AutoSegCommand, *extra: str) -> subprocess.Popen:
    env = {**os.environ, **command.environment, "OMP_NUM_THREADS": "2"}
    return subprocess.Popen([*command.command_line(sys.executable), *extra], env=env, cwd=CORE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(process: subprocess.Popen, timeout: float = 600) -> str:
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output[-3000:]
    return output


def test_plan_train_and_predict_with_the_module_commands(tmp_path):
    ws = WorkspaceFolders.from_root(tmp_path / "workspace")
    make_raw_dataset(ws, "hippocampus")
    kind = KINDS["hippocampus"]
    _finish(_popen(plan_and_preprocess_command(ws, kind.dataset_id, ["3d_fullres"], verify=True, num_processes=2)))
    assert (ws.preprocessed / kind.dataset_name / "nnUNetPlans.json").is_file()

    command = train_command(ws, kind.dataset_id, "3d_fullres", 0, device="cpu", epochs=2, iterations_per_epoch=3)
    monitor = TrainingMonitor(command.progress_file)
    process = _popen(command, "--val_iterations", "1", "--seed", "0", "-num_workers", "1")
    states, fractions = set(), []
    while process.poll() is None:  # what the Trainer module's timer does
        monitor.poll()
        states.add(monitor.status.state)
        fractions.append(monitor.status.fraction)
        time.sleep(0.2)
    _finish(process)
    monitor.poll()
    assert monitor.status.state == "finished" and monitor.status.fraction == 1.0
    assert monitor.status.mean_validation_dice is not None and monitor.status.message.startswith("Finished")
    assert monitor.curves.epochs == [0, 1] and all(v is not None for v in monitor.curves.train_loss)
    assert monitor.curves.learning_rate[0] == 0.01 and monitor.status.epoch == 2
    assert "running" in states and fractions == sorted(fractions)  # seen live, never going backwards

    [model] = find_models(ws.results)
    assert (model.dataset_name, model.configuration, model.folds) == (kind.dataset_name, "3d_fullres", ["0"])
    inputs = tmp_path / "inputs"
    write_prediction_inputs("hippocampus", inputs, n=1)
    progress = tmp_path / "prediction.jsonl"
    predict = predict_command(None, inputs, tmp_path / "out", model.folder, model.folds, device="cpu",
                              progress_file=progress)
    _finish(_popen(predict))
    prediction_monitor = PredictionMonitor(progress)
    prediction_monitor.poll()
    assert prediction_monitor.status.state == "finished" and prediction_monitor.status.num_cases == 1
    assert len(list((tmp_path / "out").glob(f"*{model.file_ending}"))) == 1
