"""The annotation loop's training side, end to end on real Hippocampus cases with tiny budgets.

Cases added after the first training are preprocessed incrementally, join the folds, and ``train --update``
fine-tunes the fold from its model, keeping the previous one as a numbered version that stays loadable;
``predict`` uses the newest unless ``-model_version`` says otherwise; ``--time_budget`` ends within the
budget. (A ``finish_now`` file ending a real run is tested from the Trainer module:
Testing/slicer_modules/test_planner_trainer_loop.py.)
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from nnunet_models import KINDS, make_raw_dataset, write_prediction_inputs
from test_train import autoseg

from autoseg.inference.model_folder import open_model_folder
from autoseg.network.checkpoint import load_checkpoint
from autoseg.paths import Workspace
from autoseg.utils.progress_stream import read_events

DATASET = str(KINDS["hippocampus"].dataset_id)
TINY = ["--iterations_per_epoch", "3", "--val_iterations", "2", "--seed", "0", "--no_pbar", "-device", "cpu",
        "-num_workers", "0"]
HELD_BACK = 2


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    """Hippocampus with 2 cases held back, planned, preprocessed and fold 0 trained for 2 epochs."""
    root = tmp_path_factory.mktemp("update_ws")
    ws = Workspace.from_root(root)
    raw = make_raw_dataset(ws, "hippocampus")
    held = root / "held_back"
    held.mkdir()
    for label in sorted((raw / "labelsTr").iterdir())[-HELD_BACK:]:
        case = label.name[: -len(".nii.gz")]
        shutil.move(str(label), held / label.name)
        shutil.move(str(raw / "imagesTr" / f"{case}_0000.nii.gz"), held / f"{case}_0000.nii.gz")
    autoseg(ws, "plan_and_preprocess", "-d", DATASET, "-c", "3d_fullres", "-np", "2")
    autoseg(ws, "train", DATASET, "3d_fullres", "0", "--epochs", "2", *TINY)
    return ws, raw, held


def _fold(ws: Workspace) -> Path:
    return ws.results / KINDS["hippocampus"].dataset_name / "nnUNetTrainer__nnUNetPlans__3d_fullres" / "fold_0"


def test_update_with_new_cases_keeps_the_old_version_and_predict_picks_the_newest(loop, tmp_path):
    ws, raw, held = loop
    fold = _fold(ws)
    first = _sha(fold / "checkpoint_final.pth")
    first_val = json.loads((fold / "debug.json").read_text())["validation_cases"]
    new_cases = sorted(p.name[: -len("_0000.nii.gz")] for p in held.glob("*_0000.nii.gz"))
    for path in held.iterdir():
        shutil.copy(path, raw / ("imagesTr" if "_0000" in path.name else "labelsTr") / path.name)
    result = autoseg(ws, "preprocess", "-d", DATASET, "-c", "3d_fullres", "-np", "1")
    assert f"{8 - HELD_BACK} case(s) up to date, {HELD_BACK} new, 0 changed" in result.stdout + result.stderr

    result = autoseg(ws, "train", DATASET, "3d_fullres", "0", "--update", "--epochs", "1", *TINY)
    log = result.stdout + result.stderr
    assert "version 1 -> 2" in log and "Update to version 2 done: mean validation Dice" in log
    # the old model is archived untouched and still loads; the new one is the fold's checkpoint_final.pth
    assert _sha(fold / "versions" / "v1" / "checkpoint_final.pth") == first
    assert (fold / "versions" / "v1" / "validation" / "summary.json").is_file()
    assert _sha(fold / "checkpoint_final.pth") != first
    assert json.loads((fold / "model_version.json").read_text())["version"] == 2
    update = load_checkpoint(fold / "checkpoint_final.pth")
    assert update["autoseg_update"]["from_version"] == 1 and update["current_epoch"] == 1
    # Dice before (version 1) and after, on the same validation cases
    before = json.loads((fold / "validation_before_update" / "summary.json").read_text())
    after = json.loads((fold / "validation" / "summary.json").read_text())
    assert [c["reference_file"].split("/")[-1] for c in before["metric_per_case"]] == \
        [c["reference_file"].split("/")[-1] for c in after["metric_per_case"]]
    events = [e for e in read_events(fold / "progress.jsonl")[0] if e["type"] == "update"]
    assert events and events[-1]["to_version"] == 2 and "dice_before" in events[-1]
    # stable splits: old validation cases keep fold 0, every new case is in some fold
    splits = json.loads((ws.preprocessed / KINDS["hippocampus"].dataset_name / "splits_final.json").read_text())
    assert set(first_val) <= set(splits[0]["val"])
    assert all(any(case in s["val"] for s in splits) for case in new_cases)
    debug = json.loads((fold / "debug.json").read_text())
    assert set(new_cases) <= set(debug["training_cases"] + debug["validation_cases"])

    model = fold.parent
    newest = open_model_folder(model, [0]).folds[0].state_dict
    old = open_model_folder(model, [0], "versions/v1/checkpoint_final.pth").folds[0].state_dict
    assert any(not np.array_equal(newest[k], old[k]) for k in newest)
    inputs = tmp_path / "in"
    write_prediction_inputs("hippocampus", inputs, n=1)
    autoseg(ws, "predict", "-i", str(inputs), "-o", str(tmp_path / "v1"), "-m", str(model), "-f", "0",
            "-model_version", "1", "-device", "cpu", "--disable_tta")
    assert list((tmp_path / "v1").glob("*.nii.gz"))
    # version 1 is still there for a later update to keep as it is (archiving never overwrites: unit-tested)
    assert _sha(fold / "versions" / "v1" / "checkpoint_final.pth") == first


def test_update_refuses_a_fold_without_a_model_and_an_explicit_continue(loop):
    ws, _, _ = loop
    result = autoseg(ws, "train", DATASET, "3d_fullres", "3", "--update", *TINY, check=False)
    assert result.returncode != 0 and "--update needs a trained model" in result.stderr
    result = autoseg(ws, "train", DATASET, "3d_fullres", "0", "--update", "--c", *TINY, check=False)
    assert result.returncode != 0 and "--update cannot be combined with --c" in result.stderr


def test_time_budget_run_ends_within_the_budget(loop):
    ws, _, _ = loop
    budget = 40
    tiny = [a if a != "3" else "2" for a in TINY]  # 2 iterations per epoch: many short epochs
    result = autoseg(ws, "train", DATASET, "3d_fullres", "1", "--time_budget", f"{budget}s", *tiny)
    log = result.stdout + result.stderr
    took = float(log.split(" epochs) and validation took ")[1].split(" s")[0])
    assert 0.6 * budget <= took <= 1.1 * budget, log[-2000:]
    fold = _fold(ws).parent / "fold_1"
    checkpoint = load_checkpoint(fold / "checkpoint_final.pth")
    epochs, lrs = checkpoint["current_epoch"], checkpoint["logging"]["lrs"]
    assert f"training ({epochs} epochs) and validation took" in log
    # a complete schedule: the last epoch ran at the polynomial schedule's last step for the epochs it had in all
    assert len(lrs) == epochs and lrs[-1] == pytest.approx(0.01 * (1 / epochs) ** 0.9, rel=1e-6)
    assert (fold / "validation" / "summary.json").is_file()
