"""SimpleITKIO / SimpleITKIOWithReorient: round trips, geometry, channels and errors."""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from imageio_helpers import (
    ANISOTROPIC,
    OBLIQUE,
    ORIGIN,
    PERMUTED,
    intensities,
    labels,
    sitk_geometry,
    write_sitk,
)

from autoseg.errors import ImageIOError
from autoseg.imageio.simpleitk_io import SimpleITKIO, SimpleITKIOWithReorient

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
ENDINGS = [".nii.gz", ".nii", ".nrrd", ".seg.nrrd", ".mha", ".nhdr", ".mhd", ".gipl"]
#: Formats that store a direction matrix (GIPL does not).
WITH_DIRECTION = {".nii.gz", ".nii", ".nrrd", ".seg.nrrd", ".mha", ".nhdr", ".mhd"}
NIFTI = {".nii.gz", ".nii"}


def assert_geometry(actual: tuple, expected: tuple, ending: str, direction_is_oblique: bool) -> None:
    """Spacing and origin exactly; direction exactly, except oblique NIfTI (float32 quaternion, see test)."""
    assert actual[0] == expected[0]
    assert actual[1] == expected[1]
    if ending in NIFTI and direction_is_oblique:
        np.testing.assert_allclose(actual[2], expected[2], rtol=0, atol=1e-6)
    else:
        assert actual[2] == expected[2]


@pytest.mark.parametrize("ending", ENDINGS)
@pytest.mark.parametrize("direction", [IDENTITY, PERMUTED, OBLIQUE], ids=["identity", "permuted", "oblique"])
def test_round_trip_3d(tmp_path: Path, ending: str, direction: tuple) -> None:
    seg = labels((7, 9, 11), seed=3)
    source = write_sitk(tmp_path / f"case{ending}", seg, ANISOTROPIC, ORIGIN, direction)
    io = SimpleITKIO()
    data, props = io.read_images([source])
    assert data.shape == (1, 7, 9, 11) and data.dtype == np.float32
    assert np.array_equal(data[0], seg)
    assert props["spacing"] == list(sitk_geometry(source)[0][::-1])
    assert set(props["sitk_stuff"]) == {"spacing", "origin", "direction"}
    assert props["sitk_stuff"]["direction"] == sitk_geometry(source)[2]
    if ending in WITH_DIRECTION:  # text headers may round the last digit, NIfTI stores float32
        np.testing.assert_allclose(props["sitk_stuff"]["direction"], direction, rtol=0, atol=1e-6)

    out = tmp_path / "out" / f"pred{ending}"
    io.write_seg(data[0], out, props)
    back, back_props = io.read_seg(out)
    assert np.array_equal(back, data)
    assert back_props["spacing"] == props["spacing"]
    stuff = props["sitk_stuff"]
    expected = (stuff["spacing"], stuff["origin"], stuff["direction"])
    assert_geometry(sitk_geometry(out), expected, ending, direction is OBLIQUE)
    assert sitk.ReadImage(str(out)).GetPixelID() == sitk.sitkUInt8


def test_oblique_nifti_direction_is_stable_to_float32_precision(tmp_path: Path) -> None:
    """NIfTI keeps the direction as a float32 quaternion: an oblique direction survives a round trip to ~1e-8.

    This is a property of the format and of ITK's NIfTI writer (nnU-Net writes the same file); every other
    geometry value and every axis-aligned direction survives exactly.
    """
    source = write_sitk(tmp_path / "case.nii.gz", labels((5, 6, 7)), ANISOTROPIC, ORIGIN, OBLIQUE)
    io = SimpleITKIO()
    data, props = io.read_images([source])
    io.write_seg(data[0], tmp_path / "pred.nii.gz", props)
    direction = sitk_geometry(tmp_path / "pred.nii.gz")[2]
    np.testing.assert_allclose(direction, props["sitk_stuff"]["direction"], rtol=0, atol=1e-7)
    np.testing.assert_allclose(direction, OBLIQUE, rtol=0, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint16, np.float32, np.float64])
def test_intensities_read_exactly(tmp_path: Path, dtype: type) -> None:
    image = intensities((4, 5, 6), dtype)
    source = write_sitk(tmp_path / "case_0000.nrrd", image, ANISOTROPIC, ORIGIN, OBLIQUE)
    data, props = SimpleITKIO().read_images([source])
    assert data.dtype == np.float32
    assert np.array_equal(data[0], image.astype(np.float32))
    seg = (data[0] > 0).astype(np.uint8)
    SimpleITKIO().write_seg(seg, tmp_path / "pred.nrrd", props)
    back, _ = SimpleITKIO().read_seg(tmp_path / "pred.nrrd")
    assert np.array_equal(back[0], seg)
    assert sitk_geometry(tmp_path / "pred.nrrd") == sitk_geometry(source)


