"""``extract_fingerprint``, ``plan_experiment``, ``preprocess`` and ``plan_and_preprocess`` (nnU-Net's flags)."""

from __future__ import annotations

import argparse
import logging
from contextlib import nullcontext

from autoseg.cli.common import add_dataset, add_flag, add_num_processes, workspace_from_environment

logger = logging.getLogger(__name__)
DEFAULT_CONFIGURATIONS = ["2d", "3d_fullres", "3d_lowres"]


def _add_dataset_ids(parser: argparse.ArgumentParser) -> None:
    add_dataset(parser, "-d", nargs="+", help="dataset id(s) or name(s), e.g. 4 or Dataset004_Hippocampus")
    parser.add_argument("--verbose", action="store_true", help="more detailed logging")
    parser.add_argument("--no_pbar", action="store_true", help="hide progress bars")


def _add_fingerprint_flags(parser: argparse.ArgumentParser, np_flag: str) -> None:
    add_flag(parser, "-fpe", default="DatasetFingerprintExtractor",
             help="fingerprint extractor name (accepted for nnU-Net compatibility; only the default exists)")
    add_num_processes(parser, "for fingerprint extraction", dest="num_fingerprint_processes", flag=np_flag)
    parser.add_argument("--verify_dataset_integrity", action="store_true",
                        help="check the raw dataset first and stop with a full report if anything is wrong")
    parser.add_argument("--clean", action="store_true", help="recompute the fingerprint even if one exists")


def _add_planning_flags(parser: argparse.ArgumentParser) -> None:
    add_flag(parser, "-pl", default="ExperimentPlanner",
             help="planner: ExperimentPlanner (default U-Net), nnUNetPlannerResEncM, nnUNetPlannerResEncL, "
                  "nnUNetPlannerResEncXL, ResEncUNetPlanner")
    add_flag(parser, "-gpu_memory_target", type=float, default=None,
             help="GPU memory (GB) the plans should fit; default: the planner's own (8, or 24/40 for ResEnc L/XL)")
    add_flag(parser, "-preprocessor_name", default="DefaultPreprocessor",
             help="preprocessor name written into the plans (only DefaultPreprocessor exists)")
    add_flag(parser, "-overwrite_target_spacing", nargs="+", type=float, default=None,
             help="custom 3d_fullres target spacing (3 numbers, array-axis order), also used by 3d_lowres")
    add_flag(parser, "-overwrite_plans_name", default=None,
             help="name of the plans file/identifier to write instead of the planner's default")


def _add_preprocessing_flags(parser: argparse.ArgumentParser, plans_flag: bool) -> None:
    if plans_flag:
        add_flag(
            parser, "-plans_name", default="nnUNetPlans", help="plans identifier to preprocess (default nnUNetPlans)"
        )
    add_flag(parser, "-c", nargs="+", default=DEFAULT_CONFIGURATIONS, dest="configurations",
             help="configurations to preprocess (default: 2d 3d_fullres 3d_lowres)")
    add_num_processes(parser, "per configuration (one value, or one per -c entry)", nargs="+")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("extract_fingerprint", help="compute the dataset fingerprint",
                              description="Extract the dataset fingerprint (spacings, shapes, intensities).")
    _add_dataset_ids(p)
    _add_fingerprint_flags(p, "-np")
    p.set_defaults(func=run_extract_fingerprint)

    p = subparsers.add_parser("plan_experiment", help="plan configurations from the fingerprint",
                              description="Plan network configurations (2d, 3d_fullres, 3d_lowres, cascade).")
    _add_dataset_ids(p)
    _add_planning_flags(p)
    p.set_defaults(func=run_plan_experiment)

    p = subparsers.add_parser("preprocess", help="preprocess the training cases with existing plans",
                              description="Preprocess the training cases for the given configurations.")
    _add_dataset_ids(p)
    _add_preprocessing_flags(p, plans_flag=True)
    p.set_defaults(func=run_preprocess)

    p = subparsers.add_parser(
        "plan_and_preprocess", help="fingerprint, plan and preprocess in one go",
        description="Extract the fingerprint, plan the experiment and preprocess the data "
        "(nnUNetv2_plan_and_preprocess). Interrupted runs resume where they stopped.",
    )
    _add_dataset_ids(p)
    _add_fingerprint_flags(p, "-npfp")
    _add_planning_flags(p)
    p.add_argument("--no_pp", action="store_true", help="only fingerprint and plan; do not preprocess")
    _add_preprocessing_flags(p, plans_flag=False)
    p.set_defaults(func=run_plan_and_preprocess)


def _progress_factory(args: argparse.Namespace):
    from autoseg.utils.progress import progress_bar

    if args.no_pbar:
        return None
    return lambda description: progress_bar(description)


def _fingerprint(args: argparse.Namespace, workspace) -> None:
    from autoseg.dataset.integrity.verify import check_dataset_or_raise
    from autoseg.plan_and_preprocess import fingerprint_dataset
    from autoseg.utils.progress import progress_bar

    for dataset in args.dataset:
        name = workspace.dataset_name(dataset)
        if args.verify_dataset_integrity:
            check_dataset_or_raise(workspace.raw / name, args.num_fingerprint_processes)
        with (nullcontext(None) if args.no_pbar else progress_bar(f"Fingerprint {name}")) as progress:
            fingerprint_dataset(workspace, name, args.num_fingerprint_processes, args.clean, progress)


def _plan(args: argparse.Namespace, workspace) -> str:
    from autoseg.plan_and_preprocess import plan_dataset
    from autoseg.planning.summary import format_plans_summary

    plans_name = ""
    for dataset in args.dataset:
        plans = plan_dataset(
            workspace,
            dataset,
            args.pl,
            args.gpu_memory_target,
            args.overwrite_target_spacing,
            args.overwrite_plans_name,
        )
        print(format_plans_summary(plans))
        plans_name = plans.plans_name
    return plans_name


def _preprocess(args: argparse.Namespace, workspace, plans_name: str) -> None:
    from autoseg.plan_and_preprocess import preprocess_dataset_configurations

    for dataset in args.dataset:
        preprocess_dataset_configurations(
            workspace, dataset, plans_name, args.configurations, args.num_processes, _progress_factory(args)
        )


def run_extract_fingerprint(args: argparse.Namespace) -> int:
    _fingerprint(args, workspace_from_environment())
    return 0


def run_plan_experiment(args: argparse.Namespace) -> int:
    _plan(args, workspace_from_environment())
    return 0


def run_preprocess(args: argparse.Namespace) -> int:
    _preprocess(args, workspace_from_environment(), args.plans_name)
    return 0


def run_plan_and_preprocess(args: argparse.Namespace) -> int:
    workspace = workspace_from_environment()
    _fingerprint(args, workspace)
    plans_name = _plan(args, workspace)
    if not args.no_pp:
        _preprocess(args, workspace, plans_name)
    return 0
