"""OpenVINO sub-graphs computing what the torch layers of the U-Nets compute in eval mode (fp32, no torch).

Each builder takes the graph so far and numpy weights (made float32 constants) and returns the new output.
The layer arguments a plan may give (``norm_op_kwargs``, ``nonlin_kwargs``, ``dropout_op_kwargs``) are
checked against those of the torch classes: an argument torch would reject is a
:class:`~autoseg.errors.PlanError` here too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import numpy as np
import openvino as ov
import openvino.opset16 as ops

from autoseg.errors import PlanError

#: What the builders take and return: a node with one output, or one output of a node.
Tensor: TypeAlias = "ov.Node | ov.Output"

_INSTANCE_NORM = {"eps": 1e-5, "momentum": 0.1, "affine": False, "track_running_stats": False}
_BATCH_NORM = {"eps": 1e-5, "momentum": 0.1, "affine": True, "track_running_stats": True}
_DROPOUT = {"p": 0.5, "inplace": False}
#: The constructor arguments (with defaults) of every layer class a plan may name, except convolutions.
LAYER_ARGUMENTS: dict[str, dict[str, Any]] = {
    "InstanceNorm2d": _INSTANCE_NORM, "InstanceNorm3d": _INSTANCE_NORM,
    "BatchNorm2d": _BATCH_NORM, "BatchNorm3d": _BATCH_NORM,
    "Dropout": _DROPOUT, "Dropout2d": _DROPOUT, "Dropout3d": _DROPOUT,
    "LeakyReLU": {"negative_slope": 0.01, "inplace": False},
    "ReLU": {"inplace": False},
    "PReLU": {"num_parameters": 1, "init": 0.25},
    "ELU": {"alpha": 1.0, "inplace": False},
    "GELU": {"approximate": "none"},
    "SiLU": {"inplace": False},
    "Tanh": {},
    "Sigmoid": {},
}
_GELU_MODES = {"none": "erf", "tanh": "tanh"}


def layer_arguments(name: str, kwargs: Mapping[str, Any], network_class: str) -> dict[str, Any]:
    """``kwargs`` for layer class ``name`` with torch's defaults filled in; PlanError for what torch rejects."""
    defaults = LAYER_ARGUMENTS[name]
    unknown = [key for key in kwargs if key not in defaults]
    problem = ""
    if unknown:
        problem = f"{name} got unexpected keyword argument(s) {', '.join(map(repr, unknown))}"
    elif name.startswith("Dropout") and not 0 <= float(kwargs.get("p", 0.5)) <= 1:
        problem = f"dropout probability has to be between 0 and 1, but got {kwargs['p']}"
    elif name == "GELU" and kwargs.get("approximate", "none") not in _GELU_MODES:
        problem = f"GELU's approximate must be 'none' or 'tanh', got {kwargs['approximate']!r}"
    if problem:
        raise PlanError(
            f"Cannot build {network_class} from the plans' arch_kwargs: {problem} "
            f"(accepted: {', '.join(defaults) or 'none'})."
        )
    return {**defaults, **kwargs}


def constant(array: np.ndarray) -> ov.Node:
    """A float32 constant holding ``array``."""
    return ops.constant(np.ascontiguousarray(array, dtype=np.float32))


def _per_channel(vector: np.ndarray, dim: int) -> ov.Node:
    """``vector`` (one value per channel) shaped to broadcast over a (batch, channel, *spatial) tensor."""
    return constant(np.reshape(vector, (1, -1) + (1,) * dim))


def add_bias(x: Tensor, bias: np.ndarray | None, dim: int) -> Tensor:
    return x if bias is None else ops.add(x, _per_channel(bias, dim))


