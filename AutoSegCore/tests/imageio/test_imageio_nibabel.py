"""NibabelIO / NibabelIOWithReorient: axis order, affines, reorientation and errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nibabel
import numpy as np
import pytest
from imageio_helpers import ANISOTROPIC, OBLIQUE, PERMUTED, intensities, labels

from autoseg.errors import ImageIOError
from autoseg.imageio.nibabel_io import NibabelIO, NibabelIOWithReorient
from autoseg.imageio.simpleitk_io import SimpleITKIO

DIRECTIONS = {
    "identity": np.eye(3),
    "permuted": np.reshape(PERMUTED, (3, 3)),
    "oblique": np.reshape(OBLIQUE, (3, 3)),
}


def affine(direction: str, zooms: tuple = ANISOTROPIC, origin: tuple = (-12.5, 67.75, 0.125)) -> np.ndarray:
    """A float32-representable affine (NIfTI stores the sform as float32)."""
    matrix = np.eye(4)
    matrix[:3, :3] = DIRECTIONS[direction] * np.asarray(zooms)
    matrix[:3, 3] = origin
    return matrix.astype(np.float32).astype(np.float64)


def write_nifti(path: Path, data: np.ndarray, matrix: np.ndarray) -> Path:
    nibabel.save(nibabel.Nifti1Image(data, matrix), str(path))
    return path


@pytest.mark.parametrize("ending", [".nii.gz", ".nii"])
@pytest.mark.parametrize("direction", list(DIRECTIONS))
def test_round_trip(tmp_path: Path, ending: str, direction: str) -> None:
    seg = labels((11, 9, 7), seed=2)  # nibabel (i, j, k)
    source = write_nifti(tmp_path / f"case{ending}", seg, affine(direction))
    io = NibabelIO()
    data, props = io.read_images([source])
    assert data.shape == (1, 7, 9, 11) and data.dtype == np.float32
    assert np.array_equal(data[0], seg.transpose(2, 1, 0))
    original = nibabel.load(str(source))
    assert props["spacing"] == [float(z) for z in original.header.get_zooms()[::-1]]
    assert set(props) == {"nibabel_stuff", "spacing"} and set(props["nibabel_stuff"]) == {"original_affine"}
    assert np.array_equal(props["nibabel_stuff"]["original_affine"], original.affine)

    out = tmp_path / "out" / f"pred{ending}"
    io.write_seg(data[0], out, props)
    back, back_props = io.read_seg(out)
    assert np.array_equal(back, data)
    assert back_props["spacing"] == props["spacing"]
    assert np.array_equal(
        back_props["nibabel_stuff"]["original_affine"], props["nibabel_stuff"]["original_affine"]
    )
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32, np.float64])
def test_intensities_and_sitk_axis_order(tmp_path: Path, dtype: type) -> None:
    image = intensities((6, 5, 4), dtype)
    source = write_nifti(tmp_path / "case_0000.nii.gz", image, affine("permuted"))
    data, props = NibabelIO().read_images([source])
    assert np.array_equal(data[0], image.transpose(2, 1, 0).astype(np.float32))
    sitk_data, sitk_props = SimpleITKIO().read_images([source])
    assert np.array_equal(data, sitk_data)
    np.testing.assert_allclose(props["spacing"], sitk_props["spacing"], rtol=1e-6)


def test_scaled_nifti_matches_float64_scaling(tmp_path: Path) -> None:
    raw = intensities((5, 6, 7), np.int16)
    image = nibabel.Nifti1Image(raw, affine("identity"))
    image.header.set_slope_inter(0.3, -7.5)
    nibabel.save(image, str(tmp_path / "scaled.nii.gz"))
    data, _ = NibabelIO().read_images([tmp_path / "scaled.nii.gz"])
    expected = (raw.astype(np.float64) * np.float32(0.3) + np.float32(-7.5)).astype(np.float32)
    np.testing.assert_array_equal(data[0], expected.transpose(2, 1, 0))


def test_json_round_tripped_properties_can_be_written(tmp_path: Path) -> None:
    source = write_nifti(tmp_path / "case.nii.gz", labels((4, 5, 6)), affine("oblique"))
    for io in (NibabelIO(), NibabelIOWithReorient()):
        data, props = io.read_images([source])
        as_json = json.loads(json.dumps(props, default=lambda a: a.tolist()))
        io.write_seg(data[0], tmp_path / "pred.nii.gz", as_json)
        assert np.array_equal(
            nibabel.load(str(tmp_path / "pred.nii.gz")).affine, nibabel.load(str(source)).affine
        )


def test_labels_above_254_are_uint16(tmp_path: Path) -> None:
    seg = (np.arange(4 * 5 * 6).reshape(4, 5, 6) * 3).astype(np.uint16)
    source = write_nifti(tmp_path / "case.nii.gz", seg, affine("identity"))
    io = NibabelIO()
    data, props = io.read_images([source])
    io.write_seg(data[0], tmp_path / "pred.nii.gz", props)
    written = nibabel.load(str(tmp_path / "pred.nii.gz"))
    assert written.get_data_dtype() == np.uint16 and np.array_equal(np.asarray(written.dataobj), seg)


def test_multichannel_and_mismatch(tmp_path: Path) -> None:
    files = [
        write_nifti(
            tmp_path / f"case_{c:04d}.nii.gz", intensities((4, 5, 6), np.float32, seed=c), affine("identity")
        )
        for c in range(2)
    ]
    for io in (NibabelIO(), NibabelIOWithReorient()):
        assert io.read_images(files)[0].shape == (2, 6, 5, 4)
    odd = write_nifti(tmp_path / "case_0002.nii.gz", labels((4, 5, 7)), affine("identity"))
    for io in (NibabelIO(), NibabelIOWithReorient()):
        with pytest.raises(ImageIOError, match="case_0002.nii.gz"):
            io.read_images([*files, odd])
    other_zooms = write_nifti(
        tmp_path / "case_0003.nii.gz", labels((4, 5, 6)), affine("identity", (1.0, 1.0, 1.0))
    )
    with pytest.raises(ImageIOError, match="same spacing"):
        NibabelIO().read_images([files[0], other_zooms])


# --- NibabelIOWithReorient -----------------------------------------------------------------------------


@pytest.mark.parametrize("ending", [".nii.gz", ".nii"])
@pytest.mark.parametrize("direction", list(DIRECTIONS))
def test_reorient_round_trip(tmp_path: Path, ending: str, direction: str) -> None:
    seg = labels((11, 9, 7), seed=6)
    source = write_nifti(tmp_path / f"case{ending}", seg, affine(direction))
    io = NibabelIOWithReorient()
    data, props = io.read_images([source])
    stuff = props["nibabel_stuff"]
    assert set(stuff) == {"original_affine", "reoriented_affine"}
    assert nibabel.aff2axcodes(stuff["reoriented_affine"]) == ("R", "A", "S")
    canonical = nibabel.as_closest_canonical(nibabel.load(str(source)))
    assert np.array_equal(data[0], canonical.get_fdata().transpose(2, 1, 0))
    assert props["spacing"] == [float(z) for z in canonical.header.get_zooms()[::-1]]

    io.write_seg(data[0], tmp_path / f"pred{ending}", props)
    written = nibabel.load(str(tmp_path / f"pred{ending}"))
    assert np.array_equal(np.asarray(written.dataobj), seg)
    assert np.array_equal(written.affine, nibabel.load(str(source)).affine)


# --- errors --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("io_class", [NibabelIO, NibabelIOWithReorient])
@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 4, 5)])
def test_not_3d_raises(tmp_path: Path, io_class: type, shape: tuple) -> None:
    source = write_nifti(tmp_path / "odd.nii.gz", labels(shape), np.eye(4))
    with pytest.raises(ImageIOError, match=f"odd.nii.gz has {len(shape)} dimensions"):
        io_class().read_images([source])


@pytest.mark.parametrize("io_class", [NibabelIO, NibabelIOWithReorient])
@pytest.mark.parametrize("ending", [".nii.gz", ".nii"])
def test_truncated_and_garbage_files_raise(tmp_path: Path, io_class: type, ending: str) -> None:
    source = write_nifti(tmp_path / f"case{ending}", intensities((20, 20, 20), np.float32), np.eye(4))
    truncated = tmp_path / f"truncated{ending}"
    truncated.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    with pytest.raises(ImageIOError, match=f"truncated{ending}"):
        io_class().read_images([truncated])
    garbage = tmp_path / f"garbage{ending}"
    garbage.write_bytes(b"definitely not nifti" * 30)
    with pytest.raises(ImageIOError, match=f"garbage{ending}"):
        io_class().read_images([garbage])
    with pytest.raises(ImageIOError, match="missing.nii"):
        io_class().read_images([tmp_path / "missing.nii"])


def test_missing_nibabel_gives_install_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = write_nifti(tmp_path / "case.nii.gz", labels((3, 4, 5)), np.eye(4))
    monkeypatch.setitem(sys.modules, "nibabel", None)
    for io in (NibabelIO(), NibabelIOWithReorient()):
        with pytest.raises(ImageIOError, match="pip install nibabel"):
            io.read_images([source])
        with pytest.raises(ImageIOError, match="pip install nibabel"):
            io.write_seg(labels((3, 4, 5)), tmp_path / "pred.nii.gz", {"nibabel_stuff": {}})


def test_wrong_output_ending_raises(tmp_path: Path) -> None:
    source = write_nifti(tmp_path / "case.nii.gz", labels((3, 4, 5)), np.eye(4))
    data, props = NibabelIO().read_images([source])
    with pytest.raises(ImageIOError, match="pred.nrrd"):
        NibabelIO().write_seg(data[0], tmp_path / "pred.nrrd", props)
