"""``autoseg move_plans_between_datasets``: nnUNetv2_move_plans_between_datasets (``-s -t -sp -tp``)."""

from __future__ import annotations

import argparse

from autoseg.cli.common import add_flag, workspace_from_environment


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "move_plans_between_datasets",
        help="copy a dataset's plans to another dataset (pretraining / fine-tuning)",
        description="Write nnUNet_preprocessed/TARGET/TARGET_PLANS.json from SOURCE's plans: same configurations and "
        "network topology, with the target's dataset name, the target plans identifier (also in the data "
        "identifiers) and the image reader the target's raw images need. Then preprocess the target with "
        "`autoseg preprocess -d TARGET -plans_name TARGET_PLANS` and train with -p TARGET_PLANS (e.g. with "
        "-pretrained_weights). An existing target plans file is never overwritten unless --overwrite is given.",
    )
    add_flag(parser, "-s", required=True, dest="source", metavar="DATASET", help="source dataset name or id")
    add_flag(parser, "-t", required=True, dest="target", metavar="DATASET", help="target dataset name or id")
    add_flag(parser, "-sp", required=True, dest="source_plans", metavar="PLANS",
             help="source plans identifier: nnUNetPlans for nnUNetPlans.json")
    add_flag(parser, "-tp", default=None, dest="target_plans", metavar="PLANS",
             help="target plans identifier (default: the source's; better pick a new one such as nnUNetPlansFrom4 "
             "so that the target's own nnUNetPlans stay)")
    parser.add_argument("--overwrite", action="store_true", help="replace the target plans file if it exists")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from autoseg.planning.move_plans import move_plans_between_datasets

    written = move_plans_between_datasets(workspace_from_environment(), args.source, args.target, args.source_plans,
                                          args.target_plans, overwrite=args.overwrite)
    print(f"Wrote {written}")
    return 0
