"""A readable table of a plans file (printed by the CLI, shown in the Slicer Planner module)."""

from __future__ import annotations

from autoseg.planning.plans import Plans


def format_plans_summary(plans: Plans) -> str:
    """One line per configuration: spacing, patch size, batch size, stages, median image size."""
    lines = [
        f"Plans {plans.plans_name} for {plans.dataset_name} ({plans.experiment_planner_used}); "
        f"transpose_forward {list(plans.transpose_forward)}",
        f"{'configuration':<20} {'spacing':<28} {'patch size':<18} {'batch':>5} {'stages':>6}  median size",
    ]
    for name in plans.configurations:
        c = plans.configuration(name)
        spacing = "x".join(f"{s:.3g}" for s in c.spacing)
        patch = "x".join(str(p) for p in c.patch_size)
        median = "x".join(f"{m:.0f}" for m in c.median_image_size_in_voxels)
        lines.append(
            f"{name:<20} {spacing:<28} {patch:<18} {c.batch_size:>5} {c.architecture.arch_kwargs['n_stages']:>6}  {median}"
        )
    return "\n".join(lines)
