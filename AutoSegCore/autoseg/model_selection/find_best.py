"""find_best_configuration: pick the best model or pair of models from their cross-validation (nnU-Net's procedure).

1. Models whose configuration is not planned, that were not trained, or that miss a requested fold are
   skipped with the reason (nnU-Net stops at a missing folder or fold).
2. Each remaining model's folds are merged into ``crossval_results_folds_<folds>`` and evaluated.
3. Unless ensembling is disabled, every pair is ensembled into
   ``nnUNet_results/<dataset>/ensembles/ensemble___<m1>___<m2>___<folds>`` and evaluated (a pair whose
   member lacks ``.npz`` probabilities is skipped with the command that adds them).
4. The highest foreground mean Dice wins (ties: the first, single models before ensembles).
5. Postprocessing is determined on the winner; ``inference_information.json`` and
   ``inference_instructions.txt`` are written at the dataset level of ``nnUNet_results``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from autoseg.ensembling.crossval import ensemble_crossvalidations
from autoseg.errors import EnsembleError, ModelFolderError
from autoseg.evaluation.summary import EvaluationSummary
from autoseg.model_selection.accumulate_crossval import (
    accumulate_crossval_results,
    evaluate_prediction_folder,
    reference_folder,
)
from autoseg.model_selection.instructions import inference_information, instructions_text
from autoseg.model_selection.models import (
    SkippedModel,
    TrainedModel,
    folds_string,
    has_probabilities,
    previous_stage_of,
    select_models,
)
from autoseg.paths import Workspace
from autoseg.utils.files import atomic_path, save_json
from autoseg.utils.parallel import available_cpus

if TYPE_CHECKING:
    from autoseg.postprocessing.determine import PostprocessingResult

logger = logging.getLogger(__name__)

INFORMATION_FILE = "inference_information.json"
INSTRUCTIONS_FILE = "inference_instructions.txt"
#: Messages for the user (skipped models and pairs, progress); the CLI prints them.
Report = Callable[[str], None]


@dataclass(frozen=True)
class CandidateResult:
    """One model's or one ensemble's cross-validation result."""

    identifier: str
    source: Path
    summary: EvaluationSummary
    members: tuple[TrainedModel, ...]

    @property
    def dice(self) -> float:
        return float(self.summary.foreground_mean.get("Dice", math.nan))


@dataclass
class FindBestResult:
    dataset_name: str
    candidates: list[CandidateResult]
    best: CandidateResult
    skipped: list[SkippedModel]
    skipped_ensembles: list[str]
    postprocessing: PostprocessingResult
    information: dict
    instructions: str
    files: dict[str, Path] = field(default_factory=dict)


def ensemble_name(first: TrainedModel, second: TrainedModel, folds: Sequence[int | str]) -> str:
    """``ensemble___<m1>___<m2>___<folds>`` (nnU-Net's name)."""
    return f"ensemble___{first.identifier}___{second.identifier}___{folds_string(folds)}"


def pick_best(candidates: Sequence[CandidateResult]) -> CandidateResult:
    """The highest foreground mean Dice (NaN counts as lowest); the first one on a tie."""
    def score(candidate: CandidateResult) -> float:
        return -math.inf if math.isnan(candidate.dice) else candidate.dice

    best = candidates[0]
    for candidate in candidates[1:]:
        if score(candidate) > score(best):
            best = candidate
    return best


def _previous_stage_lookup(results_dataset: Path) -> Callable[[TrainedModel], str | None]:
    def previous_stage(model: TrainedModel) -> str | None:
        return previous_stage_of(model.folder(results_dataset) / "plans.json", model.configuration)

    return previous_stage


def _ensemble_pairs(
    models: Sequence[TrainedModel], results_dataset: Path, folds: Sequence[int | str], references: Path,
    num_processes: int | None, overwrite: bool, report: Report,
) -> tuple[list[CandidateResult], list[str]]:
    candidates: list[CandidateResult] = []
    skipped: list[str] = []
    with_npz = {m: has_probabilities(m.folder(results_dataset), folds) for m in models}
    for m in models:
        if not with_npz[m]:
            command = (f"autoseg train {results_dataset.name} {m.configuration} {' '.join(map(str, folds))} "
                       f"-tr {m.trainer} -p {m.plans} --val --npz")
            skipped.append(f"{m.identifier} is left out of ensembles: its validation has no .npz probabilities. "
                           f"Add them with `{command}`.")
            report(skipped[-1])
    for i, first in enumerate(models):
        for second in models[i + 1:]:
            if not (with_npz[first] and with_npz[second]):
                continue
            name = ensemble_name(first, second, folds)
            output = results_dataset / "ensembles" / name
            report(f"Ensembling {first.identifier} + {second.identifier} ...")
            try:
                ensemble_crossvalidations([first.folder(results_dataset), second.folder(results_dataset)], output,
                                          folds, num_processes, overwrite=overwrite)
            except EnsembleError as err:  # e.g. the two models validated different cases
                skipped.append(f"Skipping {name}: {err}")
                report(skipped[-1])
                continue
            summary = evaluate_prediction_folder(output, references, num_processes)
            candidates.append(CandidateResult(name, output, summary, (first, second)))
    return candidates, skipped


def find_best_configuration(
    workspace: Workspace,
    dataset: str | int,
    models: Sequence[TrainedModel],
    folds: Sequence[int | str] = (0, 1, 2, 3, 4),
    allow_ensembling: bool = True,
    num_processes: int | None = None,
    overwrite: bool = True,
    report: Report = logger.info,
) -> FindBestResult:
    """Run the whole selection (see the module docstring) and write its files; returns what was found."""
    from autoseg.postprocessing.determine import determine_postprocessing

    if not folds:
        raise ModelFolderError("No folds given: pass the folds the models were trained on, e.g. -f 0 1 2 3 4.")
    dataset_name = workspace.dataset_name(dataset)
    results_dataset = workspace.results / dataset_name
    usable, skipped = select_models(models, results_dataset, workspace.preprocessed / dataset_name, folds)
    for s in skipped:
        report(f"Skipping {s.model.identifier}: {s.reason}.")
    if not usable:
        reasons = "\n  - ".join(f"{s.model.identifier}: {s.reason}" for s in skipped)
        raise ModelFolderError(
            f"No trained model of {dataset_name} has all of folds {', '.join(map(str, folds))}; nothing to choose from:"
            f"\n  - {reasons}\nTrain the models (`autoseg train {dataset_name} CONFIG FOLD ... --npz`) or pick the "
            f"configurations (-c), trainers (-tr), plans (-p) and folds (-f) you trained."
        )
    references = reference_folder(workspace, dataset_name)
    candidates: list[CandidateResult] = []
    for model in usable:
        report(f"Accumulating the cross-validation of {model.identifier} ...")
        folder, summary = accumulate_crossval_results(model.folder(results_dataset), references, folds,
                                                      num_processes=num_processes, overwrite=overwrite)
        candidates.append(CandidateResult(model.identifier, folder, summary, (model,)))
    skipped_ensembles: list[str] = []
    if allow_ensembling:
        ensembles, skipped_ensembles = _ensemble_pairs(usable, results_dataset, folds, references, num_processes,
                                                       overwrite, report)
        candidates += ensembles
    best = pick_best(candidates)
    report(f"Best: {best.identifier} (foreground mean Dice {best.dice:.4f}). Determining postprocessing ...")
    postprocessing = determine_postprocessing(best.source, references, plans_file=best.source / "plans.json",
                                              dataset_json_file=best.source / "dataset.json",
                                              num_processes=num_processes, keep_postprocessed_files=True)
    information = inference_information(
        dataset_name, folds, usable, allow_ensembling, {c.identifier: c.dice for c in candidates}, best.members,
        best.dice, float(postprocessing.postprocessed.foreground_mean.get("Dice", math.nan)),
        postprocessing.pickle_file, best.source / "plans.json",
    )
    instructions = instructions_text(information, num_processes or available_cpus(),
                                     _previous_stage_lookup(results_dataset), best.source / "dataset.json")
    files = {"information": results_dataset / INFORMATION_FILE,
             "instructions": results_dataset / INSTRUCTIONS_FILE}
    save_json(information, files["information"])
    with atomic_path(files["instructions"]) as tmp:
        tmp.write_text(instructions, encoding="utf-8")
    return FindBestResult(dataset_name, candidates, best, skipped, skipped_ensembles, postprocessing, information,
                          instructions, files)
