"""Oracle tests: each AutoSeg reader/writer against nnunetv2's class of the same name, on generated files.

Arrays and properties must be identical (no tolerance); written segmentations must decode to the same
voxels, pixel type and geometry.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import nibabel
import numpy as np
import pytest
import SimpleITK as sitk
import tifffile
from imageio_helpers import (
    ANISOTROPIC,
    OBLIQUE,
    ORIGIN,
    PERMUTED,
    assert_same_properties,
    intensities,
    labels,
    write_sitk,
)
from PIL import Image

from autoseg.imageio.registry import reader_writer_class_by_name, reader_writer_for_dataset_folder

pytestmark = pytest.mark.oracle


def nnunet_class(name: str) -> type:
    from nnunetv2.imageio.reader_writer_registry import recursive_find_reader_writer_by_name

    return recursive_find_reader_writer_by_name(name)


def compare_read(name: str, files: list[Path], seg: bool = False) -> tuple[np.ndarray, dict, dict]:
    """Read with both implementations; assert identical arrays and properties; return ours."""
    ours, theirs = reader_writer_class_by_name(name)(), nnunet_class(name)()
    if seg:
        our_data, our_props = ours.read_seg(files[0])
        their_data, their_props = theirs.read_seg(str(files[0]))
    else:
        our_data, our_props = ours.read_images(files)
        their_data, their_props = theirs.read_images([str(f) for f in files])
    assert our_data.dtype == their_data.dtype == np.float32
    assert our_data.shape == their_data.shape
    assert np.array_equal(our_data, their_data)
    assert_same_properties(our_props, their_props)
    return our_data, our_props, their_props


def compare_write(
    name: str,
    seg: np.ndarray,
    props: dict,
    their_props: dict,
    tmp_path: Path,
    ending: str,
    decode: Callable[[Path], tuple],
) -> None:
    """Write with both implementations; assert the files decode identically."""
    ours_out, theirs_out = tmp_path / "ours" / f"pred{ending}", tmp_path / "theirs" / f"pred{ending}"
    theirs_out.parent.mkdir(parents=True)
    reader_writer_class_by_name(name)().write_seg(seg, ours_out, props)
    nnunet_class(name)().write_seg(seg, str(theirs_out), their_props)
    ours_decoded, theirs_decoded = decode(ours_out), decode(theirs_out)
    for a, b in zip(ours_decoded, theirs_decoded):
        if isinstance(b, np.ndarray):
            assert a.dtype == b.dtype and np.array_equal(a, b)
        else:
            assert a == b


def decode_sitk(path: Path) -> tuple:
    image = sitk.ReadImage(str(path))
    return sitk.GetArrayFromImage(image), image.GetSpacing(), image.GetOrigin(), image.GetDirection()


def decode_nifti(path: Path) -> tuple:
    image = nibabel.load(str(path))
    return np.asarray(image.dataobj), image.affine, image.header.get_zooms()


def decode_tiff_stack(path: Path) -> tuple:
    return tifffile.imread(path), json.loads(path.with_suffix(".json").read_text())


def decode_natural(path: Path) -> tuple:
    if path.suffix == ".tif":
        return (tifffile.imread(path),)
    import imageio.v3 as iio

    return (iio.imread(path),)


# --- SimpleITKIO ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ending", "shape", "direction", "dtype"),
    [
        (".nii.gz", (7, 9, 11), OBLIQUE, np.int16),
        (".nrrd", (7, 9, 11), PERMUTED, np.float32),
        (".mha", (5, 6, 7), OBLIQUE, np.uint8),
        (".gipl", (5, 6, 7), None, np.int16),
    ],
)
@pytest.mark.parametrize("name", ["SimpleITKIO", "SimpleITKIOWithReorient"])
def test_simpleitk_3d(
    tmp_path: Path, name: str, ending: str, shape: tuple, direction: tuple, dtype: type
) -> None:
    files = [
        write_sitk(
            tmp_path / f"case_{c:04d}{ending}",
            intensities(shape, dtype, seed=c),
            ANISOTROPIC,
            ORIGIN,
            direction,
        )
        for c in range(2)
    ]
    data, props, their_props = compare_read(name, files)
    seg = (data[0] > 0).astype(np.uint8) + (data[1] > 10)
    label = write_sitk(tmp_path / f"label{ending}", seg.astype(np.uint8), ANISOTROPIC, ORIGIN, direction)
    if name == "SimpleITKIO":  # the reorienting reader returns the reoriented grid, not the file's
        compare_read(name, [label], seg=True)
    compare_write(name, seg, props, their_props, tmp_path, ending, decode_sitk)


@pytest.mark.parametrize("ending", [".nii.gz", ".nrrd"])
def test_simpleitk_2d(tmp_path: Path, ending: str) -> None:
    source = write_sitk(
        tmp_path / f"case_0000{ending}",
        intensities((9, 11), np.int16),
        (0.5, 0.25),
        (3.5, -1.25),
        (0.6, -0.8, 0.8, 0.6),
    )
    data, props, their_props = compare_read("SimpleITKIO", [source])
    compare_write(
        "SimpleITKIO", (data[0] > 0).astype(np.uint8), props, their_props, tmp_path, ending, decode_sitk
    )


def test_simpleitk_4d(tmp_path: Path) -> None:
    image = sitk.GetImageFromArray(intensities((3, 4, 5, 6), np.float32), isVector=False)
    image.SetSpacing((*ANISOTROPIC, 2.0))
    sitk.WriteImage(image, str(tmp_path / "case_0000.nii.gz"))
    compare_read("SimpleITKIO", [tmp_path / "case_0000.nii.gz"])


# --- NaturalImage2DIO ----------------------------------------------------------------------------------


def natural_files(tmp_path: Path) -> dict[str, Path]:
    """One file of each flavour nnU-Net's reader handles."""
    files = {}

    def pillow(name: str, array: np.ndarray, mode: str | None = None) -> None:
        image = Image.fromarray(array)
        (image.convert(mode) if mode else image).save(tmp_path / name)
        files[name] = tmp_path / name

    pillow("gray.png", labels((13, 17), 200))
    pillow("rgb.png", labels((13, 17, 3), 256))
    pillow("rgba.png", labels((13, 17, 4), 256))
    pillow("palette.png", labels((13, 17), 6), mode="P")
    pillow("sixteen.png", (labels((13, 17), 60000, dtype=np.int32)).astype(np.uint16))
    pillow("gray.bmp", labels((13, 17), 200))
    pillow("rgb.bmp", labels((13, 17, 3), 256))
    tifffile.imwrite(tmp_path / "gray.tif", labels((13, 17), 200))
    tifffile.imwrite(tmp_path / "float.tif", intensities((13, 17), np.float32))
    tifffile.imwrite(
        tmp_path / "planar.tif", labels((3, 13, 17), 256), photometric="rgb", planarconfig="separate"
    )
    files.update({n: tmp_path / n for n in ("gray.tif", "float.tif", "planar.tif")})
    return files


