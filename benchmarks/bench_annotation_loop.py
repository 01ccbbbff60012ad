"""Benchmark: the annotation-loop features of issue 16 (update, time budget, uncertainty ranking, sparse labels).

Hippocampus 3d_fullres, nnU-Net's plans at batch size 2, budget B = ``--epochs`` x ``--iterations`` (default
15 x 50, 5 validation batches per epoch), seed 0, default precision, fold 0 of nnU-Net's default split. Every
Dice is the foreground mean of a fold-0 final validation on the same 42 validation cases (full labels). Rows:

1. update vs retrain: fold 0's training cases are split in two halves (sorted, alternating). Workspace A holds
   half 1 + the validation cases (its splits file keeps fold 0's validation cases; extra folds only absorb the
   cases added later). (a) ``base``: train A for B. (b) add half 2, ``autoseg preprocess`` (incremental), then
   ``base``'s model copied to ``update`` and ``train --update`` (default schedule) -- wall time of the whole
   process, including the validation of the previous version. (c) ``retrain``: all cases from scratch for B.
   ``--extra_updates`` adds updates with other schedules (e.g. ``update_lr0.01``, ``update_3epochs``).
2. time budget: ``train --time_budget`` from scratch on all cases, one results folder per budget: requested vs
   the in-process time of the log line "Time budget N s: training and validation took X s." and the
   whole-process wall time, epochs chosen, Dice.
3. uncertainty: ``rank_cases -f 0`` (members: mirrored copies) of the retrain model on the validation cases'
   images; Spearman correlation of each score with the case's validation Dice, and AUROC of each score for
   flagging the cases with Dice below the median.
4. sparse labels: B from scratch with 20 % of the axial slices (first numpy axis, centres of equal bins)
   labelled in every training case and the rest set to the ignore label; validation cases keep full labels.
   Compared with ``retrain``.

Run order: 1a, 1b, 1c, 3, 2, 4, extra updates. Prints a markdown table after every row and at the end, and
writes ``<root>/results.json``. Timings are only comparable on a quiet machine.

    python benchmarks/bench_annotation_loop.py --root /work/bench16 [--plans_from /work/bench14]
        [--budgets 4m 6m 8m] [--extra_updates update_lr0.01 update_3epochs] [--epochs 15] [--iterations 50]

Each finished row is kept in ``<root>/runs/<row>/result.json`` (models in ``<root>/results/<row>/``) and reused
when the script runs again (delete the folder to rerun it), so an interrupted benchmark continues.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from bench_train import DATASET, dice
from common import BIN, SHARED_DATA, workspace_env
from scipy import stats

from autoseg.dataset.splits import kfold_splits
from autoseg.training.run_control import parse_duration

BATCH_SIZE = 2
SPARSE_FRACTION = 0.2
IGNORE_LABEL = 3  # Hippocampus labels 0, 1, 2
MODEL = f"{DATASET}/nnUNetTrainer__nnUNetPlans__3d_fullres"
EXTRA_UPDATES = {"update_lr0.01": ["--update_lr", "0.01"], "update_lr0.001": ["--update_lr", "0.001"],
                 "update_3epochs": ["--epochs", "3"], "update_8epochs": ["--epochs", "8"]}
_LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?): (.*)$")


@dataclass
class Context:
    root: Path
    args: argparse.Namespace
    val: list[str]
    half1: list[str]
    half2: list[str]
    plans_folder: Path

    @property
    def train_args(self) -> list[str]:
        """Everything but the number of epochs: shared by full, update and budget runs."""
        return ["--iterations_per_epoch", str(self.args.iterations), "--val_iterations",
                str(self.args.val_iterations), "-device", "cpu", "--no_pbar", "--seed", "0"]

    def space(self, name: str) -> Path:
        return self.root / "workspaces" / name

    def keep(self, row: str) -> Path:
        return self.root / "runs" / row

    def env(self, space: str, results: str) -> dict[str, str]:
        env = workspace_env(self.space(space))
        env["nnUNet_results"] = str(self.root / "results" / results)
        return env


# ---------------------------------------------------------------------------------------------- running


def _cached(keep: Path) -> dict | None:
    path = keep / "result.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _source_state() -> str:
    """The commit the product code was at when a row ran (``+dirty``: uncommitted changes in AutoSegCore)."""
    repo = Path(__file__).resolve().parents[1]
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--", "AutoSegCore"],
                           capture_output=True, text=True)
    return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def _store(keep: Path, result: dict) -> dict:
    result["source"] = _source_state()
    keep.mkdir(parents=True, exist_ok=True)
    (keep / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result), flush=True)
    return result


def _run_logged(command: list[str], env: dict[str, str], log_file: Path) -> dict:
    """Run ``command`` with its output in ``log_file``: whole-process wall time, CPU time of the process tree
    (user + system) and the machine's mean 1-minute load average meanwhile (other work on a shared machine)."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    before, loads = resource.getrusage(resource.RUSAGE_CHILDREN), []
    start = time.perf_counter()
    with log_file.open("w") as out:
        process = subprocess.Popen([str(c) for c in command], env=env, stdout=out, stderr=subprocess.STDOUT)
        while process.poll() is None:
            loads.append(os.getloadavg()[0])
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=15)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, command))} failed ({process.returncode}):\n"
                           f"{log_file.read_text()[-3000:]}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"wall_s": wall, "cpu_s": cpu, "mean_load": float(np.mean(loads)) if loads else None}


