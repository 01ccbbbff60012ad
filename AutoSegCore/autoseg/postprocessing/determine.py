"""Choose connected-component postprocessing on cross-validation predictions (nnU-Net's rule).

1. The predictions are evaluated against the references (the folder's ``summary.json`` is reused when
   it describes these predictions, else computed and written when absent).
2. Keeping only the largest component of all foreground labels together is accepted when the
   foreground mean Dice increases and no label/region's mean Dice decreases.
3. With more than one label/region, each in ``dataset.json`` order is then tried on top of what was
   accepted so far, and accepted when its own mean Dice increases.

Comparisons are strict, and a NaN Dice never counts as better or worse. Each candidate is evaluated
from the original predictions with the accepted steps re-applied in memory, so nothing is written
until the end: ``postprocessing.pkl`` (nnU-Net-compatible), ``postprocessing.json`` and, unless
disabled, ``postprocessed/`` with the final segmentations, its ``summary.json``, ``dataset.json`` and
``plans.json``.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from autoseg.errors import EvaluationError, PostprocessingError
from autoseg.evaluation.metrics import (
    LabelOrRegion,
    evaluated_labels_or_regions,
    label_or_region_key,
    label_or_region_names,
    segmentation_metrics,
)
from autoseg.evaluation.summary import CaseMetrics, EvaluationSummary, load_summary, save_summary, summarize
from autoseg.imageio.base import ImageReaderWriter
from autoseg.postprocessing.apply import apply_postprocessing_to_folder
from autoseg.postprocessing.files import save_postprocessing, step_to_json
from autoseg.postprocessing.folder_settings import (
    DatasetSource,
    PlansSource,
    resolve_settings,
    segmentation_names,
)
from autoseg.postprocessing.steps import PostprocessingStep, apply_steps
from autoseg.typing import ProgressCallback
from autoseg.utils.parallel import choose_num_workers, run_tasks

logger = logging.getLogger(__name__)

POSTPROCESSED_FOLDER = "postprocessed"
SUMMARY_FILE = "summary.json"
FOREGROUND = "foreground mean"


@dataclass(frozen=True)
class CandidateResult:
    """One step that was tried: the Dice it was judged by, before and after, and the decision."""

    step: PostprocessingStep
    judged_by: str  # "foreground mean" or a label/region key such as "2" or "(1, 2)"
    dice_before: float
    dice_after: float
    accepted: bool
    worse: tuple[LabelOrRegion, ...] = ()  # labels/regions whose Dice dropped (the foreground step)

    def to_json(self) -> dict[str, Any]:
        return {
            "step": step_to_json(self.step), "judged_by": self.judged_by, "dice_before": self.dice_before,
            "dice_after": self.dice_after, "accepted": self.accepted,
            "worse": [label_or_region_key(w) for w in self.worse],
        }


@dataclass(frozen=True)
class PostprocessingResult:
    """What :func:`determine_postprocessing` chose and measured, and the files it wrote."""

    steps: list[PostprocessingStep]
    candidates: list[CandidateResult]
    baseline: EvaluationSummary
    postprocessed: EvaluationSummary
    names: dict[LabelOrRegion, str]
    pickle_file: Path
    json_file: Path
    postprocessed_folder: Path | None


def determine_postprocessing(
    folder_predictions: Path,
    folder_ref: Path,
    plans_file: PlansSource = None,
    dataset_json_file: DatasetSource = None,
    num_processes: int | None = None,
    keep_postprocessed_files: bool = True,
    progress: ProgressCallback | None = None,
) -> PostprocessingResult:
    """Decide which connected-component steps improve ``folder_predictions``; write the results there.

    ``plans_file``/``dataset_json_file`` default to ``plans.json``/``dataset.json`` in
    ``folder_predictions`` (a dict or loaded object is accepted too). ``num_processes`` None uses every CPU.
    """
    folder_predictions, folder_ref = Path(folder_predictions), Path(folder_ref)
    settings = resolve_settings(folder_predictions, dataset_json_file, plans_file)
    ending = settings.file_ending
    label_dict = settings.dataset.raw["labels"]
    evaluated = evaluated_labels_or_regions(label_dict)
    if not evaluated:
        raise PostprocessingError(f"{settings.dataset.source or 'dataset.json'} declares no foreground label.")
    names = _matched_names(folder_predictions, folder_ref, ending)
    num_candidates = 1 + (len(evaluated) if len(evaluated) > 1 else 0)
    search = _Search(
        folder_predictions, folder_ref, names, settings.reader(folder_predictions / names[0]), evaluated,
        settings.dataset.ignore_label, choose_num_workers(num_processes, num_tasks=len(names)),
        _RunProgress(progress, len(names), num_candidates),
    )

    baseline = _baseline(search)
    accepted, candidates, current = _choose_steps(search, settings.dataset.foreground_labels, baseline)

    output = folder_predictions / POSTPROCESSED_FOLDER
    final = current
    if keep_postprocessed_files:
        apply_postprocessing_to_folder(folder_predictions, output, accepted, settings.dataset, settings.plans,
                                       num_processes=search.workers)
        final = _relocated(current, output)
        save_summary(final, output / SUMMARY_FILE)
    json_file, pickle_file = save_postprocessing(accepted, folder_predictions, {
        "input_folder": _means(baseline), "postprocessed": _means(final),
        "candidates": [c.to_json() for c in candidates],
    })
    assert pickle_file is not None
    return PostprocessingResult(accepted, candidates, baseline, final, label_or_region_names(label_dict),
                                pickle_file, json_file, output if keep_postprocessed_files else None)


def _choose_steps(
    search: _Search, foreground_labels: Sequence[int], baseline: EvaluationSummary
) -> tuple[list[PostprocessingStep], list[CandidateResult], EvaluationSummary]:
    """nnU-Net's greedy search: the accepted steps, every candidate tried, and the final summary."""
    accepted: list[PostprocessingStep] = []
    candidates: list[CandidateResult] = []
    current = baseline

    everything = PostprocessingStep(list(foreground_labels))
    result = search.evaluate(accepted, everything)
    worse = tuple(r for r in search.evaluated if _dice(result, r) < _dice(current, r))
    decision = _dice(result, None) > _dice(current, None) and not worse
    candidates.append(CandidateResult(everything, FOREGROUND, _dice(current, None), _dice(result, None),
                                      decision, worse))
    if decision:
        accepted, current = [everything], result
    _log(candidates[-1])

    if len(search.evaluated) > 1:
        for label_or_region in search.evaluated:
            step = PostprocessingStep(label_or_region)
            result = search.evaluate(accepted, step)
            before, after = _dice(current, label_or_region), _dice(result, label_or_region)
            candidates.append(CandidateResult(step, label_or_region_key(label_or_region), before, after,
                                              after > before))
            if after > before:
                accepted, current = [*accepted, step], result
            _log(candidates[-1])
    return accepted, candidates, current