def test_labels_above_254_are_written_as_uint16(tmp_path: Path) -> None:
    seg = np.arange(4 * 5 * 6, dtype=np.uint16).reshape(4, 5, 6) * 3
    source = write_sitk(tmp_path / "case.nii.gz", seg, ANISOTROPIC, ORIGIN, PERMUTED)
    io = SimpleITKIO()
    data, props = io.read_images([source])
    io.write_seg(data[0], tmp_path / "pred.nii.gz", props)
    assert sitk.ReadImage(str(tmp_path / "pred.nii.gz")).GetPixelID() == sitk.sitkUInt16
    assert np.array_equal(io.read_seg(tmp_path / "pred.nii.gz")[0][0], seg)


@pytest.mark.parametrize("ending", [".nii.gz", ".nrrd", ".mha"])
def test_round_trip_2d(tmp_path: Path, ending: str) -> None:
    seg = labels((9, 11), seed=5)
    direction_2d = (0.6, -0.8, 0.8, 0.6)  # a 2D rotation, exactly orthonormal
    source = write_sitk(tmp_path / f"case{ending}", seg, (0.5, 0.25), (3.5, -1.25), direction_2d)
    io = SimpleITKIO()
    data, props = io.read_images([source])
    assert data.shape == (1, 1, 9, 11)
    assert props["spacing"] == [0.5 * 999, 0.25, 0.5]
    io.write_seg(data[0], tmp_path / f"pred{ending}", props)
    out = sitk.ReadImage(str(tmp_path / f"pred{ending}"))
    assert out.GetDimension() == 2
    assert np.array_equal(sitk.GetArrayFromImage(out), seg)
    assert_geometry(sitk_geometry(tmp_path / f"pred{ending}"), sitk_geometry(source), ending, True)


def test_4d_multichannel_nifti(tmp_path: Path) -> None:
    image = intensities((3, 4, 5, 6), np.int16)
    source = tmp_path / "case_0000.nii.gz"
    img4 = sitk.GetImageFromArray(image, isVector=False)
    img4.SetSpacing((*ANISOTROPIC, 1.0))
    img4.SetOrigin((*ORIGIN, 0.0))
    matrix4 = np.eye(4)
    matrix4[:3, :3] = np.reshape(PERMUTED, (3, 3))
    img4.SetDirection(tuple(matrix4.ravel()))
    sitk.WriteImage(img4, str(source))

    io = SimpleITKIO()
    data, props = io.read_images([source])
    assert data.shape == (3, 4, 5, 6)
    assert np.array_equal(data, image.astype(np.float32))
    spacing4, origin4, direction4 = sitk_geometry(source)
    assert props["spacing"] == list(spacing4[:3][::-1])
    seg = (data[0] > 0).astype(np.uint8)
    io.write_seg(seg, tmp_path / "pred.nii.gz", props)
    back, back_props = io.read_seg(tmp_path / "pred.nii.gz")
    assert np.array_equal(back[0], seg)
    spatial_direction = tuple(np.reshape(direction4, (4, 4))[:3, :3].ravel())
    assert sitk_geometry(tmp_path / "pred.nii.gz") == (spacing4[:3], origin4[:3], spatial_direction)
    assert back_props["spacing"] == props["spacing"]


def test_multichannel_case_stacks_files(tmp_path: Path) -> None:
    files = [
        write_sitk(
            tmp_path / f"case_{c:04d}.nii.gz", intensities((4, 5, 6), np.float32, seed=c), ANISOTROPIC, ORIGIN
        )
        for c in range(3)
    ]
    data, _props = SimpleITKIO().read_images(files)
    assert data.shape == (3, 4, 5, 6)
    for c in range(3):
        assert np.array_equal(data[c], intensities((4, 5, 6), np.float32, seed=c))


def test_mismatched_channel_shapes_raise(tmp_path: Path) -> None:
    a = write_sitk(tmp_path / "case_0000.nii.gz", labels((4, 5, 6)), ANISOTROPIC)
    b = write_sitk(tmp_path / "case_0001.nii.gz", labels((4, 5, 7)), ANISOTROPIC)
    with pytest.raises(ImageIOError, match="same shape") as err:
        SimpleITKIO().read_images([a, b])
    assert "case_0001.nii.gz" in str(err.value)


