"""Export of volumes + ``.seg.nrrd`` files to nnUNet_raw: geometry, labels, extension, overwrite, checks."""

from __future__ import annotations

import json
from pathlib import Path

import nrrd
import numpy as np
import pytest
import SimpleITK as sitk
import slicerio
from export_helpers import (
    SHAPE,
    file_hash,
    folder_hashes,
    oblique_geometry,
    painted_labels,
    random_volume,
    seg_on_grid,
    shifted_geometry,
    write_case,
    write_volume,
)
from external_test_data import HIPPOCAMPUS

from autoseg.dataset.export.segmentations import (
    ExportCase,
    find_cases_in_folder,
    plan_export,
    write_export,
)
from autoseg.dataset.integrity.verify import verify_dataset_integrity
from autoseg.errors import DatasetError
from autoseg.imageio.ras_geometry import LPS_TO_RAS, ijk_to_lps_matrix
from autoseg.imageio.segmentation_file import write_segmentation_file

NAMES = {1: "Liver", 2: "Tumor"}


def export(cases, raw: Path, ending: str = ".nii.gz", **kwargs) -> Path:
    plan = plan_export(
        cases,
        raw,
        kwargs.pop("dataset", "7"),
        kwargs.pop("name", "Test"),
        kwargs.pop("channels", ["CT"]),
        ending,
        **kwargs,
    )
    assert plan.problems == []
    write_export(plan)
    return plan.dataset_folder


def geometry_of(image: sitk.Image) -> tuple:
    return image.GetSpacing(), image.GetOrigin(), image.GetDirection()


def assert_clean(folder: Path) -> None:
    report = verify_dataset_integrity(folder, num_processes=0)
    assert report.ok and not report.warnings, report.format()


@pytest.mark.parametrize(
    ("kind", "reflect", "ending"),
    [
        ("cropped", False, ".nrrd"),
        ("cropped", True, ".nii.gz"),
        ("larger", True, ".nrrd"),
        ("finer", False, ".nii.gz"),
        ("finer", True, ".nrrd"),
    ],
)
def test_oblique_volume_labels_land_on_the_painted_voxels(
    tmp_path: Path, kind: str, reflect: bool, ending: str
) -> None:
    geometry = oblique_geometry(reflect)
    labels = painted_labels()
    volume = write_case(tmp_path / "in", "case1", labels, geometry, NAMES, kind=kind)
    source = sitk.ReadImage(str(tmp_path / "in" / "case1.nrrd"))
    folder = export(find_cases_in_folder(tmp_path / "in"), tmp_path / "raw", ending)
    label = sitk.ReadImage(str(folder / "labelsTr" / f"case1{ending}"))
    image = sitk.ReadImage(str(folder / "imagesTr" / f"case1_0000{ending}"))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(label), labels)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), volume)
    assert geometry_of(label) == geometry_of(image)
    if ending == ".nrrd":  # NRRD keeps doubles: the volume's geometry, exactly
        assert geometry_of(label) == geometry_of(source)
    else:  # NIfTI stores float32
        for ours, theirs in zip(geometry_of(label), geometry_of(source)):
            np.testing.assert_allclose(ours, theirs, atol=1e-5)
    assert_clean(folder)


