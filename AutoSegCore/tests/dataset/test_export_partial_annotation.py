"""Export of partially annotated cases: annotated slices (sidecar or flag), nnU-Net's ignore label, problems."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import slicerio
from export_helpers import SHAPE, folder_hashes, oblique_geometry, painted_labels, write_case

from autoseg.cli.main import main
from autoseg.dataset.export.annotated_slices import (
    AnnotatedSlices,
    AnnotatedSlicesError,
    apply_ignore,
    format_slices,
    parse_request,
    read_sidecar,
    sidecar_path,
    write_sidecar,
)
from autoseg.dataset.export.segmentations import find_cases_in_folder, plan_export, write_export
from autoseg.dataset.integrity.verify import verify_dataset_integrity
from autoseg.errors import DatasetError
from autoseg.paths import Workspace

NAMES = {1: "Liver", 2: "Tumor"}
SLICERIO_DATA = Path(slicerio.__file__).parent / "data"


def plan(folder: Path, raw: Path, dataset: str = "7", **kwargs):
    return plan_export(find_cases_in_folder(folder), raw, dataset, kwargs.pop("name", "Partial"), ["CT"], **kwargs)


def export(folder: Path, raw: Path, dataset: str = "7", **kwargs) -> Path:
    result = plan(folder, raw, dataset, **kwargs)
    assert result.problems == []
    write_export(result)
    return result.dataset_folder


def read(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def geometry_of(image: sitk.Image) -> tuple:
    return image.GetSpacing(), image.GetOrigin(), image.GetDirection()


def labels_json(folder: Path) -> dict:
    return json.loads((folder / "dataset.json").read_text())["labels"]


def assert_verified(folder: Path) -> None:
    report = verify_dataset_integrity(folder, num_processes=0)
    assert report.ok, report.format()


def test_slice_specs_sidecar_round_trip_and_ignore_overflow(tmp_path: Path) -> None:
    assert format_slices([7, 1, 2, 3, 3, 9, 10]) == "1-3,7,9-10"
    request = parse_request("k: 10-12, 4 ,11")
    assert (request.axis, request.slices, request.describe()) == ("K", (4, 10, 11, 12), "K:4,10-12")
    assert parse_request("I:auto").is_auto
    seg = tmp_path / "case 1.seg.nrrd"
    assert sidecar_path(seg) == tmp_path / "case 1.annotated_slices.json"
    written = write_sidecar(seg, "j", [5, 3, 4, 9])
    assert json.loads(written.read_text()) == {"axis": "J", "slices": ["3-5", 9]}
    assert read_sidecar(written).slices == (3, 4, 5, 9)
    assert read_sidecar(write_sidecar(seg, "K", "auto")).is_auto
    for bad, message in [
        ("Z:1-3", "axis 'Z' is not one of I, J, K"),
        ("K", "expected AXIS:SLICES"),
        ("K:3-1", "ends before it starts"),
        ("K:a-b", "not a slice number"),
        ("K:-2", "not a slice number"),
        ("K:,", "not a slice number"),
    ]:
        with pytest.raises(AnnotatedSlicesError, match=message):
            parse_request(bad)
    labels = np.full((2, 3, 4), 255, dtype=np.uint8)
    out = apply_ignore(labels, AnnotatedSlices("I", (1,), 4, "test"), 256)  # 256 does not fit uint8
    assert out.dtype == np.uint16 and (out[:, :, 1] == 255).all() and (out[:, :, [0, 2, 3]] == 256).all()


def test_real_slicer_files_sidecar_ignore_outside_annotated_slices(tmp_path: Path) -> None:
    """CTChest4 + Segmentation.seg.nrrd as saved by 3D Slicer; only K slices 5 and 10-14 are annotated."""
    full_in, partial_in = tmp_path / "full", tmp_path / "partial"
    for folder in (full_in, partial_in):
        folder.mkdir()
        shutil.copy(SLICERIO_DATA / "CTChest4.nrrd", folder / "chest.nrrd")
        shutil.copy(SLICERIO_DATA / "Segmentation.seg.nrrd", folder / "chest.seg.nrrd")
    (partial_in / "chest.annotated_slices.json").write_text(json.dumps({"axis": "K", "slices": [5, "10-14"]}))
    full = export(full_in, tmp_path / "raw", "1", name="Full", file_ending=".nrrd")
    partial = export(partial_in, tmp_path / "raw", "2", name="Partial", file_ending=".nrrd")

    labels = labels_json(partial)
    assert list(labels)[-1] == "ignore" and labels["ignore"] == 8 == max(labels.values())
    assert labels == {**labels_json(full), "ignore": 8}
    complete, sparse = read(full / "labelsTr" / "chest.nrrd"), read(partial / "labelsTr" / "chest.nrrd")
    annotated = [5, 10, 11, 12, 13, 14]
    np.testing.assert_array_equal(sparse[annotated], complete[annotated])  # array axis 0 is K
    assert (np.delete(sparse, annotated, axis=0) == 8).all()
    assert 8 not in complete and len(np.unique(complete[annotated])) > 3
    volume = sitk.ReadImage(str(SLICERIO_DATA / "CTChest4.nrrd"))
    label = sitk.ReadImage(str(partial / "labelsTr" / "chest.nrrd"))
    assert label.GetSize() == volume.GetSize()
    for ours, theirs in zip(geometry_of(label), geometry_of(volume)):  # ITK's NRRD writer: last-bit rounding
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
    image = sitk.ReadImage(str(partial / "imagesTr" / "chest_0000.nrrd"))
    assert geometry_of(label) == geometry_of(image) and label.GetSize() == image.GetSize()
    assert_verified(partial)


def test_flag_auto_and_ranges_on_other_axes_and_the_sidecar_wins(tmp_path: Path) -> None:
    geometry = oblique_geometry(reflect=True)
    painted = painted_labels()
    sparse = np.zeros_like(painted)
    sparse[:, [3, 5, 8]] = painted[:, [3, 5, 8]]  # only J slices 3, 5 and 8 painted
    write_case(tmp_path / "in", "auto", sparse, geometry, NAMES)
    write_case(tmp_path / "in", "own", painted, geometry, NAMES, seed=2)
    write_sidecar(tmp_path / "in" / "own.seg.nrrd", "I", [0, 4, 5, 6])

    result = plan(tmp_path / "in", tmp_path / "raw", annotated_slices="J:auto")
    assert result.problems == [] and result.ignore_label == 3
    assert result.partial["auto"].slices == (3, 5, 8) and result.partial["auto"].axis == "J"
    assert result.partial["auto"].outside_voxels == 0 and result.partial["auto"].num_slices == SHAPE[1]
    assert result.partial["own"].slices == (0, 4, 5, 6) and result.partial["own"].axis == "I"
    assert result.partial["own"].outside_voxels == np.count_nonzero(np.delete(painted, [0, 4, 5, 6], axis=2))
    write_export(result)
    folder = result.dataset_folder
    auto = read(folder / "labelsTr" / "auto.nii.gz")
    np.testing.assert_array_equal(auto[:, [3, 5, 8]], painted[:, [3, 5, 8]])
    assert (np.delete(auto, [3, 5, 8], axis=1) == 3).all()
    own = read(folder / "labelsTr" / "own.nii.gz")
    np.testing.assert_array_equal(own[:, :, [0, 4, 5, 6]], painted[:, :, [0, 4, 5, 6]])
    assert (np.delete(own, [0, 4, 5, 6], axis=2) == 3).all()
    assert labels_json(folder) == {"background": 0, "Liver": 1, "Tumor": 2, "ignore": 3}
    assert_verified(folder)

    ranges = plan(tmp_path / "in", tmp_path / "raw2", annotated_slices="K:1-3,8")
    assert ranges.partial["auto"].slices == (1, 2, 3, 8) and ranges.partial["own"].axis == "I"


def test_every_problem_names_its_case_and_file_and_nothing_is_written(tmp_path: Path) -> None:
    geometry = oblique_geometry()
    folder = tmp_path / "in"
    for index, case in enumerate(("far", "empty", "axis", "broken", "named", "blank")):
        write_case(folder, case, painted_labels(seed=index + 1), geometry, NAMES, seed=index)
    write_sidecar(folder / "far.seg.nrrd", "K", [2, "8-12"])  # the volume has 10 K slices
    (folder / "empty.annotated_slices.json").write_text('{"axis": "K", "slices": []}')
    (folder / "axis.annotated_slices.json").write_text('{"axis": "X", "slices": [1]}')
    (folder / "broken.annotated_slices.json").write_text('{"axis": "K", "slices": [1,')
    write_case(folder, "named", painted_labels(), geometry, {1: "Liver", 2: "IGNORE"})
    write_case(folder, "blank", np.zeros(SHAPE, np.uint8), geometry, NAMES, kind="larger")  # auto finds nothing
    result = plan(folder, tmp_path / "raw", annotated_slices="K:auto")
    text = "\n".join(result.problems)
    assert "case 'far' in " in text and "far.annotated_slices.json): slice(s) 10-12 along K are out of range" in text
    assert "the volume has 10 slices along K (0-9)" in text
    assert "case 'empty': " in text and "empty.annotated_slices.json: no slices are selected" in text
    assert "case 'axis': " in text and "axis.annotated_slices.json: axis 'X' is not one of I, J, K" in text
    assert "case 'broken': " in text and "broken.annotated_slices.json: cannot be read as JSON" in text
    assert "case 'named': segment 'IGNORE' of " in text and "named.seg.nrrd is named like nnU-Net's ignore" in text
    assert "case 'blank' in " in text and "(-annotated_slices): 'auto' found no slice along K" in text
    assert len(result.problems) == 6
    with pytest.raises(DatasetError, match="Cannot export"):
        write_export(result)
    assert not (tmp_path / "raw").exists()
    bad_flag = plan(folder, tmp_path / "raw", annotated_slices="Q:1")
    assert any(p.startswith("-annotated_slices 'Q:1': axis 'Q'") for p in bad_flag.problems)


def test_ignore_label_joins_an_existing_dataset_and_is_kept_by_later_full_exports(tmp_path: Path) -> None:
    geometry = oblique_geometry()
    painted = painted_labels()
    write_case(tmp_path / "first", "full1", painted, geometry, NAMES)
    folder = export(tmp_path / "first", tmp_path / "raw")
    assert labels_json(folder) == {"background": 0, "Liver": 1, "Tumor": 2}

    write_case(tmp_path / "second", "part1", painted, geometry, {1: "liver", 2: "TUMOR"}, seed=1)
    write_sidecar(tmp_path / "second" / "part1.seg.nrrd", "K", "2-4")
    before = folder_hashes(folder)
    extended = plan(tmp_path / "second", tmp_path / "raw", name=None)
    assert extended.label_table.new_labels == ["ignore"] and extended.ignore_label == 3
    write_export(extended)
    assert labels_json(folder) == {"background": 0, "Liver": 1, "Tumor": 2, "ignore": 3}
    assert all(folder_hashes(folder)[name] == digest for name, digest in before.items() if name != "dataset.json")
    assert (np.delete(read(folder / "labelsTr" / "part1.nii.gz"), [2, 3, 4], axis=0) == 3).all()

    write_case(tmp_path / "third", "full2", painted, geometry, NAMES, seed=2)
    before = folder_hashes(folder)
    later = plan(tmp_path / "third", tmp_path / "raw", name=None)
    assert later.partial == {} and later.ignore_label == 3 and later.problems == []
    write_export(later)
    content = json.loads((folder / "dataset.json").read_text())
    assert content["labels"]["ignore"] == 3 and content["numTraining"] == 3
    assert all(folder_hashes(folder)[name] == digest for name, digest in before.items() if name != "dataset.json")
    np.testing.assert_array_equal(read(folder / "labelsTr" / "full2.nii.gz"), painted)
    assert_verified(folder)

    write_case(tmp_path / "fourth", "part2", painted, geometry, NAMES, seed=3)
    again = plan(tmp_path / "fourth", tmp_path / "raw", name=None, annotated_slices="K:auto")
    assert again.ignore_label == 3 and again.label_table.new_labels == [] and again.problems == []
    assert "3  ignore: not annotated voxels of 1 partial case(s)" in again.format()

    write_case(tmp_path / "fifth", "spleen", painted, geometry, {1: "Liver", 2: "Spleen"})
    new_label = plan(tmp_path / "fifth", tmp_path / "raw", name=None)
    assert any("ignore label (3) must have the highest value" in p and "'Spleen'" in p for p in new_label.problems)


def test_a_sidecar_without_its_segmentation_is_refused(tmp_path: Path) -> None:
    write_case(tmp_path, "case1", painted_labels(), oblique_geometry(), NAMES)
    (tmp_path / "case_1.annotated_slices.json").write_text('{"axis": "K", "slices": [1]}')  # a typo
    with pytest.raises(DatasetError, match=r"case_1.annotated_slices.json has no case_1.seg.nrrd next to it"):
        find_cases_in_folder(tmp_path)


def test_dry_run_lists_partial_cases_and_the_ignore_label(tmp_path: Path, monkeypatch, capsys) -> None:
    workspace = Workspace.from_root(tmp_path / "ws")
    for name, path in (("nnUNet_raw", workspace.raw), ("nnUNet_preprocessed", workspace.preprocessed),
                       ("nnUNet_results", workspace.results)):
        monkeypatch.setenv(name, str(path))
    geometry = oblique_geometry()
    write_case(tmp_path / "in", "a", painted_labels(), geometry, NAMES)
    write_case(tmp_path / "in", "b", painted_labels(seed=3), geometry, NAMES, seed=1)
    write_sidecar(tmp_path / "in" / "b.seg.nrrd", "K", [3, 4])
    args = ["export_segmentations", "-i", str(tmp_path / "in"), "-d", "30", "-n", "Sparse", "-channel_names", "CT"]
    assert main([*args, "-annotated_slices", "K:2-6", "--dry_run"]) == 0
    out = capsys.readouterr().out
    assert "3  ignore (new): not annotated voxels of 2 partial case(s)" in out
    assert "a: 1 channel(s), a.seg.nrrd [new], partial: 5/10 slices along K annotated (-annotated_slices)" in out
    assert "b.seg.nrrd [new], partial: 2/10 slices along K annotated (b.annotated_slices.json)" in out
    assert "Dry run: nothing was written." in out and not workspace.raw.exists()
    assert main([*args, "-annotated_slices", "K:40", "--dry_run"]) == 1
    assert "slice(s) 40 along K are out of range" in capsys.readouterr().out
