"""Benchmark: training precision schemes at one fixed budget, against nnU-Net (issue 14).

Hippocampus 3d_fullres fold 0 with nnU-Net's plans at batch size 2, ``--epochs`` x ``--iterations`` (default
15 x 50, 5 validation batches per epoch), the same split for every run. Rows: nnU-Net 2.8.1 (float32, as it
always trains on the CPU) and AutoSeg with each ``-precision`` scheme for each seed. Prints per row the fold-0
validation Dice (foreground mean of the final validation: all validation cases, sliding window with
mirroring, float32 inference), training iterations/s and whole-process wall time; per scheme the mean and
spread over seeds, and the ratios to nnU-Net. Prepares the workspaces with ``bench_train.py --prepare_only``.

    python benchmarks/bench_precision.py --root /work/bench14 [--schemes fp32 bf16-backward bf16] [--seeds 0 1]
                                         [--no_nnunet] [--epochs 15] [--iterations 50]

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
    parser.add_argument("--no_nnunet", action="store_true", help="AutoSeg rows only (nnU-Net's row is ~27 min)")
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
    runs = root / "precision_runs"
    budget = ["--epochs", str(args.epochs), "--iterations_per_epoch", str(args.iterations), "--val_iterations",
              str(args.val_iterations)]
    results = []
    if not args.no_nnunet:
        job = {"dataset": "4", "device": "cpu", "epochs": args.epochs, "iterations": args.iterations,
               "val_iterations": args.val_iterations}
        model = spaces["nnU-Net"] / "nnUNet_results" / DATASET / "nnUNetTrainer__nnUNetPlans__3d_fullres"
        results.append(_run_row("nnU-Net fp32", [sys.executable, "-c", NNUNET_TRAIN, json.dumps(job)],
                                workspace_env(spaces["nnU-Net"]), model, runs / "nnunet", args.iterations))
        print(json.dumps(results[-1]), flush=True)
    for scheme in args.schemes:
        for seed in args.seeds:
            model = spaces["AutoSeg"] / "nnUNet_results" / DATASET / "nnUNetTrainer__nnUNetPlans__3d_fullres"
            command = [str(BIN / "autoseg"), "train", "4", "3d_fullres", "0", *budget, "-device", "cpu", "--no_pbar",
                       "--seed", str(seed), "-precision", scheme]
            results.append(_run_row(f"AutoSeg {scheme} seed {seed}", command, workspace_env(spaces["AutoSeg"]), model,
                                    runs / f"autoseg_{scheme}_seed{seed}", args.iterations))
            print(json.dumps(results[-1]), flush=True)

    print(f"\nHippocampus 3d_fullres fold 0, batch {BATCH_SIZE}, {args.epochs} x {args.iterations} iterations "
          f"(+{args.val_iterations} validation batches per epoch), {os.cpu_count()} CPU(s)")
    print(f"{'row':<32} {'val Dice':>9} {'it/s':>7} {'wall [s]':>9}")
    for row in results:
        print(f"{row['row']:<32} {row['dice']:9.4f} {row['iterations_per_s']:7.3f} {row['wall_s']:9.0f}")
    nnunet = next((r for r in results if r["row"].startswith("nnU-Net")), None)
    print(f"\n{'scheme':<16} {'Dice mean':>9} {'spread':>7} {'wall mean':>9}" + ("  vs nnU-Net: dDice, wall ratio"
                                                                                if nnunet else ""))
    for scheme in args.schemes:
        rows = [r for r in results if r["row"].startswith(f"AutoSeg {scheme} ")]
        dices, walls = [r["dice"] for r in rows], [r["wall_s"] for r in rows]
        line = (f"{scheme:<16} {statistics.mean(dices):9.4f} {max(dices) - min(dices):7.4f} "
                f"{statistics.mean(walls):9.0f}")
        if nnunet:
            line += f"  {statistics.mean(dices) - nnunet['dice']:+.4f}, {statistics.mean(walls) / nnunet['wall_s']:.2f}"
        print(line)


if __name__ == "__main__":
    main()
