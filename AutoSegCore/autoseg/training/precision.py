"""Training precision per device: what runs in which floating-point format, and whether gradients need scaling.

nnU-Net trains with float16 autocast + GradScaler on CUDA and in float32 everywhere else. AutoSeg keeps
nnU-Net's AMP on CUDA. On the CPU, bfloat16 *autocast* (``-precision bf16``) is about 1.9x faster than
float32 but costs Dice at an equal budget (Hippocampus 3d_fullres: 0.837/0.838 vs 0.846, issue 14). Measured
with ``benchmarks/diagnose_precision.py``, the loss comes from the *forward* convolutions: their inputs and
weights rounded to bfloat16 change every activation downstream (whole-gradient error 9.8 % after 30 steps,
the same with loss and normalisation in float32); the same convolutions' *backward* in bfloat16 adds only
0.4 %. So ``bf16-backward`` runs every forward pass in float32 and only the convolutions' input and weight
gradients in bfloat16 (oneDNN accumulates in float32; bias gradients, loss, normalisation, optimizer and
weights stay float32): 1.3x faster than float32 per iteration on this CPU, and at an equal budget its Dice
equals float32's (two seeds: mean 0.8370 vs 0.8363). It is therefore the CPU default (``auto``) where the CPU
has native bfloat16 (AVX-512 BF16/AMX); elsewhere bfloat16 is emulated and slower, so ``auto`` is float32
there. ``-precision fp32`` is nnU-Net's CPU behaviour. Each scheme's :attr:`Precision.description` is logged
and written to ``debug.json``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from autoseg.errors import AutoSegError

PRECISIONS = ("auto", "fp32", "bf16-backward", "bf16", "fp16")
DESCRIPTIONS = {
    "fp32": "float32 throughout",
    "bf16-backward": "float32 forward pass, loss and weights; convolution input/weight gradients in bfloat16 "
                     "(float32 accumulation)",
    "bf16": "bfloat16 autocast forward (convolutions on bfloat16 inputs and weights; normalisation statistics, "
            "loss and weights float32)",
    "fp16": "float16 autocast forward with gradient scaling (loss and weights float32)",
}


def cpu_has_native_bf16() -> bool:
    """True when PyTorch's CPU kernels can use bfloat16 instructions (AVX-512 BF16 or AMX)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@dataclass(frozen=True)
class Precision:
    """A training precision scheme on ``device_type``: the forward autocast dtype (None: float32) and whether
    the convolutions compute their gradients in bfloat16 (``bf16-backward``)."""

    device_type: str
    autocast_dtype: torch.dtype | None
    bf16_convolution_backward: bool = False

    @property
    def name(self) -> str:
        if self.bf16_convolution_backward:
            return "bf16-backward"
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.autocast_dtype]

    @property
    def description(self) -> str:
        return DESCRIPTIONS[self.name]

    def prepare(self, network: torch.nn.Module) -> torch.nn.Module:
        """Make ``network``'s convolutions compute their gradients in bfloat16 when the scheme says so."""
        if self.bf16_convolution_backward:
            for module in network.modules():
                if isinstance(module, torch.nn.modules.conv._ConvNd):
                    module.forward = _bf16_backward_forward(module)
        return network

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


def default_precision(device_type: str) -> str:
    """The scheme ``-precision auto`` picks on ``device_type``."""
    if device_type == "cuda":
        return "fp16"
    return "bf16-backward" if device_type == "cpu" and cpu_has_native_bf16() else "fp32"


def choose_precision(device: torch.device, requested: str = "auto") -> Precision:
    """``auto``: fp16 on CUDA (as nnU-Net); on the CPU ``bf16-backward`` where it has native bfloat16, else
    float32; float32 on MPS (see the module docstring)."""
    if requested not in PRECISIONS:
        raise AutoSegError(f"Unknown precision {requested!r}: use one of {', '.join(PRECISIONS)}.")
    kind = device.type
    if requested == "auto":
        requested = default_precision(kind)
    if requested == "fp16" and kind != "cuda":
        raise AutoSegError(f"-precision fp16 needs a CUDA device (training on {kind}); use bf16 or fp32.")
    if requested in ("bf16", "bf16-backward") and kind == "mps":
        raise AutoSegError(f"-precision {requested} is not supported on MPS; use fp32.")
    if requested == "bf16-backward":
        return Precision(kind, None, bf16_convolution_backward=True)
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[requested]
    return Precision(kind, dtype)


class _ConvolutionWithBf16Backward(torch.autograd.Function):
    """A float32 convolution whose input and weight gradients are computed in bfloat16."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, transposed, output_padding, groups):
        ctx.save_for_backward(x, weight)
        ctx.options = (stride, padding, dilation, transposed, output_padding, groups)
        ctx.has_bias = bias is not None
        return torch.ops.aten.convolution(x, weight, bias, stride, padding, dilation, transposed, output_padding,
                                          groups)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        wanted = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], False]
        grad_x, grad_weight, _ = torch.ops.aten.convolution_backward(
            grad.to(torch.bfloat16), x.to(torch.bfloat16), weight.to(torch.bfloat16), None, *ctx.options, wanted)
        grad_bias = grad.sum(dim=[0, *range(2, grad.dim())]) if ctx.has_bias else None  # float32
        return (None if grad_x is None else grad_x.to(x.dtype), None if grad_weight is None else
                grad_weight.to(weight.dtype), grad_bias, None, None, None, None, None, None)


def _bf16_backward_forward(module: torch.nn.modules.conv._ConvNd):
    transposed = isinstance(module, torch.nn.modules.conv._ConvTransposeNd)
    if module.padding_mode != "zeros" or isinstance(module.padding, str):
        raise AutoSegError(f"-precision bf16-backward supports zero-padded convolutions with explicit padding; "
                           f"{module} has padding {module.padding!r} ({module.padding_mode}).")

    def forward(x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if output_size is not None:
            raise AutoSegError("-precision bf16-backward does not support transposed convolutions with output_size.")
        return _ConvolutionWithBf16Backward.apply(
            x, module.weight, module.bias, list(module.stride), list(module.padding), list(module.dilation),
            transposed, list(module.output_padding), module.groups)

    return forward