def test_slicerio_written_segmentation_and_ras_volume(tmp_path: Path) -> None:
    """A volume stored in RAS space (SimpleITK converts to LPS) and a segmentation written by slicerio."""
    geometry = oblique_geometry(reflect=True, degrees=22)
    labels = painted_labels(seed=5)
    folder_in = tmp_path / "in"
    folder_in.mkdir()
    volume = random_volume(3)
    lps = ijk_to_lps_matrix(geometry)
    nrrd.write(
        str(folder_in / "ras.nrrd"),
        volume.transpose(2, 1, 0),
        {
            "space": "right-anterior-superior",
            "kinds": ["domain"] * 3,
            "space directions": (LPS_TO_RAS @ lps[:3, :3]).T,
            "space origin": LPS_TO_RAS @ lps[:3, 3],
        },
    )
    assert nrrd.read_header(str(folder_in / "ras.nrrd"))["space"] == "right-anterior-superior"
    crop, crop_geometry = seg_on_grid(labels, geometry, "cropped")
    slicerio.write_segmentation(
        str(folder_in / "ras.seg.nrrd"),
        {
            "voxels": crop.transpose(2, 1, 0),
            "ijkToLPS": ijk_to_lps_matrix(crop_geometry),
            "segments": [
                {"id": "S1", "name": "liver", "labelValue": 1, "layer": 0},
                {"id": "S2", "name": "TUMOR", "labelValue": 2, "layer": 0},
            ],
        },
    )
    source = sitk.ReadImage(str(folder_in / "ras.nrrd"))
    np.testing.assert_allclose(source.GetOrigin(), geometry.origin, atol=1e-9)  # read as LPS
    folder = export(find_cases_in_folder(folder_in), tmp_path / "raw", ".nrrd")
    label = sitk.ReadImage(str(folder / "labelsTr" / "ras.nrrd"))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(label), labels)
    image = sitk.ReadImage(str(folder / "imagesTr" / "ras_0000.nrrd"))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), volume)
    assert geometry_of(label) == geometry_of(image)
    for ours, theirs in zip(geometry_of(label), geometry_of(source)):  # ITK's NRRD writer: last-bit rounding
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
    assert json.loads((folder / "dataset.json").read_text())["labels"] == {
        "background": 0,
        "liver": 1,
        "TUMOR": 2,
    }


def test_names_matched_across_cases_missing_labels_listed_and_dataset_extended(tmp_path: Path) -> None:
    geometry = oblique_geometry()
    labels = painted_labels()
    only_liver = np.where(labels == 1, 1, 0).astype(np.uint8)
    write_case(tmp_path / "in", "c1", labels, geometry, {1: "Liver", 2: "Tumor"})
    write_case(tmp_path / "in", "c2", labels, geometry, {1: " liver ", 2: "tumor"}, seed=1)
    write_case(tmp_path / "in", "c3", only_liver, geometry, {1: "LIVER"}, seed=2)
    plan = plan_export(find_cases_in_folder(tmp_path / "in"), tmp_path / "raw", "12", "Abdomen", ["CT"])
    assert plan.dataset_folder == tmp_path / "raw" / "Dataset012_Abdomen" and plan.new_dataset
    assert plan.label_table.labels == {"background": 0, "Liver": 1, "Tumor": 2}
    assert plan.label_table.missing == {"c3": ["Tumor"]}
    assert plan.label_rows() == [(1, "Liver", 3, []), (2, "Tumor", 2, ["c3"])]
    assert "missing in: c3" in plan.format()
    assert write_export(plan) == ["c1", "c2", "c3"]
    folder = plan.dataset_folder
    for case in ("c1", "c2"):
        np.testing.assert_array_equal(
            sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labelsTr" / f"{case}.nii.gz"))), labels
        )
    dataset_json = json.loads((folder / "dataset.json").read_text())
    assert dataset_json == {
        "channel_names": {"0": "CT"},
        "labels": {"background": 0, "Liver": 1, "Tumor": 2},
        "numTraining": 3,
        "file_ending": ".nii.gz",
    }
    assert_clean(folder)

    # extend: a key we do not know survives, existing values are kept, new labels come after
    dataset_json["description"] = "kept"
    (folder / "dataset.json").write_text(json.dumps(dataset_json))
    spleen = np.where(labels == 2, 1, np.where(labels == 1, 3, 0)).astype(np.uint8)
    write_case(tmp_path / "more", "c4", spleen, geometry, {1: "TUMOR", 3: "Spleen"}, seed=4)
    more = plan_export(find_cases_in_folder(tmp_path / "more"), tmp_path / "raw", "12")
    assert not more.new_dataset and more.channel_names == {"0": "CT"} and more.file_ending == ".nii.gz"
    assert more.label_table.labels == {"background": 0, "Liver": 1, "Tumor": 2, "Spleen": 3}
    assert more.label_table.new_labels == ["Spleen"] and more.existing_cases == []
    write_export(more)
    extended = json.loads((folder / "dataset.json").read_text())
    assert extended["labels"] == {"background": 0, "Liver": 1, "Tumor": 2, "Spleen": 3}
    assert extended["numTraining"] == 4 and extended["description"] == "kept"
    c4 = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labelsTr" / "c4.nii.gz")))
    np.testing.assert_array_equal(c4, np.where(labels == 2, 2, np.where(labels == 1, 3, 0)))
    assert_clean(folder)

    # an existing case is refused (bytes untouched) unless overwrite=True
    write_case(tmp_path / "again", "c1", only_liver, geometry, {1: "Liver"}, seed=9)
    before = folder_hashes(folder)
    again = plan_export(find_cases_in_folder(tmp_path / "again"), tmp_path / "raw", "Dataset012_Abdomen")
    assert again.existing_cases == ["c1"] and "exists, would be overwritten" in again.format()
    with pytest.raises(DatasetError, match=r"already exist in .*Dataset012_Abdomen: c1\. .*overwrite"):
        write_export(again)
    assert folder_hashes(folder) == before
    write_export(again, overwrite=True)
    replaced = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labelsTr" / "c1.nii.gz")))
    np.testing.assert_array_equal(replaced, only_liver)
    assert file_hash(folder / "imagesTr" / "c1_0000.nii.gz") != before["imagesTr/c1_0000.nii.gz"]
    assert json.loads((folder / "dataset.json").read_text())["numTraining"] == 4


