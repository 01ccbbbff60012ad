"""AutoSeg: self-configuring medical image segmentation, compatible with nnU-Net v2."""

__version__ = "0.1.0"