def _log_events(log_file: Path) -> list[tuple[float, str]]:
    events = []
    for line in log_file.read_text().splitlines():
        match = _LOG_LINE.match(line)
        if match:
            events.append((datetime.datetime.fromisoformat(match[1]).timestamp(), match[2]))
    return events


def _between(events: list[tuple[float, str]], first: str, second: str) -> float | None:
    """Seconds from the first line starting with ``first`` to the next one starting with ``second``."""
    start = next((t for t, m in events if m.startswith(first)), None)
    end = next((t for t, m in events if m.startswith(second) and start is not None and t >= start), None)
    return None if start is None or end is None else end - start


def _log_times(log_file: Path) -> dict:
    """Phases of one run from its training log: before-validation (updates), final validation, budget line."""
    events = _log_events(log_file)
    times = {"before_validation_s": _between(events, "Validating version", "Updating the model"),
             "final_validation_s": _between(events, "Final validation", "Mean validation Dice")}
    for _, message in events:
        budget = re.match(r"Time budget (\d+) s: training (?:\(\d+ epochs\) )?and validation took (\d+) s\.", message)
        if budget:
            times["budget_requested_s"], times["budget_actual_s"] = float(budget[1]), float(budget[2])
    return times


def _fold_stats(fold: Path) -> dict:
    """Dice, epochs and training time (first epoch start to last epoch end) of a finished fold."""
    checkpoint = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    log = checkpoint["logging"]
    return {"dice": dice(fold), "epochs": len(log["epoch_end_timestamps"]),
            "training_s": log["epoch_end_timestamps"][-1] - log["epoch_start_timestamps"][0]}


