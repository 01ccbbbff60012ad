"""Tests of the nnU-Net v1 → v2 converter and of ``autoseg convert_old_nnUNet_dataset``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from autoseg.cli import convert_datasets
from autoseg.dataset.convert.old_nnunet import convert_old_nnunet_dataset
from autoseg.errors import DatasetError

V1_JSON = {
    "name": "Hippocampus",
    "description": "Left and right hippocampus segmentation",
    "tensorImageSize": "3D",
    "reference": "Vanderbilt University Medical Center",
    "licence": "CC-BY-SA 4.0",
    "release": "1.0 04/05/2018",
    "modality": {"0": "MRI"},
    "labels": {"0": "background", "1": "Anterior", "2": "Posterior"},
    "numTraining": 2,
    "numTest": 1,
    "training": [
        {"image": "./imagesTr/hippocampus_001.nii.gz", "label": "./labelsTr/hippocampus_001.nii.gz"},
        {"image": "./imagesTr/hippocampus_002.nii.gz", "label": "./labelsTr/hippocampus_002.nii.gz"},
    ],
    "test": ["./imagesTs/hippocampus_003.nii.gz"],
}
V2_JSON = {
    "name": "Hippocampus",
    "description": "Left and right hippocampus segmentation",
    "reference": "Vanderbilt University Medical Center",
    "licence": "CC-BY-SA 4.0",
    "release": "1.0 04/05/2018",
    "channel_names": {"0": "MRI"},
    "labels": {"background": 0, "Anterior": 1, "Posterior": 2},
    "numTraining": 2,
    "file_ending": ".nii.gz",
}
EXPECTED_FILES = {
    "dataset.json",
    "imagesTr/hippocampus_001_0000.nii.gz",
    "imagesTr/hippocampus_002_0000.nii.gz",
    "labelsTr/hippocampus_001.nii.gz",
    "labelsTr/hippocampus_002.nii.gz",
    "imagesTs/hippocampus_003_0000.nii.gz",
}


def write_image(path: Path, array: np.ndarray) -> None:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((1.0, 1.0, 1.5))
    sitk.WriteImage(image, str(path), useCompression=True)


def make_v1_task(root: Path) -> Path:
    """A v1 task folder: channels already split, MSD-style dataset.json, a macOS junk file."""
    task = root / "nnUNet_raw_data" / "Task004_Hippocampus"
    for folder in ("imagesTr", "labelsTr", "imagesTs"):
        (task / folder).mkdir(parents=True)
    rng = np.random.default_rng(1)
    for case in ("hippocampus_001", "hippocampus_002", "hippocampus_003"):
        folder = "imagesTs" if case.endswith("3") else "imagesTr"
        write_image(task / folder / f"{case}_0000.nii.gz", rng.normal(size=(6, 7, 5)).astype(np.float32))
        if folder == "imagesTr":
            write_image(task / "labelsTr" / f"{case}.nii.gz", rng.integers(0, 3, (6, 7, 5)).astype(np.uint8))
    (task / "imagesTr" / "._hippocampus_001_0000.nii.gz").write_bytes(b"AppleDouble")
    (task / "dataset.json").write_text(json.dumps(V1_JSON, indent=4))
    return task


def relative_files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def task(tmp_path: Path) -> Path:
    return make_v1_task(tmp_path / "v1")


# ------------------------------------------------------------------------------------------- library
def test_converts_v1_task(task: Path, tmp_path: Path) -> None:
    target = convert_old_nnunet_dataset(task, "Dataset004_Hippocampus", tmp_path / "raw")
    assert target == tmp_path / "raw" / "Dataset004_Hippocampus"
    assert relative_files(target) == EXPECTED_FILES
    assert json.loads((target / "dataset.json").read_text()) == V2_JSON
    for name in EXPECTED_FILES - {"dataset.json"}:
        assert (target / name).read_bytes() == (task / name).read_bytes()
    assert [p.name for p in (tmp_path / "raw").iterdir()] == ["Dataset004_Hippocampus"]


def test_optional_folders_are_copied(task: Path, tmp_path: Path) -> None:
    (task / "labelsTs").mkdir()
    (task / "labelsTs" / "hippocampus_003.nii.gz").write_bytes(b"x")
    target = convert_old_nnunet_dataset(task, "Dataset104_Hippo", tmp_path / "raw")
    assert (target / "labelsTs" / "hippocampus_003.nii.gz").read_bytes() == b"x"


def test_refuses_existing_target_unless_overwrite(task: Path, tmp_path: Path) -> None:
    existing = tmp_path / "raw" / "Dataset004_Hippocampus"
    existing.mkdir(parents=True)
    (existing / "mine.txt").write_text("keep me")
    with pytest.raises(DatasetError, match=r"Dataset004_Hippocampus already exists.*--overwrite"):
        convert_old_nnunet_dataset(task, "Dataset004_Hippocampus", tmp_path / "raw")
    assert (existing / "mine.txt").read_text() == "keep me"
    convert_old_nnunet_dataset(task, "Dataset004_Hippocampus", tmp_path / "raw", overwrite=True)
    assert relative_files(existing) == EXPECTED_FILES


@pytest.mark.parametrize(
    "name", ["Task004_Hippocampus", "Dataset4_Hippo", "Dataset004", "Dataset004_a/b", "x/Dataset004_A"]
)
def test_output_name_is_validated(task: Path, tmp_path: Path, name: str) -> None:
    with pytest.raises(DatasetError, match="DatasetXXX_Name"):
        convert_old_nnunet_dataset(task, name, tmp_path / "raw")
    assert not (tmp_path / "raw").exists()


def test_input_folder_is_validated(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not a folder"):
        convert_old_nnunet_dataset(
            tmp_path / "Task004_Hippocampus", "Dataset004_Hippocampus", tmp_path / "raw"
        )
    (tmp_path / "Task004_Hippocampus" / "imagesTr").mkdir(parents=True)
    with pytest.raises(DatasetError, match="missing dataset.json, labelsTr"):
        convert_old_nnunet_dataset(
            tmp_path / "Task004_Hippocampus", "Dataset004_Hippocampus", tmp_path / "raw"
        )


def test_v2_dataset_is_recognised(task: Path, tmp_path: Path) -> None:
    (task / "dataset.json").write_text(json.dumps(V2_JSON))
    with pytest.raises(DatasetError, match="already has 'channel_names'"):
        convert_old_nnunet_dataset(task, "Dataset004_Hippocampus", tmp_path / "raw")


def test_duplicate_label_names_are_refused(task: Path, tmp_path: Path) -> None:
    (task / "dataset.json").write_text(
        json.dumps({**V1_JSON, "labels": {"0": "background", "1": "a", "2": "a"}})
    )
    with pytest.raises(DatasetError, match="label name 'a' is used for both 1 and 2"):
        convert_old_nnunet_dataset(task, "Dataset004_Hippocampus", tmp_path / "raw")


def test_id_clash_in_raw(task: Path, tmp_path: Path) -> None:
    (tmp_path / "raw" / "Dataset004_Other").mkdir(parents=True)
    with pytest.raises(DatasetError, match="id 4 is already used by .*Dataset004_Other"):
        convert_old_nnunet_dataset(task, "Dataset004_Hippocampus", tmp_path / "raw")


# ------------------------------------------------------------------------------------------- oracle
@pytest.mark.oracle
def test_matches_nnunetv2_converter(task: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nnunetv2  # noqa: F401  (the oracle is always installed in the test environment)
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "oracle_raw"))
    from nnunetv2.dataset_conversion.convert_raw_dataset_from_old_nnunet_format import convert

    (task / "imagesTr" / "._hippocampus_001_0000.nii.gz").unlink()  # nnU-Net copies junk; compare real data
    convert(str(task), "Dataset004_Hippocampus")
    theirs = tmp_path / "oracle_raw" / "Dataset004_Hippocampus"
    ours = convert_old_nnunet_dataset(task, "Dataset004_Hippocampus", tmp_path / "raw")
    assert relative_files(ours) == relative_files(theirs) == EXPECTED_FILES
    assert json.loads((ours / "dataset.json").read_text()) == json.loads(
        (theirs / "dataset.json").read_text()
    )
    for name in EXPECTED_FILES - {"dataset.json"}:
        assert (ours / name).read_bytes() == (theirs / name).read_bytes()


# ------------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autoseg")
    convert_datasets.register(parser.add_subparsers(dest="command"))
    return parser


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for variable in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(variable, str(tmp_path / "ws" / variable))
    return tmp_path / "ws"


def test_register_adds_both_commands() -> None:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert {"convert_MSD_dataset", "convert_old_nnUNet_dataset"} <= set(subparsers.choices)
    helps = {c.dest: c.help for c in subparsers._choices_actions}
    assert all(helps[name] for name in ("convert_MSD_dataset", "convert_old_nnUNet_dataset"))


def test_cli_converts_into_nnunet_raw(task: Path, workspace: Path) -> None:
    args = build_parser().parse_args(["convert_old_nnUNet_dataset", str(task), "Dataset004_Hippocampus"])
    assert args.func(args) == 0
    assert relative_files(workspace / "nnUNet_raw" / "Dataset004_Hippocampus") == EXPECTED_FILES


def test_cli_overwrite_flag(task: Path, workspace: Path) -> None:
    argv = ["convert_old_nnUNet_dataset", str(task), "Dataset004_Hippocampus"]
    args = build_parser().parse_args(argv)
    args.func(args)
    with pytest.raises(DatasetError, match="already exists"):
        args.func(args)
    args = build_parser().parse_args([*argv, "--overwrite"])
    assert args.func(args) == 0


def test_cli_id_clash_checks_results(task: Path, workspace: Path) -> None:
    (workspace / "nnUNet_results" / "Dataset004_Other").mkdir(parents=True)
    args = build_parser().parse_args(["convert_old_nnUNet_dataset", str(task), "Dataset004_Hippocampus"])
    with pytest.raises(DatasetError, match="Dataset004_Other"):
        args.func(args)


def test_cli_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["convert_old_nnUNet_dataset", "-h"])
    text = capsys.readouterr().out
    for word in ("input_folder", "output_dataset_name", "DatasetXXX_Name", "--overwrite"):
        assert word in text
