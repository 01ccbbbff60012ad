"""Checkpoint files (``checkpoint_final.pth`` ...): nnU-Net v2's keys, written atomically, read without
executing code.

A checkpoint is what ``nnUNetv2_predict`` and ``nnUNetv2_train --c`` read: ``network_weights``,
``optimizer_state``, ``grad_scaler_state``, ``logging``, ``_best_ema``, ``current_epoch`` (the next epoch
to run), ``init_args`` (plans, configuration, fold, dataset_json, device), ``trainer_name`` and
``inference_allowed_mirroring_axes``. Training writes it (:func:`build_checkpoint`, :func:`save_checkpoint`:
a temporary file replaces the old checkpoint only when complete, so a killed run never leaves a half file);
training, inference and model installation read it with :func:`load_checkpoint`: ``torch.load`` with
``weights_only=True`` and, besides tensors and ``torch.device``, only the numpy globals of
:data:`autoseg.utils.safe_pickle.NUMPY_GLOBALS` (the one allow-list that the restricted unpickler uses too),
so a checkpoint crafted to run code fails to load.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch

from autoseg.dataset.dataset_json import DatasetJson
from autoseg.errors import ModelFolderError
from autoseg.plans.model import Plans
from autoseg.utils.files import atomic_path
from autoseg.utils.safe_pickle import NUMPY_GLOBALS
from autoseg.utils.state_dict_names import clean_state_dict

__all__ = ["build_checkpoint", "clean_state_dict", "init_args", "load_checkpoint", "save_checkpoint"]


class CheckpointLogging(Protocol):
    """What a checkpoint stores from the training log (the ``logging`` key)."""

    def to_checkpoint(self) -> dict[str, list[Any]]: ...


def init_args(plans: Plans, configuration: str, fold: int | str, dataset_json: DatasetJson,
              device: torch.device) -> dict[str, Any]:
    """The trainer constructor arguments nnU-Net stores (and reads the configuration from)."""
    return {"plans": plans.to_dict(), "configuration": configuration, "fold": fold,
            "dataset_json": dataset_json.to_dict(), "device": torch.device(device)}


def build_checkpoint(
    network: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    grad_scaler: torch.amp.GradScaler | None,
    log: CheckpointLogging,
    best_ema: float | None,
    next_epoch: int,
    arguments: dict[str, Any],
    trainer_name: str,
    mirror_axes: tuple[int, ...] | None,
) -> dict[str, Any]:
    """The checkpoint dict with nnU-Net's keys (weights without torch.compile/DDP wrappers)."""
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


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint (ours or nnU-Net's) safely; a clear :class:`ModelFolderError` for missing, corrupt
    or unsafe files."""
    path = Path(path)
    if not path.is_file():
        raise ModelFolderError(f"Checkpoint {path} does not exist.")
    allowed: list[Callable[..., Any] | tuple[Callable[..., Any], str]] = [
        (target, f"{module}.{name}") for (module, name), target in NUMPY_GLOBALS.items()
    ]
    try:
        with torch.serialization.safe_globals(allowed):
            checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        unsafe = [line.strip() for line in str(err).splitlines() if re.search(r"(?i)\bglobal\b", line)]
        if not unsafe:
            raise ModelFolderError(
                f"Checkpoint {path} is not a valid PyTorch checkpoint; it is unreadable or truncated. Copy it "
                f"again from the training machine, or re-run training with --c to rewrite it."
            ) from err
        raise ModelFolderError(
            f"Checkpoint {path} refers to code or objects that a model checkpoint never needs, so it was not "
            f"loaded (loading it could run arbitrary code). Found: {unsafe[0]}"
        ) from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as err:
        raise ModelFolderError(
            f"Checkpoint {path} is unreadable or truncated ({type(err).__name__}: {_first_line(err)}). "
            f"Copy it again from the training machine, or re-run training with --c to rewrite it."
        ) from err
    if not isinstance(checkpoint, dict) or "network_weights" not in checkpoint:
        raise ModelFolderError(
            f"{path} is not an nnU-Net/AutoSeg checkpoint: expected a dict with 'network_weights', "
            f"'init_args', 'trainer_name', found {type(checkpoint).__name__}"
            + (f" with keys {sorted(checkpoint)[:8]}" if isinstance(checkpoint, dict) else "") + "."
        )
    return checkpoint


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
