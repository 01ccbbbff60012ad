"""``autoseg demo``: generate a synthetic dataset, plan and preprocess it, and print the plans."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo", help="run the pipeline on a generated dataset",
        description="Generate a small synthetic CT-like dataset in a fresh workspace, plan and preprocess it "
        "and print the plans. (Training and prediction join the demo as they are implemented.)",
    )
    p.add_argument("--workspace", type=Path, default=Path(".autoseg_demo"),
                   help="folder for the demo's nnUNet_raw/preprocessed/results (default ./.autoseg_demo)")
    p.add_argument("--cases", type=int, default=12, help="number of training cases to generate (default 12)")
    p.add_argument("-np", type=int, default=None, dest="num_processes", help="worker processes")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from autoseg.demo.synthetic import write_synthetic_dataset
    from autoseg.paths import Workspace
    from autoseg.plan_and_preprocess import fingerprint_dataset, plan_dataset, preprocess_dataset_configurations
    from autoseg.planning.summary import format_plans_summary
    from autoseg.utils.progress import progress_bar

    workspace = Workspace.from_root(args.workspace.resolve())
    name = "Dataset990_AutoSegDemo"
    raw = workspace.raw / name
    if not (raw / "dataset.json").is_file():
        print(f"Generating {args.cases} synthetic cases in {raw}")
        write_synthetic_dataset(raw, num_cases=args.cases)
    with progress_bar("Fingerprint") as progress:
        fingerprint_dataset(workspace, name, args.num_processes, clean=True, progress=progress)
    plans = plan_dataset(workspace, name)
    preprocess_dataset_configurations(workspace, name, plans.plans_name, ["2d", "3d_fullres"],
                                      [args.num_processes], lambda d: progress_bar(d))
    print(format_plans_summary(plans))
    print(f"\nWorkspace: {workspace.raw.parent}")
    print(f"Preprocessed data: {workspace.preprocessed / name}")
    return 0
