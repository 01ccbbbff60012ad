"""Float32 uncertainty maps written with each reader/writer read back with the input's geometry and values."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from autoseg.errors import AutoSegError
from autoseg.imageio.natural_image_io import NaturalImage2DIO
from autoseg.imageio.nibabel_io import NibabelIO, NibabelIOWithReorient
from autoseg.imageio.simpleitk_io import SimpleITKIO, SimpleITKIOWithReorient
from autoseg.imageio.tiff3d_io import Tiff3DIO
from autoseg.ranking.map_writer import check_float_maps_supported, write_float_map

SHAPE = (5, 6, 7)  # z, y, x
DIRECTION = (0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0)  # a permutation: reorienting readers really reorient


def _input(tmp_path, ending: str) -> tuple:
    values = np.random.RandomState(0).uniform(0, 1, SHAPE).astype(np.float32)
    image = sitk.GetImageFromArray(values)
    image.SetSpacing((0.8, 1.3, 2.5))
    image.SetOrigin((4.0, -2.5, 11.0))
    image.SetDirection(DIRECTION)
    path = tmp_path / f"case_0000{ending}"
    sitk.WriteImage(image, str(path))
    return path, values


@pytest.mark.parametrize("reader_writer", [SimpleITKIO, SimpleITKIOWithReorient, NibabelIO, NibabelIOWithReorient])
def test_maps_keep_values_and_geometry(tmp_path, reader_writer):
    path, _ = _input(tmp_path, ".nii.gz")
    io = reader_writer()
    data, properties = io.read_images([path])
    entropy = data[0] / 2  # in the reader's array layout, as the ranking computes it
    target = tmp_path / "case_uncertainty.nii.gz"
    write_float_map(entropy, target, io, properties)
    written, _ = io.read_images([target])
    np.testing.assert_array_equal(written[0], entropy)  # float32, not cast to a label type
    source, result = sitk.ReadImage(str(path)), sitk.ReadImage(str(target))
    assert result.GetPixelID() == sitk.sitkFloat32
    assert result.GetSpacing() == pytest.approx(source.GetSpacing())
    assert result.GetOrigin() == pytest.approx(source.GetOrigin())
    np.testing.assert_allclose(result.GetDirection(), source.GetDirection(), atol=1e-7)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(result), sitk.GetArrayFromImage(source) / 2)


def test_tiff_maps_get_a_spacing_sidecar(tmp_path):
    import tifffile

    values = np.random.RandomState(1).uniform(0, 1, SHAPE).astype(np.float32)
    tifffile.imwrite(str(tmp_path / "case_0000.tif"), values)
    (tmp_path / "case.json").write_text(json.dumps({"spacing": [2.5, 1.0, 0.5]}))
    io = Tiff3DIO()
    data, properties = io.read_images([tmp_path / "case_0000.tif"])
    write_float_map(data[0], tmp_path / "case_uncertainty.tif", io, properties)
    written, written_properties = io.read_seg(tmp_path / "case_uncertainty.tif")
    np.testing.assert_array_equal(written[0], values)
    assert written_properties["spacing"] == [2.5, 1.0, 0.5]


def test_natural_images_cannot_hold_float_maps():
    with pytest.raises(AutoSegError, match="NaturalImage2DIO.*Run without --save_maps"):
        check_float_maps_supported(NaturalImage2DIO(), ".png")
