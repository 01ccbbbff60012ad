"""Training hyperparameters as data, and nnU-Net's trainer names mapped onto them.

nnU-Net changes epochs or mirroring by subclassing (``nnUNetTrainer_100epochs``,
``nnUNetTrainerNoMirroring``, ...); AutoSeg reads those names as settings, so ``-tr`` keeps working and
``--epochs N`` needs no class at all. The trainer name written to checkpoints stays the one given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from autoseg.errors import AutoSegError

DEFAULT_TRAINER = "nnUNetTrainer"


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
