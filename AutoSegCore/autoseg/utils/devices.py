"""The compute device of training and prediction (``-device auto|cpu|cuda|cuda:N|mps``)."""

from __future__ import annotations

import torch

from autoseg.errors import DeviceError

DEVICE_HELP = "auto (CUDA if PyTorch sees a GPU, else the CPU), cpu, cuda, cuda:N or mps"


def resolve_device(name: str = "auto") -> torch.device:
    """The device ``name`` stands for, with a clear :class:`DeviceError` when it is not available."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"Unsupported device {name!r}: use {DEVICE_HELP}.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError("-device cuda was requested but PyTorch sees no CUDA GPU. Use -device cpu.")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError("-device mps was requested but MPS is not available. Use -device cpu.")
    if device.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"Unsupported device {name!r}: use {DEVICE_HELP}.")
    return device