def test_second_channel_on_another_grid_is_resampled_onto_channel_0(tmp_path: Path) -> None:
    geometry = oblique_geometry()
    labels = painted_labels()
    folder_in = tmp_path / "in"
    volume = write_case(folder_in, "mc", labels, geometry, NAMES)
    (folder_in / "mc.nrrd").rename(folder_in / "mc_0000.nrrd")
    # channel 1: a linear function of position on a coarser, shifted grid (linear resampling is exact on it)
    coarse = shifted_geometry(geometry, (-1.3, -0.6, -0.4), 1.7)
    shape = (9, 11, 10)
    kji = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    points = kji[..., ::-1] @ ijk_to_lps_matrix(coarse)[:3, :3].T + np.array(coarse.origin)
    weights = np.array([0.5, -1.25, 2.0])
    write_volume(folder_in / "mc_0001.nii.gz", (points @ weights + 100).astype(np.float32), coarse)
    cases = find_cases_in_folder(folder_in)
    assert [p.name for p in cases[0].images] == ["mc_0000.nrrd", "mc_0001.nii.gz"]
    folder = export(cases, tmp_path / "raw", ".nii.gz", channels=["T2", "ADC"])
    first = sitk.ReadImage(str(folder / "imagesTr" / "mc_0000.nii.gz"))
    second = sitk.ReadImage(str(folder / "imagesTr" / "mc_0001.nii.gz"))
    assert geometry_of(second) == geometry_of(first) and second.GetSize() == first.GetSize()
    np.testing.assert_array_equal(sitk.GetArrayFromImage(first), volume)
    kji = np.stack(np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij"), axis=-1)
    points = kji[..., ::-1] @ ijk_to_lps_matrix(geometry)[:3, :3].T + np.array(geometry.origin)
    expected = points @ weights + 100
    inside = sitk.GetArrayFromImage(second) != 0
    assert inside.mean() > 0.5
    np.testing.assert_allclose(sitk.GetArrayFromImage(second)[inside], expected[inside], atol=1e-3)
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labelsTr" / "mc.nii.gz"))), labels
    )
    assert json.loads((folder / "dataset.json").read_text())["channel_names"] == {"0": "T2", "1": "ADC"}
    assert_clean(folder)


def test_real_hippocampus_cases_round_trip(tmp_path: Path) -> None:
    dataset_json = json.loads((HIPPOCAMPUS / "dataset.json").read_text())
    names = {v: k for k, v in dataset_json["labels"].items() if v}
    cases, originals = [], {}
    for case in ("hippocampus_001", "hippocampus_003"):
        image_file = HIPPOCAMPUS / "imagesTr" / f"{case}_0000.nii.gz"
        label = sitk.ReadImage(str(HIPPOCAMPUS / "labelsTr" / f"{case}.nii.gz"))
        seg = tmp_path / f"{case}.seg.nrrd"
        from autoseg.imageio.ras_geometry import geometry_of_image

        write_segmentation_file(seg, sitk.GetArrayFromImage(label), geometry_of_image(label), names)
        cases.append(ExportCase(case, [image_file], seg))
        originals[case] = (sitk.ReadImage(str(image_file)), label)
    folder = export(cases, tmp_path / "raw", ".nii.gz", dataset="4", name="Hippo", channels=["MRI"])
    for case, (image, label) in originals.items():
        ours_label = sitk.ReadImage(str(folder / "labelsTr" / f"{case}.nii.gz"))
        ours_image = sitk.ReadImage(str(folder / "imagesTr" / f"{case}_0000.nii.gz"))
        np.testing.assert_array_equal(sitk.GetArrayFromImage(ours_label), sitk.GetArrayFromImage(label))
        np.testing.assert_array_equal(sitk.GetArrayFromImage(ours_image), sitk.GetArrayFromImage(image))
        assert geometry_of(ours_label) == geometry_of(image) == geometry_of(ours_image)
    assert json.loads((folder / "dataset.json").read_text())["labels"] == dataset_json["labels"]
    assert_clean(folder)


