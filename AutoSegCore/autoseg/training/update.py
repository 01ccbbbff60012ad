"""Updating a trained fold with new cases (``autoseg train ... --update``): fine-tune, don't retrain.

An update starts from the fold's current ``checkpoint_final.pth`` and trains a short schedule on the
enlarged dataset (same plans, same preprocessing: new cases were added by incremental preprocessing and
the stable splits). The schedule: :data:`UPDATE_EPOCH_FRACTION` of the epochs the model was trained for,
polynomial decay from :data:`UPDATE_LR` (0.3x nnU-Net's initial rate: high enough to learn the new cases,
low enough not to throw away what the model knows; a single default row in ``benchmarks/bench_annotation_loop.py``,
not a sweep). Before
training, the current model is archived as a numbered version (:mod:`autoseg.inference.model_versions`)
and validated on the fold's validation cases *as they are now* (``validation_before_update/``), so the log
and ``progress.jsonl`` show the Dice before and after on the same cases.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from autoseg.dataset.dataset_json import DatasetJson
from autoseg.errors import AutoSegError
from autoseg.inference.model_versions import CHECKPOINT, current_version
from autoseg.network.checkpoint import load_checkpoint
from autoseg.plans.model import Plans
from autoseg.training.settings import TrainingSettings

UPDATE_EPOCH_FRACTION = 0.25
UPDATE_LR = 3e-3
#: checkpoint key of an update's marker (also in autoseg.training.trainer.UPDATE_KEY)
UPDATE_KEY = "autoseg_update"


@dataclass(frozen=True)
class UpdatePlan:
    """What an update of one fold does: from which version to which, with how many epochs."""

    base_checkpoint: Path
    from_version: int
    to_version: int
    base_epochs: int
    resume: bool

    def marker(self) -> dict[str, Any]:
        return {"version": self.to_version, "from_version": self.from_version, "base_epochs": self.base_epochs}


def update_settings(settings: TrainingSettings, base_epochs: int, epochs: int | None = None,
                    initial_lr: float | None = None) -> TrainingSettings:
    """The fine-tuning schedule: ``epochs`` (default a quarter of ``base_epochs``) from ``initial_lr``."""
    count = epochs if epochs is not None else max(1, math.ceil(base_epochs * UPDATE_EPOCH_FRACTION))
    return replace(settings, num_epochs=count, initial_lr=initial_lr if initial_lr is not None else UPDATE_LR)


def plan_update(fold_folder: Path) -> UpdatePlan:
    """Where the update of ``fold_folder`` starts, and whether an interrupted one is continued."""
    base = fold_folder / CHECKPOINT
    if not base.is_file():
        raise AutoSegError(
            f"--update needs a trained model, but {base} does not exist. Train the fold first (without --update)."
        )
    version = current_version(fold_folder)
    raw = load_checkpoint(base)
    base_epochs = int(raw.get("current_epoch") or len((raw.get("logging") or {}).get("train_losses", [])) or 1)
    latest = fold_folder / "checkpoint_latest.pth"
    resume = False
    if latest.is_file():
        marker = load_checkpoint(latest).get(UPDATE_KEY)
        resume = isinstance(marker, dict) and marker.get("version") == version + 1
        if isinstance(marker, dict) and isinstance(marker.get("base_epochs"), int):
            base_epochs = marker["base_epochs"]
    return UpdatePlan(base, version, version + 1, base_epochs, resume)


def _preprocessing_view(plans: Plans, configuration: str) -> dict[str, Any]:
    config = plans.configuration(configuration).to_dict()
    ignored = ("batch_size",)  # may change without changing what the network sees
    return {
        "configuration": {k: v for k, v in config.items() if k not in ignored},
        "intensity": plans.foreground_intensity_properties_per_channel,
        "transpose_forward": list(plans.transpose_forward),
    }


def check_update_compatible(model_folder: Path, plans: Plans, configuration: str, dataset_json: DatasetJson) -> None:
    """Refuse an update when the plans or labels changed since the model was trained (it would silently learn
    other inputs): the model folder's plans.json/dataset.json against the preprocessed dataset's."""
    plans_file, dataset_file = model_folder / "plans.json", model_folder / "dataset.json"
    if plans_file.is_file():
        trained = Plans.load(plans_file)
        if configuration in trained.configuration_names and (
            _preprocessing_view(trained, configuration) != _preprocessing_view(plans, configuration)
        ):
            raise AutoSegError(
                f"The plans of {configuration} changed since {model_folder} was trained (normalisation, spacing, "
                f"patch or network): an update would train the model on differently preprocessed data. Keep the "
                f"plans the model was trained with (do not re-plan with --clean), or train a new model."
            )
    if dataset_file.is_file():
        trained_labels = {k: v for k, v in DatasetJson.load(dataset_file).labels.items() if k != "ignore"}
        labels = {k: v for k, v in dataset_json.labels.items() if k != "ignore"}
        if trained_labels != labels:
            raise AutoSegError(
                f"The labels changed since {model_folder} was trained ({trained_labels} -> {labels}): a model "
                f"cannot learn new labels by an update. Train a new model."
            )
