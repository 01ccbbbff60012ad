"""``autoseg ensemble -i FOLDER FOLDER ... -o OUT`` (nnUNetv2_ensemble): average predicted probabilities.

Same flags as nnU-Net (``-i``, ``-o``, ``-np``, ``--save_npz``); ``-dataset_json``/``-plans_json`` override
the copies in the first input folder (an AutoSeg addition).
"""

from __future__ import annotations

import argparse

from autoseg.cli.common import add_flag, add_num_processes


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ensemble",
        help="average the probabilities of several prediction folders (nnUNetv2_ensemble)",
        description="Average the per-case probabilities ({case}.npz) of several prediction folders and write one "
        "segmentation per case into -o, in the input images' geometry. Every folder must hold the probabilities of "
        "the same cases: predict with `autoseg predict ... --save_probabilities` (or train with --npz). Labels, file "
        "format and case geometry come from the first folder (its dataset.json, plans.json and {case}.json/.pkl).",
    )
    add_flag(parser, "-i", nargs="+", required=True, dest="inputs", metavar="FOLDER",
             help="prediction folders to ensemble (each with {case}.npz and the case properties)")
    add_flag(parser, "-o", required=True, dest="output", metavar="FOLDER", help="output folder (created if needed)")
    add_num_processes(parser, "merging the cases", "the CPU cores, fewer when RAM is short")
    parser.add_argument("--save_npz", action="store_true",
                        help="also write the averaged probabilities ({case}.npz) and properties ({case}.json/.pkl)")
    add_flag(parser, "-dataset_json", default=None, metavar="FILE",
             help="dataset.json to use (default: the one in the first input folder)")
    add_flag(
        parser,
        "-plans_json",
        default=None,
        metavar="FILE",
        help="plans file whose image reader/writer writes the output (default: plans.json in the first input folder)",
    )
    parser.add_argument(
        "--disable_progress_bar", "--no_pbar", action="store_true", dest="no_pbar", help="hide the progress bar"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from autoseg.ensembling.ensemble import ensemble_folders
    from autoseg.utils.progress import progress_bar

    with progress_bar("Ensembling", enabled=not args.no_pbar) as progress:
        cases = ensemble_folders(args.inputs, args.output, args.save_npz, args.num_processes,
                                 args.dataset_json, args.plans_json, progress=progress)
    print(f"Ensembled {len(cases)} case(s) from {len(args.inputs)} folder(s) into {args.output}")
    return 0
