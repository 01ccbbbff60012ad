"""``autoseg evaluate_folder`` and ``autoseg evaluate_simple``: Dice/IoU of predictions vs references.

Both write nnU-Net's ``summary.json`` (default ``PRED_FOLDER/summary.json``) and print a table of the
mean Dice and IoU per label or region. Same arguments as ``nnUNetv2_evaluate_folder`` and
``nnUNetv2_evaluate_simple``.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from autoseg.cli.common import add_flag, add_num_processes

if TYPE_CHECKING:
    from autoseg.evaluation.metrics import LabelOrRegion
    from autoseg.evaluation.summary import EvaluationSummary

_CHILL_HELP = (
    "do not fail when some reference files have no prediction; evaluate the predictions present "
    "(a prediction without a reference is always an error)"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    folder = subparsers.add_parser(
        "evaluate_folder",
        help="compare predicted segmentations with references using the labels/regions of dataset.json",
        description="Compute Dice, IoU, TP, FP, FN, TN, n_pred and n_ref per case and per label (or region, "
        "for region-based datasets) for every prediction in PRED_FOLDER against the reference of the same "
        "file name in GT_FOLDER; voxels with the ignore label are left out. Writes summary.json in nnU-Net's "
        "format (per-case metrics, mean per label/region, foreground mean).",
    )
    _add_folders(folder)
    add_flag(folder, "-djfile", required=True, metavar="DATASET_JSON",
             help="dataset.json giving the labels/regions, ignore label, file ending and image reader")
    add_flag(folder, "-pfile", required=True, metavar="PLANS_JSON",
             help="plans file of the model (nnUNetPlans.json); kept for compatibility with nnU-Net")
    _add_common(folder)
    folder.set_defaults(func=run_folder)

    simple = subparsers.add_parser(
        "evaluate_simple",
        help="compare predicted segmentations with references for an explicit list of labels",
        description="Like evaluate_folder, but the labels come from -l and the file ending and image reader "
        "from the first file of GT_FOLDER (no dataset.json or plans needed).",
    )
    _add_folders(simple)
    add_flag(simple, "-l", type=int, nargs="+", required=True, dest="labels", metavar="LABEL",
             help="label values to evaluate, e.g. -l 1 2 (a label 0 is reported but left out of the "
             "foreground mean)")
    add_flag(simple, "-il", type=int, default=None, dest="ignore_label", metavar="LABEL",
             help="ignore label: reference voxels with this value are left out of every count")
    _add_common(simple)
    simple.set_defaults(func=run_simple)


def _add_folders(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("gt_folder", metavar="GT_FOLDER", help="folder with the reference segmentations")
    parser.add_argument("pred_folder", metavar="PRED_FOLDER", help="folder with the predicted segmentations")


def _add_common(parser: argparse.ArgumentParser) -> None:
    add_flag(parser, "-o", default=None, dest="output", metavar="OUTPUT_JSON",
             help="summary file to write (must end with .json; default: PRED_FOLDER/summary.json)")
    add_num_processes(parser, "reading the files", "the CPU cores; 0 or 1 works in this process")
    parser.add_argument("--chill", action="store_true", help=_CHILL_HELP)


def run_folder(args: argparse.Namespace) -> int:
    from autoseg.evaluation.folders import evaluate_with_dataset
    from autoseg.utils.progress import progress_bar

    with progress_bar("Evaluating") as progress:
        summary, names = evaluate_with_dataset(
            args.gt_folder, args.pred_folder, args.djfile, args.pfile, args.output, args.num_processes,
            chill=args.chill, progress=progress,
        )
    _report(summary, names, args.output or os.path.join(args.pred_folder, "summary.json"))
    return 0


def run_simple(args: argparse.Namespace) -> int:
    from autoseg.evaluation.folders import evaluate_with_labels
    from autoseg.utils.progress import progress_bar

    with progress_bar("Evaluating") as progress:
        summary = evaluate_with_labels(
            args.gt_folder, args.pred_folder, args.labels, args.output, args.num_processes,
            ignore_label=args.ignore_label, chill=args.chill, progress=progress,
        )
    _report(summary, {}, args.output or os.path.join(args.pred_folder, "summary.json"))
    return 0


def _report(summary: EvaluationSummary, names: dict[LabelOrRegion, str], output: str) -> None:
    from autoseg.evaluation.summary import format_summary_table

    print(format_summary_table(summary, names))
    print(f"Summary written to {output}")
