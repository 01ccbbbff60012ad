"""A plan's U-Net ``arch_kwargs`` read and checked without torch.

The torch network (``autoseg.network``) and the torch-free OpenVINO engine (``autoseg.inference``) accept
the same plans: the same class names, keys, defaults and per-stage / per-axis expansion of scalars, and
the same :class:`~autoseg.errors.PlanError` messages for what they reject.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from autoseg.errors import PlanError
from autoseg.plans.layer_names import ALLOWED_LAYERS, layer_name
from autoseg.plans.model import ArchitecturePlan

#: An int meaning "the same value for every stage / axis", or one value per stage / axis.
IntOrSeq = int | Sequence[int]

PLAIN_UNET = "PlainConvUNet"
RESIDUAL_UNET = "ResidualEncoderUNet"
#: ``network_class_name`` values nnU-Net writes (current and older module paths) and the bare class names.
NETWORK_CLASS_NAMES: dict[str, str] = {
    PLAIN_UNET: PLAIN_UNET,
    "dynamic_network_architectures.architectures.unet.PlainConvUNet": PLAIN_UNET,
    RESIDUAL_UNET: RESIDUAL_UNET,
    "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet": RESIDUAL_UNET,
    "dynamic_network_architectures.architectures.residual_unet.ResidualEncoderUNet": RESIDUAL_UNET,
}
#: Marks a constructor argument without default.
REQUIRED = "<required>"
_OPTIONAL_ARGS: dict[str, Any] = {
    "conv_bias": False, "norm_op": None, "norm_op_kwargs": None, "dropout_op": None, "dropout_op_kwargs": None,
    "nonlin": None, "nonlin_kwargs": None,
}
#: ``arch_kwargs`` keys of each U-Net (its constructor's arguments, in order, less input_channels,
#: num_classes and deep_supervision) with their defaults.
UNET_ARGUMENTS: dict[str, dict[str, Any]] = {
    cls: {
        **dict.fromkeys(("n_stages", "features_per_stage", "conv_op", "kernel_sizes", "strides"), REQUIRED),
        blocks_key: REQUIRED, "n_conv_per_stage_decoder": REQUIRED, **_OPTIONAL_ARGS, **extra,
    }
    for cls, blocks_key, extra in (
        (PLAIN_UNET, "n_conv_per_stage", {"nonlin_first": False}), (RESIDUAL_UNET, "n_blocks_per_stage", {})
    )
}


def _is_sequence(value: Any) -> bool:
    return isinstance(value, Iterable) and not isinstance(value, str)


def per_stage(value: Any, n_stages: int, name: str) -> list[Any]:
    """``value`` as a list of ``n_stages`` entries (a scalar is repeated)."""
    values = list(value) if _is_sequence(value) else [value] * n_stages
    if len(values) != n_stages:
        raise ValueError(f"{name} must have {n_stages} entries (one per stage), got {len(values)}: {value}.")
    return values


def per_axis(value: IntOrSeq, dim: int, name: str) -> list[int]:
    """``value`` as a list of ``dim`` ints (a scalar is repeated)."""
    values = [int(v) for v in value] if isinstance(value, Iterable) else [int(value)] * dim
    if len(values) != dim:
        raise ValueError(f"{name} must have {dim} entries (one per spatial axis), got {value!r}.")
    return values


@dataclass(frozen=True)
class Layer:
    """An optional layer of every convolution block: its class name (None: left out) and arguments."""

    name: str | None
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class UNetArchitecture:
    """Everything a plan says about its U-Net, with every per-stage and per-axis value expanded."""

    network_class: str
    conv_op: str
    features: list[int]
    kernel_sizes: list[list[int]]
    strides: list[list[int]]
    #: Convolutions (PlainConvUNet) or residual blocks (ResidualEncoderUNet) per encoder stage.
    encoder_blocks: list[int]
    #: Convolutions per decoder stage, lowest resolution first.
    decoder_convs: list[int]
    conv_bias: bool
    norm: Layer
    dropout: Layer
    nonlin: Layer
    nonlin_first: bool

    @property
    def dim(self) -> int:
        """Number of spatial axes (2 or 3)."""
        return 3 if self.conv_op == "Conv3d" else 2

    @property
    def residual(self) -> bool:
        return self.network_class == RESIDUAL_UNET


def network_class_name(name: str) -> str:
    """The class (``PlainConvUNet`` or ``ResidualEncoderUNet``) a plan's ``network_class_name`` means."""
    try:
        return NETWORK_CLASS_NAMES[name]
    except KeyError:
        raise PlanError(
            f"Unsupported network_class_name {name!r} in the plans. AutoSeg builds {', '.join(NETWORK_CLASS_NAMES)}."
        ) from None


