"""Estimate a case's peak RAM before preprocessing it, to choose how many workers fit in memory."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import SimpleITK as sitk

#: float32 working copies alive at once: input, transposed/cropped copy, normalized, resampled (x2 for order 3).
WORKING_COPIES_INPUT = 3
WORKING_COPIES_OUTPUT = 3
FALLBACK_EXPANSION = 10  # compressed file size -> voxels*bytes, when the header cannot be read cheaply


def header_voxels_and_spacing(path: Path) -> tuple[int, list[float]] | None:
    """Voxel count and spacing (array-axis order) from an image header, without reading the pixels."""
    try:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
    except RuntimeError:
        return None
    size = reader.GetSize()
    return int(math.prod(size)), list(reader.GetSpacing())[::-1]


def case_peak_bytes(
    image_files: Sequence[Path], label_file: Path | None, target_spacing: Sequence[float] | None
) -> float:
    """Bytes one worker needs at peak for this case (an upper estimate)."""
    channels = len(image_files) + (1 if label_file is not None else 0)
    info = header_voxels_and_spacing(image_files[0])
    if info is None:
        size = sum(p.stat().st_size for p in image_files if p.exists())
        return float(max(64e6, size * FALLBACK_EXPANSION * 4 * WORKING_COPIES_INPUT))
    voxels, spacing = info
    scale = 1.0
    if target_spacing is not None and len(target_spacing) == len(spacing):
        scale = math.prod(s / t for s, t in zip(spacing, target_spacing) if t > 0)
    input_bytes = voxels * channels * 4 * WORKING_COPIES_INPUT
    output_bytes = voxels * scale * channels * 4 * WORKING_COPIES_OUTPUT
    return float(max(64e6, input_bytes + output_bytes))
