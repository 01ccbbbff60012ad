"""The layer classes a plans file may name, and the spellings accepted for them (no torch needed).

nnU-Net stores layers as dotted names (``"torch.nn.modules.conv.Conv3d"``, ``"torch.nn.LeakyReLU"``) and
imports whatever they say. AutoSeg accepts the same spellings (and the bare class name), but only for the
classes below, and never imports anything named in a plan. The torch network (``autoseg.network.ops``) and
the torch-free OpenVINO engine both resolve layer names here.
"""

from __future__ import annotations

from typing import Any

from autoseg.errors import PlanError

_ACTIVATIONS = ("LeakyReLU", "ReLU", "PReLU", "ELU", "GELU", "SiLU", "Tanh", "Sigmoid")

#: Per plan key, the layer classes it may name, each with the ``torch.nn.modules`` submodule defining it.
ALLOWED_LAYERS: dict[str, dict[str, str]] = {
    "conv_op": {"Conv2d": "conv", "Conv3d": "conv"},
    "norm_op": {
        "InstanceNorm2d": "instancenorm", "InstanceNorm3d": "instancenorm",
        "BatchNorm2d": "batchnorm", "BatchNorm3d": "batchnorm",
    },
    "dropout_op": {"Dropout": "dropout", "Dropout2d": "dropout", "Dropout3d": "dropout"},
    "nonlin": dict.fromkeys(_ACTIVATIONS, "activation"),
}
#: Keys that may be None (layer left out).
OPTIONAL_LAYERS = frozenset({"norm_op", "dropout_op", "nonlin"})


def full_name(key: str, name: str) -> str:
    """The canonical spelling of an allowed class, as nnU-Net writes it: ``torch.nn.modules.conv.Conv3d``."""
    return f"torch.nn.modules.{ALLOWED_LAYERS[key][name]}.{name}"


def _spellings(key: str, name: str) -> tuple[str, ...]:
    return (full_name(key, name), f"torch.nn.{name}", name)


_BY_SPELLING: dict[str, dict[str, str]] = {
    key: {spelling: name for name in names for spelling in _spellings(key, name)}
    for key, names in ALLOWED_LAYERS.items()
}


def unsupported_layer_error(key: str, value: Any) -> PlanError:
    """The error for an ``arch_kwargs[key]`` that names no allowed class."""
    supported = ", ".join(full_name(key, name) for name in ALLOWED_LAYERS[key])
    none_note = " or null" if key in OPTIONAL_LAYERS else ""
    return PlanError(
        f"arch_kwargs[{key!r}] = {value!r} is not a supported layer class. "
        f"Supported: {supported}{none_note}. AutoSeg does not import classes named in plans files; "
        "change the plans file to one of these."
    )


def layer_name(key: str, value: Any) -> str | None:
    """The bare class name (``"Conv3d"``) that ``arch_kwargs[key]`` names, or None for a layer left out.

    ``value`` is ``torch.nn.modules.<module>.<Name>``, ``torch.nn.<Name>`` or ``<Name>`` for an allowed class,
    None for an optional key, or an allowed class itself (recognised by its module and name, without
    importing torch). Anything else raises :class:`~autoseg.errors.PlanError`.
    """
    if key not in ALLOWED_LAYERS:
        raise KeyError(f"{key!r} is not a layer key of arch_kwargs; those are {', '.join(ALLOWED_LAYERS)}.")
    if value is None:
        if key in OPTIONAL_LAYERS:
            return None
        raise PlanError(f"arch_kwargs[{key!r}] must name a layer class, got None.")
    if isinstance(value, type):  # a class: only torch's own, under its real module
        name = value.__qualname__
        if name in ALLOWED_LAYERS[key] and f"{value.__module__}.{name}" == full_name(key, name):
            return name
    elif isinstance(value, str) and value in _BY_SPELLING[key]:
        return _BY_SPELLING[key][value]
    raise unsupported_layer_error(key, value)
