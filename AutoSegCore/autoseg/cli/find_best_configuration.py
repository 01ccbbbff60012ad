"""``autoseg find_best_configuration DATASET`` and ``autoseg accumulate_crossval_results DATASET -c CONFIG``.

Same positional arguments and flags as ``nnUNetv2_find_best_configuration`` (``-p``, ``-c``, ``-tr``,
``-f``, ``-np``, ``--disable_ensembling``, ``--no_overwrite``) and
``nnUNetv2_accumulate_crossval_results`` (``-c``, ``-o``, ``-f``, ``-p``, ``-tr``; plus ``-np``).
"""

from __future__ import annotations

import argparse

from autoseg.cli.common import add_dataset, add_flag, add_num_processes, workspace_from_environment

_FOLDS_HELP = "folds the models were trained on (default: 0 1 2 3 4)"


def register(subparsers: argparse._SubParsersAction) -> None:
    best = subparsers.add_parser(
        "find_best_configuration",
        help="choose the best model or ensemble from the cross-validation, determine postprocessing",
        description="For every trained model (trainer x configuration x plans) merge and evaluate its "
        "cross-validation, ensemble every pair of models, pick the highest foreground mean Dice, determine the "
        "connected-component postprocessing on it and write inference_information.json and inference_instructions.txt "
        "(the exact commands to predict) into nnUNet_results/DatasetXXX_Name/. Models missing a fold are skipped.",
    )
    add_dataset(best)
    add_flag(best, "-p", nargs="+", default=["nnUNetPlans"], dest="plans", metavar="PLANS",
             help="plans identifiers (default: nnUNetPlans)")
    add_flag(best, "-c", nargs="+", default=["2d", "3d_fullres", "3d_lowres", "3d_cascade_fullres"],
             dest="configurations", metavar="CONFIG",
             help="configurations (default: 2d 3d_fullres 3d_lowres 3d_cascade_fullres; those not planned are skipped)")
    add_flag(best, "-tr", nargs="+", default=["nnUNetTrainer"], dest="trainers", metavar="TRAINER",
             help="trainers (default: nnUNetTrainer)")
    add_num_processes(best, "for ensembling, evaluation and postprocessing", "the CPU cores")
    add_flag(best, "-f", nargs="+", type=int, default=[0, 1, 2, 3, 4], dest="folds", metavar="FOLD", help=_FOLDS_HELP)
    best.add_argument("--disable_ensembling", action="store_true", help="consider single models only")
    best.add_argument("--no_overwrite", action="store_true",
                      help="keep cross-validation folders and ensembles already written; only add what is missing")
    best.set_defaults(func=run_find_best)

    accumulate = subparsers.add_parser(
        "accumulate_crossval_results",
        help="merge a model's fold validations into one folder and evaluate it",
        description="Copy the validation predictions of the given folds of one model into one folder (default: "
        "<model>/crossval_results_folds_<folds>) and evaluate them against nnUNet_preprocessed/DatasetXXX/"
        "gt_segmentations into summary.json.",
    )
    add_dataset(accumulate)
    add_flag(accumulate, "-c", required=True, dest="configuration", metavar="CONFIG", help="configuration")
    add_flag(accumulate, "-o", default=None, dest="output", metavar="FOLDER",
             help="output folder, which must be empty or new (default: <model>/crossval_results_folds_<folds>)")
    add_flag(
        accumulate, "-f", nargs="+", type=int, default=[0, 1, 2, 3, 4], dest="folds", metavar="FOLD", help=_FOLDS_HELP
    )
    add_flag(
        accumulate,
        "-p",
        default="nnUNetPlans",
        dest="plans",
        metavar="PLANS",
        help="plans identifier (default: nnUNetPlans)",
    )
    add_flag(accumulate, "-tr", default="nnUNetTrainer", dest="trainer", metavar="TRAINER",
             help="trainer (default: nnUNetTrainer)")
    add_num_processes(accumulate, "for the evaluation", "the CPU cores")
    accumulate.set_defaults(func=run_accumulate)


def run_find_best(args: argparse.Namespace) -> int:
    from autoseg.evaluation.metrics import label_or_region_names
    from autoseg.model_selection.find_best import find_best_configuration
    from autoseg.model_selection.models import candidate_models
    from autoseg.model_selection.report import TableRow, display_names, format_results_table
    from autoseg.utils.files import load_json

    models = candidate_models(args.trainers, args.configurations, args.plans)
    result = find_best_configuration(
        workspace_from_environment(), args.dataset, models, _unique(args.folds), not args.disable_ensembling,
        args.num_processes, overwrite=not args.no_overwrite, report=print,
    )
    labels = load_json(result.best.source / "dataset.json")["labels"]
    names = display_names([c.members for c in result.candidates])
    rows = [TableRow(name, c.summary, c is result.best) for name, c in zip(names, result.candidates)]
    trainers = sorted({m.trainer for c in result.candidates for m in c.members})
    plans = sorted({m.plans for c in result.candidates for m in c.members})
    print(f"\nCross-validation of {result.dataset_name}, folds {' '.join(map(str, result.information['folds']))} "
          f"(trainer {', '.join(trainers)}; plans {', '.join(plans)}): foreground mean Dice and Dice per label\n")
    print(format_results_table(rows, label_or_region_names(labels)))
    before, after = result.best.dice, result.postprocessing.postprocessed.foreground_mean.get("Dice", float("nan"))
    print(f"\nBest: {result.best.identifier}: {before:.4f}; after postprocessing {after:.4f} "
          f"({result.postprocessing.pickle_file})\n")
    print(result.instructions)
    print(f"Written: {result.files['information']} and {result.files['instructions']}")
    return 0


def run_accumulate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from autoseg.errors import AutoSegError
    from autoseg.evaluation.metrics import label_or_region_names
    from autoseg.evaluation.summary import format_summary_table
    from autoseg.inference.model_folder import model_folder_path
    from autoseg.model_selection.accumulate_crossval import accumulate_crossval_results, reference_folder
    from autoseg.utils.files import load_json

    workspace = workspace_from_environment()
    dataset_name = workspace.dataset_name(args.dataset)
    model = model_folder_path(workspace, dataset_name, args.configuration, args.trainer, args.plans)
    output = Path(args.output) if args.output else None
    if output is not None and output.is_dir() and any(output.iterdir()):
        raise AutoSegError(f"Output folder {output} exists and is not empty; give a new or empty folder with -o "
                           f"(nothing is overwritten).")
    folder, summary = accumulate_crossval_results(model, reference_folder(workspace, dataset_name), _unique(args.folds),
                                                  output, args.num_processes)
    print(format_summary_table(summary, label_or_region_names(load_json(folder / "dataset.json")["labels"])))
    print(f"Cross-validation of folds {' '.join(map(str, args.folds))} in {folder} (summary.json)")
    return 0


def _unique(folds: list[int]) -> list[int]:
    """The folds in the given order, each once."""
    return list(dict.fromkeys(folds))