# ------------------------------------------------------------------------------------------ evaluation
def evaluate_postprocessed_case(
    prediction_file: str,
    reference_file: str,
    reader: ImageReaderWriter,
    steps: Sequence[PostprocessingStep],
    labels_or_regions: Sequence[LabelOrRegion],
    ignore_label: int | None,
) -> CaseMetrics:
    """Metrics of one prediction after ``steps`` (applied in memory; nothing is written)."""
    prediction = apply_steps(reader.read_seg(prediction_file)[0][0], steps)
    reference = reader.read_seg(reference_file)[0][0]
    if reference.shape != prediction.shape:
        raise EvaluationError(
            f"Prediction {prediction_file} has shape {prediction.shape} but its reference {reference_file} has "
            f"shape {reference.shape}; predictions must be on the reference's voxel grid."
        )
    counts = segmentation_metrics(reference, prediction, labels_or_regions, ignore_label)
    return CaseMetrics(reference_file, prediction_file, {r: c.as_dict() for r, c in counts.items()})


@dataclass(frozen=True)
class _Search:
    """The fixed inputs of every candidate evaluation."""

    predictions: Path
    references: Path
    names: list[str]
    reader: ImageReaderWriter
    evaluated: list[LabelOrRegion]
    ignore_label: int | None
    workers: int
    progress: _RunProgress

    def evaluate(
        self, accepted: Sequence[PostprocessingStep], candidate: PostprocessingStep | None
    ) -> EvaluationSummary:
        """Evaluate every prediction with ``accepted`` and then ``candidate`` applied."""
        steps = [*accepted, candidate] if candidate is not None else list(accepted)
        arguments = [
            (str(self.predictions / n), str(self.references / n), self.reader, steps, self.evaluated,
             self.ignore_label)
            for n in self.names
        ]
        cases = run_tasks(evaluate_postprocessed_case, arguments, self.workers, self.progress.start_run(),
                          self.names)
        return summarize(cases, self.evaluated)


class _RunProgress:
    """Turns per-run ``(done, total)`` reports into one count over every evaluation run."""

    def __init__(self, callback: ProgressCallback | None, cases: int, runs: int) -> None:
        self.callback, self.cases, self.runs, self.started = callback, cases, runs, 0

    def start_run(self) -> ProgressCallback | None:
        if self.callback is None:
            return None
        self.started += 1
        self.runs = max(self.runs, self.started)
        offset, callback = (self.started - 1) * self.cases, self.callback
        return lambda done, _total: callback(offset + done, self.runs * self.cases)


