"""Reader/writer for 2D natural images (PNG, BMP, 2D TIFF), as nnU-Net's ``NaturalImage2DIO``.

Grayscale images become one channel, RGB(A) images three (four) channels; the array is
``(c, 1, y, x)`` and the spacing is ``(999, 1, 1)`` (these formats carry no usable spacing).
PNG/BMP are decoded with imageio's Pillow plugin and TIFF with tifffile, exactly what
``skimage.io.imread`` (used by nnU-Net) does, including its colour-axis heuristic.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from autoseg.errors import ImageIOError
from autoseg.imageio.base import (
    ImageProperties,
    ImageReaderWriter,
    check_same,
    matching_ending,
    require_files,
    segmentation_dtype,
    stack_channels,
    write_file_atomically,
)

#: nnU-Net's spacing for natural 2D images: a huge dummy first axis, unit in-plane spacing.
NATURAL_IMAGE_SPACING = (999, 1, 1)
_TIFF_ENDINGS = (".tif", ".tiff")


class NaturalImage2DIO(ImageReaderWriter):
    """2D PNG/BMP/TIFF images; RGB(A) colours become channels. No JPEG: lossy compression breaks labels."""

    supported_file_endings = (".png", ".bmp", ".tif")

    def read_images(self, image_files: Sequence[str | Path]) -> tuple[np.ndarray, ImageProperties]:
        require_files(image_files, type(self).__name__)
        images = [to_channel_first(decode_image(path), path) for path in image_files]
        # nnU-Net compares whole shapes, so a grayscale and an RGB file cannot be mixed in one case.
        check_same([a.shape for a in images], "shape (channels, 1, y, x)", image_files)
        return stack_channels(images), {"spacing": NATURAL_IMAGE_SPACING}

    def read_seg(self, seg_file: str | Path) -> tuple[np.ndarray, ImageProperties]:
        seg, properties = self.read_images([seg_file])
        if seg.shape[0] != 1:
            raise ImageIOError(
                f"Segmentation {seg_file} has {seg.shape[0]} colour channels (RGB/RGBA or palette image). "
                f"Label maps must be single-channel grayscale images whose pixel values are the labels; "
                f"convert it, e.g. with Pillow: Image.fromarray(label_array.astype('uint8')).save(path)."
            )
        return seg, properties

    def write_seg(self, seg: np.ndarray, output_file: str | Path, properties: ImageProperties) -> None:
        if seg.ndim != 3 or seg.shape[0] != 1:
            raise ValueError(
                f"{type(self).__name__}.write_seg expects a (1, y, x) array, got shape {seg.shape}."
            )
        plane = seg[0].astype(segmentation_dtype(seg), copy=False)
        ending = (
            matching_ending(output_file, (*self.supported_file_endings, ".tiff")) or Path(output_file).suffix
        )
        try:
            write_file_atomically(output_file, lambda tmp: encode_image(plane, tmp), ending)
        except (OSError, ValueError, TypeError, KeyError) as err:
            raise ImageIOError(f"Cannot write segmentation {output_file}: {err}") from err


def decode_image(path: str | Path) -> np.ndarray:
    """Pixel array of a 2D image file, as ``skimage.io.imread`` returns it (colour axis last)."""
    try:
        if matching_ending(path, _TIFF_ENDINGS):
            import tifffile

            array = np.asarray(tifffile.imread(str(path)))
        else:
            import imageio.v3 as iio

            array = np.asarray(iio.imread(str(path)))
    except MemoryError:
        raise
    except Exception as err:  # every decoder failure means: this file cannot be read as a 2D image
        raise ImageIOError(
            f"Cannot read image {path}: {err}. The file may be truncated, corrupt or not an image."
        ) from err
    if array.ndim > 2 and array.shape[-1] not in (3, 4) and array.shape[-3] in (3, 4):
        # planar (channel-first) colour TIFFs: move the colour axis last, as skimage.io does
        array = np.swapaxes(np.swapaxes(array, -1, -3), -2, -3)
    return array


def to_channel_first(array: np.ndarray, path: str | Path) -> np.ndarray:
    """``(y, x)`` grayscale or ``(y, x, 3|4)`` colour pixels to ``(c, 1, y, x)``."""
    if array.ndim == 2:
        return array[None, None]
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        return array.transpose((2, 0, 1))[:, None]
    if array.ndim == 3:
        raise ImageIOError(
            f"{path} has shape {array.shape}: a 3-dimensional natural image must be RGB or RGBA "
            f"(last axis 3 or 4). For 3D TIFF stacks use the Tiff3DIO reader "
            f"(set 'overwrite_image_reader_writer': 'Tiff3DIO' in dataset.json)."
        )
    raise ImageIOError(
        f"{path} has {array.ndim} dimensions (shape {array.shape}); NaturalImage2DIO reads single 2D "
        f"grayscale, RGB or RGBA images only."
    )


def encode_image(plane: np.ndarray, path: Path) -> None:
    """Write a 2D label plane; the format follows the file ending."""
    if matching_ending(path, _TIFF_ENDINGS):
        import tifffile

        tifffile.imwrite(str(path), plane, photometric="minisblack")
    else:
        import imageio.v3 as iio

        iio.imwrite(str(path), plane)
