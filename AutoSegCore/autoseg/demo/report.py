"""The demo's closing report: Dice per label, where every file is, time per step, and the final line."""

from __future__ import annotations

import math

from autoseg.demo.layout import shown
from autoseg.demo.pipeline import DemoResult
from autoseg.demo.settings import CONFIGURATION, FOLD
from autoseg.evaluation.metrics import label_or_region_key

FINAL_LINE_PREFIX = "Demo foreground mean Dice: "


def final_line(dice: float) -> str:
    """The last line the demo prints (3 decimals), e.g. ``Demo foreground mean Dice: 0.934``."""
    return f"{FINAL_LINE_PREFIX}{dice:.3f}"


def _cell(value: float) -> str:
    return f"{'nan':>8}" if value is None or math.isnan(value) else f"{value:8.3f}"


def dice_table(result: DemoResult) -> str:
    """Mean Dice per label and the foreground mean on the held-out cases, before and after postprocessing."""
    before, after, names = result.summary_before_postprocessing, result.summary, result.label_names
    rows = [(f"{label_or_region_key(k)} {names.get(k, '')}".strip(), before.mean[k]["Dice"], after.mean[k]["Dice"])
            for k in after.mean]
    rows.append(("foreground mean", before.foreground_mean["Dice"], after.foreground_mean["Dice"]))
    width = max(len(r[0]) for r in rows + [("label", 0, 0)])
    header = f"{'label':<{width}}  {'network':>8}  {'+postpr.':>8}"
    lines = [header, "-" * len(header)]
    for i, (name, b, a) in enumerate(rows):
        if i == len(rows) - 1:
            lines.append("-" * len(header))
        lines.append(f"{name:<{width}}  {_cell(b)}  {_cell(a)}")
    return "\n".join(lines)


def model_line(result: DemoResult) -> str:
    """What was trained: configuration, patch, batch, budget, and the plan adjustment for CPUs."""
    from autoseg.plans.model import Plans

    config = Plans.load(result.paths.plans_file).configuration(CONFIGURATION)
    settings, budget = result.settings, result.settings.budget
    patch = "x".join(str(int(p)) for p in config.patch_size)
    return (f"Model: {CONFIGURATION} fold {FOLD}, {settings.trainer}, patch {patch}, batch {config.batch_size}, "
            f"{budget.epochs} epochs x {budget.iterations_per_epoch} iterations; planned with -gpu_memory_target "
            f"{settings.gpu_memory_target_gb:g} (a CPU-sized patch) instead of nnU-Net's 8 GB reference.")


def format_report(result: DemoResult) -> str:
    """Everything printed after the steps; its last line is :func:`final_line`."""
    paths = result.paths
    fold = result.model_folder / f"fold_{FOLD}"
    num_cases = len(result.summary.metric_per_case)
    lines = [
        "",
        f"== Dice on the {num_cases} held-out cases (never seen in training; labels in {shown(paths.test_labels)})",
        dice_table(result),
        model_line(result),
        "",
        "== Where everything is",
        f"workspace          {shown(paths.root)}  (nnUNet_raw, nnUNet_preprocessed, nnUNet_results)",
        f"dataset            {shown(paths.raw_dataset)}",
        f"plans              {shown(paths.plans_file)}",
        f"model folder       {shown(result.model_folder)}",
        f"training curves    {shown(fold / 'progress.png')}  (log: {shown(fold)}/training_log_*.txt)",
        f"validation         {shown(fold / 'validation')}  (summary.json, postprocessing.json)",
        f"predictions        {shown(result.predictions)}  (network output)",
        f"final predictions  {shown(result.final_predictions)}  (postprocessed; summary.json)",
        f"overlay PNG        {shown(result.overlay)}",
        "",
        "Time per step: " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in result.timings.items())
        + f"; total {sum(result.timings.values()):.0f} s.",
    ]
    if result.reused:
        lines.append(f"Reused from an earlier run in this folder: {', '.join(result.reused)} "
                     f"(`autoseg demo --fresh` starts over).")
    lines.append(f"Use the model on your own images: autoseg predict -i IN -o OUT -m {shown(result.model_folder)} "
                 f"-f {FOLD}")
    lines.append(final_line(result.foreground_mean_dice))
    return "\n".join(lines)
