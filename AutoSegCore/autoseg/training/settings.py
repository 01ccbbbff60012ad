"""Training hyperparameters as data, and nnU-Net's trainer names mapped onto them.

nnU-Net changes epochs or mirroring by subclassing (``nnUNetTrainer_100epochs``,
``nnUNetTrainerNoMirroring``, ...); AutoSeg reads those names as settings, so ``-tr`` keeps working and
``--epochs N`` needs no class at all. The trainer name written to checkpoints stays the one given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from autoseg.errors import AutoSegError

DEFAULT_TRAINER = "nnUNetTrainer"
MIRRORING = ("all", "none", "first_two")


@dataclass(frozen=True)
class TrainingSettings:
    """nnU-Net v2's defaults (DESIGN §6)."""

    num_epochs: int = 1000
    iterations_per_epoch: int = 250
    val_iterations: int = 50
    initial_lr: float = 1e-2
    weight_decay: float = 3e-5
    momentum: float = 0.99
    oversample_foreground_percent: float = 0.33
    grad_clip_norm: float = 12.0
    #: checkpoint_latest.pth every N epochs (nnU-Net: 50; AutoSeg: every epoch, so a killed run loses at most one)
    save_every: int = 1
    deep_supervision: bool = True
    #: Mirroring (augmentation and inference TTA): "all" axes, "none" (``NoMirroring``) or "first_two"
    #: (``onlyMirror01``: axes 0 and 1 in 3D, axis 0 in 2D, as nnU-Net).
    mirroring: str = "all"
    seed: int | None = None

    def __post_init__(self) -> None:
        """Refuse settings no training can run with, naming the command-line option."""
        at_least = (("num_epochs", "--epochs", 1), ("iterations_per_epoch", "--iterations_per_epoch", 1),
                    ("val_iterations", "--val_iterations", 0), ("save_every", "save_every", 1))
        for name, option, minimum in at_least:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                what = "must be positive" if minimum == 1 else "must be 0 or more"
                raise AutoSegError(f"{option} {what}, got {value}.")
        for name in ("initial_lr", "grad_clip_norm"):
            if not getattr(self, name) > 0:
                raise AutoSegError(f"{name} must be positive, got {getattr(self, name)}.")
        if not 0.0 <= self.oversample_foreground_percent <= 1.0:
            raise AutoSegError(f"oversample_foreground_percent must be in [0, 1], got "
                               f"{self.oversample_foreground_percent}.")
        if self.mirroring not in MIRRORING:
            raise AutoSegError(f"mirroring must be one of {', '.join(MIRRORING)}, got {self.mirroring!r}.")

    def with_options(self, epochs: int | None = None, iterations_per_epoch: int | None = None,
                     val_iterations: int | None = None, seed: int | None = None) -> TrainingSettings:
        """These settings with the command-line overrides that were given (None: keep), validated."""
        changes: dict[str, Any] = {"num_epochs": epochs, "iterations_per_epoch": iterations_per_epoch,
                                   "val_iterations": val_iterations, "seed": seed}
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def mirror_axes_for(settings: TrainingSettings, dim: int) -> tuple[int, ...] | None:
    """The mirrored axes of a ``dim``-D patch under ``settings.mirroring``."""
    if settings.mirroring == "none":
        return None
    if settings.mirroring == "first_two":
        return (0,) if dim == 2 else (0, 1)
    return tuple(range(dim))


_EPOCHS = re.compile(r"^nnUNetTrainer_(\d+)epochs?(?P<rest>(_NoMirroring)?)$")


def settings_for_trainer(name: str) -> TrainingSettings:
    """Settings of an nnU-Net trainer name; an unknown name is an error listing what is understood."""
    settings = TrainingSettings()
    match = _EPOCHS.match(name)
    if match:
        settings = replace(settings, num_epochs=int(match.group(1)))
        if match["rest"]:
            settings = replace(settings, mirroring="none")
        return settings
    known = {
        DEFAULT_TRAINER: settings,
        "nnUNetTrainerNoMirroring": replace(settings, mirroring="none"),
        "nnUNetTrainer_onlyMirror01": replace(settings, mirroring="first_two"),
        "nnUNetTrainerNoDeepSupervision": replace(settings, deep_supervision=False),
    }
    if name in known:
        return known[name]
    raise AutoSegError(
        f"Unknown trainer {name!r}. AutoSeg understands {', '.join(known)} and nnUNetTrainer_<N>epochs "
        f"(optionally _NoMirroring); for anything else use the plain options --epochs, --iterations_per_epoch, "
        f"--val_iterations and --seed."
    )
