"""Overlay a label map on an image slice and save it as a PNG (pure numpy + Pillow).

The image is windowed to its 0.5-99.5 percentiles and shown in grey; each label value gets a fixed
colour (label 1 is always blue, 2 orange, ...; the cycle repeats after 14), alpha-blended over the grey
image. For a volume the slice shown is the one with the most foreground, counting every label present
equally (for each label the fraction of its voxels in the slice, averaged over the labels), so that a
small structure is not drowned by a large one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from autoseg.errors import VisualizationError
from autoseg.utils.files import atomic_path

#: Distinct colours (RGB) for labels 1, 2, ... (Sasha Trubetskoy's palette, as nnU-Net's overlays use).
LABEL_COLOURS: tuple[tuple[int, int, int], ...] = (
    (67, 99, 216), (245, 130, 49), (60, 180, 75), (230, 25, 75), (145, 30, 180), (255, 225, 25), (191, 239, 69),
    (66, 212, 244), (240, 50, 230), (0, 0, 117), (154, 99, 36), (128, 128, 0), (128, 0, 0), (70, 153, 144),
)
DEFAULT_ALPHA = 0.6


def label_colour(label: int) -> tuple[int, int, int]:
    """The colour of a foreground label value (1, 2, ...)."""
    return LABEL_COLOURS[(int(label) - 1) % len(LABEL_COLOURS)]


def select_slice(segmentation: np.ndarray) -> int:
    """Index along axis 0 of the slice with the most foreground (every label weighted equally).

    Without any foreground the middle slice is returned.
    """
    segmentation = np.asarray(segmentation)
    if segmentation.ndim != 3:
        raise VisualizationError(f"select_slice needs a (z, y, x) segmentation, got shape {segmentation.shape}.")
    labels = [v for v in np.unique(segmentation) if v > 0]
    if not labels:
        return segmentation.shape[0] // 2
    score = np.zeros(segmentation.shape[0])
    for label in labels:
        per_slice = (segmentation == label).sum(axis=(1, 2)).astype(np.float64)
        score += per_slice / per_slice.sum()
    return int(np.argmax(score))


def normalise_image(image: np.ndarray) -> np.ndarray:
    """Grey values 0-255 (uint8), windowed to the 0.5-99.5 percentiles of the finite values."""
    image = np.asarray(image, dtype=np.float64)
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        return np.zeros(image.shape, dtype=np.uint8)
    low, high = np.percentile(finite, (0.5, 99.5))
    if high <= low:
        low, high = float(finite.min()), float(finite.max())
    if high <= low:
        return np.zeros(image.shape, dtype=np.uint8)
    scaled = (np.nan_to_num(image, nan=low, posinf=high, neginf=low) - low) / (high - low)
    return np.round(np.clip(scaled, 0.0, 1.0) * 255).astype(np.uint8)


def overlay_rgb(image: np.ndarray, segmentation: np.ndarray, alpha: float = DEFAULT_ALPHA) -> np.ndarray:
    """A (y, x, 3) uint8 picture: the 2D ``image`` in grey with each label of ``segmentation`` blended in."""
    image, segmentation = np.asarray(image), np.asarray(segmentation)
    if image.ndim != 2 or image.shape != segmentation.shape:
        raise VisualizationError(
            f"overlay_rgb needs a 2D image and a segmentation of the same shape, got {image.shape} and "
            f"{segmentation.shape}."
        )
    if not 0.0 <= alpha <= 1.0:
        raise VisualizationError(f"The overlay opacity must be between 0 and 1, got {alpha}.")
    grey = normalise_image(image).astype(np.float64)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    for label in np.unique(segmentation):
        if label <= 0:  # background, and negative values (nnU-Net's "outside the crop" marker)
            continue
        mask = segmentation == label
        rgb[mask] = (1.0 - alpha) * rgb[mask] + alpha * np.asarray(label_colour(int(label)), dtype=np.float64)
    return np.round(rgb).astype(np.uint8)


def save_overlay_png(
    image: np.ndarray,
    segmentation: np.ndarray,
    output_file: str | Path,
    slice_index: int | None = None,
    alpha: float = DEFAULT_ALPHA,
) -> Path:
    """Save the overlay of ``segmentation`` on ``image`` (both (z, y, x), or 2D (y, x)) as a PNG.

    For volumes ``slice_index`` picks the slice along z (default: :func:`select_slice`). Written
    atomically; returns the path.
    """
    from PIL import Image

    image, segmentation = np.asarray(image), np.asarray(segmentation)
    if image.shape != segmentation.shape:
        raise VisualizationError(
            f"Image and segmentation must have the same shape to be overlaid, got {image.shape} and "
            f"{segmentation.shape} (for {output_file})."
        )
    if image.ndim == 3:
        index = select_slice(segmentation) if slice_index is None else int(slice_index)
        if not -image.shape[0] <= index < image.shape[0]:
            raise VisualizationError(f"Slice {index} does not exist: the volume has {image.shape[0]} slices.")
        image, segmentation = image[index], segmentation[index]
    elif image.ndim != 2:
        raise VisualizationError(f"save_overlay_png needs (z, y, x) or (y, x) arrays, got shape {image.shape}.")
    picture = overlay_rgb(image, segmentation, alpha)
    output = Path(output_file)
    with atomic_path(output, ".png") as tmp:
        Image.fromarray(picture).save(tmp, format="PNG")
    return output
