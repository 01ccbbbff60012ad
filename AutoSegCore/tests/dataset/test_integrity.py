"""verify_dataset_integrity: a valid generated dataset passes; every kind of problem is reported, with
its case and file, all at once; the real datasets pass; a crashing worker becomes a reported problem."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import numpy as np
import pytest
from external_test_data import TEST_DATA as DATA
from integrity_helpers import (
    crash_on_marked_cases,
    image_array,
    label_array,
    make_dataset,
    write_case,
    write_dataset_json,
    write_image,
)

from autoseg.dataset.integrity.image_checks import CheckContext
from autoseg.dataset.integrity.layout_checks import CaseFiles
from autoseg.dataset.integrity.verify import (
    IntegrityReport,
    Problem,
    check_cases,
    check_dataset_or_raise,
    verify_dataset_integrity,
)
from autoseg.errors import DatasetError


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "Dataset001_Test")


def verify(root: Path) -> IntegrityReport:
    return verify_dataset_integrity(root, num_processes=0)


def find(report: IntegrityReport, severity: str, text: str, case: str | None = "any") -> list[Problem]:
    """Problems of ``severity`` whose message contains ``text`` (and of ``case`` unless "any")."""
    return [
        p
        for p in report.problems
        if p.severity == severity and text in p.message and (case == "any" or p.case == case)
    ]


def only(report: IntegrityReport, severity: str, text: str, case: str | None = "any") -> Problem:
    """The single matching problem; it must also appear, with its file name, in the formatted report."""
    found = find(report, severity, text, case)
    assert len(found) == 1, report.format()
    problem = found[0]
    formatted = report.format()
    assert problem.message in formatted and problem.fix in formatted
    if problem.file is not None:
        assert problem.file.name in formatted
    if problem.case is not None:
        assert f"case {problem.case}" in formatted
    return problem


def images(root: Path, case: str, channel: int = 0) -> Path:
    return root / "imagesTr" / f"{case}_{channel:04d}.nii.gz"


def label(root: Path, case: str) -> Path:
    return root / "labelsTr" / f"{case}.nii.gz"


# ------------------------------------------------------------------------------------------ valid
def test_valid_dataset_has_no_problems(root: Path) -> None:
    report = verify(root)
    assert report.problems == [], report.format()
    assert report.ok and report.num_cases == 3
    assert "0 error(s), 0 warning(s)" in report.format()
    report.raise_if_errors()


def test_pool_and_in_process_agree_and_report_progress(root: Path) -> None:
    images(root, "case_001", 1).unlink()
    write_image(label(root, "case_002"), label_array(2, values=(0, 1, 7)))
    calls: list[tuple[int, int]] = []
    pooled = verify_dataset_integrity(root, num_processes=2, progress=lambda d, t: calls.append((d, t)))
    serial = verify(root)
    assert pooled.problems == serial.problems and len(pooled.errors) == 2
    assert calls[-1] == (3, 3) and [d for d, _ in calls] == sorted(d for d, _ in calls)


# ----------------------------------------------------------------------------------- dataset.json
def test_dataset_folder_missing(tmp_path: Path) -> None:
    report = verify(tmp_path / "Dataset009_Nope")
    problem = only(report, "error", "does not exist")
    assert "Dataset009_Nope" in problem.message


def test_dataset_json_missing(root: Path) -> None:
    (root / "dataset.json").unlink()
    problem = only(verify(root), "error", "dataset.json is missing")
    assert problem.file.name == "dataset.json"


def test_dataset_json_bad_json(root: Path) -> None:
    (root / "dataset.json").write_text('{"labels": {"background": 0,}, }', encoding="utf-8")
    problem = only(verify(root), "error", "not valid JSON")
    assert "line 1" in problem.message and problem.file.name == "dataset.json"


def test_dataset_json_missing_keys_still_checks_files(root: Path) -> None:
    write_dataset_json(root, numTraining=None, channel_names=None)
    label(root, "case_001").unlink()
    report = verify(root)
    problem = only(report, "error", "missing required key(s): channel_names, numTraining")
    assert problem.file.name == "dataset.json"
    only(report, "error", "label file case_001.nii.gz is missing", "case_001")


def test_dataset_json_wrong_types(root: Path) -> None:
    write_dataset_json(root, numTraining="3", file_ending="nii.gz", labels={"background": 0, "liver": "one"})
    report = verify(root)
    only(report, "error", '"numTraining" must be an integer')
    only(report, "error", '"file_ending" must be a string starting with a dot')
    only(report, "error", 'label "liver" must be an integer')


def test_non_consecutive_labels(root: Path) -> None:
    write_dataset_json(root, labels={"background": 0, "liver": 1, "tumor": 3})
    report = verify(root)
    problem = only(report, "error", "consecutive")
    assert "[0, 1, 3]" in problem.message and problem.file.name == "dataset.json"
    # the files are still checked against the declared values: 2 is not declared any more
    assert len(find(report, "error", "not declared in dataset.json: 2")) == 3


def test_unknown_reader_is_reported(root: Path) -> None:
    write_dataset_json(root, overwrite_image_reader_writer="FancyIO")
    problem = only(verify(root), "error", "no image reader")
    assert "FancyIO" in problem.message


# ---------------------------------------------------------------------------------- case discovery
def test_empty_dataset(tmp_path: Path) -> None:
    root = tmp_path / "Dataset002_Empty"
    write_dataset_json(root, numTraining=0)
    (root / "imagesTr").mkdir()
    (root / "labelsTr").mkdir()
    problem = only(verify(root), "error", "no training cases")
    assert "imagesTr" in problem.message


def test_images_folder_missing(tmp_path: Path) -> None:
    root = tmp_path / "Dataset002_Empty"
    write_dataset_json(root)
    problem = only(verify(root), "error", "imagesTr folder is missing")
    assert problem.file.name == "imagesTr"


def test_num_training_mismatch(root: Path) -> None:
    write_dataset_json(root, numTraining=5)
    problem = only(verify(root), "error", "numTraining is 5")
    assert "3 case(s)" in problem.message and "case_000" in problem.message


def test_missing_channel(root: Path) -> None:
    images(root, "case_001", 1).unlink()
    problem = only(verify(root), "error", "channel 1 (T2) is missing", "case_001")
    assert problem.file.name == "case_001_0001.nii.gz" and "case_001_0001.nii.gz" in problem.message


def test_extra_channel(root: Path) -> None:
    write_image(images(root, "case_002", 2), image_array(5))
    problem = only(verify(root), "error", "extra channel file", "case_002")
    assert problem.file.name == "case_002_0002.nii.gz" and "2 channel(s)" in problem.message


def test_label_without_images(root: Path) -> None:
    write_image(label(root, "case_777"), label_array(7))
    problem = only(verify(root), "error", "has no images", "case_777")
    assert problem.file.name == "case_777.nii.gz" and "case_777_0000.nii.gz" in problem.message


def test_label_with_channel_suffix(root: Path) -> None:
    label(root, "case_001").rename(root / "labelsTr" / "case_001_0000.nii.gz")
    report = verify(root)
    problem = only(report, "error", "has a channel suffix", "case_001")
    assert problem.file.name == "case_001_0000.nii.gz" and "case_001.nii.gz" in problem.fix
    only(report, "error", "label file case_001.nii.gz is missing", "case_001")


def test_images_without_label(root: Path) -> None:
    label(root, "case_000").unlink()
    problem = only(verify(root), "error", "is missing (the case has images but no label)", "case_000")
    assert problem.file.name == "case_000.nii.gz"


def test_wrong_file_ending(root: Path) -> None:
    write_image(root / "imagesTr" / "case_003_0000.nii", image_array(3))
    write_image(root / "imagesTr" / "case_003_0001.nii", image_array(4))
    write_image(root / "labelsTr" / "case_003.nii", label_array(3))
    report = verify(root)
    found = find(report, "error", "does not end with the dataset's file_ending '.nii.gz' (found '.nii')")
    assert sorted(p.file.name for p in found) == ["case_003.nii", "case_003_0000.nii", "case_003_0001.nii"]
    assert {p.case for p in found} == {"case_003"}
    assert "case case_003:" in report.format() and "case_003_0000.nii" in report.format()


def test_wrong_case_of_file_ending(root: Path) -> None:
    images(root, "case_000", 1).rename(root / "imagesTr" / "case_000_0001.NII.GZ")
    report = verify(root)
    problem = only(report, "error", "endings are case-sensitive")
    assert problem.file.name == "case_000_0001.NII.GZ"
    only(report, "error", "channel 1 (T2) is missing", "case_000")


def test_image_without_channel_suffix(root: Path) -> None:
    write_image(root / "imagesTr" / "case_009.nii.gz", image_array(9))
    problem = only(verify(root), "error", "no 4-digit channel suffix")
    assert problem.file.name == "case_009.nii.gz" and "case_009_0000.nii.gz" in problem.fix


def test_stray_files_are_warnings_and_hidden_files_ignored(root: Path) -> None:
    (root / "imagesTr" / "notes.txt").write_text("hello")
    (root / "imagesTr" / ".DS_Store").write_bytes(b"\0")
    (root / "imagesTr" / "._case_000_0000.nii.gz").write_bytes(b"\0")
    report = verify(root)
    assert report.ok and report.num_cases == 3
    assert only(report, "warning", "notes.txt").file.name == "notes.txt"


def test_images_ts_naming_problems_are_warnings(root: Path) -> None:
    write_image(root / "imagesTs" / "test_000_0000.nii.gz", image_array(1))
    report = verify(root)
    assert report.ok
    problem = only(report, "warning", "channel 1 (T2) is missing", "test_000")
    assert problem.file.parent.name == "imagesTs"


# ------------------------------------------------------------------------------------------ content
def test_unreadable_file(root: Path) -> None:
    images(root, "case_001", 0).write_bytes(b"this is not an image")
    problem = only(verify(root), "error", "cannot be read", "case_001")
    assert problem.file.name == "case_001_0000.nii.gz" and "case_001_0000.nii.gz" in problem.message


def test_truncated_file(root: Path) -> None:
    path = label(root, "case_002")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    problem = only(verify(root), "error", "cannot be read", "case_002")
    assert problem.file.name == "case_002.nii.gz"


def test_shape_mismatch_image_label(root: Path) -> None:
    write_image(label(root, "case_001"), label_array(1, shape=(4, 6, 6)))
    problem = only(
        verify(root), "error", "has size (6, 6, 4) but case_001_0000.nii.gz has size (5, 6, 4)", "case_001"
    )
    assert problem.file.name == "case_001.nii.gz" and "label" in problem.message


def test_shape_mismatch_between_channels(root: Path) -> None:
    write_image(images(root, "case_000", 1), image_array(1, shape=(3, 6, 5)))
    problem = only(verify(root), "error", "has size (5, 6, 3)", "case_000")
    assert problem.file.name == "case_000_0001.nii.gz" and "channel" in problem.message


def test_spacing_mismatch_image_label(root: Path) -> None:
    write_image(label(root, "case_002"), label_array(2), spacing=(0.8, 0.8, 3.0))
    problem = only(verify(root), "error", "spacing", "case_002")
    assert problem.file.name == "case_002.nii.gz"
    assert "(0.8, 0.8, 3.0)" in problem.message and "(0.8, 0.8, 2.5)" in problem.message


def test_spacing_within_tolerance_is_accepted(root: Path) -> None:
    # nnU-Net's tolerance: numpy.allclose (relative 1e-5); NIfTI stores float32 spacings anyway
    write_image(label(root, "case_002"), label_array(2), spacing=(0.8, 0.8, 2.5 * (1 + 2e-6)))
    assert verify(root).problems == []


def test_spacing_mismatch_between_channels(root: Path) -> None:
    write_image(images(root, "case_001", 1), image_array(1), spacing=(0.9, 0.8, 2.5))
    problem = only(verify(root), "error", "spacing", "case_001")
    assert problem.file.name == "case_001_0001.nii.gz" and "channel" in problem.message


def test_origin_mismatch_is_a_warning(root: Path) -> None:
    write_image(label(root, "case_000"), label_array(0), origin=(5.0, 0.0, 0.0))
    report = verify(root)
    assert report.ok
    problem = only(report, "warning", "origin", "case_000")
    assert problem.file.name == "case_000.nii.gz"


def test_direction_mismatch_is_a_warning(root: Path) -> None:
    flipped = (-1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    write_image(images(root, "case_002", 1), image_array(3), direction=flipped)
    report = verify(root)
    assert report.ok
    problem = only(report, "warning", "direction", "case_002")
    assert problem.file.name == "case_002_0001.nii.gz"


def test_undeclared_label_values(root: Path) -> None:
    write_image(label(root, "case_001"), label_array(1, values=(0, 1, 2, 5, 9)))
    problem = only(verify(root), "error", "not declared in dataset.json", "case_001")
    assert problem.file.name == "case_001.nii.gz"
    assert "5 (" in problem.message and "9 (" in problem.message and "[0, 1, 2]" in problem.message


def test_non_integer_and_nan_label_values(root: Path) -> None:
    bad = label_array(0).astype(np.float32)
    bad[0, 0, 0], bad[0, 0, 1] = 0.5, np.nan
    write_image(label(root, "case_000"), bad)
    report = verify(root)
    assert only(report, "error", "non-integer values (e.g. [0.5])", "case_000").file.name == "case_000.nii.gz"
    only(report, "error", "1 NaN/infinite voxel(s)", "case_000")


def test_nan_and_inf_in_image(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "Dataset007_Nrrd", ending=".nrrd")
    data = image_array(0)
    data[0, 0, :3] = np.nan
    data[1, 1, 1] = np.inf
    write_image(root / "imagesTr" / "case_002_0000.nrrd", data)
    problem = only(verify(root), "error", "3 NaN and 1 infinite", "case_002")
    assert problem.file.name == "case_002_0000.nrrd"


def test_nan_in_nifti_that_the_reader_hides(root: Path) -> None:
    # ITK's NIfTI reader turns NaN/Inf into 0; the check reads the stored floats itself
    data = image_array(0)
    data[0, 0, :3] = np.nan
    data[1, 1, 1] = -np.inf
    write_image(images(root, "case_002", 1), data)
    problem = only(verify(root), "error", "stores 4 NaN/infinite voxel value(s)", "case_002")
    assert problem.file.name == "case_002_0001.nii.gz" and "silently turns into 0" in problem.message


def test_constant_image_and_background_only_label_are_warnings(root: Path) -> None:
    write_image(images(root, "case_001", 0), np.zeros((4, 6, 5), np.float32))
    write_image(label(root, "case_000"), np.zeros((4, 6, 5), np.uint8))
    report = verify(root)
    assert report.ok
    assert only(report, "warning", "is constant", "case_001").file.name == "case_001_0000.nii.gz"
    assert only(report, "warning", "only background", "case_000").file.name == "case_000.nii.gz"


def test_multi_channel_file(root: Path) -> None:
    import SimpleITK as sitk

    vector = sitk.JoinSeries([sitk.GetImageFromArray(image_array(i)) for i in range(2)])
    sitk.WriteImage(vector, str(images(root, "case_000", 0)))
    report = verify(root)
    assert find(report, "error", "", "case_000") and not report.ok
    assert any(p.file.name == "case_000_0000.nii.gz" for p in report.errors)


def test_2d_3d_mix(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "Dataset003_Mix", num_cases=3, num_channels=1)
    write_image(images(root, "case_003"), image_array(3, shape=(6, 5)))
    write_image(label(root, "case_003"), label_array(3, shape=(6, 5)))
    write_dataset_json(root, channel_names={"0": "mod0"}, numTraining=4)
    problem = only(verify(root), "error", "is 2D but 3 other case(s) are 3D", "case_003")
    assert problem.file.name == "case_003_0000.nii.gz"


def test_declared_label_never_present_is_a_warning(root: Path) -> None:
    write_dataset_json(root, labels={"background": 0, "liver": 1, "tumor": 2, "cyst": 3})
    report = verify(root)
    assert report.ok
    assert "cyst (3)" in only(report, "warning", "occur in no label file").message


def test_two_labels_with_one_value_is_a_warning(root: Path) -> None:
    write_dataset_json(root, labels={"background": 0, "liver": 1, "tumor": 2, "lesion": 2})
    report = verify(root)
    assert report.ok
    assert "'tumor', 'lesion'" in only(report, "warning", "share the value 2").message


# --------------------------------------------------------------------------------- regions, ignore
REGIONS = {"background": 0, "whole": [1, 2, 3], "core": [2, 3], "enhancing": 3}


def test_valid_regions_pass(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "Dataset004_Regions", labels=REGIONS, regions_class_order=[1, 2, 3])
    write_image(label(root, "case_000"), label_array(0, values=(0, 1, 2, 3)))
    assert verify(root).problems == []


def test_regions_without_class_order(root: Path) -> None:
    write_dataset_json(root, labels=REGIONS)
    only(verify(root), "error", 'need "regions_class_order"')


def test_region_values_not_consecutive(root: Path) -> None:
    write_dataset_json(
        root, labels={"background": 0, "whole": [1, 2, 4], "core": [2, 4]}, regions_class_order=[1, 2]
    )
    problem = only(verify(root), "error", "regions must be consecutive")
    assert "[0, 1, 2, 4]" in problem.message


def test_region_class_order_paints_unknown_value(root: Path) -> None:
    write_dataset_json(root, labels={"background": 0, "whole": [1, 2], "core": 2}, regions_class_order=[1, 7])
    problem = only(verify(root), "error", "paints value 7")
    assert problem.file.name == "dataset.json"


def test_region_class_order_without_regions_is_a_warning(root: Path) -> None:
    write_dataset_json(root, regions_class_order=[1, 2])
    report = verify(root)
    assert report.ok
    only(report, "warning", "no label is a region")


def test_ignore_label_must_be_highest(root: Path) -> None:
    write_dataset_json(root, labels={"background": 0, "ignore": 1, "liver": 2})
    only(verify(root), "error", '"ignore" label must be the highest value')


def test_ignore_label_in_files_is_declared(root: Path) -> None:
    write_dataset_json(root, labels={**{"background": 0, "liver": 1, "tumor": 2}, "ignore": 3})
    write_image(label(root, "case_000"), label_array(0, values=(0, 1, 2, 3)))
    report = verify(root)
    assert report.problems == [], report.format()


def test_ignore_label_never_used_is_a_warning(root: Path) -> None:
    write_dataset_json(root, labels={"background": 0, "liver": 1, "tumor": 2, "ignore": 3})
    report = verify(root)
    assert report.ok
    only(report, "warning", "ignore label (3) is declared but no label file contains it")


def test_label_named_like_ignore_is_a_warning(root: Path) -> None:
    write_dataset_json(root, labels={"background": 0, "liver": 1, "tumor": 2, "Ignore": 3})
    write_image(label(root, "case_000"), label_array(0, values=(0, 1, 2, 3)))
    only(verify(root), "warning", 'label "Ignore" is an ordinary class')


def test_label_only_ignore_is_a_warning(root: Path) -> None:
    write_dataset_json(root, labels={"background": 0, "liver": 1, "tumor": 2, "ignore": 3})
    write_image(label(root, "case_001"), np.full((4, 6, 5), 3, np.uint8))
    only(verify(root), "warning", "contains only the ignore label", "case_001")


# --------------------------------------------------------------------------------- explicit map
def test_explicit_dataset_map(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "Dataset005_Map")
    mapping = {
        "a": {
            "images": ["imagesTr/case_000_0000.nii.gz", "imagesTr/case_000_0001.nii.gz"],
            "label": "labelsTr/case_000.nii.gz",
        },
        "b": {
            "images": ["imagesTr/case_001_0000.nii.gz", "imagesTr/missing_0001.nii.gz"],
            "label": "labelsTr/case_001.nii.gz",
        },
        "c": {"images": ["imagesTr/case_002_0000.nii.gz"], "label": "labelsTr/case_002.nii.gz"},
        "d": {"images": "imagesTr/case_002_0000.nii.gz"},
    }
    write_dataset_json(root, dataset=mapping, numTraining=4)
    report = verify(root)
    assert only(report, "error", "does not exist", "b").file.name == "missing_0001.nii.gz"
    only(report, "error", "lists 1 image file(s)", "c")
    only(report, "error", "malformed entries: d")
    assert not find(report, "error", "", "a")


# ------------------------------------------------------------------------------------ all at once
def test_several_problems_are_reported_together(root: Path) -> None:
    write_case(root, "case_003", seed=3)
    write_dataset_json(root, numTraining=7, labels={"background": 0, "liver": 1, "tumor": 2, "ignore": 1})
    images(root, "case_000", 1).unlink()
    label(root, "case_001").unlink()
    write_image(label(root, "case_002"), label_array(2, shape=(4, 6, 6), values=(0, 1, 2, 6)))
    data = image_array(3)
    data[0, 0, 0] = np.nan
    write_image(images(root, "case_003", 1), data)
    with gzip.open(images(root, "case_003", 0), "wb") as f:
        f.write(b"garbage")
    write_image(root / "labelsTr" / "case_404.nii.gz", label_array(4))
    report = verify(root)
    expected = [
        ("numTraining is 7", None),
        ('"ignore" label must be the highest', None),
        ("channel 1 (T2) is missing", "case_000"),
        ("label file case_001.nii.gz is missing", "case_001"),
        ("has size (6, 6, 4)", "case_002"),
        ("not declared in dataset.json: 6", "case_002"),
        ("NaN", "case_003"),
        ("cannot be read", "case_003"),
        ("has no images", "case_404"),
    ]
    for text, case in expected:
        assert find(report, "error", text, case), f"{text!r} ({case}) missing from:\n{report.format()}"
    with pytest.raises(DatasetError) as raised:
        report.raise_if_errors()
    for text, _ in expected:
        assert text in str(raised.value)


def test_format_groups_by_severity_and_case(root: Path) -> None:
    images(root, "case_001", 1).unlink()
    write_image(label(root, "case_000"), label_array(0), origin=(3.0, 0.0, 0.0))
    text = verify(root).format()
    assert text.index("ERRORS (1)") < text.index("WARNINGS (1)")
    assert "  case case_001:" in text and "  case case_000:" in text
    assert "imagesTr/case_001_0001.nii.gz" in text and "fix:" in text


def test_report_to_dict_is_json(root: Path) -> None:
    label(root, "case_001").unlink()
    data = json.loads(json.dumps(verify(root).to_dict()))
    assert data["num_errors"] == 1 and data["problems"][0]["case"] == "case_001"


def test_check_dataset_or_raise(root: Path) -> None:
    assert check_dataset_or_raise(root, 0).ok
    label(root, "case_001").unlink()
    with pytest.raises(DatasetError, match="case_001.nii.gz is missing"):
        check_dataset_or_raise(root, 0)


# ---------------------------------------------------------------------------------------- workers
def test_crashing_worker_becomes_a_problem(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "Dataset006_Crash", num_cases=4)
    cases = [
        CaseFiles(name, ((0, images(root, f"case_{i:03d}")),), label(root, f"case_{i:03d}"))
        for i, name in enumerate(["case_a", "crash_b", "case_c", "crash_d"])
    ]
    context = CheckContext({"file_ending": ".nii.gz"}, frozenset({0, 1, 2}))
    start = time.perf_counter()
    results = check_cases(cases, context, 2, worker=crash_on_marked_cases)
    assert time.perf_counter() - start < 60
    assert [r.identifier for r in results] == ["case_a", "crash_b", "case_c", "crash_d"]
    assert results[0].problems == [] and results[2].problems == []
    for crashed in (results[1], results[3]):
        (problem,) = crashed.problems
        assert "worker process reading it died" in problem.message and problem.case == crashed.identifier


# ------------------------------------------------------------------------------------ real data
@pytest.mark.parametrize("name", ["Hippocampus", "BraTS2015Subset", "CT_TotalSegExamples"])
def test_real_datasets_pass(name: str) -> None:
    if not (DATA / name / "dataset.json").is_file():
        pytest.skip(f"{DATA / name} is not available")
    start = time.perf_counter()
    report = verify_dataset_integrity(DATA / name, num_processes=2)
    elapsed = time.perf_counter() - start
    assert report.ok, report.format()
    expected_cases = json.loads((DATA / name / "dataset.json").read_text())["numTraining"]
    assert report.num_cases == expected_cases
    if name == "Hippocampus":
        assert report.num_cases == 208 and elapsed < 10, f"{elapsed:.1f} s"
        assert report.problems == []
