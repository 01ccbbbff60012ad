"""``autoseg convert_MSD_dataset`` and ``autoseg convert_old_nnUNet_dataset`` (as nnU-Net's commands).

Both write the new dataset into the workspace's raw folder (``nnUNet_raw``) and refuse to replace an
existing dataset unless ``--overwrite`` is given.
"""

from __future__ import annotations

import argparse
import logging
import os

from autoseg.cli.common import add_flag, add_num_processes, workspace_from_environment
from autoseg.errors import WorkspaceError

logger = logging.getLogger(__name__)

NUM_PROCESSES_VARIABLE = "nnUNet_def_n_proc"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add both conversion subcommands."""
    _register_msd(subparsers)
    _register_old(subparsers)


def _register_msd(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert_MSD_dataset",
        help="convert a Medical Segmentation Decathlon task (TaskXX_Name) into an nnUNet_raw dataset",
        description="Convert a downloaded and extracted Medical Segmentation Decathlon task folder "
        "(TaskXX_Name with dataset.json, imagesTr/, labelsTr/, imagesTs/) into nnUNet_raw/DatasetXXX_Name: "
        "4D multi-channel images are split into one file per channel ({case}_0000.nii.gz, ...), labels are "
        "copied and dataset.json is rewritten in the v2 format. Same as nnUNetv2_convert_MSD_dataset.",
    )
    parser.add_argument(
        "-i",
        dest="i",
        required=True,
        metavar="FOLDER",
        help="Downloaded and extracted MSD task folder, e.g. /data/Task05_Prostate. Not an nnU-Net v1 task "
        "(use convert_old_nnUNet_dataset for those).",
    )
    add_flag(
        parser,
        "-overwrite_id",
        type=int,
        default=None,
        metavar="ID",
        help="Dataset id of the result. Default: the number of the MSD task (Task05 -> Dataset005). "
        "Use it when that id is already taken by another dataset.",
    )
    add_num_processes(
        parser, "splitting the images", f"${NUM_PROCESSES_VARIABLE} if set, else 8, at most the CPUs", dest="np"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="Replace the target dataset folder if it already exists (otherwise the command refuses; nothing "
        "is changed).",
    )
    parser.set_defaults(func=run_msd)


def _register_old(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert_old_nnUNet_dataset",
        help="convert an nnU-Net v1 task folder (TaskXXX_Name) into an nnUNet_raw dataset",
        description="Copy an nnU-Net v1 raw task (imagesTr/, labelsTr/, imagesTs/, dataset.json) into "
        "nnUNet_raw/OUTPUT_DATASET_NAME and rewrite its dataset.json in the v2 format. Same as "
        "nnUNetv2_convert_old_nnUNet_dataset.",
    )
    parser.add_argument(
        "input_folder",
        help="The old task folder itself (the one holding imagesTr/, labelsTr/ and dataset.json), as a path, "
        "not just the task name: v2 does not know where v1 tasks are.",
    )
    parser.add_argument(
        "output_dataset_name",
        help="Name (not path) of the new dataset, following the DatasetXXX_Name convention, e.g. "
        "Dataset004_Hippocampus.",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="Replace the target dataset folder if it already exists (otherwise the command refuses).",
    )
    parser.set_defaults(func=run_old)


def default_num_processes() -> int | None:
    """``$nnUNet_def_n_proc`` when set (as nnU-Net), else None (the converter's own default)."""
    value = os.environ.get(NUM_PROCESSES_VARIABLE, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise WorkspaceError(
            f"{NUM_PROCESSES_VARIABLE}={value!r} must be a positive integer; fix or unset it."
        )
    return int(value)


def run_msd(args: argparse.Namespace) -> int:
    """Run ``convert_MSD_dataset``."""
    from autoseg.dataset.convert.msd import convert_msd_dataset

    workspace = workspace_from_environment()
    target = convert_msd_dataset(
        args.i,
        workspace.raw,
        overwrite_id=args.overwrite_id,
        num_processes=args.np if args.np is not None else default_num_processes(),
        overwrite=args.overwrite,
        id_check_folders=(workspace.preprocessed, workspace.results),
    )
    logger.info("Done: %s", target)
    return 0


def run_old(args: argparse.Namespace) -> int:
    """Run ``convert_old_nnUNet_dataset``."""
    from autoseg.dataset.convert.old_nnunet import convert_old_nnunet_dataset

    workspace = workspace_from_environment()
    target = convert_old_nnunet_dataset(
        args.input_folder,
        args.output_dataset_name,
        workspace.raw,
        overwrite=args.overwrite,
        id_check_folders=(workspace.preprocessed, workspace.results),
    )
    logger.info("Done: %s", target)
    return 0
