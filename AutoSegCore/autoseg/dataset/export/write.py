"""Write one exported case: its channel volumes to ``imagesTr`` and its label image to ``labelsTr``.

Channel 0 is written with its voxels and geometry unchanged. Other channels on the same grid get channel
0's geometry stamped on (to remove header rounding differences); on another grid they are copied by
index when the grids are only shifted by whole voxels, else resampled linearly onto channel 0's grid.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from autoseg.dataset.export.annotated_slices import AnnotatedSlices, apply_ignore
from autoseg.dataset.export.cases import ExportCase
from autoseg.dataset.export.grid_alignment import (
    copy_shifted,
    index_shift,
    labelmap_on_reference,
    resample_image,
)
from autoseg.errors import ImageIOError
from autoseg.imageio.base import write_file_atomically
from autoseg.imageio.ras_geometry import geometry_of_image
from autoseg.imageio.segmentation_file import read_segmentation_file
from autoseg.imageio.simpleitk_io import read_sitk_image


def image_path(folder: Path, case_id: str, channel: int, file_ending: str) -> Path:
    return folder / "imagesTr" / f"{case_id}_{channel:04d}{file_ending}"


def label_path(folder: Path, case_id: str, file_ending: str) -> Path:
    return folder / "labelsTr" / f"{case_id}{file_ending}"


def write_case(
    case: ExportCase,
    folder: Path,
    file_ending: str,
    name_to_value: Mapping[str, int],
    overlap: str,
    annotated: AnnotatedSlices | None = None,
    ignore_label: int | None = None,
) -> None:
    """Write the channels, then the label image (a case is complete once its label file exists).

    A partially annotated case (``annotated`` and ``ignore_label`` given) gets ``ignore_label`` on every voxel
    outside its annotated slices.
    """
    reference = read_sitk_image(case.images[0])
    label = labelmap_on_reference(
        read_segmentation_file(case.segmentation), name_to_value, reference, overlap
    )
    if annotated is not None:
        if ignore_label is None:
            raise ValueError(f"case {case.case_id!r} is partially annotated but the dataset has no ignore label")
        partial = sitk.GetImageFromArray(apply_ignore(sitk.GetArrayViewFromImage(label), annotated, ignore_label))
        partial.CopyInformation(label)
        label = partial
    targets = [image_path(folder, case.case_id, c, file_ending) for c in range(len(case.images))]
    write_channels_on_reference(case.images, targets, file_ending, reference)
    write_image(label, label_path(folder, case.case_id, file_ending), file_ending)


def write_channels_on_reference(
    images: list[Path], targets: list[Path], file_ending: str, reference: sitk.Image | None = None
) -> None:
    """Write channel volumes to ``targets``: channel 0 unchanged, the others on channel 0's voxel grid.

    Used for training cases (above) and for the Slicer Inference module's input volumes alike.
    """
    reference = reference if reference is not None else read_sitk_image(images[0])
    write_image(reference, targets[0], file_ending)
    for path, target in zip(images[1:], targets[1:], strict=True):
        write_image(channel_on_reference(read_sitk_image(path), reference), target, file_ending)


def channel_on_reference(image: sitk.Image, reference: sitk.Image) -> sitk.Image:
    """``image`` on ``reference``'s voxel grid (exact copy when aligned, else linear resampling)."""
    shape = tuple(reference.GetSize())[::-1]
    shift = index_shift(
        geometry_of_image(image), image.GetSize(), geometry_of_image(reference), reference.GetSize()
    )
    if shift is not None:
        if shift == (0, 0, 0) and image.GetSize() == reference.GetSize():
            out = sitk.Image(image)
        else:
            out = sitk.GetImageFromArray(copy_shifted(sitk.GetArrayViewFromImage(image), shift, shape))
        out.CopyInformation(reference)
        return out
    floating = image.GetPixelID() in (sitk.sitkFloat32, sitk.sitkFloat64)
    out = resample_image(
        image, geometry_of_image(reference), shape, sitk.sitkLinear, None if floating else sitk.sitkFloat32
    )
    out.CopyInformation(reference)  # the exact header values of channel 0
    return out


def write_image(image: sitk.Image, path: Path, file_ending: str) -> None:
    """Write compressed and atomically; ImageIOError naming the file on failure."""
    try:
        write_file_atomically(path, lambda tmp: sitk.WriteImage(image, str(tmp), True), file_ending)
    except RuntimeError as err:
        detail = str(err).strip().splitlines()[-1] if str(err).strip() else "unknown error"
        raise ImageIOError(f"Cannot write {path}: {detail}") from err


def volume_information(path: Path) -> tuple[dict, str | None]:
    """Header facts of a volume (size in (i, j, k), geometry) without its voxels, or why it is unusable."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as err:
        detail = str(err).strip().splitlines()[-1] if str(err).strip() else "unknown error"
        return {}, f"cannot read {path}: {detail}"
    if reader.GetDimension() != 3:
        return {}, f"{path} is a {reader.GetDimension()}D image; export needs 3D volumes"
    if reader.GetNumberOfComponents() != 1:
        return {}, (
            f"{path} has {reader.GetNumberOfComponents()} components per voxel (vector/RGB); export needs "
            f"scalar volumes, one file per channel"
        )
    info = {
        "size": tuple(reader.GetSize()),
        "spacing": reader.GetSpacing(),
        "origin": reader.GetOrigin(),
        "direction": reader.GetDirection(),
    }
    if not np.all(np.isfinite(info["spacing"])) or min(info["spacing"]) <= 0:
        return {}, f"{path} has spacing {info['spacing']}; spacings must be positive"
    return info, None