def _train(ctx: Context, row: str, space: str, extra: list[str], start_from: str | None = None) -> dict:
    """``autoseg train`` fold 0 into ``results/<row>`` (a copy of ``results/<start_from>`` for updates), cached."""
    keep = ctx.keep(row)
    cached = _cached(keep)
    if cached:
        return cached
    results = ctx.root / "results" / row
    shutil.rmtree(results, ignore_errors=True)
    if start_from is not None:
        shutil.copytree(ctx.root / "results" / start_from, results, symlinks=True)
    fold = results / MODEL / "fold_0"
    old_logs = set(fold.glob("training_log_*.txt"))
    command = [BIN / "autoseg", "train", "4", "3d_fullres", "0", *ctx.train_args, *extra]
    run = _run_logged(command, ctx.env(space, row), keep / "output.log")
    new_logs = sorted(set(fold.glob("training_log_*.txt")) - old_logs, key=lambda p: p.stat().st_mtime)
    result = {"row": row, "command": " ".join(map(str, command)), **run, **_fold_stats(fold)}
    if new_logs:
        result |= _log_times(new_logs[-1])
        shutil.copy(new_logs[-1], keep / "training_log.txt")
    for item in ("progress.jsonl", "validation/summary.json", "validation_before_update/summary.json"):
        if (fold / item).is_file():
            shutil.copy(fold / item, keep / item.replace("/", "_"))
    if "--update" in extra:  # the previous version on the same validation cases
        before = json.loads((fold / "validation_before_update" / "summary.json").read_text())
        result["dice_before"] = float(before["foreground_mean"]["Dice"])
    return _store(keep, result)


# ---------------------------------------------------------------------------------------------- workspaces


def _plans_folder(root: Path, plans_from: Path) -> Path:
    """A preprocessed Hippocampus folder holding nnU-Net's plans (bench_train.py --prepare_only's layout)."""
    for base in (plans_from, root / "prepare"):
        folder = base / "autoseg" / "nnUNet_preprocessed" / DATASET
        if (folder / "nnUNetPlans.json").is_file():
            return folder
    subprocess.run([sys.executable, str(Path(__file__).with_name("bench_train.py")), "--root",
                    str(root / "prepare"), "--prepare_only"], check=True)
    return root / "prepare" / "autoseg" / "nnUNet_preprocessed" / DATASET


def _dataset_json(cases: int, ignore: bool) -> dict:
    source = json.loads((SHARED_DATA / "Hippocampus" / "dataset.json").read_text())
    source["numTraining"] = cases
    if ignore:
        source["labels"]["ignore"] = IGNORE_LABEL
    return source


