"""Merge the validation predictions of a model's folds into one folder and evaluate it (cross-validation result).

As nnU-Net's ``accumulate_cv_results``: ``fold_K/validation/{case}{file_ending}`` of every requested fold is
copied into ``<model>/crossval_results_folds_<f1>_<f2>...`` (each case must come from exactly one fold),
together with the model's ``dataset.json`` and ``plans.json``, and evaluated against the reference
segmentations into ``summary.json``. The folder is rebuilt from scratch and replaces the previous one
only when complete; ``overwrite=False`` keeps what is there and only adds missing cases.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

from autoseg.dataset.dataset_json import DatasetJson
from autoseg.ensembling.output_folder import rebuilt_folder
from autoseg.errors import EvaluationError, ModelFolderError
from autoseg.evaluation.folders import evaluate_with_dataset
from autoseg.evaluation.summary import EvaluationSummary, load_summary
from autoseg.model_selection.models import folds_string
from autoseg.paths import ModelFolderName, Workspace
from autoseg.utils.files import atomic_path

logger = logging.getLogger(__name__)

SUMMARY_FILE = "summary.json"


def crossval_folder_name(folds: Sequence[int | str]) -> str:
    """``crossval_results_folds_0_1_2_3_4``."""
    return f"crossval_results_folds_{folds_string(folds)}"


def reference_folder(workspace: Workspace, dataset_name: str) -> Path:
    """The references: ``nnUNet_preprocessed/<dataset>/gt_segmentations``, else ``nnUNet_raw/<dataset>/labelsTr``."""
    candidates = [workspace.preprocessed / dataset_name / "gt_segmentations",
                  workspace.raw / dataset_name / "labelsTr"]
    for folder in candidates:
        if folder.is_dir():
            return folder
    raise EvaluationError(
        f"No reference segmentations for {dataset_name}: neither {candidates[0]} nor {candidates[1]} exists. "
        f"Run `autoseg plan_and_preprocess -d {dataset_name}` (it writes gt_segmentations), or set nnUNet_preprocessed "
        f"to the folder used for training."
    )


def train_command(model_folder: Path, fold: int | str) -> str:
    """``autoseg train`` for one fold of a ``<trainer>__<plans>__<configuration>`` results folder."""
    model = ModelFolderName.parse(Path(model_folder))
    if model is None:
        return f"autoseg train DATASET CONFIGURATION {fold}"
    return (f"autoseg train {Path(model_folder).parent.name} {model.configuration} {fold} -tr {model.trainer} "
            f"-p {model.plans}")


def fold_predictions(model_folder: Path, folds: Sequence[int | str], file_ending: str) -> dict[str, Path]:
    """``{file name: path}`` of every fold's validation segmentations; a case in two folds is an error."""
    found: dict[str, Path] = {}
    for fold in folds:
        folder = Path(model_folder) / f"fold_{fold}" / "validation"
        if not folder.is_dir():
            raise ModelFolderError(
                f"Fold {fold} of {model_folder} is missing ({folder} does not exist). Train it "
                f"(`{train_command(model_folder, fold)}`), or leave it out with -f."
            )
        names = sorted(p.name for p in folder.iterdir() if p.name.endswith(file_ending) and not p.name.startswith("."))
        if not names:
            raise ModelFolderError(
                f"{folder} holds no predictions (*{file_ending}). Run the validation: "
                f"`{train_command(model_folder, fold)} --val`."
            )
        for name in names:
            if name in found:
                raise ModelFolderError(
                    f"{name} is predicted by more than one fold of {model_folder} "
                    f"({found[name].parent.parent.name} and fold_{fold}): the folds must come from one "
                    f"splits_final.json."
                )
            found[name] = folder / name
    return found


def _copy(source: Path, target: Path) -> None:
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def _copy_model_files(model_folder: Path, output_folder: Path) -> None:
    for name in ("dataset.json", "plans.json"):
        source = Path(model_folder) / name
        if not source.is_file():
            raise ModelFolderError(f"{source} does not exist; {model_folder} is not a complete results folder.")
        _copy(source, Path(output_folder) / name)


def evaluate_prediction_folder(folder: Path, references: Path, num_processes: int | None = None) -> EvaluationSummary:
    """Evaluate ``folder`` (holding dataset.json and plans.json) against ``references`` into ``folder/summary.json``.

    Cases without a prediction are left out (nnU-Net's ``chill``): a cross-validation may cover only some folds.
    """
    summary, _ = evaluate_with_dataset(
        references, folder, folder / "dataset.json", folder / "plans.json", folder / SUMMARY_FILE,
        num_processes=num_processes, chill=True,
    )
    return summary


def accumulate_crossval_results(
    model_folder: str | Path,
    references: str | Path,
    folds: Sequence[int | str] = (0, 1, 2, 3, 4),
    output_folder: str | Path | None = None,
    num_processes: int | None = None,
    overwrite: bool = True,
) -> tuple[Path, EvaluationSummary]:
    """Merge and evaluate the folds' validation predictions; returns (merged folder, its summary).

    ``output_folder`` defaults to ``model_folder/crossval_results_folds_<folds>``.
    """
    model_folder = Path(model_folder)
    if not model_folder.is_dir():
        raise ModelFolderError(f"Model folder {model_folder} does not exist: train the model first.")
    output = Path(output_folder) if output_folder is not None else model_folder / crossval_folder_name(folds)
    dataset_json = DatasetJson.load(model_folder / "dataset.json")
    predictions = fold_predictions(model_folder, folds, dataset_json.file_ending)
    if overwrite or not output.is_dir():
        with rebuilt_folder(output) as staging:
            _copy_model_files(model_folder, staging)
            for name, source in predictions.items():
                shutil.copyfile(source, staging / name)
        copied = True
    else:
        _copy_model_files(model_folder, output)
        missing = [name for name in predictions if not (output / name).is_file()]
        for name in missing:
            _copy(predictions[name], output / name)
        copied = bool(missing)
    logger.info("Cross-validation of %s (folds %s): %d case(s) in %s.", model_folder.name, folds_string(folds),
                len(predictions), output)
    if copied or not (output / SUMMARY_FILE).is_file():
        return output, evaluate_prediction_folder(output, Path(references), num_processes)
    return output, load_summary(output / SUMMARY_FILE)
