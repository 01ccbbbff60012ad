"""``autoseg export_segmentations``: Slicer ``.seg.nrrd`` files + their volumes -> an ``nnUNet_raw`` dataset.

Prints the segment-name -> label table and the case list, then writes (unless ``--dry_run``). Existing
cases are replaced only with ``--overwrite``; every problem found is listed at once (exit status 1).
``-i`` takes one or more folders, or single ``CASE.seg.nrrd`` files (that case of its folder only), so
that a caller (the Slicer Planner) can export exactly the cases of its list.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from autoseg.cli.common import add_dataset, add_flag, workspace_from_environment

if TYPE_CHECKING:
    from autoseg.dataset.export.cases import ExportCase


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export_segmentations",
        help="export 3D Slicer segmentations (.seg.nrrd) and their volumes to a new or existing "
        "nnUNet_raw dataset",
        description="Read a folder of CASE.seg.nrrd files, each next to its volume CASE.<ext> (one "
        "channel) or CASE_0000.<ext>, CASE_0001.<ext>, ... (one file per channel; <ext> .nrrd, .nii.gz, "
        ".nii, .mha, ...). Segments are matched to labels by name across cases (ignoring case and spaces); "
        "each case's label image is written on the grid of its channel-0 volume (imagesTr/CASE_XXXX, "
        "labelsTr/CASE) and dataset.json is written, or extended when the dataset exists (its label values, "
        "channel names and file ending are kept). Existing cases are never replaced without --overwrite. "
        "Partially annotated cases (CASE.annotated_slices.json next to CASE.seg.nrrd, or -annotated_slices) "
        "get nnU-Net's 'ignore' label outside their annotated slices.",
    )
    add_flag(
        parser,
        "-i",
        required=True,
        nargs="+",
        dest="inputs",
        metavar="PATH",
        help="folder with the .seg.nrrd files and their volumes; several folders, or single CASE.seg.nrrd "
        "files (that case only, its volumes found next to it as in a folder), may be given: the cases "
        "are exported in the order given",
    )
    add_dataset(parser, "-d", help="target dataset id (5, 005) or name (Dataset005_Liver); an existing one is extended")
    add_flag(
        parser,
        "-n",
        default=None,
        dest="name",
        metavar="NAME",
        help="name of a new dataset (creates DatasetXXX_NAME); not needed to extend an existing one",
    )
    add_flag(
        parser,
        "-channel_names",
        nargs="+",
        default=None,
        metavar="NAME",
        help="one name per channel, in order, e.g. CT or T2 ADC ('CT' selects CT normalization); "
        "required for a new dataset, must match an existing one",
    )
    add_flag(
        parser,
        "-channel_suffixes",
        nargs="+",
        default=None,
        metavar="SUFFIX",
        help="volume name suffixes per channel instead of _0000, _0001, ... (e.g. _T2 _ADC finds "
        "CASE_T2.nrrd and CASE_ADC.nrrd)",
    )
    _add_partial_option(parser)
    _add_writing_options(parser)
    parser.set_defaults(func=run)


def _add_partial_option(parser: argparse.ArgumentParser) -> None:
    """Partially annotated cases: which slices are annotated (the rest gets the ignore label)."""
    add_flag(
        parser,
        "-annotated_slices",
        default=None,
        metavar="AXIS:SLICES",
        help="export the cases as partially annotated: only these slices of the channel-0 volume are "
        "annotated, every other voxel gets the dataset's 'ignore' label (added to dataset.json when missing). "
        "AXIS is I, J or K (Slicer's voxel axes; K is the usual slice axis); SLICES e.g. 10-20,35 or 'auto' "
        "(the slices holding any segment). A CASE.annotated_slices.json file next to CASE.seg.nrrd "
        '({"axis": "K", "slices": [3, "10-20"]}) wins over this flag for its case.',
    )


def _add_writing_options(parser: argparse.ArgumentParser) -> None:
    """How the dataset is written: file ending, overlapping segments, replacing cases, dry run."""
    add_flag(
        parser,
        "-file_ending",
        default=None,
        metavar="ENDING",
        help="file ending written (.nii.gz, .nii, .nrrd, .mha); default: the existing dataset's, "
        "else .nii.gz",
    )
    add_flag(
        parser,
        "-overlap",
        choices=("error", "last"),
        default="error",
        help="overlapping segments: 'error' (default) lists them; 'last' lets the later label win",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace cases that already exist in the dataset (otherwise the command refuses)",
    )
    parser.add_argument(
        "--dry_run",
        action="store_true",
        help="only print the label table, the cases and the problems; write nothing",
    )


def run(args: argparse.Namespace) -> int:
    from autoseg.dataset.export.segmentations import plan_export, write_export
    from autoseg.errors import DatasetError

    workspace = workspace_from_environment()
    cases = find_cases(args.inputs, args.channel_suffixes)
    plan = plan_export(
        cases,
        workspace.raw,
        args.dataset,
        args.name,
        args.channel_names,
        args.file_ending,
        args.overlap,
        annotated_slices=args.annotated_slices,
    )
    print(plan.format())
    if plan.problems:
        raise DatasetError(
            f"{len(plan.problems)} problem(s) listed above; nothing was written. Fix them and run "
            f"the command again."
        )
    if args.dry_run:
        print("\nDry run: nothing was written.")
        return 0
    if plan.existing_cases and not args.overwrite:
        raise DatasetError(
            f"{len(plan.existing_cases)} case(s) already exist in {plan.dataset_folder}: "
            f"{', '.join(plan.existing_cases)}. Nothing was written. Pass --overwrite to replace "
            f"them, or rename those cases."
        )
    print()
    written = write_export(
        plan,
        overwrite=args.overwrite,
        progress=lambda done, total, case: print(f"[{done}/{total}] {case}", flush=True),
    )
    print(
        f"Exported {len(written)} case(s) to {plan.dataset_folder}. Next: autoseg plan_and_preprocess -d "
        f"{plan.dataset_folder.name} --verify_dataset_integrity"
    )
    return 0


def find_cases(inputs: Sequence[str | Path], channel_suffixes: Sequence[str] | None = None) -> list[ExportCase]:
    """The cases of every input in order: a folder's cases (sorted by id), or the case of one ``.seg.nrrd`` file.

    A file is paired with its volumes by the folder rules (``find_cases_in_folder`` on its folder, which
    must therefore pair cleanly); DatasetError when it is not a ``.seg.nrrd`` file of that folder.
    """
    from autoseg.dataset.export.cases import SEG_ENDING, find_cases_in_folder, split_ending
    from autoseg.errors import DatasetError

    cases: list[ExportCase] = []
    found: dict[Path, list[ExportCase]] = {}  # each folder is read once
    for path in map(Path, inputs):
        if not path.is_file():
            cases += find_cases_in_folder(path, channel_suffixes)  # a folder, or its "not a folder" error
            continue
        if not split_ending(path.name, (SEG_ENDING,)):
            raise DatasetError(f"{path} is not a {SEG_ENDING} file; give a folder or a CASE{SEG_ENDING} file.")
        if path.parent not in found:
            found[path.parent] = find_cases_in_folder(path.parent, channel_suffixes)
        cases += [case for case in found[path.parent] if case.segmentation.name == path.name]
    return cases
