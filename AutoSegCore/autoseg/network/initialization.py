"""nnU-Net's weight initialisation, applied module by module with ``network.apply(...)``."""

from __future__ import annotations

from torch import nn

from autoseg.network.blocks import BasicResidualBlock

_HE_INITIALISED = (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def init_he(module: nn.Module, neg_slope: float = 1e-2) -> None:
    """Kaiming-normal weights (leaky-ReLU gain, ``neg_slope``), zero biases, for (transposed) convolutions."""
    if isinstance(module, _HE_INITIALISED):
        nn.init.kaiming_normal_(module.weight, a=neg_slope)
        if module.bias is not None:
            nn.init.constant_(module.bias, 0)


def zero_last_norm_in_residual_branch(module: nn.Module) -> None:
    """Zero the affine parameters of the norm before each residual addition (blocks start as identity)."""
    if isinstance(module, BasicResidualBlock):
        norm = getattr(module.conv2, "norm", None)
        if norm is not None and getattr(norm, "weight", None) is not None:
            nn.init.constant_(norm.weight, 0)
            nn.init.constant_(norm.bias, 0)
