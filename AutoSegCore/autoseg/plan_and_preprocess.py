"""The first half of the pipeline as a library API: fingerprint -> plan -> preprocess, per dataset.

These functions take an explicit :class:`~autoseg.paths.Workspace`; the CLI commands
``extract_fingerprint``, ``plan_experiment``, ``preprocess`` and ``plan_and_preprocess`` are thin
wrappers around them.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from autoseg.dataset.cases import training_cases
from autoseg.dataset.dataset_json import DatasetJson
from autoseg.dataset.splits import copy_or_check_splits
from autoseg.errors import DatasetError
from autoseg.fingerprint.extract import extract_fingerprint
from autoseg.fingerprint.fingerprint import DatasetFingerprint
from autoseg.imageio.registry import reader_writer_for_dataset_folder
from autoseg.paths import Workspace
from autoseg.planning.planner import merge_with_existing, plan_experiment
from autoseg.planning.presets import planner_settings
from autoseg.plans.model import Plans
from autoseg.preprocessing.incremental import dataset_digests
from autoseg.preprocessing.preprocessor import copy_ground_truth, preprocess_dataset
from autoseg.typing import ProgressCallback
from autoseg.utils.files import atomic_path

logger = logging.getLogger(__name__)
FINGERPRINT_FILE = "dataset_fingerprint.json"
DEFAULT_CONFIGURATIONS = ("2d", "3d_fullres", "3d_lowres")


def _raw_folder(workspace: Workspace, dataset: str | int) -> tuple[str, Path]:
    name = workspace.dataset_name(dataset)
    folder = workspace.raw / name
    if not folder.is_dir():
        raise DatasetError(f"{name} is not in nnUNet_raw ({workspace.raw}); planning needs the raw dataset there.")
    return name, folder


def fingerprint_dataset(
    workspace: Workspace,
    dataset: str | int,
    num_processes: int | None = None,
    clean: bool = False,
    progress: ProgressCallback | None = None,
) -> DatasetFingerprint:
    """Extract (or, unless ``clean``, reuse) the fingerprint in ``nnUNet_preprocessed/<dataset>/``."""
    name, raw = _raw_folder(workspace, dataset)
    target = workspace.preprocessed / name / FINGERPRINT_FILE
    if target.is_file() and not clean:
        logger.info("Using the existing fingerprint %s (pass --clean to recompute it).", target)
        return DatasetFingerprint.load(target)
    fingerprint = extract_fingerprint(raw, num_processes, progress)
    fingerprint.save(target)
    return fingerprint


def plan_dataset(
    workspace: Workspace,
    dataset: str | int,
    planner: str = "ExperimentPlanner",
    gpu_memory_target_gb: float | None = None,
    overwrite_target_spacing: Sequence[float] | None = None,
    overwrite_plans_name: str | None = None,
) -> Plans:
    """Plan the dataset with a planner preset and write ``<plans_name>.json``; returns the plans."""
    name, raw = _raw_folder(workspace, dataset)
    preprocessed = workspace.preprocessed / name
    fingerprint = DatasetFingerprint.load(preprocessed / FINGERPRINT_FILE)
    dataset_json = DatasetJson.load(raw / "dataset.json")
    settings = planner_settings(planner)
    if gpu_memory_target_gb is not None:
        if gpu_memory_target_gb != settings.gpu_memory_target_gb and settings.planner_name != "ExperimentPlanner":
            logger.warning(
                "%s is tuned for %s GB; planning for %s GB as requested.",
                settings.planner_name, settings.gpu_memory_target_gb, gpu_memory_target_gb,
            )
        settings = replace(settings, gpu_memory_target_gb=float(gpu_memory_target_gb))
    if overwrite_plans_name:
        settings = replace(settings, plans_name=overwrite_plans_name)
    if (raw / "splits_final.json").is_file():
        copy_or_check_splits(raw / "splits_final.json", preprocessed / "splits_final.json")
    cases = training_cases(raw, dataset_json)
    if not cases:
        raise DatasetError(f"{raw} has no training cases in imagesTr/ (or in the 'dataset' map of dataset.json).")
    first_image = next(iter(cases.values())).images[0]
    reader_name = type(reader_writer_for_dataset_folder(dataset_json.raw, first_image)).__name__
    plans = plan_experiment(name, fingerprint, dataset_json, settings, reader_name, overwrite_target_spacing)
    plans_file = preprocessed / f"{settings.plans_name}.json"
    existing = Plans.load(plans_file) if plans_file.is_file() else None
    plans = merge_with_existing(plans, existing)
    with atomic_path(preprocessed / "dataset.json") as tmp:
        shutil.copyfile(raw / "dataset.json", tmp)
    plans.save(plans_file)
    logger.info("Plans written to %s", plans_file)
    return plans


def preprocess_dataset_configurations(
    workspace: Workspace,
    dataset: str | int,
    plans_name: str = "nnUNetPlans",
    configurations: Sequence[str] = DEFAULT_CONFIGURATIONS,
    num_processes: Sequence[int | None] | None = None,
    progress_factory=None,
) -> list[Path]:
    """Preprocess the given configurations (those missing from the plans are skipped with a message)."""
    name, raw = _raw_folder(workspace, dataset)
    preprocessed = workspace.preprocessed / name
    plans = Plans.load(preprocessed / f"{plans_name}.json")
    workers = list(num_processes) if num_processes else [None]
    if len(workers) == 1:
        workers = workers * len(configurations)
    if len(workers) != len(configurations):
        raise DatasetError(
            f"-np got {len(workers)} values for {len(configurations)} configurations; give one value, "
            f"or one per configuration."
        )
    dataset_json = DatasetJson.load(raw / "dataset.json")
    digests = dataset_digests(training_cases(raw, dataset_json))  # once for every configuration
    outputs = []
    for configuration, n in zip(configurations, workers):
        if configuration not in plans.configurations:
            logger.info("Configuration %s is not in %s.json; skipping it.", configuration, plans_name)
            continue
        logger.info("Preprocessing %s %s", name, configuration)
        progress_cm = progress_factory(f"Preprocessing {configuration}") if progress_factory else None
        if progress_cm is None:
            outputs.append(preprocess_dataset(raw, preprocessed, plans, configuration, n, digests=digests))
        else:
            with progress_cm as progress:
                outputs.append(preprocess_dataset(raw, preprocessed, plans, configuration, n, progress, digests))
    copy_ground_truth(raw, preprocessed, digests)
    return outputs
