"""Training checkpoints with nnU-Net v2's keys, written atomically.

A checkpoint is what ``nnUNetv2_predict`` and ``nnUNetv2_train --c`` read: ``network_weights``,
``optimizer_state``, ``grad_scaler_state``, ``logging``, ``_best_ema``, ``current_epoch`` (the next epoch
to run), ``init_args`` (plans, configuration, fold, dataset_json, device), ``trainer_name`` and
``inference_allowed_mirroring_axes``. Writing goes to a temporary file that replaces the old checkpoint
only when complete, so a killed run never leaves a half-written file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from autoseg.dataset.dataset_json import DatasetJson
from autoseg.inference.checkpoint_loading import load_checkpoint
from autoseg.planning.plans import Plans
from autoseg.training.training_log import TrainingLog
from autoseg.utils.files import atomic_path


def init_args(plans: Plans, configuration: str, fold: int | str, dataset_json: DatasetJson,
              device: torch.device) -> dict[str, Any]:
    """The trainer constructor arguments nnU-Net stores (and reads the configuration from)."""
    return {"plans": plans.to_dict(), "configuration": configuration, "fold": fold,
            "dataset_json": dataset_json.to_dict(), "device": torch.device(device)}


def build_checkpoint(
    network: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    grad_scaler: torch.amp.GradScaler | None,
    log: TrainingLog,
    best_ema: float | None,
    next_epoch: int,
    arguments: dict[str, Any],
    trainer_name: str,
    mirror_axes: tuple[int, ...] | None,
) -> dict[str, Any]:
    module = getattr(network, "_orig_mod", network)  # torch.compile wrapper
    module = getattr(module, "module", module)  # DDP wrapper
    return {
        "network_weights": module.state_dict(),
        "optimizer_state": optimizer.state_dict(),
        "grad_scaler_state": grad_scaler.state_dict() if grad_scaler is not None else None,
        "logging": log.to_checkpoint(),
        "_best_ema": best_ema,
        "current_epoch": next_epoch,
        "init_args": arguments,
        "trainer_name": trainer_name,
        "inference_allowed_mirroring_axes": tuple(mirror_axes) if mirror_axes is not None else None,
    }


def save_checkpoint(checkpoint: dict[str, Any], path: str | Path) -> None:
    """Write atomically: the previous file stays intact until the new one is complete."""
    with atomic_path(path, ".pth") as tmp:
        torch.save(checkpoint, tmp)


def load_training_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint (ours or nnU-Net's) without executing code from it."""
    return load_checkpoint(path)
