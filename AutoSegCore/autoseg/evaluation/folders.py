"""The two ways to set up a folder evaluation, as nnU-Net's two commands do.

* :func:`evaluate_with_dataset` (``evaluate_folder``): labels/regions, ignore label, file ending and
  reader come from ``dataset.json``; the plans file only has to exist (nnU-Net reads its label manager).
* :func:`evaluate_with_labels` (``evaluate_simple``): explicit labels; ending and reader from the files.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from autoseg.dataset.dataset_json import DatasetJson
from autoseg.errors import AutoSegError, EvaluationError
from autoseg.evaluation.metrics import LabelOrRegion, evaluated_labels_or_regions, label_or_region_names
from autoseg.evaluation.summary import (
    EvaluationSummary,
    ProgressCallback,
    evaluate_folder,
    segmentation_files,
)
from autoseg.imageio.base import matching_ending
from autoseg.imageio.registry import reader_writer_for_dataset_folder, reader_writer_for_file
from autoseg.utils.files import read_json

logger = logging.getLogger(__name__)

SUMMARY_FILE = "summary.json"


def evaluate_with_dataset(
    reference_folder: str | os.PathLike[str],
    prediction_folder: str | os.PathLike[str],
    dataset_json_file: str | os.PathLike[str],
    plans_file: str | os.PathLike[str],
    output_file: str | os.PathLike[str] | None = None,
    num_processes: int | None = None,
    chill: bool = False,
    progress: ProgressCallback | None = None,
) -> tuple[EvaluationSummary, dict[LabelOrRegion, str]]:
    """Evaluate with the labels or regions of ``dataset.json``; returns the summary and label names.

    The summary goes to ``output_file`` (default ``prediction_folder/summary.json``).
    """
    dataset = DatasetJson.load(dataset_json_file)
    _check_plans(plans_file)
    ending = dataset.file_ending
    references = segmentation_files(reference_folder, ending, "reference")
    if not references:
        raise EvaluationError(f"The reference folder {reference_folder} contains no *{ending} files.")
    reader = reader_writer_for_dataset_folder(dataset.raw, os.path.join(reference_folder, references[0]))
    label_dict = dataset.raw["labels"]
    summary = evaluate_folder(
        reference_folder, prediction_folder, reader, ending, evaluated_labels_or_regions(label_dict),
        ignore_label=dataset.ignore_label,
        output_file=output_file if output_file is not None else os.path.join(prediction_folder, SUMMARY_FILE),
        num_processes=num_processes, chill=chill, progress=progress,
    )
    return summary, label_or_region_names(label_dict)


def evaluate_with_labels(
    reference_folder: str | os.PathLike[str],
    prediction_folder: str | os.PathLike[str],
    labels: Sequence[int],
    output_file: str | os.PathLike[str] | None = None,
    num_processes: int | None = None,
    ignore_label: int | None = None,
    chill: bool = False,
    progress: ProgressCallback | None = None,
) -> EvaluationSummary:
    """Evaluate the given label values; file ending and reader follow the first reference file."""
    example = _first_image(reference_folder)
    reader = reader_writer_for_file(example)
    ending = matching_ending(example, type(reader).supported_file_endings) or Path(example).suffix
    return evaluate_folder(
        reference_folder, prediction_folder, reader, ending, [int(v) for v in labels],
        ignore_label=ignore_label,
        output_file=output_file if output_file is not None else os.path.join(prediction_folder, SUMMARY_FILE),
        num_processes=num_processes, chill=chill, progress=progress,
    )


def _first_image(folder: str | os.PathLike[str]) -> str:
    """The first (sorted) file of ``folder`` that an image reader accepts."""
    names = segmentation_files(folder, "", "reference")
    for name in names:
        path = os.path.join(folder, name)
        try:
            reader_writer_for_file(path)
        except AutoSegError:
            continue
        return path
    raise EvaluationError(
        f"The reference folder {folder} contains no segmentation file of a supported format "
        f"({len(names)} other file(s))."
    )


def _check_plans(plans_file: str | os.PathLike[str]) -> None:
    """The plans file must be readable JSON; AutoSeg knows only nnU-Net's default label manager."""
    path = Path(plans_file)
    if not path.is_file():
        raise EvaluationError(
            f"Plans file {path} does not exist (pass the nnUNetPlans.json of the model with -pfile)."
        )
    plans = read_json(path, EvaluationError, f"Plans file {path}")
    manager = plans.get("label_manager", "LabelManager") if isinstance(plans, dict) else None
    if manager is None:
        raise EvaluationError(f"Plans file {path} does not hold a JSON object.")
    if manager != "LabelManager":
        logger.warning(
            "Plans ask for label manager %r; evaluating with nnU-Net's default label handling.", manager
        )
