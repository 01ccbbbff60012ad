"""Build the network a plan describes (nnU-Net's ``get_network_from_plans``, minus the imports)."""

from __future__ import annotations

import inspect
from typing import Any

from autoseg.errors import PlanError
from autoseg.network.ops import ALLOWED_OPS, resolve_op
from autoseg.network.plain_unet import PlainConvUNet
from autoseg.network.residual_unet import ResidualEncoderUNet
from autoseg.plans.model import ArchitecturePlan
from autoseg.plans.network_channels import input_channels, output_channels

UNet = PlainConvUNet | ResidualEncoderUNet

__all__ = ["build_network", "input_channels", "network_class", "network_kwargs", "output_channels"]

#: ``network_class_name`` values nnU-Net writes (current and older module paths) and the bare class names.
NETWORK_CLASSES: dict[str, type[UNet]] = {
    "PlainConvUNet": PlainConvUNet,
    "dynamic_network_architectures.architectures.unet.PlainConvUNet": PlainConvUNet,
    "ResidualEncoderUNet": ResidualEncoderUNet,
    "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet": ResidualEncoderUNet,
    "dynamic_network_architectures.architectures.residual_unet.ResidualEncoderUNet": ResidualEncoderUNet,
}
#: Constructor arguments that come from the caller, not from ``arch_kwargs``.
_CALLER_ARGS = frozenset({"self", "input_channels", "num_classes", "deep_supervision"})


def network_class(network_class_name: str) -> type[UNet]:
    """Our class for a plans file's ``network_class_name``."""
    try:
        return NETWORK_CLASSES[network_class_name]
    except KeyError:
        raise PlanError(
            f"Unsupported network_class_name {network_class_name!r} in the plans. AutoSeg builds "
            f"{', '.join(NETWORK_CLASSES)}."
        ) from None


def network_kwargs(architecture: ArchitecturePlan, cls: type[UNet]) -> dict[str, Any]:
    """``arch_kwargs`` checked against ``cls``'s arguments, with layer names resolved to classes."""
    not_layers = [key for key in architecture.kw_requires_import if key not in ALLOWED_OPS]
    if not_layers:
        raise PlanError(
            f"_kw_requires_import lists {', '.join(not_layers)}, but AutoSeg only resolves the layer classes "
            f"{', '.join(ALLOWED_OPS)} (from an allow-list; it never imports names from plans)."
        )
    kwargs = {k: v for k, v in architecture.arch_kwargs.items() if k != "deep_supervision"}
    for key in ALLOWED_OPS:
        if key in kwargs:
            kwargs[key] = resolve_op(key, kwargs[key])
    parameters = {
        name: p for name, p in inspect.signature(cls.__init__).parameters.items() if name not in _CALLER_ARGS
    }
    required = [name for name, p in parameters.items() if p.default is inspect.Parameter.empty]
    problems = [f"unsupported {key}" for key in kwargs if key not in parameters]
    problems += [f"missing {key}" for key in required if key not in kwargs]
    if problems:
        raise PlanError(
            f"arch_kwargs of {architecture.network_class_name}: {', '.join(problems)}. "
            f"Accepted keys: {', '.join(parameters)} (required: {', '.join(required)})."
        )
    return kwargs


def build_network(
    architecture: ArchitecturePlan,
    num_input_channels: int,
    num_output_channels: int,
    deep_supervision: bool = False,
    *,
    initialize: bool = True,
) -> UNet:
    """The plan's U-Net with ``num_input_channels`` inputs and ``num_output_channels`` logits.

    With ``initialize`` (the default) nnU-Net's weight initialisation is applied, as for training from
    scratch; pass ``initialize=False`` when the weights are loaded right after (inference).
    """
    cls = network_class(architecture.network_class_name)
    kwargs = network_kwargs(architecture, cls)
    try:
        network = cls(
            input_channels=num_input_channels, num_classes=num_output_channels,
            deep_supervision=deep_supervision, **kwargs,
        )
    except (TypeError, ValueError) as err:
        message = f"Cannot build {architecture.class_basename} from the plans' arch_kwargs: {err}"
        raise PlanError(message) from err
    if initialize:
        network.apply(cls.initialize)
    return network
