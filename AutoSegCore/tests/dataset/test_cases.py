"""Case discovery: imagesTr/labelsTr naming, an explicit ``dataset`` map, imagesTs."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoseg.dataset.cases import (
    case_identifiers,
    channel_files,
    resolve_dataset_path,
    strip_ending,
    training_cases,
)
from autoseg.dataset.cases import (
    test_cases as find_test_cases,
)
from autoseg.dataset.dataset_json import DatasetJson


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def dataset_json(**overrides) -> DatasetJson:
    raw = {
        "channel_names": {"0": "T1", "1": "T2"},
        "labels": {"background": 0, "a": 1},
        "numTraining": 2,
        "file_ending": ".nii.gz",
        **overrides,
    }
    return DatasetJson.from_dict(raw)


@pytest.fixture()
def raw(tmp_path: Path) -> Path:
    root = tmp_path / "Dataset001_X"
    for case in ("b_case", "a_case"):
        for channel in (1, 0):
            touch(root / "imagesTr" / f"{case}_{channel:04d}.nii.gz")
        touch(root / "labelsTr" / f"{case}.nii.gz")
    touch(root / "imagesTr" / "a_case_0000.nii")  # other ending: not part of the dataset
    touch(root / "imagesTr" / "nosuffix.nii.gz")  # no channel suffix
    touch(root / "imagesTr" / "._a_case_0000.nii.gz")  # macOS resource fork
    touch(root / "imagesTr" / ".DS_Store")
    (root / "imagesTr" / "folder_0000.nii.gz").mkdir()
    return root


def test_strip_ending() -> None:
    assert strip_ending("case_0000.nii.gz", ".nii.gz") == "case_0000"
    assert strip_ending("case_0000.nii", ".nii.gz") is None
    assert strip_ending("case_0000.NII.GZ", ".nii.gz") is None  # case-sensitive, as nnU-Net
    assert strip_ending(".nii.gz", ".nii.gz") is None


def test_training_cases_from_folders(raw: Path) -> None:
    cases = training_cases(raw, dataset_json())
    assert list(cases) == ["a_case", "b_case"]
    case = cases["a_case"]
    assert [p.name for p in case.images] == ["a_case_0000.nii.gz", "a_case_0001.nii.gz"]
    assert case.label == raw / "labelsTr" / "a_case.nii.gz"


def test_identifiers_and_channel_files(raw: Path) -> None:
    assert case_identifiers(raw / "imagesTr", ".nii.gz") == ["a_case", "b_case"]
    assert [p.name for p in channel_files(raw / "imagesTr", "b_case", ".nii.gz")] == [
        "b_case_0000.nii.gz",
        "b_case_0001.nii.gz",
    ]
    assert case_identifiers(raw / "missing", ".nii.gz") == []


def test_case_id_with_underscores_and_digits(tmp_path: Path) -> None:
    touch(tmp_path / "la_003_2019_0000.nii.gz")
    touch(tmp_path / "la_003_2019_0001.nii.gz")
    assert case_identifiers(tmp_path, ".nii.gz") == ["la_003_2019"]


def test_explicit_dataset_map(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_DATA", str(tmp_path / "elsewhere"))
    dj = dataset_json(
        dataset={
            "c2": {"images": ["imgs/c2_t1.nii.gz", "imgs/c2_t2.nii.gz"], "label": "segs/c2.nii.gz"},
            "c1": {"images": ["$MY_DATA/c1_t1.nii.gz", "/abs/c1_t2.nii.gz"], "label": "segs/c1.nii.gz"},
        }
    )
    cases = training_cases(tmp_path, dj)
    assert list(cases) == ["c1", "c2"]
    assert cases["c2"].images[0] == tmp_path / "imgs" / "c2_t1.nii.gz"
    assert cases["c1"].images == (tmp_path / "elsewhere" / "c1_t1.nii.gz", Path("/abs/c1_t2.nii.gz"))
    assert cases["c1"].label == tmp_path / "segs" / "c1.nii.gz"
    assert resolve_dataset_path(tmp_path, "x.nii.gz") == tmp_path / "x.nii.gz"


def test_test_cases(tmp_path: Path) -> None:
    touch(tmp_path / "t1_0000.png")
    touch(tmp_path / "t1_0001.png")
    touch(tmp_path / "t2_0000.png")
    found = find_test_cases(tmp_path, ".png")
    assert {k: [p.name for p in v] for k, v in found.items()} == {
        "t1": ["t1_0000.png", "t1_0001.png"],
        "t2": ["t2_0000.png"],
    }
