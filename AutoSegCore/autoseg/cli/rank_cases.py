"""``autoseg rank_cases``: which unlabelled case to annotate next, ranked by model uncertainty.

Predicts every case of ``-i`` with each fold of the model ``-m`` (or, with one fold, each mirrored TTA copy),
scores how much they disagree and how uncertain the ensemble is, and writes ``ranking.json``/``ranking.csv``
(optionally ``CASE_uncertainty<file_ending>`` maps) into a new folder ``-o``; prints the ranking.
"""

from __future__ import annotations

import argparse

from autoseg.cli.common import add_device, add_flag


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "rank_cases",
        help="rank unlabelled cases by model uncertainty (which case to annotate next)",
        description="Predict each case of -i with every fold of the model -m, measure how much the folds disagree "
        "(1 - mean Dice against their ensemble; with one fold: the mirrored TTA copies) and the mean entropy on the "
        "predicted foreground, and rank the cases most uncertain first into -o/ranking.json and ranking.csv.",
    )
    add_flag(parser, "-i", required=True, dest="input", metavar="FOLDER",
             help="input folder: one file per channel, named CASE_0000<file_ending> ... (as imagesTs)")
    add_flag(parser, "-o", required=True, dest="output", metavar="FOLDER",
             help="new output folder for ranking.json, ranking.csv and the maps (an existing ranking is never "
                  "overwritten)")
    add_flag(parser, "-m", required=True, dest="model_folder", metavar="FOLDER",
             help="the model's results folder, e.g. nnUNet_results/DatasetXXX/nnUNetTrainer__nnUNetPlans__3d_fullres")
    add_flag(parser, "-f", nargs="+", default=None, dest="folds", metavar="FOLD",
             help="folds whose disagreement is measured, e.g. 0 1 2 3 4 (default: every fold that has the checkpoint)")
    add_flag(parser, "-chk", default="checkpoint_final.pth", dest="checkpoint", metavar="NAME",
             help="checkpoint file in each fold folder (default checkpoint_final.pth)")
    add_flag(parser, "-step_size", type=float, default=0.5, metavar="S",
             help="sliding-window step as a fraction of the patch size (default 0.5)")
    parser.add_argument("--disable_tta", action="store_true",
                        help="no mirroring test-time augmentation (faster; with one fold, no disagreement is measured)")
    parser.add_argument("--save_maps", action="store_true",
                        help="also write CASE_uncertainty<file_ending>: the per-voxel entropy (float32, 0-1) on the "
                             "input's geometry")
    add_device(parser)
    add_flag(parser, "-num_threads", type=int, default=None, metavar="N",
             help="CPU threads for the network (default: all cores)")
    parser.add_argument("--verbose", action="store_true", help="print details")
    parser.add_argument("--disable_progress_bar", "--no_pbar", action="store_true", dest="no_pbar",
                        help="hide the progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tqdm import tqdm

    from autoseg.ranking.rank_cases import rank_cases
    from autoseg.ranking.report import RANKING_JSON, format_table, refuse_existing_ranking

    refuse_existing_ranking(Path(args.output))  # before the progress bar: the error is all the user sees
    bar = tqdm(total=0, unit="case", disable=args.no_pbar, dynamic_ncols=True, desc="Ranking")

    def progress(case_index: int, num_cases: int, identifier: str, done: int, total: int) -> None:
        bar.total = num_cases
        bar.n = case_index + 1 if done == total else case_index
        bar.set_postfix_str(f"{identifier}: window {done}/{total}", refresh=False)
        bar.refresh()

    try:
        ranking = rank_cases(args.input, args.output, args.model_folder, args.folds, args.checkpoint, args.device,
                             tta=not args.disable_tta, save_maps=args.save_maps, step_size=args.step_size,
                             progress=progress, num_threads=args.num_threads)
    finally:
        bar.close()
    print(format_table(ranking))
    print(f"Ranking of {len(ranking)} case(s) written to {args.output}/{RANKING_JSON} and ranking.csv.")
    return 0
