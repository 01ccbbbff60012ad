"""Benchmark: training precision schemes at one fixed budget, against nnU-Net (issue 14).

Hippocampus 3d_fullres fold 0 with nnU-Net's plans at batch size 2, ``--epochs`` x ``--iterations`` (default
15 x 50, 5 validation batches per epoch), the same split for every run. Rows: nnU-Net 2.8.1 (float32, as it
always trains on the CPU; ``--nnunet_runs`` runs) and AutoSeg with each ``-precision`` scheme for each seed.
Prints per row the fold-0 validation Dice (foreground mean of the final validation: all validation cases,
sliding window with mirroring, float32 inference), training iterations/s and whole-process wall time; per tool
and scheme the mean and spread over runs, and the differences and ratios to nnU-Net's means. Timings are only
comparable on a quiet machine: run nothing else meanwhile.
Prepares the workspaces with ``bench_train.py --prepare_only``.

    python benchmarks/bench_precision.py --root /work/bench14 [--schemes fp32 bf16-backward bf16] [--seeds 0 1]
                                         [--nnunet_runs 2] [--epochs 15] [--iterations 50]

Each finished run is kept in ``<root>/precision_runs/<row>/`` and reused when the script runs again (delete
the folder to rerun it), so an interrupted benchmark continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from bench_train import DATASET, NNUNET_TRAIN, dice, throughput
from common import BIN, measure, workspace_env

BATCH_SIZE = 2


def _set_batch_size(plans_file: Path) -> None:
    plans = json.loads(plans_file.read_text())
    if plans["configurations"]["3d_fullres"]["batch_size"] != BATCH_SIZE:
        plans["configurations"]["3d_fullres"]["batch_size"] = BATCH_SIZE
        plans_file.write_text(json.dumps(plans, indent=4))


def _run_row(name: str, command: list[str], env: dict[str, str], model: Path, keep: Path, iterations: int) -> dict:
    result_file = keep / "result.json"
    if result_file.is_file():
        return json.loads(result_file.read_text())
    shutil.rmtree(model, ignore_errors=True)
    measured = measure(command, env)
    fold = model / "fold_0"
    result = {"row": name, "dice": dice(fold), "iterations_per_s": throughput(fold, iterations),
              "wall_s": measured.wall_s}
    keep.mkdir(parents=True, exist_ok=True)
    for item in ("debug.json", "progress.jsonl", "validation/summary.json"):
        if (fold / item).is_file():
            shutil.copy(fold / item, keep / Path(item).name)
    result_file.write_text(json.dumps(result, indent=2))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True)
    parser.add_argument("--schemes", nargs="+", default=["fp32", "bf16-backward", "bf16"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--nnunet_runs", type=int, default=2,
                        help="nnU-Net trainings (it has no seed option: each run is a new random run; ~27 min each; "
                             "0 for AutoSeg rows only)")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--val_iterations", type=int, default=5)
    args = parser.parse_args()
    root = Path(args.root)
    if not (root / "autoseg" / "nnUNet_preprocessed" / DATASET / "nnUNetPlans_3d_fullres").is_dir():
        subprocess.run([sys.executable, str(Path(__file__).with_name("bench_train.py")), "--root", str(root),
                        "--prepare_only"], check=True)
    spaces = {"nnU-Net": root / "nnunet", "AutoSeg": root / "autoseg"}
    for space in spaces.values():
        _set_batch_size(space / "nnUNet_preprocessed" / DATASET / "nnUNetPlans.json")
    results = _nnunet_rows(args, spaces["nnU-Net"], root / "precision_runs")
    results += _autoseg_rows(args, spaces["AutoSeg"], root / "precision_runs")
    _print_tables(args, results)


def _nnunet_rows(args: argparse.Namespace, space: Path, runs: Path) -> list[dict]:
    job = {"dataset": "4", "device": "cpu", "epochs": args.epochs, "iterations": args.iterations,
           "val_iterations": args.val_iterations}
    model = space / "nnUNet_results" / DATASET / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    rows = []
    for run in range(1, args.nnunet_runs + 1):
        keep = runs / ("nnunet" if run == 1 else f"nnunet_run{run}")
        rows.append(_run_row(f"nnU-Net fp32 run {run}", [sys.executable, "-c", NNUNET_TRAIN, json.dumps(job)],
                             workspace_env(space), model, keep, args.iterations))
        rows[-1]["row"] = f"nnU-Net fp32 run {run}"  # the first run was cached under an older label
        print(json.dumps(rows[-1]), flush=True)
    return rows


def _autoseg_rows(args: argparse.Namespace, space: Path, runs: Path) -> list[dict]:
    budget = ["--epochs", str(args.epochs), "--iterations_per_epoch", str(args.iterations), "--val_iterations",
              str(args.val_iterations)]
    model = space / "nnUNet_results" / DATASET / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    rows = []
    for scheme in args.schemes:
        for seed in args.seeds:
            command = [str(BIN / "autoseg"), "train", "4", "3d_fullres", "0", *budget, "-device", "cpu", "--no_pbar",
                       "--seed", str(seed), "-precision", scheme]
            rows.append(_run_row(f"AutoSeg {scheme} seed {seed}", command, workspace_env(space), model,
                                 runs / f"autoseg_{scheme}_seed{seed}", args.iterations))
            print(json.dumps(rows[-1]), flush=True)
    return rows


def _print_tables(args: argparse.Namespace, results: list[dict]) -> None:
    print(f"\nHippocampus 3d_fullres fold 0, batch {BATCH_SIZE}, {args.epochs} x {args.iterations} iterations "
          f"(+{args.val_iterations} validation batches per epoch), {os.cpu_count()} CPU(s)")
    print(f"{'row':<32} {'val Dice':>9} {'it/s':>7} {'wall [s]':>9}")
    for row in results:
        print(f"{row['row']:<32} {row['dice']:9.4f} {row['iterations_per_s']:7.3f} {row['wall_s']:9.0f}")
    groups = {"nnU-Net": [r for r in results if r["row"].startswith("nnU-Net")]}
    groups |= {scheme: [r for r in results if r["row"].startswith(f"AutoSeg {scheme} ")] for scheme in args.schemes}
    reference = groups["nnU-Net"]
    print(f"\n{'tool / scheme':<16} {'Dice mean':>9} {'spread':>7} {'wall mean':>9}"
          + ("  vs nnU-Net: dDice, wall ratio" if reference else ""))
    for name, rows in groups.items():
        if not rows:
            continue
        dices, walls = [r["dice"] for r in rows], [r["wall_s"] for r in rows]
        line = (f"{name:<16} {statistics.mean(dices):9.4f} {max(dices) - min(dices):7.4f} "
                f"{statistics.mean(walls):9.0f}")
        if reference and name != "nnU-Net":
            ref_dice = statistics.mean(r["dice"] for r in reference)
            ref_wall = statistics.mean(r["wall_s"] for r in reference)
            line += f"  {statistics.mean(dices) - ref_dice:+.4f}, {statistics.mean(walls) / ref_wall:.2f}"
        print(line)


if __name__ == "__main__":
    main()
