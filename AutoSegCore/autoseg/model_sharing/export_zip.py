"""Export trained models as a zip that ``nnUNetv2_install_pretrained_model_from_zip`` (and AutoSeg) installs.

The archive holds the same files under the same names as ``nnUNetv2_export_model_to_zip``, relative to
``nnUNet_results``: per configuration ``plans.json``, ``dataset.json``, ``dataset_fingerprint.json``,
the cross-validation ``summary.json``/``postprocessing.pkl``/``postprocessing.json``; per fold the
requested checkpoints, ``debug.json``, ``progress.png``, ``network_architecture.pdf`` and
``validation/summary.json`` (with ``export_crossval_predictions``: the validation predictions, never
their ``.npz``/``.pkl``); the dataset's ensembles made only of exported models; and
``inference_information.json`` / ``inference_instructions.txt``.

Differences from nnU-Net (which asserts every requested fold and file exists and always runs strict):
optional files are added when present; ``strict=False`` really skips missing configurations, folds
and checkpoints (each skip is reported); configurations that were not asked for explicitly are
exported when present and skipped otherwise. The zip is written to a temporary file and renamed, so
a failed export never leaves a partial zip.
"""

from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from autoseg.errors import ModelSharingError
from autoseg.inference.model_folder import fold_folder_name
from autoseg.paths import ModelFolderName, Workspace
from autoseg.typing import Fold
from autoseg.utils.files import atomic_path

logger = logging.getLogger(__name__)

DEFAULT_CONFIGURATIONS = ("3d_lowres", "3d_fullres", "2d", "3d_cascade_fullres")
DEFAULT_FOLDS: tuple[Fold, ...] = (0, 1, 2, 3, 4)
DEFAULT_CHECKPOINTS = ("checkpoint_final.pth",)
MODEL_FILES_REQUIRED = ("plans.json", "dataset.json")
MODEL_FILES_OPTIONAL = ("dataset_fingerprint.json",)
FOLD_FILES_OPTIONAL = ("debug.json", "progress.png", "network_architecture.pdf")
CROSSVAL_FILES = ("summary.json", "postprocessing.pkl", "postprocessing.json")
DATASET_FILES = ("inference_information.json", "inference_instructions.txt", "inference_information.txt")
PREDICTION_SIDE_FILES = (".npz", ".pkl")


@dataclass(frozen=True)
class ExportRequest:
    """What to export. ``configurations=None``: every default configuration that is trained."""

    dataset: str | int
    configurations: tuple[str, ...] | None = None
    trainer: str = "nnUNetTrainer"
    plans: str = "nnUNetPlans"
    folds: tuple[Fold, ...] = DEFAULT_FOLDS
    checkpoints: tuple[str, ...] = DEFAULT_CHECKPOINTS
    strict: bool = True
    export_crossval_predictions: bool = False


@dataclass
class ExportPlan:
    """The files to write: (source path, name inside the zip), plus what was skipped and why."""

    members: list[tuple[Path, str]] = field(default_factory=list)
    configurations: list[str] = field(default_factory=list)
    folds: dict[str, list[Fold]] = field(default_factory=dict)
    ensembles: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def folds_to_string(folds: Sequence[Fold]) -> str:
    """``(0, 1, 2)`` -> ``"0_1_2"`` (nnU-Net's crossval/ensemble folder suffix)."""
    return "_".join(str(f) for f in folds)


def model_identifier(trainer: str, plans: str, configuration: str) -> str:
    return str(ModelFolderName(trainer, plans, configuration))


def plan_export(workspace: Workspace, request: ExportRequest) -> ExportPlan:
    """Decide which files go into the zip; ModelSharingError for anything missing in strict mode."""
    dataset_name = workspace.dataset_name(request.dataset)
    dataset_folder = workspace.results / dataset_name
    if not request.checkpoints:
        raise ModelSharingError(
            "No checkpoint to export: give at least one name with -chk (e.g. checkpoint_final.pth)."
        )
    plan = ExportPlan()
    explicit = request.configurations is not None
    for configuration in dict.fromkeys(request.configurations or DEFAULT_CONFIGURATIONS):
        folder = dataset_folder / model_identifier(request.trainer, request.plans, configuration)
        if not folder.is_dir():
            if explicit and request.strict:
                raise ModelSharingError(
                    f"{dataset_name} has no trained {configuration} model: {folder} does not exist. Export the "
                    f"configurations that exist (-c), check -tr/-p, or pass --not_strict to skip missing ones."
                )
            if explicit:
                plan.skipped.append(f"configuration {configuration} (no folder {folder})")
            continue
        _add_model(plan, workspace.results, folder, configuration, request)
    if not plan.configurations:
        asked = ", ".join(request.configurations or DEFAULT_CONFIGURATIONS)
        raise ModelSharingError(
            f"Nothing to export: {dataset_folder} has no model folder {request.trainer}__{request.plans}__<c> for "
            f"any of {asked}{_available_models_hint(dataset_folder)}."
        )
    _add_ensembles(plan, workspace.results, dataset_folder, request)
    for name in DATASET_FILES:
        _add_if_file(plan, workspace.results, dataset_folder / name)
    return plan


def _available_models_hint(dataset_folder: Path) -> str:
    if not dataset_folder.is_dir():
        return f" ({dataset_folder} does not exist)"
    found = sorted(p.name for p in dataset_folder.iterdir() if p.is_dir() and p.name.count("__") == 2)
    return f" (it has: {', '.join(found)}; pick them with -c/-tr/-p)" if found else " (it has no model folder at all)"


