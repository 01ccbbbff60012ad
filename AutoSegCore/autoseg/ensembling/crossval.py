"""Ensemble the cross-validation predictions of several trained models (nnU-Net's ``ensemble_crossvalidations``).

Each model's ``fold_K/validation/{case}.npz`` files (written by ``autoseg train ... --npz``) are collected
over the requested folds; every model must cover the same cases, each case exactly once. The averaged
segmentations go to one output folder together with the first model's ``plans.json`` and
``dataset.json``, ready to be evaluated against the references.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from autoseg.ensembling.ensemble import run_merges, write_model_files
from autoseg.ensembling.inputs import NPZ_HINT, common_cases, load_setup, probability_files
from autoseg.ensembling.output_folder import rebuilt_folder
from autoseg.errors import EnsembleError
from autoseg.typing import ProgressCallback

logger = logging.getLogger(__name__)


def validation_folder(model_folder: Path, fold: int | str) -> Path:
    return Path(model_folder) / f"fold_{fold}" / "validation"


def crossval_probability_files(model_folder: Path, folds: Sequence[int | str]) -> dict[str, Path]:
    """``{case: npz}`` over the validation folders of ``folds``; a case found in two folds is an error."""
    files: dict[str, Path] = {}
    for fold in folds:
        folder = validation_folder(model_folder, fold)
        if not folder.is_dir():
            raise EnsembleError(
                f"{folder} does not exist: fold {fold} of {model_folder} has no validation results. Train that "
                f"fold (`autoseg train DATASET CONFIG {fold} --npz`) or leave it out with -f."
            )
        here = probability_files(folder)
        if not here:
            raise EnsembleError(f"No .npz files in {folder}. {NPZ_HINT}")
        for case, path in here.items():
            if case in files:
                first = files[case].parent.parent.name
                raise EnsembleError(
                    f"Case {case} is in the validation of more than one fold of {model_folder} ({first} and "
                    f"fold_{fold}): the folds must come from one splits_final.json."
                )
            files[case] = path
    return files


def ensemble_crossvalidations(
    model_folders: Sequence[str | Path],
    output_folder: str | Path,
    folds: Sequence[int | str] = (0, 1, 2, 3, 4),
    num_processes: int | None = None,
    overwrite: bool = True,
    progress: ProgressCallback | None = None,
) -> list[str]:
    """Ensemble the validation probabilities of ``model_folders`` into ``output_folder``; returns the case ids.

    ``overwrite=False`` keeps the cases already present in ``output_folder`` (``--no_overwrite``);
    otherwise the folder is rebuilt from scratch and replaces the old one only when complete.
    """
    models = [Path(m) for m in model_folders]
    if not models:
        raise EnsembleError("No model folders to ensemble.")
    output_folder = Path(output_folder)
    setup = load_setup(models[0])
    if setup.plans_file is None:
        raise EnsembleError(
            f"{models[0] / 'plans.json'} does not exist; training writes it. Is {models[0]} a model folder?"
        )
    files_per_model = {model: crossval_probability_files(model, folds) for model in models}
    cases = common_cases(files_per_model)
    file_lists = [[files_per_model[m][case] for m in models] for case in cases]
    ending = setup.dataset_json.file_ending
    if not overwrite and output_folder.is_dir():
        todo = [files for files, case in zip(file_lists, cases) if not (output_folder / f"{case}{ending}").is_file()]
        logger.info("%d of %d case(s) already ensembled in %s.", len(file_lists) - len(todo), len(cases), output_folder)
        run_merges(todo, output_folder, setup, False, num_processes, progress)
        write_model_files(setup, output_folder)
        return cases
    with rebuilt_folder(output_folder) as staging:
        run_merges(file_lists, staging, setup, False, num_processes, progress)
        write_model_files(setup, staging)
    return cases