def test_mismatched_channel_spacings_raise_but_rounding_is_tolerated(tmp_path: Path) -> None:
    a = write_sitk(tmp_path / "case_0000.nrrd", labels((4, 5, 6)), ANISOTROPIC)
    b = write_sitk(tmp_path / "case_0001.nrrd", labels((4, 5, 6)), (0.7, 1.3, 3.2))
    with pytest.raises(ImageIOError, match="same spacing"):
        SimpleITKIO().read_images([a, b])
    c = write_sitk(tmp_path / "case_0002.nrrd", labels((4, 5, 6)), (0.7 + 1e-9, 1.3, 3.1))
    assert SimpleITKIO().read_images([a, c])[0].shape == (2, 4, 5, 6)


def test_mismatched_origin_only_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    a = write_sitk(tmp_path / "case_0000.nrrd", labels((4, 5, 6)), ANISOTROPIC, ORIGIN)
    b = write_sitk(tmp_path / "case_0001.nrrd", labels((4, 5, 6)), ANISOTROPIC, (0.0, 0.0, 0.0))
    with caplog.at_level(logging.WARNING):
        _data, props = SimpleITKIO().read_images([a, b])
    assert "origin" in caplog.text
    assert props["sitk_stuff"]["origin"] == ORIGIN


@pytest.mark.parametrize("ending", [".nii.gz", ".nii", ".gipl", ".nrrd", ".mha"])
@pytest.mark.parametrize("keep", [0.5, 0.99])
def test_truncated_files_raise_naming_file(tmp_path: Path, ending: str, keep: float) -> None:
    """ITK reads truncated NIfTI/GIPL files without complaint (zero-filled); AutoSeg refuses them."""
    source = write_sitk(tmp_path / f"case{ending}", intensities((20, 20, 20), np.float32))
    truncated = tmp_path / f"broken{ending}"
    truncated.write_bytes(source.read_bytes()[: int(source.stat().st_size * keep)])
    with pytest.raises(ImageIOError, match=f"broken{ending}"):
        SimpleITKIO().read_images([truncated])


def test_multi_member_gzip_nifti_is_accepted(tmp_path: Path) -> None:
    """A .nii.gz of several gzip members (e.g. from bgzip) fails the quick trailer check but is complete."""
    source = write_sitk(tmp_path / "case.nii", intensities((10, 10, 10), np.int16))
    raw = source.read_bytes()
    multi = tmp_path / "multi.nii.gz"
    multi.write_bytes(gzip.compress(raw[:1000]) + gzip.compress(raw[1000:]))
    data, _ = SimpleITKIO().read_images([multi])
    assert np.array_equal(data[0], intensities((10, 10, 10), np.int16))
    truncated = tmp_path / "multi_broken.nii.gz"
    truncated.write_bytes(gzip.compress(raw[:1000]) + gzip.compress(raw[1000:1500]))
    with pytest.raises(ImageIOError, match="truncated"):
        SimpleITKIO().read_images([truncated])


