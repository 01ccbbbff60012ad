"""Which engine evaluates the network: PyTorch (``torch``), OpenVINO (``openvino``, CPU, no torch needed) or
``auto`` (OpenVINO on the CPU when it is installed, PyTorch on CUDA/MPS and wherever OpenVINO is missing).

Only ``find_spec`` is used to see what is installed, so choosing never imports torch unless torch is chosen.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.util import find_spec

from autoseg.errors import DeviceError

ENGINES = ("auto", "torch", "openvino")
ENGINE_HELP = (
    "network engine: auto (OpenVINO on the CPU when installed, else PyTorch; PyTorch on CUDA/MPS), torch, or "
    "openvino (CPU, no PyTorch needed)"
)
TORCH_INSTALL_HINT = (
    "Install PyTorch (CPU: pip install torch --index-url https://download.pytorch.org/whl/cpu; GPU: see "
    "pytorch.org) or pip install \"autoseg[torch]\""
)
OPENVINO_INSTALL_HINT = "Install OpenVINO: pip install \"autoseg[openvino]\" (or pip install openvino)"


@dataclass(frozen=True)
class EngineChoice:
    """The engine that runs and the device it runs on (``cpu``, ``cuda:0`` ...)."""

    engine: str
    device: str


def is_installed(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):  # a broken or half-removed installation
        return False


def choose_engine(engine: str = "auto", device: str = "auto") -> EngineChoice:
    """Resolve ``-engine`` and ``-device``; a clear :class:`DeviceError` when the pair cannot run here."""
    if engine not in ENGINES:
        raise DeviceError(f"Unknown engine {engine!r}: use {', '.join(ENGINES)}.")
    has_openvino, has_torch = is_installed("openvino"), is_installed("torch")
    if engine == "openvino":
        if not has_openvino:
            raise DeviceError(f"-engine openvino was requested but OpenVINO is not installed. {OPENVINO_INSTALL_HINT}.")
        if device not in ("auto", "cpu"):
            raise DeviceError(f"-engine openvino runs on the CPU; for -device {device} use -engine torch.")
        return EngineChoice("openvino", "cpu")
    if engine == "auto" and has_openvino and (device == "cpu" or (device == "auto" and not _cuda_visible(has_torch))):
        return EngineChoice("openvino", "cpu")
    if not has_torch:
        what = "-engine torch" if engine == "torch" else f"-device {device}"
        alternative = " or use -engine openvino on the CPU" if has_openvino else f". {OPENVINO_INSTALL_HINT} to " \
            "predict on the CPU without PyTorch"
        raise DeviceError(f"{what} needs PyTorch, which is not installed. {TORCH_INSTALL_HINT}{alternative}.")
    from autoseg.utils.devices import resolve_device

    return EngineChoice("torch", str(resolve_device(device)))


def _cuda_visible(has_torch: bool) -> bool:
    """Whether PyTorch is installed and sees a CUDA GPU (imports torch only when it is installed)."""
    if not has_torch:
        return False
    import torch

    return bool(torch.cuda.is_available())