def _add_model(plan: ExportPlan, results: Path, folder: Path, configuration: str, request: ExportRequest) -> None:
    for name in MODEL_FILES_REQUIRED:
        if not (folder / name).is_file():
            raise ModelSharingError(
                f"{folder} has no {name}; it is not a complete model folder and cannot be exported."
            )
    exported_folds: list[Fold] = []
    staged: list[Path] = []
    for fold in dict.fromkeys(request.folds):
        fold_members = _fold_members(plan, folder / fold_folder_name(fold), request)
        if fold_members:
            exported_folds.append(fold)
            staged += fold_members
    if not exported_folds:
        plan.skipped.append(
            f"configuration {configuration} (none of folds {folds_to_string(request.folds)} is complete)"
        )
        return
    plan.configurations.append(configuration)
    plan.folds[configuration] = exported_folds
    for path in staged:
        _add(plan, results, path)
    crossval = folder / f"crossval_results_folds_{folds_to_string(exported_folds)}"
    if crossval.is_dir():
        if request.export_crossval_predictions:
            for path in sorted(p for p in crossval.iterdir() if p.is_file()):
                _add(plan, results, path)
        else:
            for name in CROSSVAL_FILES:
                _add_if_file(plan, results, crossval / name)
    for name in (*MODEL_FILES_REQUIRED, *MODEL_FILES_OPTIONAL):
        _add_if_file(plan, results, folder / name)


def _fold_members(plan: ExportPlan, fold_folder: Path, request: ExportRequest) -> list[Path]:
    """The files of one fold, or [] when it is skipped (only with strict=False)."""
    if not fold_folder.is_dir():
        _missing(plan, request, f"{fold_folder} does not exist (requested folds: {folds_to_string(request.folds)}); "
                 f"choose the trained folds with -f", f"{fold_folder.name} of {fold_folder.parent.name} (missing)")
        return []
    names = list(dict.fromkeys(request.checkpoints))
    checkpoints = [fold_folder / name for name in names if (fold_folder / name).is_file()]
    missing = [name for name in names if not (fold_folder / name).is_file()]
    if missing:
        present = sorted(p.name for p in fold_folder.glob("*.pth"))
        _missing(
            plan,
            request,
            f"{fold_folder} has no {', '.join(missing)} (it has: {', '.join(present) or 'no checkpoint'}); "
            f"choose the checkpoints with -chk",
            f"{', '.join(missing)} of {fold_folder.parent.name}/{fold_folder.name}",
        )
    if not checkpoints:
        return []
    members = checkpoints + [fold_folder / n for n in FOLD_FILES_OPTIONAL if (fold_folder / n).is_file()]
    validation = fold_folder / "validation"
    if request.export_crossval_predictions and validation.is_dir():
        members += [
            p for p in sorted(validation.iterdir()) if p.is_file() and not p.name.endswith(PREDICTION_SIDE_FILES)
        ]
    elif (validation / "summary.json").is_file():
        members.append(validation / "summary.json")
    return members


def _missing(plan: ExportPlan, request: ExportRequest, strict_message: str, skipped: str) -> None:
    if request.strict:
        raise ModelSharingError(f"Cannot export: {strict_message}, or pass --not_strict to skip what is missing.")
    plan.skipped.append(skipped)


def _add_ensembles(plan: ExportPlan, results: Path, dataset_folder: Path, request: ExportRequest) -> None:
    """Ensembles whose members are all exported models (``ensemble___<m1>___<m2>___<folds>``)."""
    ensembles = dataset_folder / "ensembles"
    if not ensembles.is_dir():
        return
    for folder in sorted(p for p in ensembles.iterdir() if p.is_dir()):
        parts = folder.name.split("___")
        members = parts[1:-1]
        if len(parts) < 3 or not members:
            continue
        if not all(_is_exported(plan, request, m) for m in members):
            continue
        plan.ensembles.append(folder.name)
        if request.export_crossval_predictions:
            for path in sorted(p for p in folder.iterdir() if p.is_file()):
                _add(plan, results, path)
        else:
            for name in CROSSVAL_FILES:
                _add_if_file(plan, results, folder / name)


def _is_exported(plan: ExportPlan, request: ExportRequest, identifier: str) -> bool:
    model = ModelFolderName.parse(identifier)
    return (model is not None and model.trainer == request.trainer and model.plans == request.plans
            and model.configuration in plan.configurations)


def _add_if_file(plan: ExportPlan, results: Path, path: Path) -> None:
    if path.is_file():
        _add(plan, results, path)


def _add(plan: ExportPlan, results: Path, path: Path) -> None:
    name = path.relative_to(results).as_posix()
    if all(name != existing for _, existing in plan.members):
        plan.members.append((path, name))


def export_model_to_zip(
    workspace: Workspace,
    output_file: str | os.PathLike[str],
    request: ExportRequest,
    log: Callable[[str], None] = logger.info,
) -> ExportPlan:
    """Write the zip of :func:`plan_export` to ``output_file`` atomically; returns the plan."""
    output = Path(output_file)
    if output.is_dir():
        raise ModelSharingError(f"-o {output} is a folder; give the zip file to write, e.g. {output / 'model.zip'}.")
    plan = plan_export(workspace, request)
    for item in plan.skipped:
        log(f"Skipped {item}.")
    for configuration in plan.configurations:
        log(f"Exporting {configuration}: folds {', '.join(str(f) for f in plan.folds[configuration])}")
    for ensemble in plan.ensembles:
        log(f"Exporting ensemble {ensemble}")
    try:
        with atomic_path(output, ".zip") as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
            for source, name in plan.members:
                archive.write(source, name)
    except OSError as err:
        raise ModelSharingError(f"Cannot write {output}: {err}.") from err
    log(f"Wrote {output} ({len(plan.members)} files, {output.stat().st_size / 1024**2:.1f} MiB).")
    return plan