@pytest.mark.parametrize("name", ["garbage.nrrd", "garbage.mha", "missing.nii.gz"])
def test_unreadable_files_raise(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    if not name.startswith("missing"):
        path.write_bytes(b"not an image at all" * 10)
    with pytest.raises(ImageIOError, match=name):
        SimpleITKIO().read_images([path])


def test_vector_image_raises(tmp_path: Path) -> None:
    rgb = write_sitk(tmp_path / "rgb.mha", labels((5, 6, 3)), vector=True)
    with pytest.raises(ImageIOError, match="components per pixel"):
        SimpleITKIO().read_images([rgb])


def test_no_files_raise() -> None:
    with pytest.raises(ImageIOError, match="no image files"):
        SimpleITKIO().read_images([])


def test_write_leaves_no_temporary_files(tmp_path: Path) -> None:
    source = write_sitk(tmp_path / "case.nii.gz", labels((3, 4, 5)))
    data, props = SimpleITKIO().read_images([source])
    out_dir = tmp_path / "new" / "folder"
    SimpleITKIO().write_seg(data[0], out_dir / "pred.nii.gz", props)
    assert sorted(p.name for p in out_dir.iterdir()) == ["pred.nii.gz"]


def test_write_error_raises_image_io_error(tmp_path: Path) -> None:
    source = write_sitk(tmp_path / "case.nii.gz", labels((3, 4, 5)))
    data, props = SimpleITKIO().read_images([source])
    with pytest.raises(ImageIOError, match="pred.xyz"):
        SimpleITKIO().write_seg(data[0], tmp_path / "pred.xyz", props)


# --- SimpleITKIOWithReorient -------------------------------------------------------------------------


@pytest.mark.parametrize("ending", [".nii.gz", ".nrrd", ".mha"])
@pytest.mark.parametrize("direction", [IDENTITY, PERMUTED, OBLIQUE], ids=["identity", "permuted", "oblique"])
def test_reorient_round_trip(tmp_path: Path, ending: str, direction: tuple) -> None:
    seg = labels((7, 9, 11), seed=4)
    source = write_sitk(tmp_path / f"case{ending}", seg, ANISOTROPIC, ORIGIN, direction)
    io = SimpleITKIOWithReorient()
    data, props = io.read_images([source])
    stuff = props["sitk_stuff"]
    assert set(stuff) == {"spacing", "origin", "direction", "original_orientation"}
    original = sitk.ReadImage(str(source))
    assert stuff["original_orientation"] == sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(
        original.GetDirection()
    )
    assert sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(stuff["direction"]) == "RAS"
    assert np.array_equal(data[0], sitk.GetArrayFromImage(sitk.DICOMOrient(original, "RAS")))

    io.write_seg(data[0], tmp_path / f"pred{ending}", props)
    written = sitk.ReadImage(str(tmp_path / f"pred{ending}"))
    assert np.array_equal(sitk.GetArrayFromImage(written), seg)
    assert written.GetSpacing() == original.GetSpacing()
    # flipping an axis moves the origin to the other corner and back: exact up to one rounding step
    np.testing.assert_allclose(written.GetOrigin(), original.GetOrigin(), rtol=0, atol=1e-12)
    if ending in NIFTI and direction is OBLIQUE:
        np.testing.assert_allclose(written.GetDirection(), original.GetDirection(), rtol=0, atol=1e-7)
    else:
        assert written.GetDirection() == original.GetDirection()


def test_reorient_2d_is_left_alone_and_4d_raises(tmp_path: Path) -> None:
    io = SimpleITKIOWithReorient()
    flat = write_sitk(tmp_path / "flat.nii.gz", labels((5, 6)), (0.5, 0.25))
    data, props = io.read_images([flat])
    assert data.shape == (1, 1, 5, 6) and "original_orientation" not in props["sitk_stuff"]
    io.write_seg(data[0], tmp_path / "flat_pred.nii.gz", props)
    assert sitk_geometry(tmp_path / "flat_pred.nii.gz") == sitk_geometry(flat)

    four = tmp_path / "four.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(labels((2, 3, 4, 5)), isVector=False), str(four))
    with pytest.raises(ImageIOError, match="4D"):
        io.read_images([four])


def test_reorient_writes_uint16_for_many_labels(tmp_path: Path) -> None:
    seg = (np.arange(4 * 5 * 6).reshape(4, 5, 6) * 2).astype(np.uint16)
    source = write_sitk(tmp_path / "case.nrrd", seg, ANISOTROPIC, ORIGIN, PERMUTED)
    io = SimpleITKIOWithReorient()
    data, props = io.read_images([source])
    io.write_seg(data[0], tmp_path / "pred.nrrd", props)
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "pred.nrrd"))), seg)


@pytest.mark.parametrize("io_class", [SimpleITKIO, SimpleITKIOWithReorient])
def test_json_round_tripped_properties_can_be_written(tmp_path: Path, io_class: type) -> None:
    """Preprocessing stores properties as JSON (tuples become lists); writing must still restore geometry."""
    source = write_sitk(tmp_path / "case.nrrd", labels((4, 5, 6)), ANISOTROPIC, ORIGIN, OBLIQUE)
    io = io_class()
    data, props = io.read_images([source])
    io.write_seg(data[0], tmp_path / "pred.nrrd", json.loads(json.dumps(props)))
    written = sitk_geometry(tmp_path / "pred.nrrd")
    assert written[0] == sitk_geometry(source)[0] and written[2] == sitk_geometry(source)[2]
    np.testing.assert_allclose(written[1], sitk_geometry(source)[1], rtol=0, atol=1e-12)
