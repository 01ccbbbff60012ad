"""Open a trained model's results folder (nnU-Net v2 or AutoSeg): plans, dataset.json, folds, weights.

Layout: ``nnUNet_results/DatasetXXX_Name/<trainer>__<plans>__<configuration>/`` with ``plans.json``,
``dataset.json`` and ``fold_K/<checkpoint>.pth`` per fold (``fold_all`` for a model trained on all
cases). Checkpoints are read without torch by :func:`load_checkpoint_without_torch` (no code from the folder ever
runs; only the network weights are read into memory).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autoseg.dataset.dataset_json import DatasetJson
from autoseg.errors import AutoSegError, ModelFolderError
from autoseg.paths import ModelFolderName, Workspace
from autoseg.plans.model import ConfigurationPlan, Plans
from autoseg.plans.network_channels import input_channels, output_channels
from autoseg.typing import Fold
from autoseg.utils.pth_reader import load_checkpoint_without_torch
from autoseg.utils.state_dict_names import clean_state_dict

logger = logging.getLogger(__name__)

EXPECTED_LAYOUT = (
    "a model folder looks like nnUNet_results/DatasetXXX_Name/<trainer>__<plans>__<configuration>/ and "
    "contains plans.json, dataset.json and fold_0 ... fold_4 (or fold_all) each with checkpoint_final.pth"
)


@dataclass
class FoldWeights:
    """One fold's network weights and the checkpoint's metadata."""

    fold: Fold
    #: numpy arrays when read from a checkpoint; the trainer's torch tensors in its final validation
    state_dict: dict[str, Any]
    trainer_name: str
    configuration_name: str
    inference_allowed_mirroring_axes: tuple[int, ...] | None


@dataclass
class ModelFolder:
    """A results folder with the chosen folds' weights loaded."""

    path: Path
    plans: Plans
    dataset_json: DatasetJson
    folds: list[FoldWeights]
    checkpoint_name: str = "checkpoint_final.pth"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def configuration_name(self) -> str:
        return self.folds[0].configuration_name

    @property
    def configuration(self) -> ConfigurationPlan:
        return self.plans.configuration(self.configuration_name)

    @property
    def trainer_name(self) -> str:
        return self.folds[0].trainer_name

    @property
    def mirror_axes(self) -> tuple[int, ...] | None:
        return self.folds[0].inference_allowed_mirroring_axes

    @property
    def num_input_channels(self) -> int:
        return input_channels(self.dataset_json, self.configuration)

    @property
    def num_output_channels(self) -> int:
        return output_channels(self.dataset_json)


def model_folder_path(workspace: Workspace, dataset: str | int, configuration: str,
                      trainer: str = "nnUNetTrainer", plans: str = "nnUNetPlans") -> Path:
    """``nnUNet_results/DatasetXXX_Name/<trainer>__<plans>__<configuration>`` for ``-d/-c/-tr/-p``."""
    return workspace.results_dataset(dataset) / str(ModelFolderName(trainer, plans, configuration))


def fold_folder_name(fold: Fold) -> str:
    return f"fold_{fold}"


def parse_fold(value: str | int) -> Fold:
    """``"0"`` -> 0, ``"all"`` -> "all"; anything else is an error."""
    if isinstance(value, int) or str(value).isdigit():
        return int(value)
    if str(value) == "all":
        return "all"
    raise AutoSegError(f"Invalid fold {value!r}: use a number (0-4) or 'all'.")


def available_folds(path: Path, checkpoint_name: str = "checkpoint_final.pth") -> list[Fold]:
    """Numbered folds whose folder holds ``checkpoint_name`` (``fold_all`` is only used when asked for)."""
    folds: list[Fold] = []
    for child in sorted(path.glob("fold_*")):
        suffix = child.name[len("fold_"):]
        if suffix.isdigit() and (child / checkpoint_name).is_file():
            folds.append(int(suffix))
    return sorted(folds)


def _require_file(path: Path, what: str) -> None:
    if not path.is_file():
        raise ModelFolderError(f"{path.parent} has no {path.name} ({what}); {EXPECTED_LAYOUT}.")


def _fold_weights(path: Path, fold: Fold, checkpoint_name: str) -> FoldWeights:
    checkpoint_file = path / fold_folder_name(fold) / checkpoint_name
    if not checkpoint_file.is_file():
        present = (
            sorted(p.name for p in checkpoint_file.parent.glob("*.pth")) if checkpoint_file.parent.is_dir() else []
        )
        hint = f" It has {', '.join(present)}: choose one with -chk." if present else ""
        raise ModelFolderError(f"Fold {fold}: {checkpoint_file} does not exist.{hint}")
    checkpoint = load_checkpoint_without_torch(checkpoint_file)
    init_args = checkpoint.get("init_args") or {}
    configuration = init_args.get("configuration") if isinstance(init_args, dict) else None
    folder_name = ModelFolderName.parse(path)
    if not configuration:
        configuration = folder_name.configuration if folder_name else path.name.split("__")[-1]
    axes = checkpoint.get("inference_allowed_mirroring_axes")
    return FoldWeights(
        fold=fold,
        state_dict=clean_state_dict(checkpoint["network_weights"]),
        trainer_name=str(checkpoint.get("trainer_name", folder_name.trainer if folder_name else path.name)),
        configuration_name=str(configuration),
        inference_allowed_mirroring_axes=tuple(int(a) for a in axes) if axes is not None else None,
    )


def open_model_folder(path: str | Path, folds: list[Fold] | tuple[Fold, ...] | None = None,
                      checkpoint_name: str = "checkpoint_final.pth") -> ModelFolder:
    """Open ``path`` and load the weights of ``folds`` (default: every numbered fold with the checkpoint)."""
    path = Path(path)
    if not path.is_dir():
        raise ModelFolderError(f"Model folder {path} does not exist; {EXPECTED_LAYOUT}.")
    _require_file(path / "plans.json", "the plans the model was trained with")
    _require_file(path / "dataset.json", "the labels and channels of the model")
    plans = Plans.load(path / "plans.json")
    dataset_json = DatasetJson.load(path / "dataset.json")
    if folds is None:
        folds = available_folds(path, checkpoint_name)
        if not folds:
            all_fold = path / "fold_all" / checkpoint_name
            if all_fold.is_file():
                folds = ["all"]
            else:
                present = sorted(p.name for p in path.glob("fold_*"))
                raise ModelFolderError(
                    f"No fold of {path} has {checkpoint_name} (fold folders found: {', '.join(present) or 'none'}). "
                    f"Train the model first, or pick another checkpoint with -chk; {EXPECTED_LAYOUT}."
                )
        logger.info("Using folds %s of %s.", ", ".join(map(str, folds)), path)
    else:
        folds = [parse_fold(f) for f in folds]
        missing = [f for f in folds if not (path / fold_folder_name(f)).is_dir()]
        if missing:
            present = [p.name[len("fold_"):] for p in sorted(path.glob("fold_*"))]
            raise ModelFolderError(
                f"{path} has no fold {', '.join(map(str, missing))} (available: {', '.join(present) or 'none'}). "
                f"Choose folds with -f."
            )
    weights = [_fold_weights(path, f, checkpoint_name) for f in folds]
    names = {w.configuration_name for w in weights}
    if len(names) > 1:
        raise ModelFolderError(f"The folds of {path} were trained with different configurations: {sorted(names)}.")
    model = ModelFolder(
        path=path, plans=plans, dataset_json=dataset_json, folds=weights, checkpoint_name=checkpoint_name
    )
    _ = model.configuration  # raises PlanError if plans.json lacks the configuration
    return model
