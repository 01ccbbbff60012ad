"""nnU-Net's two U-Nets, checkpoint-compatible with dynamic_network_architectures, built from a plan."""

from autoseg.network.build import build_network, network_class
from autoseg.network.plain_unet import PlainConvUNet
from autoseg.network.residual_unet import ResidualEncoderUNet

__all__ = ["PlainConvUNet", "ResidualEncoderUNet", "build_network", "network_class"]