@pytest.mark.parametrize(
    "name",
    [
        "gray.png",
        "rgb.png",
        "rgba.png",
        "palette.png",
        "sixteen.png",
        "gray.bmp",
        "rgb.bmp",
        "gray.tif",
        "float.tif",
        "planar.tif",
    ],
)
def test_natural_images(tmp_path: Path, name: str) -> None:
    source = natural_files(tmp_path)[name]
    data, props, their_props = compare_read("NaturalImage2DIO", [source])
    if data.shape[0] == 1 and name != "float.tif":
        compare_read("NaturalImage2DIO", [source], seg=True)
        ending = source.suffix
        seg = data[0].astype(np.uint16 if ending != ".bmp" else np.uint8)
        compare_write("NaturalImage2DIO", seg, props, their_props, tmp_path, ending, decode_natural)


def test_natural_multichannel_case(tmp_path: Path) -> None:
    files = natural_files(tmp_path)
    compare_read("NaturalImage2DIO", [files["gray.png"], files["gray.bmp"]])


# --- Tiff3DIO ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("with_sidecar", [True, False])
@pytest.mark.parametrize("ending", [".tif", ".tiff"])
def test_tiff3d(tmp_path: Path, with_sidecar: bool, ending: str) -> None:
    images, labels_dir = tmp_path / "imagesTr", tmp_path / "labelsTr"
    images.mkdir()
    labels_dir.mkdir()
    files = []
    for c in range(2):
        files.append(images / f"case_{c:04d}{ending}")
        tifffile.imwrite(files[-1], intensities((6, 7, 8), np.int16, seed=c), photometric="minisblack")
    label = labels_dir / f"case{ending}"
    tifffile.imwrite(label, labels((6, 7, 8)), photometric="minisblack")
    if with_sidecar:
        for folder in (images, labels_dir):
            (folder / "case.json").write_text(json.dumps({"spacing": [3.1, 0.7, 1.3]}))
    _data, _props, _their_props = compare_read("Tiff3DIO", files)
    seg_data, seg_props, seg_their_props = compare_read("Tiff3DIO", [label], seg=True)
    compare_write(
        "Tiff3DIO",
        seg_data[0].astype(np.uint8),
        seg_props,
        seg_their_props,
        tmp_path,
        ending,
        decode_tiff_stack,
    )