def convolution(x: Tensor, weight: np.ndarray, bias: np.ndarray | None, stride: Sequence[int]) -> Tensor:
    """torch's ConvNd with zero "same" padding ``(k - 1) // 2`` per side (weight: out, in, *kernel)."""
    kernel = weight.shape[2:]
    padding = [(k - 1) // 2 for k in kernel]
    ones = [1] * len(kernel)
    out = ops.convolution(x, constant(weight), list(stride), padding, padding, ones)
    return add_bias(out, bias, len(kernel))


def transposed_convolution(x: Tensor, weight: np.ndarray, bias: np.ndarray | None, stride: Sequence[int]) -> Tensor:
    """torch's ConvTransposeNd without padding (weight: in, out, *kernel)."""
    dim = len(stride)
    zeros = [0] * dim
    out = ops.convolution_backprop_data(
        x, constant(weight), list(stride), pads_begin=zeros, pads_end=zeros, dilations=[1] * dim,
        output_padding=zeros,
    )
    return add_bias(out, bias, dim)


def average_pool(x: Tensor, kernel: Sequence[int]) -> Tensor:
    """torch's AvgPoolNd(kernel, kernel): non-overlapping windows, remainder dropped."""
    zeros, ones = [0] * len(kernel), [1] * len(kernel)
    # explicit dilations: with the default (none given) OpenVINO 2026.4's CPU plugin crashes compiling AvgPool-16
    return ops.avg_pool(
        x, list(kernel), zeros, zeros, list(kernel), exclude_pad=False, rounding_type="floor", dilations=ones
    )


#: From this many voxels per channel on, instance-norm statistics are taken on the flattened map (see below);
#: smaller maps keep OpenVINO's MVN on the N-d map, which is exact enough there and faster.
FLAT_NORM_VOXELS = 2**17


def instance_norm(x: Tensor, dim: int, eps: float) -> Tensor:
    """Per sample and channel: subtract the spatial mean, divide by sqrt(biased variance + eps).

    On large maps the statistics are taken on the map flattened to (batch, channels, voxels): on the N-d map right
    after a convolution (channel-blocked layout) OpenVINO's CPU MVN summed ~10x less exactly (max error 3e-3 vs 3e-4
    on a 64x96x96 map of a real nnU-Net model), which moved large-patch logits by up to 1% of their range.
    """
    shape = (x.output(0) if isinstance(x, ov.Node) else x).get_partial_shape()
    sizes = [shape[i] for i in range(2, 2 + dim)]
    if any(not size.is_static for size in sizes) or math.prod(s.get_length() for s in sizes) < FLAT_NORM_VOXELS:
        axes = ops.constant(np.arange(2, 2 + dim, dtype=np.int64))
        return ops.mvn(x, axes, normalize_variance=True, eps=float(eps), eps_mode="inside_sqrt")
    flat = ops.reshape(x, ops.constant(np.array([0, 0, -1], dtype=np.int64)), special_zero=True)
    axes = ops.constant(np.array([2], dtype=np.int64))
    normalised = ops.mvn(flat, axes, normalize_variance=True, eps=float(eps), eps_mode="inside_sqrt")
    return ops.reshape(normalised, ops.shape_of(x), special_zero=False)


def scale_and_shift(x: Tensor, scale: np.ndarray | None, shift: np.ndarray | None, dim: int) -> Tensor:
    """``x * scale + shift`` per channel (a norm's affine parameters); None leaves that step out."""
    if scale is not None:
        x = ops.multiply(x, _per_channel(scale, dim))
    return add_bias(x, shift, dim)


def running_stats_norm(x: Tensor, mean: np.ndarray, var: np.ndarray, eps: float, weight: np.ndarray | None,
                       bias: np.ndarray | None) -> Tensor:
    """Normalisation with stored statistics (BatchNorm, or InstanceNorm tracking running stats, in eval)."""
    gamma = np.ones_like(mean) if weight is None else weight
    beta = np.zeros_like(mean) if bias is None else bias
    return ops.batch_norm_inference(x, constant(gamma), constant(beta), constant(mean), constant(var), float(eps))


def nonlinearity(x: Tensor, name: str, kwargs: Mapping[str, Any], weight: np.ndarray | None = None) -> Tensor:
    """The activation ``name`` (a torch class name) with its checked arguments; PReLU takes ``weight``."""
    if name == "LeakyReLU":
        return ops.prelu(x, constant(np.array([kwargs["negative_slope"]])))
    if name == "PReLU":
        assert weight is not None, "PReLU needs its learned weight"
        return ops.prelu(x, constant(weight))
    if name == "ELU":
        return ops.elu(x, float(kwargs["alpha"]))
    if name == "GELU":
        return ops.gelu(x, _GELU_MODES[kwargs["approximate"]])
    simple = {"ReLU": ops.relu, "SiLU": ops.swish, "Tanh": ops.tanh, "Sigmoid": ops.sigmoid}
    return simple[name](x)


def flip(x: Tensor, axes: Sequence[int]) -> Tensor:
    """``x`` reversed along ``axes`` (torch.flip): one strided slice with step -1."""
    n = len(axes)
    int64 = np.iinfo(np.int64)
    return ops.slice(
        x, np.full(n, -1, np.int64), np.full(n, int64.min, np.int64), np.full(n, -1, np.int64),
        np.asarray(axes, np.int64),
    )
