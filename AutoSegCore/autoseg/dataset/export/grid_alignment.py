"""Move voxel arrays between two grids in the same physical (LPS) space.

Arrays are in numpy/SimpleITK order ``(k, j, i)``; grids are :class:`Geometry` plus that shape. When the
source grid is the target grid shifted by whole voxels (Slicer saves a ``.seg.nrrd`` cropped to the
painted extent with the volume's axes), the voxels are copied by index, exactly; otherwise SimpleITK
resamples (nearest neighbour for labels, linear for intensities). :func:`labelmap_on_reference` puts a
``.seg.nrrd``'s segments as one label image on a reference volume's grid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import SimpleITK as sitk

from autoseg.imageio.ras_geometry import Geometry, apply_geometry, geometry_of_image, ijk_to_lps_matrix
from autoseg.imageio.segmentation_file import (
    OVERLAP_MODES,
    SegmentationFile,
    SegmentationFileError,
    combine_segments,
)

#: How far (in voxels, over the whole grid) two grids may disagree and still count as aligned.
ALIGNMENT_TOLERANCE_VOXELS = 1e-3

Shape = tuple[int, int, int]


def index_shift(
    source: Geometry, source_shape: Sequence[int], target: Geometry, target_shape: Sequence[int]
) -> tuple[int, int, int] | None:
    """The whole-voxel ``(di, dj, dk)`` with ``source_ijk = target_ijk + shift``, or None when not aligned.

    Aligned means same axes and spacing and an origin offset of whole voxels, to within
    :data:`ALIGNMENT_TOLERANCE_VOXELS` anywhere on the target grid.
    """
    target_to_source = np.linalg.inv(ijk_to_lps_matrix(source)) @ ijk_to_lps_matrix(target)
    extent = max(max(target_shape), max(source_shape), 1)
    if np.abs(target_to_source[:3, :3] - np.eye(3)).max() * extent > ALIGNMENT_TOLERANCE_VOXELS:
        return None
    offset = target_to_source[:3, 3]
    rounded = np.round(offset)
    if np.abs(offset - rounded).max() > ALIGNMENT_TOLERANCE_VOXELS:
        return None
    return int(rounded[0]), int(rounded[1]), int(rounded[2])


def copy_shifted(
    source: np.ndarray, shift: tuple[int, int, int], target_shape: Sequence[int], fill: float = 0
) -> np.ndarray:
    """The target-grid array of ``source`` (``(k, j, i)``) when ``source_ijk = target_ijk + shift``."""
    out = np.full(tuple(target_shape), fill, dtype=source.dtype)
    target_slices, source_slices = [], []
    # array axes are (k, j, i): shift components in reverse order
    for axis, delta in zip(range(3), shift[::-1]):
        start = max(0, -delta)
        stop = min(target_shape[axis], source.shape[axis] - delta)
        if stop <= start:
            return out
        target_slices.append(slice(start, stop))
        source_slices.append(slice(start + delta, stop + delta))
    out[tuple(target_slices)] = source[tuple(source_slices)]
    return out


def sitk_image(array: np.ndarray, geometry: Geometry) -> sitk.Image:
    """A SimpleITK image of a ``(k, j, i)`` array with ``geometry``."""
    image = sitk.GetImageFromArray(array)
    apply_geometry(image, geometry)
    return image


def resample_array(
    source: np.ndarray,
    source_geometry: Geometry,
    target_geometry: Geometry,
    target_shape: Sequence[int],
    interpolator: int = sitk.sitkNearestNeighbor,
    output_pixel_type: int | None = None,
) -> np.ndarray:
    """``source`` on the target grid; exact index copy for aligned grids, else SimpleITK resampling.

    Target voxels outside the source grid become 0.
    """
    shift = index_shift(source_geometry, source.shape[::-1], target_geometry, tuple(target_shape)[::-1])
    if shift is not None:
        out = copy_shifted(source, shift, target_shape)
        return out if output_pixel_type is None else out.astype(_numpy_type(output_pixel_type))
    image = sitk_image(source, source_geometry)
    resampled = resample_image(image, target_geometry, target_shape, interpolator, output_pixel_type)
    return sitk.GetArrayFromImage(resampled)


def resample_image(
    image: sitk.Image,
    target_geometry: Geometry,
    target_shape: Sequence[int],
    interpolator: int,
    output_pixel_type: int | None = None,
) -> sitk.Image:
    """SimpleITK resampling of ``image`` onto a grid given as geometry + ``(k, j, i)`` shape."""
    resampler = sitk.ResampleImageFilter()
    resampler.SetSize([int(s) for s in tuple(target_shape)[::-1]])
    resampler.SetOutputSpacing(target_geometry.spacing)
    resampler.SetOutputOrigin(target_geometry.origin)
    resampler.SetOutputDirection(target_geometry.direction)
    resampler.SetInterpolator(interpolator)
    resampler.SetDefaultPixelValue(0)
    resampler.SetOutputPixelType(image.GetPixelID() if output_pixel_type is None else output_pixel_type)
    return resampler.Execute(image)


def _numpy_type(pixel_type: int) -> np.dtype:
    return sitk.GetArrayViewFromImage(sitk.Image([1, 1, 1], pixel_type)).dtype


def world_bounds(geometry: Geometry, shape: Sequence[int], extent: Sequence[int] | None = None) -> np.ndarray:
    """``(2, 3)`` min/max LPS corners of a voxel box (voxel edges included).

    ``shape`` is ``(k, j, i)``; ``extent`` (Slicer's ``i0 i1 j0 j1 k0 k1``, inclusive) limits the box.
    """
    if extent is None:
        extent = (0, shape[2] - 1, 0, shape[1] - 1, 0, shape[0] - 1)
    lows = np.array(extent[0::2], dtype=float) - 0.5
    highs = np.array(extent[1::2], dtype=float) + 0.5
    corners = np.array(
        [
            [x, y, z, 1.0]
            for x in (lows[0], highs[0])
            for y in (lows[1], highs[1])
            for z in (lows[2], highs[2])
        ]
    )
    points = (ijk_to_lps_matrix(geometry) @ corners.T).T[:, :3]
    return np.stack([points.min(axis=0), points.max(axis=0)])


def bounds_overlap(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two ``world_bounds`` boxes intersect."""
    return bool(np.all(a[0] < b[1]) and np.all(b[0] < a[1]))


def labelmap_on_reference(
    seg: SegmentationFile,
    name_to_value: Mapping[str, int],
    reference: Any,
    overlap: str = "error",
) -> sitk.Image:
    """A ``SimpleITK.Image`` label image (uint8, uint16 above 255) on the reference volume's grid.

    ``reference``: a ``SimpleITK.Image`` or a ``(Geometry, (k, j, i) shape)`` pair. Segments are looked up
    by name ignoring case and spaces; names the file does not have are skipped, segments not named are
    left out. ``overlap="error"`` raises naming the overlapping segments and voxel counts;
    ``overlap="last"`` lets the later entry of ``name_to_value`` win. Identical or whole-voxel-shifted
    grids are copied by index; other grids are resampled nearest-neighbour.
    """
    if overlap not in OVERLAP_MODES:
        raise ValueError(f"overlap must be one of {OVERLAP_MODES}, got {overlap!r}")
    if isinstance(reference, sitk.Image):
        if reference.GetDimension() != 3:
            raise SegmentationFileError(
                f"The reference volume for {seg.path} is {reference.GetDimension()}D; "
                f"segmentations are exported onto 3D volumes."
            )
        geometry, shape = geometry_of_image(reference), tuple(reference.GetSize())[::-1]
    else:
        geometry, shape = reference[0], tuple(int(s) for s in reference[1])
    combined = combine_segments(seg, name_to_value, overlap)
    on_reference = resample_array(combined, seg.geometry, geometry, shape, sitk.sitkNearestNeighbor)
    image = sitk.GetImageFromArray(on_reference)
    if isinstance(reference, sitk.Image):
        image.CopyInformation(reference)
    else:
        apply_geometry(image, geometry)
    return image
