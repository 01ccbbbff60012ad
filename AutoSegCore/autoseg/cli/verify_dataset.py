"""``autoseg verify_dataset -d ID [ID ...] [-np N]``: check raw datasets and list every problem at once.

Prints one report per dataset (errors and warnings grouped by case, each with its fix) and exits 1
when any dataset has errors. ``plan_and_preprocess --verify_dataset_integrity`` runs the same check
through :func:`verify_datasets`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from contextlib import nullcontext
from typing import TextIO

from autoseg.cli.common import add_dataset, add_num_processes, workspace_from_environment


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "verify_dataset",
        help="check a raw dataset (dataset.json, file names, geometry, label values) and list every problem",
        description="Check nnUNet_raw/DatasetXXX_Name before planning: dataset.json (required keys, types, "
        "consecutive labels, regions, ignore label), file names (channel suffixes, file ending, missing or "
        "extra channels, labels without images and images without labels), and the content of every case "
        "(unreadable files, size and spacing of every channel and the label, origin/direction, NaN/Inf "
        "intensities, undeclared label values, 2D/3D mix). All problems are listed at once, each with the "
        "case, "
        "the file and how to fix it. Exits with status 1 when there are errors (warnings alone exit 0).",
    )
    add_dataset(
        parser, "-d", nargs="+", help="dataset id(s) or name(s) in nnUNet_raw, e.g. 4, 004 or Dataset004_Hippocampus"
    )
    add_num_processes(
        parser, "reading the cases", "the CPU cores, at most 8, fewer if RAM is short; 0 reads them in the main process"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the reports as JSON (for scripts and the Slicer module) instead of text",
    )
    parser.add_argument("--no_pbar", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    reports = verify_datasets(args.dataset, args.num_processes, show_progress=not (args.no_pbar or args.json))
    if args.json:
        print(json.dumps([r.to_dict() for r in reports], indent=2))
    else:
        print("\n\n".join(r.format() for r in reports))
    return 0 if all(r.ok for r in reports) else 1


def verify_datasets(
    datasets: Sequence[str | int],
    num_processes: int | None = None,
    show_progress: bool = True,
    workspace=None,
) -> list:
    """Verify datasets of the workspace (by id or name); returns one IntegrityReport per dataset.

    The workspace defaults to the environment's (nnUNet_raw ...). An unknown or ambiguous id raises
    DatasetError. Callers decide what to do with errors (``report.raise_if_errors()``).
    """
    from autoseg.dataset.integrity.verify import verify_dataset_integrity

    workspace = workspace or workspace_from_environment()
    reports = []
    for dataset in datasets:
        folder = workspace.raw / workspace.dataset_name(dataset)
        with _progress(f"Checking {folder.name}", show_progress) as progress:
            reports.append(verify_dataset_integrity(folder, num_processes, progress))
    return reports


def verify_datasets_or_raise(
    datasets: Sequence[str | int],
    num_processes: int | None = None,
    show_progress: bool = True,
    workspace=None,
    out: TextIO | None = None,
) -> None:
    """For ``plan_and_preprocess --verify_dataset_integrity``: print the reports of usable datasets (with
    their warnings); raise DatasetError with the full reports of every dataset that has errors."""
    from autoseg.errors import DatasetError

    reports = verify_datasets(datasets, num_processes, show_progress, workspace)
    for report in reports:
        if report.ok:
            print(report.format(), file=out or sys.stdout)
    failed = [r for r in reports if not r.ok]
    if failed:
        raise DatasetError("\n\n".join(r.format() for r in failed))


def _progress(description: str, enabled: bool):
    if not enabled:
        return nullcontext(None)
    from autoseg.utils.progress import progress_bar

    return progress_bar(description)