def _link(target: Path, source: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        target.symlink_to(source)


def _set_raw_cases(ctx: Context, space: str, cases: list[str], labels: Path | None = None) -> None:
    """Link ``cases`` (image and label; labels from ``labels`` where that folder has the file) into the raw
    dataset of ``space`` and write its dataset.json (raw and preprocessed)."""
    raw, source = ctx.space(space) / "nnUNet_raw" / DATASET, SHARED_DATA / "Hippocampus"
    for case in cases:
        _link(raw / "imagesTr" / f"{case}_0000.nii.gz", source / "imagesTr" / f"{case}_0000.nii.gz")
        label = labels / f"{case}.nii.gz" if labels is not None else None
        _link(raw / "labelsTr" / f"{case}.nii.gz",
              label if label is not None and label.is_file() else source / "labelsTr" / f"{case}.nii.gz")
    text = json.dumps(_dataset_json(len(list((raw / "imagesTr").iterdir())), labels is not None), indent=4)
    (raw / "dataset.json").write_text(text)
    (ctx.space(space) / "nnUNet_preprocessed" / DATASET / "dataset.json").write_text(text)


def _preprocess(ctx: Context, space: str, row: str) -> dict:
    """``autoseg preprocess -d 4 -c 3d_fullres`` in ``space``: its inventory line and wall time (cached)."""
    cached = _cached(ctx.keep(row))
    if cached:
        return cached
    command = [BIN / "autoseg", "preprocess", "-d", "4", "-c", "3d_fullres", "--no_pbar"]
    run = _run_logged(command, ctx.env(space, "none"), ctx.keep(row) / "output.log")
    inventory = [line for line in (ctx.keep(row) / "output.log").read_text().splitlines() if "up to date" in line]
    return _store(ctx.keep(row), {"row": row, "command": " ".join(map(str, command)), **run,
                                  "inventory": inventory[-1].strip() if inventory else None})


def _new_workspace(ctx: Context, space: str, cases: list[str], splits: list[dict], labels: Path | None = None) -> dict:
    """A workspace with nnU-Net's plans (batch size 2), its own splits file and ``cases``, preprocessed."""
    preprocessed = ctx.space(space) / "nnUNet_preprocessed" / DATASET
    if not (preprocessed / "nnUNetPlans.json").is_file():
        preprocessed.mkdir(parents=True, exist_ok=True)
        plans = json.loads((ctx.plans_folder / "nnUNetPlans.json").read_text())
        plans["configurations"]["3d_fullres"]["batch_size"] = BATCH_SIZE
        shutil.copy(ctx.plans_folder / "dataset_fingerprint.json", preprocessed / "dataset_fingerprint.json")
        (preprocessed / "splits_final.json").write_text(json.dumps(splits, indent=4))
        (preprocessed / "nnUNetPlans.json").write_text(json.dumps(plans, indent=4))
    if not _cached(ctx.keep(f"preprocess_{space}")):
        _set_raw_cases(ctx, space, cases, labels)
    return _preprocess(ctx, space, f"preprocess_{space}")


def _workspace_a_splits(ctx: Context, extra_folds: int = 7) -> list[dict]:
    """Fold 0: half 1 / the validation cases. Folds 1..: half 1 dealt out as validation cases, so that cases
    added later join their validation sets (the fewest-validation-cases rule) and fold 0 keeps its own."""
    folds = [{"train": list(ctx.half1), "val": list(ctx.val)}]
    for index in range(extra_folds):
        val = ctx.half1[index::extra_folds]
        folds.append({"train": sorted(set(ctx.half1 + ctx.val) - set(val)), "val": val})
    assert len(ctx.half2) + len(ctx.half1) < extra_folds * len(ctx.val), "fold 0 would receive new cases"
    return folds


def _sparse_label(label: np.ndarray) -> np.ndarray:
    """Keep ``SPARSE_FRACTION`` of the slices along the first axis (the centres of equal bins), ignore the rest."""
    count = max(1, round(SPARSE_FRACTION * label.shape[0]))
    keep = sorted({int((index + 0.5) * label.shape[0] / count) for index in range(count)})
    sparse = np.full_like(label, IGNORE_LABEL)
    sparse[keep] = label[keep]
    return sparse


def _write_sparse_labels(ctx: Context, cases: list[str]) -> tuple[Path, float]:
    """Sparse copies of the ``cases``' labels in ``<root>/sparse_labels``; the fraction of voxels labelled."""
    folder = ctx.root / "sparse_labels"
    folder.mkdir(parents=True, exist_ok=True)
    labelled = total = 0
    for case in cases:
        target = folder / f"{case}.nii.gz"
        if not target.is_file():
            image = sitk.ReadImage(str(SHARED_DATA / "Hippocampus" / "labelsTr" / f"{case}.nii.gz"))
            sparse = sitk.GetImageFromArray(_sparse_label(sitk.GetArrayFromImage(image)))
            sparse.CopyInformation(image)
            temporary = folder / f"partial_{case}.nii.gz"
            sitk.WriteImage(sparse, str(temporary), True)
            temporary.replace(target)
        array = sitk.GetArrayFromImage(sitk.ReadImage(str(target)))
        labelled, total = labelled + int((array != IGNORE_LABEL).sum()), total + array.size
    return folder, labelled / total


# ---------------------------------------------------------------------------------------------- rows


def _base_and_update(ctx: Context) -> dict:
    """Rows 1a and 1b: train workspace A on half 1, add half 2 (incremental preprocessing), update."""
    train_full = ["--epochs", str(ctx.args.epochs)]
    out = {"prepare_A": _new_workspace(ctx, "A", ctx.half1 + ctx.val, _workspace_a_splits(ctx))}
    if not _cached(ctx.keep("base")) and _cached(ctx.keep("preprocess_A_added")):
        raise RuntimeError(f"Workspace A already holds half 2: delete {ctx.space('A')} and {ctx.root / 'runs'}/"
                           f"*_A* to rerun the base row.")
    out["base"] = _train(ctx, "base", "A", train_full)
    if not _cached(ctx.keep("preprocess_A_added")):
        _set_raw_cases(ctx, "A", ctx.half2)
    out["preprocess_added"] = _preprocess(ctx, "A", "preprocess_A_added")
    out["update"] = _train(ctx, "update", "A", ["--update"], start_from="base")
    splits = json.loads((ctx.space("A") / "nnUNet_preprocessed" / DATASET / "splits_final.json").read_text())
    out["splits_fold0_kept"] = (sorted(splits[0]["val"]) == sorted(ctx.val)
                                and sorted(splits[0]["train"]) == sorted(ctx.half1 + ctx.half2))
    return out


def _extra_updates(ctx: Context) -> dict:
    return {name: _train(ctx, name, "A", ["--update", *EXTRA_UPDATES[name]], start_from="base")
            for name in ctx.args.extra_updates}


def _per_case_dice(summary_file: Path) -> dict[str, float]:
    summary = json.loads(summary_file.read_text())
    return {Path(c["reference_file"]).name.removesuffix(".nii.gz"):
            float(np.nanmean([m["Dice"] for m in c["metrics"].values()])) for c in summary["metric_per_case"]}


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for the ``positive`` cases (Mann-Whitney U, ties count half)."""
    ranks = stats.rankdata(scores)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _ranking_row(ctx: Context) -> dict:
    """Row 3: rank the validation cases with the retrain model's fold 0; scores against the cases' Dice."""
    keep, model = ctx.keep("ranking"), ctx.root / "results" / "retrain" / MODEL
    run = _cached(keep)
    if not run:
        inputs = ctx.root / "rank_input"
        for case in ctx.val:
            _link(inputs / f"{case}_0000.nii.gz", SHARED_DATA / "Hippocampus" / "imagesTr" / f"{case}_0000.nii.gz")
        shutil.rmtree(keep / "ranking", ignore_errors=True)
        command = [BIN / "autoseg", "rank_cases", "-i", inputs, "-o", keep / "ranking", "-m", model, "-f", "0",
                   "-device", "cpu", "--no_pbar"]
        run = _store(keep, {"row": "ranking", "command": " ".join(map(str, command)),
                            **_run_logged(command, ctx.env("C", "retrain"), keep / "output.log")})
    return {**run, **_ranking_analysis(keep / "ranking" / "ranking.json", model / "fold_0" / "validation")}


def _ranking_analysis(ranking_file: Path, validation: Path) -> dict:
    """Each score against the cases' validation Dice: Spearman, AUROC for Dice below the median and for the
    worst quarter (recomputed from ranking.json on every run)."""
    ranking = json.loads(ranking_file.read_text())
    case_dice = _per_case_dice(validation / "summary.json")
    rows = sorted(ranking["cases"], key=lambda r: r["case"])
    dices = np.array([case_dice[r["case"]] for r in rows])
    result = {"cases": len(rows), "members": ranking.get("members"), "median_dice": float(np.median(dices))}
    for key in ("score", "mean_entropy", "fold_disagreement"):
        values = np.array([np.nan if r[key] is None else r[key] for r in rows], dtype=float)
        rho, p = stats.spearmanr(values, dices)
        result[key] = {"spearman": float(rho), "spearman_p": float(p),
                       "auroc_below_median": auroc(values, dices < np.median(dices)),
                       "auroc_worst_quarter": auroc(values, dices < np.percentile(dices, 25))}
    sizes = np.array([r["predicted_foreground_voxels"] for r in rows], dtype=float)
    result["spearman_dice_vs_predicted_size"] = float(stats.spearmanr(sizes, dices)[0])
    top = max(1, len(rows) // 4)
    result["mean_dice_top_quarter_by_score"] = float(np.mean([case_dice[r["case"]] for r in ranking["cases"][:top]]))
    result["mean_dice_all"] = float(dices.mean())
    return result


def _sparse_row(ctx: Context) -> dict:
    """Row 4: B from scratch with 20 % of the slices labelled in the training cases."""
    folder, fraction = _write_sparse_labels(ctx, ctx.half1 + ctx.half2)
    prepare = _new_workspace(ctx, "S", sorted(ctx.half1 + ctx.half2 + ctx.val), kfold_splits(_all_cases()), folder)
    result = _train(ctx, "sparse", "S", ["--epochs", str(ctx.args.epochs)])
    return {"prepare_S": prepare, "sparse": {**result, "labelled_voxel_fraction": fraction}}


def _budget_rows(ctx: Context) -> dict:
    rows = {}
    for budget in ctx.args.budgets:
        row = _train(ctx, f"budget_{budget}", "C", ["--time_budget", budget])
        rows[budget] = {**row, "requested_s": parse_duration(budget)}
    return rows


# ---------------------------------------------------------------------------------------------- report


def _fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a and b else "-"


def _update_table(r: dict) -> list[str]:
    lines = ["| row | training cases | epochs | val Dice | wall [s] | CPU [s] | load | training [s] | final val [s] "
             "| notes |", "|---|---|---|---|---|---|---|---|---|---|"]
    cases = {"base": "half 1", "retrain": "all"}
    for name in ["base", "update", "retrain", *(k for k in r if k.startswith("update_"))]:
        row = r.get(name)
        if row:
            note = (f"before-validation {_fmt(row.get('before_validation_s'), 0)} s, Dice before "
                    f"{_fmt(row.get('dice_before'))}" if "dice_before" in row else "")
            lines.append(f"| {name} | {cases.get(name, 'all (update)')} | {row['epochs']} | {_fmt(row['dice'])} | "
                         f"{row['wall_s']:.0f} | {_fmt(row.get('cpu_s'), 0)} | {_fmt(row.get('mean_load'), 1)} | "
                         f"{row['training_s']:.0f} | {_fmt(row.get('final_validation_s'), 0)}"
                         f" | {note} |")
    if r.get("update") and r.get("retrain"):
        u, c = r["update"], r["retrain"]
        lines.append(f"\nDice update - retrain: {u['dice'] - c['dice']:+.4f}; Dice update - base: "
                     f"{u['dice'] - r['base']['dice']:+.4f}; wall update/retrain: {u['wall_s'] / c['wall_s']:.2f}; "
                     f"training-only update/retrain: {u['training_s'] / c['training_s']:.2f}; CPU update/retrain: "
                     f"{_ratio(u.get('cpu_s'), c.get('cpu_s'))} (target: within 0.01 at <= 0.30)")
    for key in ("prepare_A", "preprocess_added", "prepare_C"):
        if r.get(key):
            lines.append(f"preprocess {key}: {r[key]['wall_s']:.0f} s, {r[key]['inventory']}")
    if "splits_fold0_kept" in r:
        lines.append(f"fold 0 of workspace A after the update: same validation cases, all training cases: "
                     f"{r['splits_fold0_kept']}")
    return lines


def _other_tables(r: dict) -> list[str]:
    lines = []
    if r.get("ranking"):
        rank = r["ranking"]
        lines += [f"\nUncertainty ranking ({rank['cases']} validation cases, members: {rank['members']}, "
                  f"{rank['wall_s']:.0f} s; median Dice {rank['median_dice']:.4f})",
                  "| predictor | Spearman rho vs Dice | p | AUROC (Dice < median) | AUROC (worst quarter) |",
                  "|---|---|---|---|---|"]
        for key in ("score", "mean_entropy", "fold_disagreement"):
            lines.append(f"| {key} | {_fmt(rank[key]['spearman'], 3)} | {rank[key]['spearman_p']:.2g} | "
                         f"{_fmt(rank[key]['auroc_below_median'], 3)} | "
                         f"{_fmt(rank[key].get('auroc_worst_quarter'), 3)} |")
        lines.append(f"mean Dice of the top quarter by score {rank['mean_dice_top_quarter_by_score']:.4f} vs all "
                     f"{rank['mean_dice_all']:.4f}; Spearman of Dice vs predicted foreground size "
                     f"{_fmt(rank.get('spearman_dice_vs_predicted_size'), 3)} (the score is no size proxy)")
    if r.get("sparse"):
        s, c = r["sparse"], r.get("retrain")
        lines += ["\nSparse labels", "| labels | labelled voxels | val Dice | wall [s] | load |",
                  "|---|---|---|---|---|",
                  f"| 20 % of slices | {s['labelled_voxel_fraction']:.1%} | {_fmt(s['dice'])} | {s['wall_s']:.0f} | "
                  f"{_fmt(s.get('mean_load'), 1)} |"]
        if c:
            lines.append(f"| all slices (retrain) | 100% | {_fmt(c['dice'])} | {c['wall_s']:.0f} | "
                         f"{_fmt(c.get('mean_load'), 1)} |")
            lines.append(f"Dice sparse - full: {s['dice'] - c['dice']:+.4f}")
    if r.get("budget"):
        lines += ["\nTime budget (from scratch, all cases)",
                  "| budget | requested [s] | in-process [s] | error | whole process [s] | error | epochs | val Dice "
                  "| load |", "|---|---|---|---|---|---|---|---|---|"]
        for name, b in r["budget"].items():
            actual, req = b.get("budget_actual_s"), b["requested_s"]
            err = f"{(actual - req) / req:+.1%}" if actual else "-"
            lines.append(f"| {name} | {req:.0f} | {_fmt(actual, 0)} | {err} | {b['wall_s']:.0f} | "
                         f"{(b['wall_s'] - req) / req:+.1%} | {b['epochs']} | {_fmt(b['dice'])} | "
                         f"{_fmt(b.get('mean_load'), 1)} |")
    return lines


def _report(ctx: Context, results: dict) -> None:
    (ctx.root / "results.json").write_text(json.dumps(results, indent=2))
    print(f"\n## Hippocampus 3d_fullres fold 0 ({len(ctx.val)} validation cases), batch {BATCH_SIZE}, "
          f"{ctx.args.epochs} x {ctx.args.iterations} iterations (+{ctx.args.val_iterations} validation batches), "
          f"seed 0, CPU")
    print("\n".join(_update_table(results) + _other_tables(results)), flush=True)


def _all_cases() -> list[str]:
    return sorted(p.name.removesuffix(".nii.gz") for p in (SHARED_DATA / "Hippocampus" / "labelsTr").iterdir()
                  if p.name.endswith(".nii.gz"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True)
    parser.add_argument("--plans_from", default="/work/bench14", help="a bench_train.py --prepare_only root")
    parser.add_argument("--budgets", nargs="*", default=["4m", "6m", "8m"])
    parser.add_argument("--extra_updates", nargs="*", default=[], choices=sorted(EXTRA_UPDATES))
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--val_iterations", type=int, default=5)
    args = parser.parse_args()
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    split = kfold_splits(_all_cases())[0]
    train = sorted(split["train"])
    ctx = Context(root, args, sorted(split["val"]), train[0::2], train[1::2],
                  _plans_folder(root, Path(args.plans_from)))
    results = _base_and_update(ctx)
    _report(ctx, results)
    results["prepare_C"] = _new_workspace(ctx, "C", _all_cases(), kfold_splits(_all_cases()))
    results["retrain"] = _train(ctx, "retrain", "C", ["--epochs", str(args.epochs)])
    _report(ctx, results)
    results["ranking"] = _ranking_row(ctx)
    _report(ctx, results)
    results["budget"] = _budget_rows(ctx)
    _report(ctx, results)
    results |= _sparse_row(ctx)
    _report(ctx, results)
    results |= _extra_updates(ctx)
    _report(ctx, results)


if __name__ == "__main__":
    main()
