"""Choosing a reader/writer: by name, by file ending (nnU-Net's order) and by probing an example file."""

from __future__ import annotations

import sys
from pathlib import Path

import nibabel
import numpy as np
import pytest
import tifffile
from imageio_helpers import labels, write_sitk
from PIL import Image

from autoseg.errors import DatasetError, ImageIOError
from autoseg.imageio.nibabel_io import NibabelIO
from autoseg.imageio.registry import (
    READER_WRITERS,
    candidate_classes,
    reader_writer_class_by_name,
    reader_writer_class_for_ending,
    reader_writer_for_dataset,
    reader_writer_for_dataset_folder,
    reader_writer_for_file,
)

NNUNET_NAMES = [
    "SimpleITKIO",
    "SimpleITKIOWithReorient",
    "NaturalImage2DIO",
    "Tiff3DIO",
    "NibabelIO",
    "NibabelIOWithReorient",
]


def names(classes: list[type]) -> list[str]:
    return [c.__name__ for c in classes]


@pytest.mark.parametrize("name", NNUNET_NAMES)
def test_every_nnunet_name_is_registered(name: str) -> None:
    assert reader_writer_class_by_name(name).__name__ == name
    assert name in READER_WRITERS


def test_unknown_name_raises() -> None:
    with pytest.raises(DatasetError, match="FancyIO"):
        reader_writer_class_by_name("FancyIO")
    with pytest.raises(DatasetError, match="FancyIO"):
        reader_writer_for_dataset({"file_ending": ".nii.gz", "overwrite_image_reader_writer": "FancyIO"})


@pytest.mark.parametrize(
    ("ending", "expected"),
    [
        (".nii.gz", ["SimpleITKIO", "NibabelIO", "NibabelIOWithReorient"]),
        (".NII.GZ", ["SimpleITKIO", "NibabelIO", "NibabelIOWithReorient"]),
        (".nii", ["NibabelIO", "NibabelIOWithReorient", "SimpleITKIO"]),
        (".tif", ["NaturalImage2DIO", "Tiff3DIO"]),
        (".tiff", ["Tiff3DIO"]),
        (".png", ["NaturalImage2DIO"]),
        (".bmp", ["NaturalImage2DIO"]),
        (".nrrd", ["SimpleITKIO"]),
        (".mha", ["SimpleITKIO"]),
        (".gipl", ["SimpleITKIO"]),
        (".seg.nrrd", ["SimpleITKIO"]),
        (".mhd", ["SimpleITKIO"]),
    ],
)
def test_candidates_follow_nnunet_order(ending: str, expected: list[str]) -> None:
    assert names(candidate_classes(ending)) == expected
    assert reader_writer_class_for_ending(ending).__name__ == expected[0]


def test_nii_falls_back_to_simpleitk_without_nibabel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(NibabelIO, "is_available", classmethod(lambda cls: False))
    assert names(candidate_classes(".nii")) == ["SimpleITKIO"]
    assert names(candidate_classes(".nii.gz")) == ["SimpleITKIO"]


def test_unknown_ending_raises() -> None:
    with pytest.raises(DatasetError, match=".jpg"):
        reader_writer_class_for_ending(".jpg")


def test_dataset_explicit_name_wins(tmp_path: Path) -> None:
    dataset = {"file_ending": ".nii.gz", "overwrite_image_reader_writer": "NibabelIOWithReorient"}
    assert type(reader_writer_for_dataset(dataset)).__name__ == "NibabelIOWithReorient"
    assert type(reader_writer_for_dataset_folder(dataset, tmp_path / "never_read.nii.gz")).__name__ == (
        "NibabelIOWithReorient"
    )
    dataset["overwrite_image_reader_writer"] = "None"
    assert type(reader_writer_for_dataset(dataset)).__name__ == "SimpleITKIO"


def test_tif_example_decides_between_2d_and_3d(tmp_path: Path) -> None:
    flat = tmp_path / "flat_0000.tif"
    tifffile.imwrite(flat, labels((20, 30)))
    stack = tmp_path / "stack_0000.tif"
    tifffile.imwrite(stack, labels((10, 20, 30)), photometric="minisblack")
    dataset = {"file_ending": ".tif"}
    assert type(reader_writer_for_dataset_folder(dataset, flat)).__name__ == "NaturalImage2DIO"
    assert type(reader_writer_for_dataset_folder(dataset, stack)).__name__ == "Tiff3DIO"
    assert type(reader_writer_for_file(flat)).__name__ == "NaturalImage2DIO"
    assert type(reader_writer_for_file(stack)).__name__ == "Tiff3DIO"


def test_nifti_example_prefers_simpleitk_then_nibabel(tmp_path: Path) -> None:
    good = write_sitk(tmp_path / "case_0000.nii.gz", labels((4, 5, 6)))
    assert type(reader_writer_for_dataset_folder({"file_ending": ".nii.gz"}, good)).__name__ == "SimpleITKIO"
    # a sheared affine: SimpleITK refuses the non-orthonormal direction, nibabel reads it
    sheared = np.array([[1.0, 0.5, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    nibabel.save(nibabel.Nifti1Image(labels((4, 5, 6)), sheared), str(tmp_path / "shear_0000.nii.gz"))
    chosen = reader_writer_for_dataset_folder({"file_ending": ".nii.gz"}, tmp_path / "shear_0000.nii.gz")
    assert type(chosen).__name__ == "NibabelIO"


def test_unreadable_example_lists_every_reader(tmp_path: Path) -> None:
    bad = tmp_path / "bad_0000.tif"
    bad.write_bytes(b"nope" * 50)
    with pytest.raises(ImageIOError) as err:
        reader_writer_for_dataset_folder({"file_ending": ".tif"}, bad)
    assert (
        "NaturalImage2DIO" in str(err.value)
        and "Tiff3DIO" in str(err.value)
        and "bad_0000.tif" in str(err.value)
    )


def test_reader_for_single_file_endings(tmp_path: Path) -> None:
    png = tmp_path / "a.png"
    Image.fromarray(labels((4, 5))).save(png)
    assert type(reader_writer_for_file(png)).__name__ == "NaturalImage2DIO"
    seg_nrrd = write_sitk(tmp_path / "b.seg.nrrd", labels((3, 4, 5)))
    assert type(reader_writer_for_file(seg_nrrd)).__name__ == "SimpleITKIO"
    assert (
        type(reader_writer_for_file(write_sitk(tmp_path / "c.nii.gz", labels((3, 4, 5))))).__name__
        == "SimpleITKIO"
    )


def test_hidden_nibabel_is_reported_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "nibabel", None)
    assert not NibabelIO.is_available()
    assert names(candidate_classes(".nii")) == ["SimpleITKIO"]
