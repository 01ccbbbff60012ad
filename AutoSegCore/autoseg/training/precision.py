"""Mixed precision per device: what the forward pass runs in and whether gradients need scaling.

nnU-Net trains with float16 autocast + GradScaler on CUDA and in float32 everywhere else. AutoSeg does the
same on CUDA and, on CPUs with native bfloat16 (AVX-512 BF16 / AMX), trains under bfloat16 autocast by
default: twice the speed of float32 on such CPUs, weights and optimizer state stay float32, and bfloat16
has float32's exponent range so no gradient scaling is needed. ``-precision fp32`` restores nnU-Net's CPU
behaviour.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from autoseg.errors import AutoSegError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def cpu_has_native_bf16() -> bool:
    """True when PyTorch's CPU kernels can use bfloat16 instructions (AVX-512 BF16 or AMX)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@dataclass(frozen=True)
class Precision:
    """The autocast dtype of the forward pass (None: float32) on ``device``."""

    device_type: str
    autocast_dtype: torch.dtype | None

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.autocast_dtype]

    @property
    def needs_grad_scaler(self) -> bool:
        return self.autocast_dtype == torch.float16 and self.device_type == "cuda"

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        if self.autocast_dtype is None:
            yield
            return
        with torch.autocast(self.device_type, dtype=self.autocast_dtype):
            yield


def choose_precision(device: torch.device, requested: str = "auto") -> Precision:
    """``auto``: fp16 on CUDA (as nnU-Net), bf16 on CPUs with native bfloat16, else fp32."""
    if requested not in PRECISIONS:
        raise AutoSegError(f"Unknown precision {requested!r}: use one of {', '.join(PRECISIONS)}.")
    kind = device.type
    if requested == "auto":
        if kind == "cuda":
            requested = "fp16"
        elif kind == "cpu" and cpu_has_native_bf16():
            requested = "bf16"
        else:
            requested = "fp32"
    if requested == "fp16" and kind != "cuda":
        raise AutoSegError(f"-precision fp16 needs a CUDA device (training on {kind}); use bf16 or fp32.")
    if requested == "bf16" and kind == "mps":
        raise AutoSegError("-precision bf16 is not supported on MPS; use fp32.")
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[requested]
    return Precision(kind, dtype)