def checked_arch_kwargs(architecture: ArchitecturePlan, network_class: str) -> dict[str, Any]:
    """``arch_kwargs`` with defaults filled in, layer classes as bare names; PlanError for unknown/missing keys."""
    not_layers = [key for key in architecture.kw_requires_import if key not in ALLOWED_LAYERS]
    if not_layers:
        raise PlanError(
            f"_kw_requires_import lists {', '.join(not_layers)}, but AutoSeg only resolves the layer classes "
            f"{', '.join(ALLOWED_LAYERS)} (from an allow-list; it never imports names from plans)."
        )
    kwargs = {k: v for k, v in architecture.arch_kwargs.items() if k != "deep_supervision"}
    for key in ALLOWED_LAYERS:
        if key in kwargs:
            kwargs[key] = layer_name(key, kwargs[key])
    parameters = UNET_ARGUMENTS[network_class]
    required = [name for name, default in parameters.items() if default is REQUIRED]
    problems = [f"unsupported {key}" for key in kwargs if key not in parameters]
    problems += [f"missing {key}" for key in required if key not in kwargs]
    if problems:
        raise PlanError(
            f"arch_kwargs of {architecture.network_class_name}: {', '.join(problems)}. "
            f"Accepted keys: {', '.join(parameters)} (required: {', '.join(required)})."
        )
    return {**parameters, **kwargs}


def _expanded(network_class: str, kw: dict[str, Any]) -> UNetArchitecture:
    """The architecture for checked ``kw``; ValueError where the torch constructor raises one."""
    n_stages = int(kw["n_stages"])
    if n_stages < 2:
        raise ValueError(f"n_stages must be >= 2 (a U-Net needs a decoder), got {n_stages}.")
    dim = 3 if kw["conv_op"] == "Conv3d" else 2
    residual = network_class == RESIDUAL_UNET
    blocks_key = "n_blocks_per_stage" if residual else "n_conv_per_stage"
    blocks = [int(n) for n in per_stage(kw[blocks_key], n_stages, blocks_key)]
    features = [int(f) for f in per_stage(kw["features_per_stage"], n_stages, "features_per_stage")]
    kernels = [per_axis(k, dim, "kernel_sizes entry") for k in per_stage(kw["kernel_sizes"], n_stages, "kernel_sizes")]
    strides = [per_axis(s, dim, "strides entry") for s in per_stage(kw["strides"], n_stages, "strides")]
    decoder = [int(n) for n in per_stage(kw["n_conv_per_stage_decoder"], n_stages - 1, "n_conv_per_stage_decoder")]
    what = "residual blocks" if residual else "convolutions"
    for n in blocks:
        if n < 1:
            raise ValueError(f"the number of {what} per stage must be >= 1, got {n}.")
    for n in decoder:
        if n < 1:
            raise ValueError(f"the number of convolutions per stage must be >= 1, got {n}.")
    return UNetArchitecture(
        network_class=network_class, conv_op=kw["conv_op"], features=features, kernel_sizes=kernels,
        strides=strides, encoder_blocks=blocks, decoder_convs=decoder, conv_bias=bool(kw["conv_bias"]),
        norm=Layer(kw["norm_op"], dict(kw["norm_op_kwargs"] or {})),
        dropout=Layer(kw["dropout_op"], dict(kw["dropout_op_kwargs"] or {})),
        nonlin=Layer(kw["nonlin"], dict(kw["nonlin_kwargs"] or {})),
        nonlin_first=bool(kw.get("nonlin_first", False)),
    )


def parse_architecture(architecture: ArchitecturePlan) -> UNetArchitecture:
    """The U-Net a plan's ``architecture`` describes, checked as ``autoseg.network.build_network`` checks it."""
    network_class = network_class_name(architecture.network_class_name)
    kwargs = checked_arch_kwargs(architecture, network_class)
    try:
        return _expanded(network_class, kwargs)
    except (TypeError, ValueError) as err:
        message = f"Cannot build {architecture.class_basename} from the plans' arch_kwargs: {err}"
        raise PlanError(message) from err