def test_every_problem_is_listed_and_nothing_is_written(tmp_path: Path) -> None:
    geometry = oblique_geometry()
    labels = painted_labels()
    write_case(tmp_path / "in", "ok", labels, geometry, NAMES)
    write_case(tmp_path / "in", "case_0001", labels, geometry, NAMES)  # looks like a channel file
    far = shifted_geometry(geometry, (500, 0, 0))
    write_volume(tmp_path / "in" / "far.nrrd", random_volume(), far)  # volume elsewhere in space
    write_segmentation_file(tmp_path / "in" / "far.seg.nrrd", labels, geometry, NAMES)
    cases = find_cases_in_folder(tmp_path / "in")
    cases.append(ExportCase("ghost", [tmp_path / "in" / "ghost.nrrd"], tmp_path / "in" / "ok.seg.nrrd"))
    cases.append(ExportCase("two", [tmp_path / "in" / "ok.nrrd"] * 2, tmp_path / "in" / "ok.seg.nrrd"))
    cases.append(ExportCase("OK", [tmp_path / "in" / "ok.nrrd"], tmp_path / "in" / "ok.seg.nrrd"))
    plan = plan_export(cases, tmp_path / "raw", "8", "Bad", ["CT"], ".png")
    text = "\n".join(plan.problems)
    assert "'case_0001' ends with a 4-digit channel suffix" in text
    assert "far.seg.nrrd does not overlap the volume far.nrrd" in text
    assert "ghost.nrrd does not exist" in text
    assert "case 'two' has 2 volume(s) but the dataset has 1 channel(s)" in text
    assert "file ending '.png' cannot be exported" in text
    assert "case id 'ok' is used 2 times ('ok', 'OK')" in text
    with pytest.raises(DatasetError, match="Cannot export") as caught:
        write_export(plan)
    assert str(caught.value).count("\n  - ") == len(plan.problems) == 6
    assert not (tmp_path / "raw").exists()
    with pytest.raises(DatasetError, match="give its name"):
        plan_export(cases[:1], tmp_path / "raw", "8")
    no_channels = plan_export(cases[:1], tmp_path / "raw", "8", "X")
    assert any("channel names are needed" in p for p in no_channels.problems)


def test_existing_dataset_must_agree_on_channels_and_ending(tmp_path: Path) -> None:
    geometry = oblique_geometry()
    write_case(tmp_path / "in", "c1", painted_labels(), geometry, NAMES)
    cases = find_cases_in_folder(tmp_path / "in")
    export(cases, tmp_path / "raw", ".nrrd", dataset="Dataset009_Organs", name=None)
    plan = plan_export(cases, tmp_path / "raw", "9", None, ["MRI"], ".nii.gz")
    text = "\n".join(plan.problems)
    assert "has channel_names {'0': 'CT'}, but {'0': 'MRI'}" in text
    assert "has file_ending '.nrrd', but '.nii.gz'" in text
    with pytest.raises(DatasetError, match="already used by .*Dataset009_Organs"):
        plan_export(cases, tmp_path / "raw", "9", "Other", ["CT"])


