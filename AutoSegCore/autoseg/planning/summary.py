"""A readable table of a plans file (printed by the CLI, shown in the Slicer Planner module)."""

from __future__ import annotations

from autoseg.plans.model import Plans

#: Column titles of :func:`plans_summary_rows`.
SUMMARY_COLUMNS = ("configuration", "spacing", "patch size", "batch", "stages", "median size")


def plans_summary_rows(plans: Plans) -> list[tuple[str, str, str, str, str, str]]:
    """One row per configuration: spacing, patch size, batch size, stages, median image size."""
    rows = []
    for name in plans.configurations:
        c = plans.configuration(name)
        rows.append((
            name,
            "x".join(f"{s:.3g}" for s in c.spacing),
            "x".join(str(p) for p in c.patch_size),
            str(c.batch_size),
            str(c.architecture.arch_kwargs["n_stages"]),
            "x".join(f"{m:.0f}" for m in c.median_image_size_in_voxels),
        ))
    return rows


def format_plans_summary(plans: Plans) -> str:
    """The rows of :func:`plans_summary_rows` as an aligned text table with a title line."""
    lines = [
        f"Plans {plans.plans_name} for {plans.dataset_name} ({plans.experiment_planner_used}); "
        f"transpose_forward {list(plans.transpose_forward)}",
        f"{'configuration':<20} {'spacing':<28} {'patch size':<18} {'batch':>5} {'stages':>6}  median size",
    ]
    for name, spacing, patch, batch, stages, median in plans_summary_rows(plans):
        lines.append(f"{name:<20} {spacing:<28} {patch:<18} {batch:>5} {stages:>6}  {median}")
    return "\n".join(lines)
