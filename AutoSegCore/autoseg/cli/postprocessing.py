"""``autoseg determine_postprocessing`` and ``autoseg apply_postprocessing`` (nnU-Net's two commands).

Same flags as ``nnUNetv2_determine_postprocessing`` (``-i -ref -plans_json -dataset_json -np
--remove_postprocessed``) and ``nnUNetv2_apply_postprocessing`` (``-i -o -pp_pkl_file -np -plans_json
-dataset_json``). ``-pp_pkl_file`` also takes AutoSeg's ``postprocessing.json``; nnU-Net's pickles are
read without executing code from them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from autoseg.cli.common import add_flag, add_num_processes

_NP_DEFAULT = "every CPU core; 1 works in this process"


def register(subparsers: argparse._SubParsersAction) -> None:
    determine = subparsers.add_parser(
        "determine_postprocessing",
        help="decide whether keeping only the largest connected component improves a prediction folder",
        description="Evaluate the predictions in -i against the references in -ref, then try keeping only the "
        "largest connected component of all foreground labels together (accepted when the foreground mean Dice "
        "rises and no label gets worse) and then of each label/region (accepted when its Dice rises). Writes "
        "postprocessing.pkl (usable by nnUNetv2_apply_postprocessing), postprocessing.json and postprocessed/ "
        "into -i.",
    )
    add_flag(determine, "-i", required=True, dest="input", metavar="FOLDER",
             help="prediction folder (e.g. a crossval_results_folds_0_1_2_3_4 folder)")
    add_flag(determine, "-ref", required=True, dest="reference", metavar="FOLDER",
             help="folder with the reference segmentations (same file names)")
    _add_settings(determine, "input folder")
    add_num_processes(determine, "evaluating the variants", _NP_DEFAULT)
    add_flag(determine, "--remove_postprocessed", action="store_true",
             help="do not keep the postprocessed segmentations (only postprocessing.pkl/.json are written)")
    determine.set_defaults(func=run_determine)

    apply = subparsers.add_parser(
        "apply_postprocessing",
        help="apply a postprocessing.pkl/.json to a folder of segmentations",
        description="Apply the steps of -pp_pkl_file (nnU-Net's postprocessing.pkl or AutoSeg's postprocessing.json) "
        "to every segmentation in -i and write the results, with unchanged geometry, to -o.",
    )
    add_flag(apply, "-i", required=True, dest="input", metavar="FOLDER", help="folder with the segmentations")
    add_flag(apply, "-o", required=True, dest="output", metavar="FOLDER",
             help="output folder (created if needed; must differ from -i)")
    add_flag(apply, "-pp_pkl_file", required=True, metavar="FILE",
             help="postprocessing.pkl or postprocessing.json written by determine_postprocessing (either tool)")
    add_num_processes(apply, "applying it", _NP_DEFAULT)
    _add_settings(apply, "input folder, then next to -pp_pkl_file")
    apply.set_defaults(func=run_apply)


def _add_settings(parser: argparse.ArgumentParser, where: str) -> None:
    add_flag(parser, "-plans_json", default=None, metavar="FILE",
             help=f"plans file giving the image reader/writer (default: plans.json in the {where})")
    add_flag(parser, "-dataset_json", default=None, metavar="FILE",
             help=f"dataset.json giving labels/regions and file ending (default: dataset.json in the {where})")


def run_determine(args: argparse.Namespace) -> int:
    from autoseg.postprocessing.determine import determine_postprocessing, format_postprocessing_table
    from autoseg.utils.progress import progress_bar

    with progress_bar("Evaluating candidates") as progress:
        result = determine_postprocessing(
            Path(args.input), Path(args.reference), args.plans_json, args.dataset_json, args.num_processes,
            keep_postprocessed_files=not args.remove_postprocessed, progress=progress,
        )
    print(format_postprocessing_table(result))
    print(f"Postprocessing written to {result.pickle_file} and {result.json_file}")
    if result.postprocessed_folder is not None:
        print(f"Postprocessed segmentations in {result.postprocessed_folder}")
    return 0


def run_apply(args: argparse.Namespace) -> int:
    from autoseg.postprocessing.apply import apply_postprocessing_to_folder
    from autoseg.postprocessing.files import load_postprocessing
    from autoseg.utils.progress import progress_bar

    steps = load_postprocessing(args.pp_pkl_file)
    pp_file = Path(args.pp_pkl_file).resolve()
    print("Steps: " + ("; ".join(f"keep the largest component of {s.describe()}" for s in steps) if steps else "none"))
    with progress_bar("Postprocessing") as progress:
        names = apply_postprocessing_to_folder(
            args.input, args.output, steps, args.dataset_json, args.plans_json, args.num_processes,
            search=[pp_file if pp_file.is_dir() else pp_file.parent], progress=progress,
        )
    print(f"{len(names)} segmentation(s) written to {args.output}")
    return 0