# --- NibabelIO / NibabelIOWithReorient -----------------------------------------------------------------


def nifti_affine(direction: tuple) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3] = np.reshape(direction, (3, 3)) * np.asarray(ANISOTROPIC)
    matrix[:3, 3] = ORIGIN
    return matrix


@pytest.mark.parametrize("name", ["NibabelIO", "NibabelIOWithReorient"])
@pytest.mark.parametrize("direction", [PERMUTED, OBLIQUE], ids=["permuted", "oblique"])
@pytest.mark.parametrize("ending", [".nii.gz", ".nii"])
def test_nibabel(tmp_path: Path, name: str, direction: tuple, ending: str) -> None:
    files = []
    for c in range(2):
        image = nibabel.Nifti1Image(intensities((11, 9, 7), np.int16, seed=c), nifti_affine(direction))
        image.header.set_slope_inter(0.5 + c, -3.0)
        files.append(tmp_path / f"case_{c:04d}{ending}")
        nibabel.save(image, str(files[-1]))
    data, props, their_props = compare_read(name, files)
    label = tmp_path / f"label{ending}"
    nibabel.save(nibabel.Nifti1Image(labels((11, 9, 7)), nifti_affine(direction)), str(label))
    seg_data, seg_props, seg_their = compare_read(name, [label], seg=True)
    compare_write(name, seg_data[0], seg_props, seg_their, tmp_path, ending, decode_nifti)
    compare_write(
        name, (data[0] > 0).astype(np.uint8), props, their_props, tmp_path / "img", ending, decode_nifti
    )


# --- auto-detection ------------------------------------------------------------------------------------


def detection_examples(tmp_path: Path) -> list[tuple[str, Path]]:
    tifffile.imwrite(tmp_path / "flat_0000.tif", labels((20, 30)))
    tifffile.imwrite(tmp_path / "stack_0000.tif", labels((10, 20, 30)), photometric="minisblack")
    tifffile.imwrite(tmp_path / "stack_0000.tiff", labels((10, 20, 30)), photometric="minisblack")
    Image.fromarray(labels((20, 30))).save(tmp_path / "flat_0000.png")
    write_sitk(tmp_path / "vol_0000.nii.gz", labels((4, 5, 6)))
    write_sitk(tmp_path / "vol_0000.nrrd", labels((4, 5, 6)))
    nibabel.save(nibabel.Nifti1Image(labels((4, 5, 6)), np.eye(4)), str(tmp_path / "vol_0000.nii"))
    sheared = np.array([[1.0, 0.5, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    nibabel.save(nibabel.Nifti1Image(labels((4, 5, 6)), sheared), str(tmp_path / "shear_0000.nii.gz"))
    names = [
        "flat_0000.tif",
        "stack_0000.tif",
        "stack_0000.tiff",
        "flat_0000.png",
        "vol_0000.nii.gz",
        "vol_0000.nrrd",
        "vol_0000.nii",
        "shear_0000.nii.gz",
    ]
    return [("." + n.split(".", 1)[1], tmp_path / n) for n in names]


def test_auto_detection_matches_nnunet(tmp_path: Path) -> None:
    from nnunetv2.imageio.reader_writer_registry import determine_reader_writer_from_file_ending

    for ending, example in detection_examples(tmp_path):
        theirs = determine_reader_writer_from_file_ending(ending, str(example), verbose=False)
        ours = reader_writer_for_dataset_folder({"file_ending": ending}, example)
        assert type(ours).__name__ == theirs.__name__, example.name
