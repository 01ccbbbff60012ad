"""What one training run is: dataset, plans, configuration, fold, trainer settings and where files go.

``TrainingJob.from_workspace`` resolves ``autoseg train DATASET CONFIG FOLD -tr -p`` against the workspace
with a clear error for each thing that is missing; ``prepare_model_folder`` writes ``dataset.json``,
``plans.json`` and ``dataset_fingerprint.json`` next to the folds (what ``nnUNetv2_predict`` reads).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch

from autoseg.dataset.dataset_json import DatasetJson
from autoseg.errors import AutoSegError, PlanError
from autoseg.network.build import input_channels, output_channels
from autoseg.paths import ModelFolderName, Workspace
from autoseg.plans.model import ConfigurationPlan, Plans
from autoseg.training.settings import DEFAULT_TRAINER, TrainingSettings
from autoseg.typing import Fold
from autoseg.utils.files import atomic_path


@dataclass
class TrainingJob:
    """Everything a :class:`~autoseg.training.trainer.Trainer` needs; paths are explicit (no environment)."""

    preprocessed_dataset: Path
    model_folder: Path
    plans: Plans
    configuration_name: str
    fold: Fold
    dataset_json: DatasetJson
    settings: TrainingSettings = field(default_factory=TrainingSettings)
    trainer_name: str = DEFAULT_TRAINER
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    #: "auto" (fp16 on CUDA; bf16-backward on CPUs with native bfloat16, else fp32), "fp32", "bf16-backward",
    #: "bf16" or "fp16" (see autoseg.training.precision).
    precision: str = "auto"
    #: Background data-augmentation workers (None: chosen from the device and the cores).
    num_workers: int | None = None
    #: torch.compile the network (None: on CUDA unless nnUNet_compile says otherwise); falls back to eager.
    compile: bool | None = None
    pretrained_weights: Path | None = None
    save_probabilities: bool = False
    #: Network engine of the final validation: "auto" (OpenVINO on the CPU when installed), "torch", "openvino".
    validation_engine: str = "auto"
    disable_checkpointing: bool = False
    progress_bar: bool = True
    #: Cascade stages: the previous stage's predictions (default: its model folder's predicted_next_stage).
    previous_stage_folder: Path | None = None
    #: Fine-tune the fold's current model with the enlarged dataset (``--update``), keeping it as a version;
    #: ``update_epochs``/``update_lr`` override the fine-tuning schedule (autoseg.training.update).
    update: bool = False
    update_epochs: int | None = None
    update_lr: float | None = None
    #: End training + final validation this many seconds after the start (``--time_budget``).
    time_budget_s: float | None = None

    @property
    def configuration(self) -> ConfigurationPlan:
        return self.plans.configuration(self.configuration_name)

    @property
    def fold_folder(self) -> Path:
        return self.model_folder / f"fold_{self.fold}"

    @property
    def data_folder(self) -> Path:
        return self.preprocessed_dataset / self.configuration.data_identifier

    @property
    def num_input_channels(self) -> int:
        return input_channels(self.dataset_json, self.configuration)

    @property
    def num_output_channels(self) -> int:
        return output_channels(self.dataset_json)

    @classmethod
    def from_workspace(cls, workspace: Workspace, dataset: str | int, configuration: str, fold: Fold,
                       trainer_name: str = DEFAULT_TRAINER, plans_name: str = "nnUNetPlans",
                       **options) -> TrainingJob:
        """Resolve the dataset, plans and configuration; errors say which command produces what is missing."""
        preprocessed = workspace.preprocessed_dataset(dataset)
        if not preprocessed.is_dir():
            raise AutoSegError(
                f"{preprocessed} does not exist: run `autoseg plan_and_preprocess -d {dataset}` before training."
            )
        plans_file = preprocessed / f"{plans_name}.json"
        if not plans_file.is_file():
            present = sorted(p.stem for p in preprocessed.glob("*Plans*.json"))
            hint = f" Plans found: {', '.join(present)} (choose with -p)." if present else ""
            raise PlanError(
                f"{plans_file} does not exist.{hint} Create it with `autoseg plan_and_preprocess -d {dataset}`."
            )
        plans = Plans.load(plans_file)
        if configuration not in plans.configuration_names:
            raise PlanError(
                f"Configuration {configuration!r} is not in {plans_file}. Available: "
                f"{', '.join(plans.configuration_names)}."
            )
        dataset_json = DatasetJson.load(preprocessed / "dataset.json")
        job = cls(
            preprocessed_dataset=preprocessed,
            model_folder=workspace.results_dataset(dataset)
            / str(ModelFolderName(trainer_name, plans_name, configuration)),
            plans=plans,
            configuration_name=configuration,
            fold=fold,
            dataset_json=dataset_json,
            trainer_name=trainer_name,
            **options,
        )
        config = job.configuration
        if not job.data_folder.is_dir():
            raise AutoSegError(
                f"{job.data_folder} does not exist: configuration {configuration} is not preprocessed. Run "
                f"`autoseg preprocess -d {dataset} -c {configuration} -plans_name {plans_name}`."
            )
        if config.previous_stage and job.previous_stage_folder is None:
            job.previous_stage_folder = (workspace.results_dataset(dataset)
                                         / str(ModelFolderName(trainer_name, plans_name, config.previous_stage))
                                         / "predicted_next_stage" / configuration)
        return job


def prepare_model_folder(job: TrainingJob) -> None:
    """Write the model folder's dataset.json, plans.json and dataset_fingerprint.json (atomically)."""
    job.fold_folder.mkdir(parents=True, exist_ok=True)
    sources = {
        "dataset.json": job.preprocessed_dataset / "dataset.json",
        "plans.json": job.preprocessed_dataset / f"{job.plans.plans_name}.json",
        "dataset_fingerprint.json": job.preprocessed_dataset / "dataset_fingerprint.json",
    }
    for name, source in sources.items():
        if not source.is_file():
            if name == "plans.json":
                job.plans.save(job.model_folder / name)
            continue
        with atomic_path(job.model_folder / name) as tmp:
            shutil.copyfile(source, tmp)
