"""Build the network a plan describes (nnU-Net's ``get_network_from_plans``, minus the imports)."""

from __future__ import annotations

from typing import Any

from autoseg.errors import PlanError
from autoseg.network.ops import ALLOWED_OPS, resolve_op
from autoseg.network.plain_unet import PlainConvUNet
from autoseg.network.residual_unet import ResidualEncoderUNet
from autoseg.plans.architecture_args import checked_arch_kwargs
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
    """``arch_kwargs`` checked against ``cls``'s arguments (:func:`checked_arch_kwargs`, shared with the OpenVINO
    builder), with layer names resolved to classes."""
    checked = checked_arch_kwargs(architecture, cls.__name__)
    return {key: resolve_op(key, value) if key in ALLOWED_OPS else value
            for key, value in checked.items() if key in architecture.arch_kwargs and key != "deep_supervision"}


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