def _baseline(search: _Search) -> EvaluationSummary:
    """The folder's summary.json when it matches these predictions and labels, else a fresh evaluation
    (written to summary.json only when there was none, as nnU-Net does)."""
    path = search.predictions / SUMMARY_FILE
    if path.is_file():
        try:
            existing = load_summary(path)
        except EvaluationError as err:
            logger.warning("Ignoring %s: %s", path, err)
        else:
            files = sorted(Path(c.prediction_file).name for c in existing.metric_per_case)
            if set(existing.mean) == set(search.evaluated) and files == search.names:
                return existing
            logger.warning("%s does not describe these predictions/labels; evaluating them again (the file is "
                           "left unchanged).", path)
    search.progress.runs += 1
    summary = search.evaluate([], None)
    summary = _relocated(summary, search.predictions)
    if not path.exists():
        save_summary(summary, path)
    return summary


def _matched_names(predictions: Path, references: Path, ending: str) -> list[str]:
    names = segmentation_names(predictions, ending, "prediction")
    reference_names = set(segmentation_names(references, ending, "reference"))
    if not names:
        raise PostprocessingError(f"The prediction folder {predictions} contains no *{ending} files.")
    orphans = [n for n in names if n not in reference_names]
    if orphans:
        raise PostprocessingError(
            f"{len(orphans)} prediction(s) in {predictions} have no reference in {references}: "
            f"{', '.join(orphans[:5])}{' ...' if len(orphans) > 5 else ''}. Every prediction needs the reference "
            f"segmentation of the same file name."
        )
    if len(reference_names) > len(names):
        logger.warning("Only %d of the %d references in %s have a prediction; postprocessing should be determined "
                       "on the whole dataset.", len(names), len(reference_names), references)
    return names


# ------------------------------------------------------------------------------------------ helpers
def _dice(summary: EvaluationSummary, label_or_region: LabelOrRegion | None) -> float:
    values = summary.foreground_mean if label_or_region is None else summary.mean[label_or_region]
    return float(values["Dice"])


def _relocated(summary: EvaluationSummary, folder: Path) -> EvaluationSummary:
    """The summary with its prediction paths pointing into ``folder``."""
    cases = [replace(c, prediction_file=os.path.join(str(folder), Path(c.prediction_file).name))
             for c in summary.metric_per_case]
    return replace(summary, metric_per_case=cases)


def _means(summary: EvaluationSummary) -> dict[str, Any]:
    document = summary.to_json()
    return {"foreground_mean": document["foreground_mean"], "mean": document["mean"]}


def _log(candidate: CandidateResult) -> None:
    verdict = "improves" if candidate.accepted else "does not improve"
    detail = f" ({', '.join(label_or_region_key(w) for w in candidate.worse)} got worse)" if candidate.worse else ""
    judged_by = "foreground mean Dice" if candidate.judged_by == FOREGROUND else f"Dice of {candidate.judged_by}"
    logger.info("Keeping the largest component of %s %s the %s: %s -> %s%s.", candidate.step.describe(), verdict,
                judged_by, _rounded(candidate.dice_before), _rounded(candidate.dice_after), detail)


def _rounded(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.5f}"


def format_postprocessing_table(result: PostprocessingResult) -> str:
    """Mean Dice per label/region and foreground mean, before and after the chosen postprocessing."""
    rows = [(_row_name(r, result.names), _dice(result.baseline, r), _dice(result.postprocessed, r))
            for r in result.baseline.mean]
    rows.append(("foreground mean", _dice(result.baseline, None), _dice(result.postprocessed, None)))
    width = max(len(r[0]) for r in rows)
    rule = "-" * (width + 30)
    lines = [f"{'label/region':<{width}}  {'before':>8}  {'after':>8}  {'change':>8}", rule]
    for i, (name, before, after) in enumerate(rows):
        if i == len(rows) - 1:
            lines.append(rule)
        change = after - before
        lines.append(f"{name:<{width}}  {_cell(before)}  {_cell(after)}  {_cell(change, signed=True)}")
    chosen = [s.describe() for s in result.steps]
    lines.append("Steps: " + ("; ".join(f"keep the largest component of {c}" for c in chosen) if chosen else "none"))
    return "\n".join(lines)


def _row_name(label_or_region: LabelOrRegion, names: Mapping[LabelOrRegion, str]) -> str:
    key = label_or_region_key(label_or_region)
    return f"{key} {names[label_or_region]}" if label_or_region in names else key


def _cell(value: float, signed: bool = False) -> str:
    if math.isnan(value):
        return f"{'nan':>8}"
    return f"{value:+8.4f}" if signed else f"{value:8.4f}"
