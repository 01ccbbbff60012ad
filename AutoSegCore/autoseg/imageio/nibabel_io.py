"""Readers/writers for NIfTI via nibabel, as nnU-Net's ``NibabelIO`` and ``NibabelIOWithReorient``.

nibabel indexes voxels ``(i, j, k)``; arrays are transposed to ``(k, j, i)`` and the zooms reversed so
that they match SimpleITK's axis order. The affine is kept in ``properties["nibabel_stuff"]``
(``original_affine``, plus ``reoriented_affine`` for the reorienting variant) and restored on write.
nibabel is optional: it is imported only when one of these classes is used.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from autoseg.errors import ImageIOError
from autoseg.imageio.base import (
    ImageProperties,
    ImageReaderWriter,
    all_same,
    check_same,
    matching_ending,
    require_files,
    segmentation_dtype,
    stack_channels,
    write_file_atomically,
)

logger = logging.getLogger(__name__)

_NIFTI_ENDINGS = (".nii", ".nii.gz")


def import_nibabel() -> ModuleType:
    """The nibabel module, or an ImageIOError telling how to install it."""
    try:
        import nibabel
    except ImportError as err:
        raise ImageIOError(
            "The NibabelIO/NibabelIOWithReorient readers need the optional package nibabel: "
            "pip install nibabel  (or pip install 'autoseg[nibabel]'). SimpleITKIO reads NIfTI without it."
        ) from err
    return nibabel


@contextmanager
def nifti_read_errors(path: str | Path) -> Iterator[None]:
    """Turn what nibabel raises for an unreadable file (EOFError, ImageFileError, ...) into ImageIOError."""
    try:
        yield
    except (ImageIOError, MemoryError):
        raise
    except Exception as err:
        raise ImageIOError(
            f"Cannot read NIfTI file {path}: {err}. The file may be truncated or corrupt, or not NIfTI."
        ) from err


def load_nifti(path: str | Path) -> Any:
    """The (lazily loaded) nibabel image of a 3D NIfTI file."""
    nibabel = import_nibabel()
    with nifti_read_errors(path):
        image = nibabel.load(str(path))
    if image.ndim != 3:
        raise ImageIOError(
            f"{path} has {image.ndim} dimensions (shape {image.shape}); NibabelIO reads 3D images only. "
            f"Use SimpleITKIO for 2D and 4D (multi-channel) NIfTI files."
        )
    return image


def to_sitk_axis_order(data: np.ndarray) -> np.ndarray:
    """nibabel ``(i, j, k)`` voxel data -> ``(1, k, j, i)`` as SimpleITK would return it."""
    return data.transpose((2, 1, 0))[None]


def reversed_zooms(image: Any) -> list[float]:
    """Voxel sizes in array-axis order (the reverse of nibabel's)."""
    return [float(z) for z in image.header.get_zooms()[::-1]]


def warn_if_affines_differ(affines: Sequence[np.ndarray], files: Sequence[str | Path], what: str) -> None:
    """nnU-Net only warns about channels with different affines (the data may still be aligned)."""
    if not all_same(affines, close=True):
        logger.warning("The channel files %s do not share the same %s.", [str(f) for f in files], what)


def seg_as_nibabel_data(seg: np.ndarray) -> np.ndarray:
    """``(z, y, x)`` segmentation back to nibabel's voxel order, as uint8/uint16."""
    if seg.ndim != 3:
        raise ValueError(f"write_seg expects a (z, y, x) array, got shape {seg.shape}.")
    return seg.transpose((2, 1, 0)).astype(segmentation_dtype(seg), copy=False)


def save_nifti(image: Any, output_file: str | Path) -> None:
    """Write a nibabel image atomically; the ending picks compression."""
    nibabel = import_nibabel()
    ending = matching_ending(output_file, _NIFTI_ENDINGS)
    if ending is None:
        raise ImageIOError(f"Cannot write {output_file}: NibabelIO writes .nii or .nii.gz files only.")
    try:
        write_file_atomically(output_file, lambda tmp: nibabel.save(image, str(tmp)), ending)
    except (OSError, ValueError) as err:
        raise ImageIOError(f"Cannot write segmentation {output_file}: {err}") from err


class NibabelIO(ImageReaderWriter):
    """NIfTI through nibabel, transposed to SimpleITK's axis order; no reorientation."""

    supported_file_endings = _NIFTI_ENDINGS

    @classmethod
    def is_available(cls) -> bool:
        if "nibabel" in sys.modules:
            return sys.modules["nibabel"] is not None
        return importlib.util.find_spec("nibabel") is not None

    def read_images(self, image_files: Sequence[str | Path]) -> tuple[np.ndarray, ImageProperties]:
        require_files(image_files, type(self).__name__)
        arrays, affines, spacings = [], [], []
        for path in image_files:
            image = load_nifti(path)
            with nifti_read_errors(path):
                arrays.append(to_sitk_axis_order(image.get_fdata()))
            affines.append(image.affine)
            spacings.append(reversed_zooms(image))
        check_same([a.shape for a in arrays], "shape", image_files)
        warn_if_affines_differ(affines, image_files, "affine")
        check_same(spacings, "spacing", image_files, close=True)
        properties: ImageProperties = {
            "nibabel_stuff": {"original_affine": affines[0]},
            "spacing": spacings[0],
        }
        return stack_channels(arrays), properties

    def write_seg(self, seg: np.ndarray, output_file: str | Path, properties: ImageProperties) -> None:
        nibabel = import_nibabel()
        affine = np.asarray(properties["nibabel_stuff"]["original_affine"], dtype=np.float64)
        save_nifti(nibabel.Nifti1Image(seg_as_nibabel_data(seg), affine=affine), output_file)


class NibabelIOWithReorient(ImageReaderWriter):
    """NIfTI through nibabel, reoriented to RAS on read and back to the file's orientation on write."""

    supported_file_endings = _NIFTI_ENDINGS

    @classmethod
    def is_available(cls) -> bool:
        return NibabelIO.is_available()

    def read_images(self, image_files: Sequence[str | Path]) -> tuple[np.ndarray, ImageProperties]:
        require_files(image_files, type(self).__name__)
        import_nibabel()
        from nibabel.orientations import io_orientation

        arrays, affines, reoriented_affines, spacings = [], [], [], []
        for path in image_files:
            image = load_nifti(path)
            with nifti_read_errors(path):
                reoriented = image.as_reoriented(io_orientation(image.affine))
                arrays.append(to_sitk_axis_order(reoriented.get_fdata()))
            affines.append(image.affine)
            reoriented_affines.append(reoriented.affine)
            spacings.append(reversed_zooms(reoriented))
        check_same([a.shape for a in arrays], "shape", image_files)
        warn_if_affines_differ(reoriented_affines, image_files, "reoriented affine")
        check_same(spacings, "spacing", image_files, close=True)
        properties: ImageProperties = {
            "nibabel_stuff": {"original_affine": affines[0], "reoriented_affine": reoriented_affines[0]},
            "spacing": spacings[0],
        }
        return stack_channels(arrays), properties

    def write_seg(self, seg: np.ndarray, output_file: str | Path, properties: ImageProperties) -> None:
        nibabel = import_nibabel()
        from nibabel.orientations import axcodes2ornt, io_orientation, ornt_transform

        stuff = properties["nibabel_stuff"]
        original = np.asarray(stuff["original_affine"], dtype=np.float64)
        reoriented = np.asarray(stuff["reoriented_affine"], dtype=np.float64)
        ras_image = nibabel.Nifti1Image(seg_as_nibabel_data(seg), affine=reoriented)
        image = ras_image.as_reoriented(ornt_transform(axcodes2ornt("RAS"), io_orientation(original)))
        if not np.allclose(original, image.affine):
            logger.warning(
                "Writing %s: the restored affine differs from the original.\noriginal:\n%s\nrestored:\n%s",
                output_file,
                original,
                image.affine,
            )
        save_nifti(image, output_file)
