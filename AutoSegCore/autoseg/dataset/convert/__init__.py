"""Converters from other dataset layouts (Medical Segmentation Decathlon, nnU-Net v1) to nnU-Net v2."""
