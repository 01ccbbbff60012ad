"""Trained models as find_best_configuration sees them: which exist, which are complete, which can be ensembled.

A model is a (trainer, plans, configuration) triple whose results live in
``nnUNet_results/DatasetXXX_Name/<trainer>__<plans>__<configuration>/``. It takes part when its
configuration is in the plans and every requested fold has validation predictions; otherwise it is
skipped with a reason that says how to complete it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoseg.paths import ModelFolderName

DEFAULT_CONFIGURATIONS = ("2d", "3d_fullres", "3d_lowres", "3d_cascade_fullres")
DEFAULT_FOLDS = (0, 1, 2, 3, 4)


@dataclass(frozen=True)
class TrainedModel(ModelFolderName):
    """One (trainer, plans, configuration) of a dataset."""

    @property
    def identifier(self) -> str:
        """``<trainer>__<plans>__<configuration>``, the results folder name."""
        return str(self)

    @classmethod
    def from_identifier(cls, identifier: str) -> TrainedModel:
        parsed = ModelFolderName.parse(Path(identifier))
        if parsed is None:
            raise ValueError(f"{identifier!r} is not <trainer>__<plans>__<configuration>")
        return cls(parsed.trainer, parsed.plans, parsed.configuration)

    def folder(self, results_dataset: Path) -> Path:
        return Path(results_dataset) / self.identifier

    def considered_json(self) -> dict[str, str]:
        """The entry of ``considered_models`` in nnU-Net's inference_information.json."""
        return {"plans": self.plans, "configuration": self.configuration, "trainer": self.trainer}

    def selected_json(self) -> dict[str, str]:
        """The entry of ``selected_model_or_models`` in nnU-Net's inference_information.json."""
        return {"configuration": self.configuration, "trainer": self.trainer, "plans_identifier": self.plans}


@dataclass(frozen=True)
class SkippedModel:
    model: TrainedModel
    reason: str


def candidate_models(
    trainers: Sequence[str], configurations: Sequence[str], plans: Sequence[str]
) -> list[TrainedModel]:
    """Every combination, trainers outermost and plans innermost (nnU-Net's order), without repeats."""
    models: list[TrainedModel] = []
    for trainer in trainers:
        for configuration in configurations:
            for plan in plans:
                model = TrainedModel(trainer, plan, configuration)
                if model not in models:
                    models.append(model)
    return models


def folds_string(folds: Sequence[int | str]) -> str:
    """``0_1_2_3_4``: how nnU-Net names folders made from several folds."""
    if not folds:
        raise ValueError("no folds")
    return "_".join(str(f) for f in folds)


def configurations_in_plans(plans_file: Path) -> list[str] | None:
    """Configuration names of a plans file; None when it does not exist or cannot be read."""
    try:
        raw = json.loads(Path(plans_file).read_text(encoding="utf-8"))
        return [str(name) for name in raw["configurations"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def validation_has_predictions(folder: Path, file_ending: str) -> bool:
    return folder.is_dir() and any(
        p.name.endswith(file_ending) and not p.name.startswith(".") for p in folder.iterdir()
    )


def has_probabilities(model_folder: Path, folds: Sequence[int | str]) -> bool:
    """Every fold's validation folder holds ``.npz`` probabilities (trained or validated with ``--npz``)."""
    return all(any((Path(model_folder) / f"fold_{fold}" / "validation").glob("*.npz")) for fold in folds)


def skip_reason(model: TrainedModel, results_dataset: Path, preprocessed_dataset: Path,
                folds: Sequence[int | str]) -> str | None:
    """Why ``model`` cannot take part (None when it can)."""
    folder = model.folder(results_dataset)
    plans_file = folder / "plans.json"
    if not plans_file.is_file():
        plans_file = preprocessed_dataset / f"{model.plans}.json"
    configurations = configurations_in_plans(plans_file)
    if configurations is None:
        return f"no plans {model.plans} ({plans_file} does not exist or is unreadable)"
    if model.configuration not in configurations:
        return f"configuration {model.configuration} is not in plans {model.plans} ({plans_file})"
    dataset_json = folder / "dataset.json"
    if not folder.is_dir():
        return f"not trained ({folder} does not exist)"
    if not dataset_json.is_file():
        return f"{dataset_json} is missing (not a complete results folder)"
    ending = _file_ending(dataset_json)
    if ending is None:
        return f"{dataset_json} has no valid file_ending"
    missing = [str(f) for f in folds if not validation_has_predictions(folder / f"fold_{f}" / "validation", ending)]
    if missing:
        command = (f"autoseg train {Path(results_dataset).name} {model.configuration} {' '.join(missing)} "
                   f"-tr {model.trainer} -p {model.plans} --npz")
        return (f"fold(s) {', '.join(missing)} have no validation predictions in {folder}/fold_K/validation; "
                f"train them with `{command}` or choose folds with -f")
    return None


def select_models(models: Sequence[TrainedModel], results_dataset: Path, preprocessed_dataset: Path,
                  folds: Sequence[int | str]) -> tuple[list[TrainedModel], list[SkippedModel]]:
    """(models that take part, skipped models with their reasons), in the given order."""
    usable: list[TrainedModel] = []
    skipped: list[SkippedModel] = []
    for model in models:
        reason = skip_reason(model, results_dataset, preprocessed_dataset, folds)
        if reason is None:
            usable.append(model)
        else:
            skipped.append(SkippedModel(model, reason))
    return usable, skipped


def previous_stage_of(plans_file: Path, configuration: str) -> str | None:
    """``previous_stage`` of a configuration (following ``inherits_from``); None when it has none."""
    configurations = json.loads(Path(plans_file).read_text(encoding="utf-8")).get("configurations", {})
    name: Any = configuration
    seen: set[str] = set()
    while isinstance(name, str) and name in configurations and name not in seen:
        seen.add(name)
        entry = configurations[name]
        if entry.get("previous_stage"):
            return str(entry["previous_stage"])
        name = entry.get("inherits_from")
    return None


def _file_ending(dataset_json: Path) -> str | None:
    try:
        value: Any = json.loads(dataset_json.read_text(encoding="utf-8")).get("file_ending")
    except (OSError, ValueError, AttributeError):
        return None
    return str(value) if value else None
