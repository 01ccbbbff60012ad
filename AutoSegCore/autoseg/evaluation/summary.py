"""Evaluate a folder of predictions against a folder of references and write nnU-Net's ``summary.json``.

The file has the layout nnU-Net v2 writes (``nnUNetv2_evaluate_folder``), so either tool reads the
other's::

    {"foreground_mean": {"Dice": ..., "FN": ..., ...},          # mean over labels/regions (0 excluded)
     "mean": {"1": {"Dice": ..., ...}, "(1, 2)": {...}},        # per label/region, NaN-skipping mean
     "metric_per_case": [{"metrics": {"1": {...}}, "prediction_file": ..., "reference_file": ...}]}

Keys are sorted, floats that are undefined are written as ``NaN``. A prediction is paired with the
reference of the same file name; per-case means skip NaN (label absent from both), the foreground mean
does not (a label that is never present anywhere makes it NaN, as in nnU-Net).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autoseg.errors import EvaluationError
from autoseg.evaluation.metrics import (
    METRIC_NAMES,
    LabelOrRegion,
    label_or_region_key,
    parse_label_or_region_key,
    segmentation_metrics,
)
from autoseg.imageio.base import ImageReaderWriter
from autoseg.typing import ProgressCallback
from autoseg.utils.files import load_json, save_json
from autoseg.utils.parallel import choose_num_workers, run_tasks

MetricValues = dict[str, float | int]  # counts are ints, Dice/IoU and means floats


@dataclass(frozen=True)
class CaseMetrics:
    """The metrics of one prediction file, per label/region (``METRIC_NAMES`` each)."""

    reference_file: str
    prediction_file: str
    metrics: dict[LabelOrRegion, MetricValues]

    def to_json(self) -> dict[str, Any]:
        return {
            "metrics": {label_or_region_key(k): dict(v) for k, v in self.metrics.items()},
            "prediction_file": self.prediction_file,
            "reference_file": self.reference_file,
        }


@dataclass(frozen=True)
class EvaluationSummary:
    """The content of ``summary.json``: per-case metrics, per-label means and the foreground mean."""

    metric_per_case: list[CaseMetrics]
    mean: dict[LabelOrRegion, MetricValues]
    foreground_mean: MetricValues

    def to_json(self) -> dict[str, Any]:
        """The JSON document, with nnU-Net's string keys."""
        return {
            "foreground_mean": dict(self.foreground_mean),
            "mean": {label_or_region_key(k): dict(v) for k, v in self.mean.items()},
            "metric_per_case": [case.to_json() for case in self.metric_per_case],
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> EvaluationSummary:
        """Parse a ``summary.json`` document (written by AutoSeg or nnU-Net)."""
        cases = [
            CaseMetrics(
                reference_file=str(case["reference_file"]),
                prediction_file=str(case["prediction_file"]),
                metrics={parse_label_or_region_key(k): dict(v) for k, v in case["metrics"].items()},
            )
            for case in raw["metric_per_case"]
        ]
        mean = {parse_label_or_region_key(k): dict(v) for k, v in raw["mean"].items()}
        return cls(metric_per_case=cases, mean=mean, foreground_mean=dict(raw["foreground_mean"]))


# --------------------------------------------------------------------------------------------- one case
def evaluate_case(
    reference_file: str,
    prediction_file: str,
    reader: ImageReaderWriter,
    labels_or_regions: Sequence[LabelOrRegion],
    ignore_label: int | None = None,
) -> CaseMetrics:
    """Read one reference/prediction pair and compute its metrics (runs in worker processes)."""
    reference = reader.read_seg(reference_file)[0]
    prediction = reader.read_seg(prediction_file)[0]
    if reference.shape != prediction.shape:
        raise EvaluationError(
            f"Prediction {prediction_file} has shape {_spatial(prediction.shape)} but its reference "
            f"{reference_file} has shape {_spatial(reference.shape)}. Predictions must be on the reference's "
            f"voxel grid (export them in the original image geometry)."
        )
    counts = segmentation_metrics(reference, prediction, labels_or_regions, ignore_label)
    return CaseMetrics(reference_file, prediction_file, {r: c.as_dict() for r, c in counts.items()})


def _spatial(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Drop the channel axis the readers add."""
    return tuple(int(s) for s in shape[1:]) if len(shape) > 1 else tuple(shape)


# --------------------------------------------------------------------------------------------- aggregation
def summarize(cases: Sequence[CaseMetrics], labels_or_regions: Sequence[LabelOrRegion]) -> EvaluationSummary:
    """Per-label means over cases (NaN skipped) and the mean over foreground labels/regions."""
    if not cases:
        raise EvaluationError("There are no cases to summarize.")
    mean: dict[LabelOrRegion, MetricValues] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: the mean is NaN, as intended
        for r in labels_or_regions:
            mean[r] = {m: float(np.nanmean([c.metrics[r][m] for c in cases])) for m in METRIC_NAMES}
    foreground = [r for r in labels_or_regions if r != 0]
    foreground_mean = {
        m: float(np.mean([mean[r][m] for r in foreground])) if foreground else math.nan for m in METRIC_NAMES
    }
    return EvaluationSummary(list(cases), mean, foreground_mean)


def save_summary(summary: EvaluationSummary, path: str | os.PathLike[str]) -> None:
    """Write ``summary.json`` atomically (sorted keys, 4-space indent, NaN for undefined values)."""
    if not str(path).endswith(".json"):
        raise EvaluationError(f"The summary file must end with .json, got {path}.")
    save_json(summary.to_json(), path, indent=4, sort_keys=True)


def load_summary(path: str | os.PathLike[str]) -> EvaluationSummary:
    """Read a ``summary.json`` written by AutoSeg or nnU-Net."""
    path = Path(path)
    if not path.is_file():
        raise EvaluationError(f"Summary file {path} does not exist. Run `autoseg evaluate_folder` first.")
    try:
        return EvaluationSummary.from_json(load_json(path))
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise EvaluationError(f"{path} is not a valid summary.json ({type(err).__name__}: {err}).") from err


# --------------------------------------------------------------------------------------------- a folder
def evaluate_folder(
    reference_folder: str | os.PathLike[str],
    prediction_folder: str | os.PathLike[str],
    reader: ImageReaderWriter,
    file_ending: str,
    labels_or_regions: Sequence[LabelOrRegion],
    ignore_label: int | None = None,
    output_file: str | os.PathLike[str] | None = None,
    num_processes: int | None = None,
    chill: bool = True,
    progress: ProgressCallback | None = None,
) -> EvaluationSummary:
    """Evaluate every ``*file_ending`` prediction against the same-named reference; optionally save it.

    Without ``chill`` every reference must have a prediction. Paths in the summary are the folder as
    given joined with the file name, as nnU-Net writes them.
    """
    if not labels_or_regions:
        raise EvaluationError("No labels or regions to evaluate (only background was given).")
    if output_file is not None and not str(output_file).endswith(".json"):
        raise EvaluationError(f"The output file must end with .json, got {output_file}.")
    predictions = segmentation_files(prediction_folder, file_ending, "prediction")
    references = set(segmentation_files(reference_folder, file_ending, "reference"))
    if not predictions:
        raise EvaluationError(f"The prediction folder {prediction_folder} contains no *{file_ending} files.")
    _check_pairs(reference_folder, prediction_folder, predictions, references, chill)
    arguments = [
        (os.path.join(reference_folder, name), os.path.join(prediction_folder, name), reader,
         list(labels_or_regions), ignore_label)
        for name in predictions
    ]
    workers = choose_num_workers(num_processes, num_tasks=len(arguments))
    cases = run_tasks(evaluate_case, arguments, workers, progress=progress, task_names=predictions)
    summary = summarize(cases, labels_or_regions)
    if output_file is not None:
        save_summary(summary, output_file)
    return summary


def segmentation_files(folder: str | os.PathLike[str], file_ending: str, what: str) -> list[str]:
    """Sorted names of the ``*file_ending`` files in ``folder`` (hidden/temporary files skipped)."""
    if not os.path.isdir(folder):
        raise EvaluationError(f"The {what} folder {folder} does not exist.")
    names = (n for n in os.listdir(folder) if n.endswith(file_ending) and not n.startswith("."))
    return sorted(n for n in names if os.path.isfile(os.path.join(folder, n)))


def _check_pairs(
    reference_folder: str | os.PathLike[str],
    prediction_folder: str | os.PathLike[str],
    predictions: Sequence[str],
    references: set[str],
    chill: bool,
) -> None:
    orphans = [name for name in predictions if name not in references]
    if orphans:
        raise EvaluationError(
            f"{len(orphans)} prediction(s) in {prediction_folder} have no reference file in "
            f"{reference_folder}: {_listing(orphans)}. Every prediction needs a reference segmentation "
            "with the same file name."
        )
    missing = sorted(references - set(predictions))
    if missing and not chill:
        raise EvaluationError(
            f"{len(missing)} reference file(s) in {reference_folder} have no prediction in "
            f"{prediction_folder}: {_listing(missing)}. Predict them, or pass --chill to evaluate only the "
            "predictions present."
        )


def _listing(names: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


# --------------------------------------------------------------------------------------------- display
def format_summary_table(summary: EvaluationSummary, names: Mapping[LabelOrRegion, str] | None = None) -> str:
    """A short text table: mean Dice and IoU per label/region and the foreground mean."""
    names = names or {}
    rows = [(_row_name(r, names), values) for r, values in summary.mean.items()]
    rows.append(("foreground mean", summary.foreground_mean))
    width = max(len(name) for name, _ in rows)
    lines = [f"{'label/region':<{width}}  {'Dice':>7}  {'IoU':>7}", "-" * (width + 18)]
    for i, (name, values) in enumerate(rows):
        if i == len(rows) - 1:
            lines.append("-" * (width + 18))
        lines.append(f"{name:<{width}}  {_number(values['Dice'])}  {_number(values['IoU'])}")
    lines.append(f"({len(summary.metric_per_case)} cases)")
    return "\n".join(lines)


def _row_name(label_or_region: LabelOrRegion, names: Mapping[LabelOrRegion, str]) -> str:
    key = label_or_region_key(label_or_region)
    return f"{key} {names[label_or_region]}" if label_or_region in names else key


def _number(value: float) -> str:
    return f"{'nan':>7}" if value is None or math.isnan(value) else f"{value:7.4f}"
