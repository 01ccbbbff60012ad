"""Benchmark: ``autoseg train`` vs nnU-Net's ``nnUNetTrainer`` on Hippocampus 3d_fullres fold 0, same budget.

Plans and preprocesses the full MSD Hippocampus dataset with each tool (in separate workspaces; AutoSeg
gets nnU-Net's plans file so both train the very same plan: patch, batch size and network), trains fold 0
for the same number of epochs x iterations with each tool's defaults on this machine, runs each tool's
final validation (the 20% validation cases, full sliding window with mirroring) and prints:

- training throughput: iterations per second over the epochs (including each epoch's validation batches,
  the same count for both), from the epoch time stamps each tool stores in its checkpoint;
- whole-process wall time and peak RAM of the process tree (training + final validation);
- the validation Dice (foreground mean of summary.json) of both, and the differences/ratios.

Targets (issue 4, DESIGN §10): Dice >= nnU-Net's - 0.01 at equal iterations; iterations/s >= 1.2x nnU-Net's.

    python benchmarks/bench_train.py [--epochs 4] [--iterations 50] [--val_iterations 10] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import torch
from common import BIN, SHARED_DATA, link_raw_dataset, measure, workspace_env

DATASET_ID = "4"
DATASET = "Dataset004_Hippocampus"

NNUNET_TRAIN = r"""
import json, sys
import torch
from nnunetv2.run.run_training import get_trainer_from_args
job = json.loads(sys.argv[1])
trainer = get_trainer_from_args(job["dataset"], "3d_fullres", 0, "nnUNetTrainer", "nnUNetPlans", False,
                                torch.device(job["device"]))
trainer.num_epochs = job["epochs"]
trainer.num_iterations_per_epoch = job["iterations"]
trainer.num_val_iterations_per_epoch = job["val_iterations"]
trainer.run_training()
trainer.perform_actual_validation(False)
"""


def run(command: list[str], env: dict[str, str]) -> None:
    import subprocess

    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")


def throughput(fold: Path, iterations: int) -> float:
    """Training iterations per second from the checkpoint's epoch time stamps."""
    checkpoint = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    log = checkpoint["logging"]
    seconds = sum(end - start for start, end in zip(log["epoch_start_timestamps"], log["epoch_end_timestamps"]))
    return len(log["epoch_end_timestamps"]) * iterations / seconds


def dice(fold: Path) -> float:
    return float(json.loads((fold / "validation" / "summary.json").read_text())["foreground_mean"]["Dice"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=50, help="training iterations per epoch")
    parser.add_argument("--val_iterations", type=int, default=10, help="pseudo-Dice batches per epoch")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--root", default=None, help="working folder (default: a new temporary folder)")
    parser.add_argument("--prepare_only", action="store_true", help="only plan and preprocess (cached in --root)")
    parser.add_argument("--autoseg_args", default="", help="extra arguments for autoseg train, e.g. '-precision fp32'")
    args = parser.parse_args()

    root = Path(args.root) if args.root else Path(tempfile.mkdtemp(prefix="bench_train_"))
    spaces = {"nnU-Net": root / "nnunet", "AutoSeg": root / "autoseg"}
    for space in spaces.values():
        link_raw_dataset(SHARED_DATA / "Hippocampus", space, DATASET)
    env_n, env_a = workspace_env(spaces["nnU-Net"]), workspace_env(spaces["AutoSeg"])
    preprocessed_n = spaces["nnU-Net"] / "nnUNet_preprocessed" / DATASET
    preprocessed_a = spaces["AutoSeg"] / "nnUNet_preprocessed" / DATASET
    if not (preprocessed_n / "nnUNetPlans_3d_fullres").is_dir():
        run([str(BIN / "nnUNetv2_plan_and_preprocess"), "-d", DATASET_ID, "-c", "3d_fullres", "-np", "2"], env_n)
    if not (preprocessed_a / "nnUNetPlans_3d_fullres").is_dir():
        run([str(BIN / "autoseg"), "plan_and_preprocess", "-d", DATASET_ID, "-c", "3d_fullres", "-np", "2"], env_a)
    shutil.copy(preprocessed_n / "nnUNetPlans.json", preprocessed_a / "nnUNetPlans.json")  # the very same plan
    plans = json.loads((preprocessed_n / "nnUNetPlans.json").read_text())["configurations"]["3d_fullres"]
    if args.prepare_only:
        return

    results = {}
    for tool, space in spaces.items():
        model = space / "nnUNet_results" / DATASET / "nnUNetTrainer__nnUNetPlans__3d_fullres"
        shutil.rmtree(model, ignore_errors=True)
        if tool == "nnU-Net":
            job = {"dataset": DATASET_ID, "device": args.device, "epochs": args.epochs, "iterations": args.iterations,
                   "val_iterations": args.val_iterations}
            command = [sys.executable, "-c", NNUNET_TRAIN, json.dumps(job)]
            env = env_n
        else:
            command = [str(BIN / "autoseg"), "train", DATASET_ID, "3d_fullres", "0", "--epochs", str(args.epochs),
                       "--iterations_per_epoch", str(args.iterations), "--val_iterations", str(args.val_iterations),
                       "-device", args.device, "--no_pbar", *args.autoseg_args.split()]
            env = env_a
        measured = measure(command, env)
        fold = model / "fold_0"
        results[tool] = (measured, throughput(fold, args.iterations), dice(fold))

    print(f"train: Hippocampus 3d_fullres fold 0, patch {plans['patch_size']}, batch {plans['batch_size']}, "
          f"{args.epochs} epochs x {args.iterations} iterations (+{args.val_iterations} validation batches), "
          f"device {args.device}, {os.cpu_count()} CPU(s)")
    print(f"{'tool':<9} {'it/s':>7} {'wall [s]':>9} {'peak RAM tree [MB]':>19} {'val Dice':>9}")
    for tool, (measured, speed, score) in results.items():
        print(f"{tool:<9} {speed:7.3f} {measured.wall_s:9.1f} {measured.peak_tree_rss_mb:19.0f} {score:9.4f}")
    (m_n, s_n, d_n), (m_a, s_a, d_a) = results["nnU-Net"], results["AutoSeg"]
    print(f"iterations/s ratio AutoSeg/nnU-Net: {s_a / s_n:.2f} (target >= 1.2)")
    print(
        f"wall time ratio: {m_a.wall_s / m_n.wall_s:.2f}; "
        f"peak RAM ratio: {m_a.peak_tree_rss_mb / m_n.peak_tree_rss_mb:.2f}"
    )
    print(f"validation Dice difference AutoSeg - nnU-Net: {d_a - d_n:+.4f} (target >= -0.01)")


if __name__ == "__main__":
    main()
