"""The reader/writer interface shared by every image format.

Reading returns a channel-first ``float32`` array of shape ``(c, z, y, x)`` (2D images come back as
``(c, 1, y, x)``) and a properties dict in nnU-Net's layout, so that properties written by either
tool can be used by the other::

    {"spacing": [sz, sy, sx],                 # array-axis order, used by the pipeline
     "sitk_stuff": {"spacing": (sx, sy[, sz]), "origin": (...), "direction": (...)}}  # file geometry

The file-geometry entry depends on the reader, as in nnU-Net: ``sitk_stuff`` (SimpleITKIO, plus
``original_orientation`` for SimpleITKIOWithReorient), ``nibabel_stuff`` (``original_affine`` and, when
reorienting, ``reoriented_affine``), nothing for NaturalImage2DIO (spacing ``(999, 1, 1)``) and
Tiff3DIO (spacing from the ``{case}.json`` sidecar). Writers restore the file geometry from the
properties; properties that went through JSON (lists instead of tuples/arrays) are accepted.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from autoseg.errors import ImageIOError
from autoseg.utils.files import write_atomic

ImageProperties = dict[str, Any]


class ImageReaderWriter(ABC):
    """Reads multi-channel images and segmentations, writes segmentations."""

    #: File endings this reader/writer handles (lower case, with the leading dot).
    supported_file_endings: ClassVar[tuple[str, ...]] = ()
    #: The endings nnU-Net auto-detects this class for (``None``: all of ``supported_file_endings``).
    #: Auto-detection tries these first, in nnU-Net's class order, and AutoSeg's extra endings after.
    nnunet_file_endings: ClassVar[tuple[str, ...] | None] = None

    @classmethod
    def auto_detect_endings(cls) -> tuple[str, ...]:
        """The endings nnU-Net would pick this class for."""
        return cls.supported_file_endings if cls.nnunet_file_endings is None else cls.nnunet_file_endings

    @classmethod
    def is_available(cls) -> bool:
        """Whether the optional packages this reader needs are installed."""
        return True

    @abstractmethod
    def read_images(self, image_files: Sequence[str | Path]) -> tuple[np.ndarray, ImageProperties]:
        """Read one file per channel and stack them to ``(c, z, y, x)`` float32."""

    def read_seg(self, seg_file: str | Path) -> tuple[np.ndarray, ImageProperties]:
        """Read a segmentation as a ``(1, z, y, x)`` float32 array."""
        return self.read_images([seg_file])

    @abstractmethod
    def write_seg(self, seg: np.ndarray, output_file: str | Path, properties: ImageProperties) -> None:
        """Write a ``(z, y, x)`` segmentation (``(1, y, x)`` for 2D) with the geometry in ``properties``."""


def segmentation_dtype(seg: np.ndarray) -> type[np.integer]:
    """The smallest unsigned type nnU-Net uses for exported segmentations."""
    return np.uint8 if seg.size == 0 or int(seg.max()) < 255 else np.uint16


def check_same(values: Sequence[Any], what: str, files: Sequence[str | Path], close: bool = False) -> None:
    """Raise ImageIOError unless all channel files agree on ``what`` (shape, spacing, ...).

    ``close=True`` compares numbers with ``np.allclose`` (as nnU-Net does for spacings), so that values
    differing only by float32 rounding in the file headers are accepted.
    """
    if not all_same(values, close):
        listing = "\n".join(f"  {Path(f).name}: {v}" for f, v in zip(files, values))
        raise ImageIOError(
            f"The channel files of one case do not have the same {what}:\n{listing}\n"
            f"All channels of a case must be on the same voxel grid; resample them onto one reference image."
        )


def all_same(values: Sequence[Any], close: bool = False) -> bool:
    """Whether every entry equals the first (``np.allclose`` per entry with ``close=True``)."""
    if close:
        return all(np.shape(v) == np.shape(values[0]) and np.allclose(v, values[0]) for v in values[1:])
    return all(v == values[0] for v in values[1:])


def require_files(image_files: Sequence[str | Path], reader: str) -> None:
    """Raise ImageIOError when a reader is called without any file."""
    if len(image_files) == 0:
        raise ImageIOError(f"{reader}.read_images was given no image files; pass one file per channel.")


def matching_ending(path: str | Path, endings: Sequence[str]) -> str | None:
    """The longest of ``endings`` that the file name ends with (case-insensitive), or None."""
    name = Path(path).name.lower()
    hits = [e for e in endings if name.endswith(e.lower())]
    return max(hits, key=len) if hits else None


def stack_channels(images: Sequence[np.ndarray]) -> np.ndarray:
    """Stack per-channel ``(c_i, z, y, x)`` arrays to one float32 array (cast once, as nnU-Net)."""
    return np.vstack(images, dtype=np.float32, casting="unsafe")


def write_file_atomically(path: str | Path, write: Callable[[Path], None], ending: str) -> None:
    """Write to a temporary file with the same ``ending`` (writers pick the format by it), then rename."""
    write_atomic(path, write, suffix=ending)
