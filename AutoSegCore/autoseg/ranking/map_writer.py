"""Write a float32 volume (an uncertainty map) with the geometry of the input image it was computed on.

The dataset's reader/writers write segmentations (cast to uint8/uint16); these functions write float32 with
the same file geometry the reader recorded in the properties: ``sitk_stuff`` (SimpleITKIO, reoriented back
for SimpleITKIOWithReorient), ``nibabel_stuff`` (NibabelIO and NibabelIOWithReorient) or the spacing sidecar
(Tiff3DIO). 2D natural images (PNG, BMP) cannot hold float32 and are refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from autoseg.errors import AutoSegError
from autoseg.imageio.base import ImageReaderWriter, write_file_atomically
from autoseg.imageio.nibabel_io import NibabelIO, NibabelIOWithReorient, import_nibabel, save_nifti
from autoseg.imageio.simpleitk_io import SimpleITKIO, SimpleITKIOWithReorient, write_sitk_image
from autoseg.imageio.tiff3d_io import Tiff3DIO, seg_sidecar_path
from autoseg.utils.files import save_json

_SUPPORTED = (SimpleITKIO, NibabelIO, NibabelIOWithReorient, Tiff3DIO)


def check_float_maps_supported(reader_writer: ImageReaderWriter, file_ending: str) -> None:
    """Raise before any work when maps cannot be written for this dataset's image format."""
    if not isinstance(reader_writer, _SUPPORTED):
        raise AutoSegError(
            f"--save_maps: uncertainty maps are float32 images, which {type(reader_writer).__name__} "
            f"({file_ending}) cannot write. Run without --save_maps (the ranking itself works)."
        )


def write_float_map(volume: np.ndarray, path: str | Path, reader_writer: ImageReaderWriter,
                    properties: dict[str, Any]) -> None:
    """Write ``volume`` ((z, y, x), the input's array layout; (1, y, x) for 2D) as float32 at ``path``."""
    volume = np.ascontiguousarray(volume, dtype=np.float32)
    if volume.ndim != 3:
        raise ValueError(f"write_float_map expects a (z, y, x) volume, got shape {volume.shape}")
    check_float_maps_supported(reader_writer, Path(path).name)
    if isinstance(reader_writer, SimpleITKIO):
        _write_sitk(volume, path, properties["sitk_stuff"], isinstance(reader_writer, SimpleITKIOWithReorient))
    elif isinstance(reader_writer, (NibabelIO, NibabelIOWithReorient)):
        _write_nifti(volume, path, properties["nibabel_stuff"])
    else:
        _write_tiff(volume, path, properties)


def _write_sitk(volume: np.ndarray, path: str | Path, geometry: dict[str, Any], reorient: bool) -> None:
    import SimpleITK as sitk

    spacing, origin, direction = geometry["spacing"], geometry["origin"], geometry["direction"]
    dimension = len(spacing)
    if dimension == 2:
        volume = volume[0]
    elif dimension == 4:  # multi-channel 4D source: its spatial part
        spacing, origin = spacing[:3], origin[:3]
        direction = np.asarray(direction, dtype=np.float64).reshape(4, 4)[:3, :3].ravel()
    image = sitk.GetImageFromArray(volume)
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetOrigin(tuple(float(o) for o in origin))
    image.SetDirection(tuple(float(d) for d in direction))
    target = geometry.get("original_orientation")
    if reorient and target and image.GetDimension() == 3:
        image = sitk.DICOMOrient(image, str(target))
    write_sitk_image(image, path, SimpleITKIO.supported_file_endings)


def _write_nifti(volume: np.ndarray, path: str | Path, stuff: dict[str, Any]) -> None:
    nibabel = import_nibabel()
    data = volume.transpose((2, 1, 0))
    original = np.asarray(stuff["original_affine"], dtype=np.float64)
    if "reoriented_affine" not in stuff:
        save_nifti(nibabel.Nifti1Image(data, affine=original), path)
        return
    from nibabel.orientations import axcodes2ornt, io_orientation, ornt_transform

    ras = nibabel.Nifti1Image(data, affine=np.asarray(stuff["reoriented_affine"], dtype=np.float64))
    save_nifti(ras.as_reoriented(ornt_transform(axcodes2ornt("RAS"), io_orientation(original))), path)


def _write_tiff(volume: np.ndarray, path: str | Path, properties: dict[str, Any]) -> None:
    import tifffile

    def write(tmp: Path) -> None:
        tifffile.imwrite(str(tmp), volume)

    write_file_atomically(path, write, Path(path).suffix)
    save_json({"spacing": properties["spacing"]}, seg_sidecar_path(path))