def test_overlapping_layers_are_a_problem_unless_last_wins(tmp_path: Path) -> None:
    geometry = oblique_geometry()
    folder_in = tmp_path / "in"
    folder_in.mkdir()
    write_volume(folder_in / "ov.nrrd", random_volume(), geometry)
    layers = np.zeros((2, *SHAPE), dtype=np.uint8)
    layers[0, 2:6, 2:6, 2:6] = 1
    layers[1, 4:8, 4:8, 4:8] = 1
    slicerio.write_segmentation(
        str(folder_in / "ov.seg.nrrd"),
        {
            "voxels": layers.transpose(0, 3, 2, 1),
            "ijkToLPS": ijk_to_lps_matrix(geometry),
            "segments": [
                {"id": "a", "name": "Liver", "labelValue": 1, "layer": 0},
                {"id": "b", "name": "Tumor", "labelValue": 1, "layer": 1},
            ],
        },
    )
    cases = find_cases_in_folder(folder_in)
    strict = plan_export(cases, tmp_path / "raw", "3", "Ov", ["CT"])
    assert len(strict.problems) == 1 and "'Liver' and 'Tumor' share 8 voxel(s)" in strict.problems[0]
    folder = export(cases, tmp_path / "raw", ".nii.gz", dataset="3", name="Ov", overlap="last")
    expected = layers[0] * 1
    expected[layers[1] == 1] = 2
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labelsTr" / "ov.nii.gz"))), expected
    )


def test_find_cases_in_folder(tmp_path: Path) -> None:
    geometry = oblique_geometry()
    labels = painted_labels()
    write_case(tmp_path, "single", labels, geometry, NAMES)
    write_case(tmp_path, "multi", labels, geometry, NAMES)
    (tmp_path / "multi.nrrd").rename(tmp_path / "multi_0000.nrrd")
    write_volume(tmp_path / "multi_0001.nii.gz", random_volume(), geometry)
    cases = find_cases_in_folder(tmp_path)
    assert [(c.case_id, [p.name for p in c.images], c.segmentation.name) for c in cases] == [
        ("multi", ["multi_0000.nrrd", "multi_0001.nii.gz"], "multi.seg.nrrd"),
        ("single", ["single.nrrd"], "single.seg.nrrd"),
    ]
    (tmp_path / "lonely.seg.nrrd").write_bytes((tmp_path / "single.seg.nrrd").read_bytes())
    (tmp_path / "gap.seg.nrrd").write_bytes((tmp_path / "single.seg.nrrd").read_bytes())
    (tmp_path / "gap_0000.nrrd").write_bytes(b"")
    (tmp_path / "gap_0002.nrrd").write_bytes(b"")
    with pytest.raises(DatasetError) as caught:
        find_cases_in_folder(tmp_path)
    message = str(caught.value)
    assert "lonely.seg.nrrd has no volume: expected lonely.<ext> or lonely_0000.<ext>" in message
    assert "gap_0001 missing" in message
    suffixed = tmp_path / "suffixed"
    write_case(suffixed, "p", labels, geometry, NAMES)
    (suffixed / "p.nrrd").rename(suffixed / "p_T2.nrrd")
    write_volume(suffixed / "p_ADC.nrrd", random_volume(), geometry)
    (case,) = find_cases_in_folder(suffixed, ["_T2", "_ADC"])
    assert [p.name for p in case.images] == ["p_T2.nrrd", "p_ADC.nrrd"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="has no .seg.nrrd files"):
        find_cases_in_folder(tmp_path / "empty")
    with pytest.raises(DatasetError, match="is not a folder"):
        find_cases_in_folder(tmp_path / "nowhere")


def test_target_dataset_resolution(tmp_path: Path) -> None:
    write_case(tmp_path / "in", "c1", painted_labels(), oblique_geometry(), NAMES)
    cases = find_cases_in_folder(tmp_path / "in")
    raw = tmp_path / "raw"
    (raw / "Dataset010_A").mkdir(parents=True)
    (raw / "Dataset010_B").mkdir()
    with pytest.raises(DatasetError, match="Dataset id 10 is ambiguous .*Dataset010_A, Dataset010_B"):
        plan_export(cases, raw, "10", channel_names=["CT"])
    plan = plan_export(cases, raw, "Dataset010_B", channel_names=["CT"])
    assert plan.dataset_folder == raw / "Dataset010_B" and plan.new_dataset and plan.problems == []
    with pytest.raises(DatasetError, match="cannot be a dataset name"):
        plan_export(cases, raw, 11, "my liver", ["CT"])
    with pytest.raises(DatasetError, match="out of range"):
        plan_export(cases, raw, "1000", "X", ["CT"])
    with pytest.raises(DatasetError, match="disagree"):
        plan_export(cases, raw, "Dataset012_X", "Y", ["CT"])
    assert plan_export(cases, raw, 12, "Liver", {"0": "CT"}).dataset_folder == raw / "Dataset012_Liver"
