"""Reader/writer for everything SimpleITK reads: NIfTI, NRRD, MetaImage, GIPL (and more)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

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
from autoseg.imageio.integrity import check_complete

logger = logging.getLogger(__name__)

#: How much coarser than the in-plane spacing the dummy axis of a 2D image is (as nnU-Net).
DUMMY_2D_SPACING_FACTOR = 999
#: Formats whose header names a second voxel file: written in place (a renamed header would point nowhere).
_DETACHED_HEADER_ENDINGS = (".mhd", ".nhdr")


def read_sitk_image(path: str | Path) -> sitk.Image:
    """Read an image with SimpleITK, turning its exceptions into an ImageIOError naming the file.

    Truncated NIfTI/GIPL files, which ITK reads without complaint, are detected and rejected too.
    """
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as err:
        raise ImageIOError(
            f"Cannot read image {path}: {_last_line(err)}. The file may be truncated or corrupt, or not a "
            f"format SimpleITK can read."
        ) from err
    check_complete(path, image)
    return image


def array_and_spacing(image: sitk.Image, path: str | Path) -> tuple[np.ndarray, list[float]]:
    """Channel-first array and array-axis-order spacing of one SimpleITK image."""
    array = sitk.GetArrayFromImage(image)
    spacing = list(image.GetSpacing())
    if image.GetNumberOfComponentsPerPixel() > 1:
        raise ImageIOError(
            f"{path} has {image.GetNumberOfComponentsPerPixel()} components per pixel (vector/RGB image). "
            f"Store each channel as its own file ({{case}}_0000, {{case}}_0001, ...)."
        )
    if array.ndim == 2:
        return array[None, None], [max(spacing) * DUMMY_2D_SPACING_FACTOR, *spacing[::-1]]
    if array.ndim == 3:
        return array[None], spacing[::-1]
    if array.ndim == 4:  # several channels in one file (MSD-style); the first array axis is the channel
        return array, spacing[::-1][1:]
    raise ImageIOError(
        f"{path} has {array.ndim} dimensions; AutoSeg reads 2D, 3D and 4D (multi-channel) images."
    )


class SimpleITKIO(ImageReaderWriter):
    """SimpleITK images; the spacing is reversed to array-axis order, the geometry kept for writing."""

    supported_file_endings = (".nii.gz", ".nrrd", ".mha", ".gipl", ".nii", ".nhdr", ".mhd", ".seg.nrrd")
    #: nnU-Net auto-detects SimpleITKIO for these only (it picks NibabelIO for ``.nii``).
    nnunet_file_endings = (".nii.gz", ".nrrd", ".mha", ".gipl")

    def read_images(self, image_files: Sequence[str | Path]) -> tuple[np.ndarray, ImageProperties]:
        require_files(image_files, type(self).__name__)
        arrays, spacings, origins, directions, pipeline_spacings, extras = [], [], [], [], [], []
        for path in image_files:
            image, extra = self._read(path)
            array, pipeline_spacing = array_and_spacing(image, path)
            arrays.append(array)
            spacings.append(tuple(image.GetSpacing()))
            origins.append(tuple(image.GetOrigin()))
            directions.append(tuple(image.GetDirection()))
            pipeline_spacings.append([abs(float(s)) for s in pipeline_spacing])
            extras.append(extra)
        check_same([a.shape[1:] for a in arrays], "shape", image_files)
        check_same(spacings, "spacing", image_files, close=True)
        for values, what in ((origins, "origin"), (directions, "direction")):
            if not all_same(values, close=True):
                logger.warning(
                    "The channel files %s do not share the same %s.", [str(f) for f in image_files], what
                )
        geometry = {"spacing": spacings[0], "origin": origins[0], "direction": directions[0], **extras[0]}
        properties: ImageProperties = {"sitk_stuff": geometry, "spacing": pipeline_spacings[0]}
        return stack_channels(arrays), properties

    def _read(self, path: str | Path) -> tuple[sitk.Image, dict[str, Any]]:
        """One image and the extra ``sitk_stuff`` entries it contributes."""
        return read_sitk_image(path), {}

    def write_seg(self, seg: np.ndarray, output_file: str | Path, properties: ImageProperties) -> None:
        write_sitk_image(
            seg_to_sitk_image(seg, properties["sitk_stuff"]), output_file, self.supported_file_endings
        )


class SimpleITKIOWithReorient(SimpleITKIO):
    """SimpleITK images reoriented to RAS on read and back to the file's orientation on write.

    As nnU-Net's class: ``sitk_stuff`` holds the reoriented geometry plus ``original_orientation`` (a
    three-letter code such as ``"LPS"``). 2D images are not reoriented (nnU-Net fails on them), and
    segmentations are written as uint16 when labels exceed 254 (nnU-Net always writes uint8).
    """

    orientation = "RAS"

    def _read(self, path: str | Path) -> tuple[sitk.Image, dict[str, Any]]:
        image = read_sitk_image(path)
        if image.GetDimension() == 2:
            return image, {}
        if image.GetDimension() != 3:
            raise ImageIOError(
                f"{path} is a {image.GetDimension()}D image; SimpleITKIOWithReorient reorients 3D images "
                f"only. Use SimpleITKIO for 4D (multi-channel) files."
            )
        original = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(image.GetDirection())
        try:
            reoriented = sitk.DICOMOrient(image, self.orientation)
        except RuntimeError as err:
            raise ImageIOError(f"Cannot reorient {path} to {self.orientation}: {_last_line(err)}") from err
        return reoriented, {"original_orientation": original}

    def write_seg(self, seg: np.ndarray, output_file: str | Path, properties: ImageProperties) -> None:
        image = seg_to_sitk_image(seg, properties["sitk_stuff"])
        target = properties["sitk_stuff"].get("original_orientation")
        if target and image.GetDimension() == 3:
            image = sitk.DICOMOrient(image, str(target))
        write_sitk_image(image, output_file, self.supported_file_endings)


def seg_to_sitk_image(seg: np.ndarray, geometry: dict[str, Any]) -> sitk.Image:
    """A uint8/uint16 SimpleITK image of a ``(z, y, x)`` (2D: ``(1, y, x)``) segmentation, file geometry set.

    For 4D (multi-channel) source images the spatial part of the geometry (first three axes) is used.
    """
    if seg.ndim != 3:
        raise ValueError(f"write_seg expects a 3D array (1, y, x for 2D), got shape {seg.shape}.")
    spacing, origin, direction = geometry["spacing"], geometry["origin"], geometry["direction"]
    dimension = len(spacing)
    if dimension == 2:
        seg = seg[0]
    elif dimension == 4:
        spacing, origin = spacing[:3], origin[:3]
        direction = np.asarray(direction, dtype=np.float64).reshape(4, 4)[:3, :3].ravel()
    elif dimension != 3:
        raise ValueError(f"Cannot write a segmentation for a {dimension}D image geometry.")
    image = sitk.GetImageFromArray(seg.astype(segmentation_dtype(seg), copy=False))
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetOrigin(tuple(float(o) for o in origin))
    image.SetDirection(tuple(float(d) for d in direction))
    return image


def write_sitk_image(image: sitk.Image, output_file: str | Path, endings: Sequence[str]) -> None:
    """Write compressed; atomically unless the format keeps its voxels in a second file (.mhd, .nhdr)."""
    ending = matching_ending(output_file, endings) or Path(output_file).suffix
    try:
        if ending in _DETACHED_HEADER_ENDINGS:
            Path(output_file).parent.mkdir(parents=True, exist_ok=True)
            sitk.WriteImage(image, str(output_file), True)
        else:
            write_file_atomically(output_file, lambda tmp: sitk.WriteImage(image, str(tmp), True), ending)
    except RuntimeError as err:
        raise ImageIOError(f"Cannot write segmentation {output_file}: {_last_line(err)}") from err


def _last_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[-1] if text else "unknown error"
