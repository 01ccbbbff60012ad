"""``.seg.nrrd`` reading/writing against slicerio and Slicer-written files, and labels on a volume's grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import slicerio
from scipy.spatial.transform import Rotation
from slicerio.segmentation import terminology_entry_from_string

from autoseg.dataset.export.grid_alignment import labelmap_on_reference
from autoseg.imageio.ras_geometry import Geometry, geometry_of_image, ijk_to_lps_matrix, same_geometry
from autoseg.imageio.segmentation_file import (
    SegmentationFileError,
    SegmentInfo,
    SegmentNotFoundError,
    read_segmentation_file,
    read_segmentation_header,
    write_segmentation_file,
)

DATA = Path(slicerio.__file__).parent / "data"
SLICER_FILES = ["Segmentation.seg.nrrd", "SegmentationOverlapping.seg.nrrd"]
TERMINOLOGY = (
    "Segmentation category and type - 3D Slicer General Anatomy list~SCT^123037004^Anatomical "
    "Structure~SCT^10200004^Liver~^^~Anatomic codes - DICOM master list~^^~^^"
)


def oblique() -> Geometry:
    axis = np.array([2.0, -1.0, 0.5]) / np.linalg.norm([2.0, -1.0, 0.5])
    direction = Rotation.from_rotvec(np.deg2rad(28) * axis).as_matrix() @ np.diag([1.0, -1.0, 1.0])
    return Geometry(spacing=(0.7, 1.1, 3.0), origin=(15.5, -7.25, 102.0), direction=tuple(direction.ravel()))


@pytest.mark.parametrize("name", SLICER_FILES)
def test_reads_slicer_files_as_slicerio_does(name: str) -> None:
    expected = slicerio.read_segmentation(str(DATA / name))
    seg = read_segmentation_file(DATA / name)
    assert seg.path == DATA / name
    assert seg.segment_names() == [s["name"] for s in expected["segments"]]
    for info, ref in zip(seg.segments, expected["segments"], strict=True):
        assert info.label_value == ref["labelValue"] and info.layer == ref["layer"]
        assert info.segment_id == ref["id"]
        assert info.color == pytest.approx(tuple(ref["color"]))
        assert terminology_entry_from_string(info.terminology) == ref["terminology"]
    voxels = expected["voxels"]
    layers = voxels[np.newaxis] if voxels.ndim == 3 else voxels
    np.testing.assert_array_equal(seg.layers, layers.transpose(0, 3, 2, 1))
    np.testing.assert_allclose(ijk_to_lps_matrix(seg.geometry), expected["ijkToLPS"], atol=1e-9)
    assert seg.shape == voxels.shape[-3:][::-1]
    header = read_segmentation_header(DATA / name)
    assert header.segment_names() == seg.segment_names() and header.shape == seg.shape
    assert header.num_layers == seg.layers.shape[0] and header.geometry == seg.geometry
    assert header.extents[seg.segments[0].segment_id] == tuple(expected["segments"][0]["extent"])


def test_terminology_is_the_string_stored_in_the_file() -> None:
    seg = read_segmentation_file(DATA / "Segmentation.seg.nrrd")
    right_lung = seg.segment("right lung")
    assert right_lung.terminology == (
        "Segmentation category and type - 3D Slicer General Anatomy list"
        "~SCT^123037004^Anatomical Structure~SCT^39607008^Lung~SCT^24028007^Right"
        "~Anatomic codes - DICOM master list~^^~^^"
    )


def test_segment_mask_matches_slicerio_and_names_are_matched_loosely() -> None:
    expected = slicerio.read_segmentation(str(DATA / "SegmentationOverlapping.seg.nrrd"))
    seg = read_segmentation_file(DATA / "SegmentationOverlapping.seg.nrrd")
    sphere = next(s for s in expected["segments"] if s["name"] == "overlapping sphere")
    reference = expected["voxels"][sphere["layer"]] == sphere["labelValue"]
    mask = seg.segment_mask("  Overlapping   SPHERE ")
    assert mask.dtype == bool and mask.sum() > 0
    np.testing.assert_array_equal(mask, reference.transpose(2, 1, 0))
    with pytest.raises(SegmentNotFoundError) as caught:
        seg.segment_mask("liver")
    assert isinstance(caught.value, KeyError)
    message = str(caught.value)
    assert "SegmentationOverlapping.seg.nrrd" in message and "'liver'" in message and "'left lung'" in message


def test_overlapping_segments_error_names_them_and_last_wins() -> None:
    seg = read_segmentation_file(DATA / "SegmentationOverlapping.seg.nrrd")
    assert seg.layers.shape[0] == 2
    values = {name: index for index, name in enumerate(seg.segment_names(), start=1)}
    reference = (seg.geometry, seg.shape)
    shared = int((seg.segment_mask("left lung") & seg.segment_mask("overlapping sphere")).sum())
    assert shared > 0
    with pytest.raises(SegmentationFileError) as caught:
        labelmap_on_reference(seg, values, reference)
    message = str(caught.value)
    assert f"'left lung' and 'overlapping sphere' share {shared} voxel(s)" in message
    assert "SegmentationOverlapping.seg.nrrd" in message and "overlap" in message
    image = labelmap_on_reference(seg, values, reference, overlap="last")
    labels = sitk.GetArrayFromImage(image)
    assert image.GetPixelID() == sitk.sitkUInt8
    np.testing.assert_array_equal(
        labels[seg.segment_mask("overlapping sphere")], values["overlapping sphere"]
    )
    only_lung = seg.segment_mask("left lung") & ~seg.segment_mask("overlapping sphere")
    np.testing.assert_array_equal(labels[only_lung], values["left lung"])
    assert same_geometry(geometry_of_image(image), seg.geometry)


def test_single_layer_file_on_its_own_grid_is_an_exact_copy_with_new_values() -> None:
    seg = read_segmentation_file(DATA / "Segmentation.seg.nrrd")
    mapping = {"Tissue": 1, "LEFT LUNG": 300, "ribs": 2}  # another spelling; > 255 -> uint16
    image = labelmap_on_reference(seg, mapping, (seg.geometry, seg.shape))
    assert image.GetPixelID() == sitk.sitkUInt16
    labels = sitk.GetArrayFromImage(image)
    expected = np.zeros(seg.shape, dtype=np.uint16)
    for name, value in (("tissue", 1), ("left lung", 300), ("ribs", 2)):
        expected[seg.segment_mask(name)] = value
    np.testing.assert_array_equal(labels, expected)  # segments not in the mapping are left out


def test_write_is_read_back_by_slicerio_and_round_trips(tmp_path: Path) -> None:
    geometry = oblique()
    labels = np.zeros((6, 9, 8), dtype=np.int16)
    labels[1:4, 2:6, 3:7] = 1
    labels[4, 7, 1] = 2
    labels[0, 0, 0] = 9  # no segment lists 9: written as 0
    segments = [
        SegmentInfo("Liver", 1, 0, (0.86, 0.45, 0.4), TERMINOLOGY, "liver_id"),
        SegmentInfo("tumor", 2, 0, None, None, "tumor_id"),
        SegmentInfo("empty one", 3, 0, (0.1, 0.2, 0.3), None, "empty_id"),
    ]
    path = write_segmentation_file(tmp_path / "out.seg.nrrd", labels, geometry, segments)
    assert path == tmp_path / "out.seg.nrrd" and sorted(p.name for p in tmp_path.iterdir()) == [
        "out.seg.nrrd"
    ]
    theirs = slicerio.read_segmentation(str(path))
    assert [s["name"] for s in theirs["segments"]] == ["Liver", "tumor", "empty one"]
    assert [s["labelValue"] for s in theirs["segments"]] == [1, 2, 3]
    assert [s["id"] for s in theirs["segments"]] == ["liver_id", "tumor_id", "empty_id"]
    assert theirs["segments"][0]["terminology"]["type"] == ["SCT", "10200004", "Liver"]
    assert theirs["segments"][2]["extent"] == [0, -1, 0, -1, 0, -1]
    assert theirs["segments"][1]["extent"] == [1, 1, 7, 7, 4, 4]
    np.testing.assert_allclose(theirs["ijkToLPS"], ijk_to_lps_matrix(geometry), atol=1e-12)
    expected = np.where(labels == 9, 0, labels)
    np.testing.assert_array_equal(theirs["voxels"], expected.transpose(2, 1, 0))
    ours = read_segmentation_file(path)
    np.testing.assert_array_equal(ours.layers[0], expected)
    assert same_geometry(ours.geometry, geometry, tolerance=1e-12)
    assert ours.segments[0] == SegmentInfo("Liver", 1, 0, (0.86, 0.45, 0.4), TERMINOLOGY, "liver_id")
    assert ours.segments[1].color is not None and ours.segments[1].color != ours.segments[0].color
    assert not ours.segment_mask("empty one").any()


def test_write_from_value_name_mapping_with_colours(tmp_path: Path) -> None:
    labels = np.zeros((3, 4, 5), dtype=np.uint16)
    labels[1, 1, 1:3] = 300
    path = write_segmentation_file(
        tmp_path / "m.seg.nrrd", labels, oblique(), {300: "big", 4: "small"}, colors={4: (1.0, 0.0, 0.0)}
    )
    seg = read_segmentation_file(path)
    assert seg.layers.dtype == np.uint16
    assert [(s.name, s.label_value, s.layer) for s in seg.segments] == [("big", 300, 0), ("small", 4, 0)]
    assert seg.segment("small").color == (1.0, 0.0, 0.0)
    assert seg.segment_mask("big").sum() == 2


def test_write_rejects_bad_input(tmp_path: Path) -> None:
    labels = np.zeros((3, 4, 5), dtype=np.uint8)
    with pytest.raises(SegmentationFileError, match="both have value 1"):
        write_segmentation_file(
            tmp_path / "a.seg.nrrd", labels, oblique(), [SegmentInfo("a", 1, 0), SegmentInfo("b", 1, 0)]
        )
    with pytest.raises(SegmentationFileError, match="labelmap of whole numbers, got float64"):
        write_segmentation_file(tmp_path / "a.seg.nrrd", labels + 0.5, oblique(), {1: "a"})
    with pytest.raises(SegmentationFileError, match="labelmap of whole numbers"):
        write_segmentation_file(tmp_path / "a.seg.nrrd", labels[0], oblique(), {1: "a"})
    assert not list(tmp_path.iterdir())


def test_unreadable_files_name_the_file_and_the_reason(tmp_path: Path) -> None:
    with pytest.raises(SegmentationFileError, match="missing.seg.nrrd does not exist"):
        read_segmentation_file(tmp_path / "missing.seg.nrrd")
    garbage = tmp_path / "garbage.seg.nrrd"
    garbage.write_bytes(b"not a nrrd file at all")
    with pytest.raises(SegmentationFileError, match="Cannot read .*garbage.seg.nrrd"):
        read_segmentation_file(garbage)
    with pytest.raises(SegmentationFileError, match="CTChest4.nrrd is not a Slicer segmentation"):
        read_segmentation_file(DATA / "CTChest4.nrrd")
    with pytest.raises(SegmentationFileError, match="CTChest4.nrrd is not a Slicer segmentation"):
        read_segmentation_header(DATA / "CTChest4.nrrd")


def test_other_grids_land_on_the_same_voxels(tmp_path: Path) -> None:
    geometry = oblique()
    shape = (7, 9, 8)
    labels = np.zeros(shape, dtype=np.uint8)
    labels[2:5, 3:7, 1:6] = 1
    labels[6, 0, 7] = 1  # at the very corner
    reference = sitk.GetImageFromArray(np.zeros(shape, dtype=np.float32))
    reference.SetSpacing(geometry.spacing)
    reference.SetOrigin(geometry.origin)
    reference.SetDirection(geometry.direction)
    m = ijk_to_lps_matrix(geometry)
    # a finer grid (half spacing, voxel centres a quarter voxel off): needs resampling
    fine_origin = (m @ np.array([-0.25, -0.25, -0.25, 1.0]))[:3]
    fine = Geometry(tuple(s / 2 for s in geometry.spacing), tuple(fine_origin), geometry.direction)
    fine_labels = labels.repeat(2, 0).repeat(2, 1).repeat(2, 2)
    # a larger, shifted grid reaching beyond the volume (extra labels outside must be dropped)
    big_origin = (m @ np.array([-2.0, -1.0, -3.0, 1.0]))[:3]
    big = Geometry(geometry.spacing, tuple(big_origin), geometry.direction)
    big_labels = np.pad(labels, ((3, 2), (1, 4), (2, 1)))
    big_labels[0, 0, 0] = 1
    # voxel centres 0.2-0.3 voxel off: nearest neighbour (not interpolation) keeps every label
    nudged_origin = (m @ np.array([0.3, -0.2, 0.25, 1.0]))[:3]
    nudged = Geometry(geometry.spacing, tuple(nudged_origin), geometry.direction)
    # i and j axes swapped (another direction matrix): resampled, still on the same voxels
    d = np.asarray(geometry.direction).reshape(3, 3)
    swapped = Geometry(
        (geometry.spacing[1], geometry.spacing[0], geometry.spacing[2]),
        geometry.origin,
        tuple(d[:, [1, 0, 2]].ravel()),
    )
    grids = {
        "fine": (fine_labels, fine),
        "big": (big_labels, big),
        "nudged": (labels, nudged),
        "swapped": (labels.transpose(0, 2, 1), swapped),
    }
    for name, (array, grid) in grids.items():
        path = write_segmentation_file(tmp_path / f"{name}.seg.nrrd", array, grid, {1: "Liver"})
        image = labelmap_on_reference(read_segmentation_file(path), {"liver": 5}, reference)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(image), labels * 5, err_msg=name)
        assert image.GetOrigin() == reference.GetOrigin() and image.GetDirection() == reference.GetDirection()
        assert image.GetSpacing() == reference.GetSpacing()
