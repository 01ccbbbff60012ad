"""``autoseg train`` end to end on real Hippocampus cases with a tiny budget.

A short run produces the complete fold folder in nnU-Net's format; ``nnUNetv2_predict`` runs the result
and agrees with ``autoseg predict``; ``kill -9`` in the middle of a run followed by ``--c`` finishes a run
as complete as an uninterrupted one; bad requests fail with one clear message.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from nnunet_models import KINDS, make_raw_dataset, predict_with_nnunet, write_prediction_inputs

from autoseg.network.checkpoint import load_checkpoint
from autoseg.paths import Workspace
from autoseg.training.precision import DESCRIPTIONS, cpu_has_native_bf16
from autoseg.utils.progress_stream import read_events

pytestmark = pytest.mark.oracle

AUTOSEG = [str(Path(sys.executable).parent / "autoseg")]
TINY = ["--epochs", "2", "--iterations_per_epoch", "3", "--val_iterations", "2", "--seed", "0", "--no_pbar",
        "-device", "cpu", "-num_workers", "1"]


def _env(workspace: Workspace) -> dict[str, str]:
    env = dict(os.environ)
    env.update(nnUNet_raw=str(workspace.raw), nnUNet_preprocessed=str(workspace.preprocessed),
               nnUNet_results=str(workspace.results), OMP_NUM_THREADS="2")
    return env


def autoseg(workspace: Workspace, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    result = subprocess.run([*AUTOSEG, *args], env=_env(workspace), capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f"autoseg {' '.join(args)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Workspace:
    """Hippocampus (8 training cases), planned and preprocessed by AutoSeg for 3d_fullres and 2d."""
    root = tmp_path_factory.mktemp("train_ws")
    ws = Workspace.from_root(root)
    for folder in (ws.raw, ws.preprocessed, ws.results):
        folder.mkdir(parents=True, exist_ok=True)
    make_raw_dataset(ws, "hippocampus")
    autoseg(ws, "plan_and_preprocess", "-d", str(KINDS["hippocampus"].dataset_id), "-c", "3d_fullres", "2d", "-np", "2")
    return ws


DATASET = str(KINDS["hippocampus"].dataset_id)


def model_folder(ws: Workspace, configuration: str = "3d_fullres", trainer: str = "nnUNetTrainer") -> Path:
    return ws.results / KINDS["hippocampus"].dataset_name / f"{trainer}__nnUNetPlans__{configuration}"


@pytest.fixture(scope="module")
def trained(workspace) -> Path:
    autoseg(workspace, "train", DATASET, "3d_fullres", "0", "--npz", *TINY)
    return model_folder(workspace)


def test_short_run_writes_the_complete_fold_folder(trained, workspace):
    fold = trained / "fold_0"
    for name in ("dataset.json", "plans.json", "dataset_fingerprint.json"):
        assert (trained / name).is_file()
    assert (fold / "checkpoint_final.pth").is_file() and (fold / "checkpoint_best.pth").is_file()
    assert not (fold / "checkpoint_latest.pth").exists()  # removed at the end, as nnU-Net does
    assert not [p for p in fold.iterdir() if ".tmp" in p.name]  # no temporary file left behind
    assert (fold / "progress.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    logs = list(fold.glob("training_log_*.txt"))
    assert len(logs) == 1 and "Epoch 1:" in logs[0].read_text()
    debug = json.loads((fold / "debug.json").read_text())
    assert debug["configuration"] == "3d_fullres" and debug["settings"]["num_epochs"] == 2
    default = "bf16-backward" if cpu_has_native_bf16() else "fp32"  # the CPU default
    assert debug["precision"] == default and debug["precision_scheme"] == DESCRIPTIONS[default]
    assert f"Precision {default}: {DESCRIPTIONS[default]}." in logs[0].read_text()

    checkpoint = load_checkpoint(fold / "checkpoint_final.pth")
    assert checkpoint["current_epoch"] == 2 and checkpoint["trainer_name"] == "nnUNetTrainer"
    assert tuple(checkpoint["inference_allowed_mirroring_axes"]) == (0, 1, 2)
    assert checkpoint["init_args"]["configuration"] == "3d_fullres" and checkpoint["init_args"]["fold"] == 0
    assert all(len(v) == 2 for v in checkpoint["logging"].values())
    assert checkpoint["logging"]["lrs"][0] == pytest.approx(0.01)
    assert checkpoint["logging"]["lrs"][1] == pytest.approx(0.01 * 0.5**0.9)

    events, _ = read_events(fold / "progress.jsonl")
    types = [e["type"] for e in events]
    assert types[0] == "start" and types[-1] == "end" and types.count("epoch") == 2
    epoch = [e for e in events if e["type"] == "epoch"][-1]
    assert {"train_loss", "val_loss", "pseudo_dice", "ema_fg_dice", "lr", "eta_seconds"} <= set(epoch)

    splits = json.loads((workspace.preprocessed / KINDS["hippocampus"].dataset_name / "splits_final.json").read_text())
    val_cases = sorted(splits[0]["val"])
    validation = fold / "validation"
    summary = json.loads((validation / "summary.json").read_text())
    assert sorted(Path(c["prediction_file"]).name for c in summary["metric_per_case"]) == [
        f"{c}.nii.gz" for c in val_cases
    ]
    assert set(summary["mean"]) == {"1", "2"} and "Dice" in summary["foreground_mean"]
    for case in val_cases:
        assert (validation / f"{case}.npz").is_file()  # --npz
        prediction = sitk.ReadImage(str(validation / f"{case}.nii.gz"))
        reference = sitk.ReadImage(str(workspace.preprocessed / KINDS["hippocampus"].dataset_name / "gt_segmentations"
                                       / f"{case}.nii.gz"))
        assert prediction.GetSize() == reference.GetSize()
        assert prediction.GetSpacing() == reference.GetSpacing() and prediction.GetOrigin() == reference.GetOrigin()
        assert prediction.GetDirection() == reference.GetDirection()
        with np.load(validation / f"{case}.npz") as npz:
            assert npz["probabilities"].shape[0] == 3


def test_nnunet_predicts_with_the_autoseg_model_and_agrees(trained, workspace, tmp_path):
    inputs = tmp_path / "in"
    write_prediction_inputs("hippocampus", inputs, n=2)
    theirs = predict_with_nnunet(workspace, trained, inputs, tmp_path / "nnunet", [0])
    ours = tmp_path / "autoseg"
    autoseg(workspace, "predict", "-i", str(inputs), "-o", str(ours), "-m", str(trained), "-f", "0", "-device", "cpu",
            "--no_pbar")
    files = sorted(theirs.glob("*.nii.gz"))
    assert len(files) == 2
    for file in files:
        a, b = sitk.ReadImage(str(file)), sitk.ReadImage(str(ours / file.name))
        assert a.GetSize() == b.GetSize() and a.GetSpacing() == b.GetSpacing() and a.GetOrigin() == b.GetOrigin()
        agreement = np.mean(sitk.GetArrayFromImage(a) == sitk.GetArrayFromImage(b))
        assert agreement >= 0.999, f"{file.name}: {agreement:.5f}"


def test_val_reruns_the_validation(trained, workspace):
    summary_file = trained / "fold_0" / "validation" / "summary.json"
    before = json.loads(summary_file.read_text())["foreground_mean"]["Dice"]
    summary_file.unlink()
    autoseg(workspace, "train", DATASET, "3d_fullres", "0", "--val", "--no_pbar", "-device", "cpu")
    assert json.loads(summary_file.read_text())["foreground_mean"]["Dice"] == pytest.approx(before, abs=1e-6)


def test_kill_minus_9_then_continue(workspace):
    """A run killed with SIGKILL after its first epoch continues with --c to a complete, valid run."""
    trainer = "nnUNetTrainer_4epochs"
    folder = model_folder(workspace, trainer=trainer) / "fold_1"
    args = [*AUTOSEG, "train", DATASET, "3d_fullres", "1", "-tr", trainer, "--iterations_per_epoch", "4",
            "--val_iterations", "1", "--seed", "3", "--no_pbar", "-device", "cpu", "-num_workers", "1"]
    process = subprocess.Popen(args, env=_env(workspace), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    try:
        while time.time() < deadline:
            events, _ = read_events(folder / "progress.jsonl")
            if any(e["type"] == "epoch" and e["epoch"] >= 1 for e in events):
                break
            assert process.poll() is None, process.stderr.read()
            time.sleep(0.05)
        else:
            pytest.fail("the training did not finish two epochs in time")
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert not (folder / "checkpoint_final.pth").exists()
    latest = load_checkpoint(folder / "checkpoint_latest.pth")  # complete and readable
    resumed_from = latest["current_epoch"]
    assert 1 <= resumed_from < 4
    assert all(len(v) == resumed_from for v in latest["logging"].values())

    result = autoseg(
        workspace,
        "train",
        DATASET,
        "3d_fullres",
        "1",
        "-tr",
        trainer,
        "--c",
        "--iterations_per_epoch",
        "4",
        "--val_iterations",
        "1",
        "--seed",
        "3",
        "--no_pbar",
        "-device",
        "cpu",
        "-num_workers",
        "1",
    )
    assert "mean validation Dice" in result.stdout
    final = load_checkpoint(folder / "checkpoint_final.pth")
    assert final["current_epoch"] == 4
    logging = final["logging"]
    assert all(len(v) == 4 for v in logging.values())
    assert logging["lrs"][:resumed_from] == pytest.approx(latest["logging"]["lrs"])  # history kept
    assert logging["lrs"][resumed_from] == pytest.approx(0.01 * (1 - resumed_from / 4) ** 0.9)  # schedule continues
    assert final["_best_ema"] == pytest.approx(max(logging["ema_fg_dice"]))
    assert (folder / "validation" / "summary.json").is_file() and not (folder / "checkpoint_latest.pth").exists()
    log_text = "".join(p.read_text() for p in folder.glob("training_log_*.txt"))
    assert f"Continuing from checkpoint_latest.pth: epoch {resumed_from} of 4" in log_text


# the default run above trains under the CPU default; these cover the other CPU schemes
NOT_DEFAULT = "fp32" if cpu_has_native_bf16() else "bf16-backward"


@pytest.mark.parametrize(("fold", "scheme"), [("1", NOT_DEFAULT), ("2", "bf16")])
def test_tiny_training_under_each_cpu_precision_scheme(workspace, fold, scheme):
    autoseg(workspace, "train", DATASET, "3d_fullres", fold, "-precision", scheme, "--epochs", "1",
            "--iterations_per_epoch", "2", "--val_iterations", "1", "--seed", "0", "--no_pbar", "-device", "cpu",
            "-num_workers", "0")
    folder = model_folder(workspace) / f"fold_{fold}"
    debug = json.loads((folder / "debug.json").read_text())
    assert debug["precision"] == scheme and debug["precision_scheme"] == DESCRIPTIONS[scheme]
    assert f"Precision {scheme}: " in next(folder.glob("training_log_*.txt")).read_text()
    summary = json.loads((folder / "validation" / "summary.json").read_text())
    assert 0.0 <= summary["foreground_mean"]["Dice"] <= 1.0
    assert load_checkpoint(folder / "checkpoint_final.pth")["current_epoch"] == 1


def test_2d_configuration_and_pretrained_weights(trained, workspace):
    autoseg(workspace, "train", DATASET, "2d", "0", *TINY)
    fold = model_folder(workspace, "2d") / "fold_0"
    checkpoint = load_checkpoint(fold / "checkpoint_final.pth")
    assert tuple(checkpoint["inference_allowed_mirroring_axes"]) == (0, 1)
    assert (fold / "validation" / "summary.json").is_file()

    # fold 2 of 3d_fullres starts from fold 0's weights: everything but the segmentation heads is copied
    source = load_checkpoint(trained / "fold_0" / "checkpoint_final.pth")["network_weights"]
    trainer = "nnUNetTrainer_1epochs"
    autoseg(workspace, "train", DATASET, "3d_fullres", "2", "-tr", trainer, "-pretrained_weights",
            str(trained / "fold_0" / "checkpoint_final.pth"), "--iterations_per_epoch", "1", "--val_iterations", "1",
            "--no_pbar", "-device", "cpu", "--disable_checkpointing")
    assert not list((model_folder(workspace, trainer=trainer) / "fold_2").glob("*.pth"))  # --disable_checkpointing
    assert (model_folder(workspace, trainer=trainer) / "fold_2" / "validation" / "summary.json").is_file()
    assert "encoder.stages.0.0.convs.0.conv.weight" in source


@pytest.mark.parametrize(
    "args, message",
    [
        (["3d_fullres", "3", "--c"], "no checkpoint to continue from"),
        (["3d_fullres", "3", "--val"], "--val needs a finished training"),
        (["3d_fullres", "x"], "Invalid fold 'x'"),
        (["3d_lowres", "0"], "Configuration '3d_lowres' is not in"),
        (["3d_fullres", "0", "-tr", "nnUNetTrainerFancy"], "Unknown trainer 'nnUNetTrainerFancy'"),
        (["3d_fullres", "0", "-p", "nnUNetResEncUNetMPlans"], "nnUNetResEncUNetMPlans.json does not exist"),
        (["3d_fullres", "0", "--c", "--val"], "--val and --c cannot be combined"),
    ],
)
def test_bad_requests_fail_with_one_clear_message(workspace, args, message):
    result = autoseg(workspace, "train", DATASET, *args, "--no_pbar", "-device", "cpu", check=False)
    assert result.returncode == 1, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_unknown_dataset_and_existing_training(trained, workspace):
    result = autoseg(workspace, "train", "999", "3d_fullres", "0", check=False)
    assert result.returncode == 1 and "999" in result.stderr and "Traceback" not in result.stderr
    before = (trained / "fold_0" / "checkpoint_final.pth").stat().st_mtime_ns
    result = autoseg(workspace, "train", DATASET, "3d_fullres", "0", *TINY, check=False)
    assert result.returncode == 1 and "already holds a training" in result.stderr and "--c" in result.stderr
    assert (trained / "fold_0" / "checkpoint_final.pth").stat().st_mtime_ns == before  # nothing overwritten


def test_distributed_training_with_two_processes(workspace):
    """-num_gpus 2 on the CPU (Gloo): the global batch is split, rank 0 writes the one fold folder."""
    trainer = "nnUNetTrainer_2epochs"
    result = autoseg(
        workspace,
        "train",
        DATASET,
        "3d_fullres",
        "3",
        "-tr",
        trainer,
        "-num_gpus",
        "2",
        "--iterations_per_epoch",
        "2",
        "--val_iterations",
        "1",
        "--seed",
        "0",
        "--no_pbar",
        "-device",
        "cpu",
    )
    assert "mean validation Dice" in result.stdout
    fold = model_folder(workspace, trainer=trainer) / "fold_3"
    debug = json.loads((fold / "debug.json").read_text())
    assert debug["world_size"] == 2 and debug["batch_size_per_rank"] * 2 >= debug["batch_size"]
    checkpoint = load_checkpoint(fold / "checkpoint_final.pth")
    assert checkpoint["current_epoch"] == 2 and not any(k.startswith("module.") for k in checkpoint["network_weights"])
    assert len(list(fold.glob("training_log_*.txt"))) == 1
    splits = json.loads((workspace.preprocessed / KINDS["hippocampus"].dataset_name / "splits_final.json").read_text())
    summary = json.loads((fold / "validation" / "summary.json").read_text())
    assert len(summary["metric_per_case"]) == len(splits[3]["val"])  # both ranks' cases evaluated
