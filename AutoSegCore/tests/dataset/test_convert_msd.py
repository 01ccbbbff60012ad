"""Tests of the MSD → nnU-Net v2 converter and of ``autoseg convert_MSD_dataset``."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from autoseg.cli import convert_datasets
from autoseg.dataset.convert.msd import convert_msd_dataset
from autoseg.errors import AutoSegError, DatasetError

SPATIAL_SIZE_XYZ = (8, 9, 10)
SPACING_4D = (0.7, 1.3, 3.0, 1.0)
ORIGIN_4D = (12.5, -7.0, 33.0, 0.0)
MODALITY = {"0": "FLAIR", "1": "T1w"}
MSD_LABELS = {"0": "background", "1": "edema", "2": "tumour"}


def rotation() -> np.ndarray:
    """A non-trivial orthonormal 3×3 direction (30° about z, then 20° about x)."""
    a, b = math.radians(30), math.radians(20)
    rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    return rz @ rx


def write_4d(path: Path, array_czyx: np.ndarray) -> None:
    image = sitk.GetImageFromArray(array_czyx, isVector=False)  # a 4D scalar image
    direction = np.eye(4)
    direction[:3, :3] = rotation()
    image.SetSpacing(SPACING_4D)
    image.SetOrigin(ORIGIN_4D)
    image.SetDirection(direction.ravel().tolist())
    sitk.WriteImage(image, str(path), useCompression=True)


def write_3d(path: Path, array_zyx: np.ndarray) -> None:
    image = sitk.GetImageFromArray(array_zyx)
    image.SetSpacing(SPACING_4D[:3])
    image.SetOrigin(ORIGIN_4D[:3])
    image.SetDirection(rotation().ravel().tolist())
    sitk.WriteImage(image, str(path), useCompression=True)


def make_msd_task(root: Path, name: str = "Task07_Fake", modality: dict[str, str] | None = None) -> Path:
    """A tiny MSD task: 2 training cases (4D, one channel per modality), 1 test case, macOS junk files."""
    modality = MODALITY if modality is None else modality
    task = root / name
    for folder in ("imagesTr", "labelsTr", "imagesTs"):
        (task / folder).mkdir(parents=True)
    rng = np.random.default_rng(0)
    shape = (2, *SPATIAL_SIZE_XYZ[::-1])
    cases = {"fake_001": np.float32, "fake_002": np.int16, "fake_003": np.float32}
    for case, dtype in cases.items():
        folder = "imagesTs" if case == "fake_003" else "imagesTr"
        write_4d(task / folder / f"{case}.nii.gz", (rng.normal(size=shape) * 100).astype(dtype))
        if folder == "imagesTr":
            write_3d(
                task / "labelsTr" / f"{case}.nii.gz", rng.integers(0, 3, size=shape[1:]).astype(np.uint8)
            )
    for folder in ("imagesTr", "labelsTr"):
        (task / folder / "._fake_001.nii.gz").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (task / ".DS_Store").write_bytes(b"junk")
    msd_json = {
        "name": "Fake",
        "description": "tiny synthetic task",
        "reference": "none",
        "licence": "CC-BY-SA 4.0",
        "release": "1.0",
        "tensorImageSize": "4D",
        "modality": modality,
        "labels": MSD_LABELS,
        "numTraining": 2,
        "numTest": 1,
        "training": [
            {"image": f"./imagesTr/{c}.nii.gz", "label": f"./labelsTr/{c}.nii.gz"}
            for c in ("fake_001", "fake_002")
        ],
        "test": ["./imagesTs/fake_003.nii.gz"],
    }
    (task / "dataset.json").write_text(json.dumps(msd_json, indent=4))
    return task


def relative_files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def geometry(image: sitk.Image) -> tuple:
    return image.GetSpacing(), image.GetOrigin(), image.GetDirection()


EXPECTED_FILES = {
    "dataset.json",
    "imagesTr/fake_001_0000.nii.gz",
    "imagesTr/fake_001_0001.nii.gz",
    "imagesTr/fake_002_0000.nii.gz",
    "imagesTr/fake_002_0001.nii.gz",
    "imagesTs/fake_003_0000.nii.gz",
    "imagesTs/fake_003_0001.nii.gz",
    "labelsTr/fake_001.nii.gz",
    "labelsTr/fake_002.nii.gz",
}


@pytest.fixture
def task(tmp_path: Path) -> Path:
    return make_msd_task(tmp_path / "downloads")


# ------------------------------------------------------------------------------------------- library
def test_converts_files_and_dataset_json(task: Path, tmp_path: Path) -> None:
    target = convert_msd_dataset(task, tmp_path / "raw", num_processes=1)
    assert target == tmp_path / "raw" / "Dataset007_Fake"
    assert relative_files(target) == EXPECTED_FILES
    assert json.loads((target / "dataset.json").read_text()) == {
        "name": "Fake",
        "description": "tiny synthetic task",
        "reference": "none",
        "licence": "CC-BY-SA 4.0",
        "release": "1.0",
        "tensorImageSize": "4D",
        "channel_names": MODALITY,
        "labels": {"background": 0, "edema": 1, "tumour": 2},
        "numTraining": 2,
        "numTest": 1,
        "file_ending": ".nii.gz",
    }
    assert [p.name for p in (tmp_path / "raw").iterdir()] == ["Dataset007_Fake"]  # no staging leftovers


def test_channels_and_geometry_equal_source(task: Path, tmp_path: Path) -> None:
    import nibabel as nib

    target = convert_msd_dataset(task, tmp_path / "raw", num_processes=1)
    for folder, case in (("imagesTr", "fake_001"), ("imagesTr", "fake_002"), ("imagesTs", "fake_003")):
        source = sitk.ReadImage(str(task / folder / f"{case}.nii.gz"))
        source_array = sitk.GetArrayFromImage(source)
        source_affine = nib.load(task / folder / f"{case}.nii.gz").affine
        # the 4th (channel) axis is never mixed with space, so the upper-left 3x3 block is exact
        direction_4d = np.reshape(source.GetDirection(), (4, 4))
        np.testing.assert_array_equal(direction_4d[3], [0, 0, 0, 1])
        np.testing.assert_array_equal(direction_4d[:, 3], [0, 0, 0, 1])
        for channel in range(2):
            path = target / folder / f"{case}_{channel:04d}.nii.gz"
            out = sitk.ReadImage(str(path))
            assert out.GetDimension() == 3
            assert out.GetPixelID() == source.GetPixelID()
            np.testing.assert_array_equal(sitk.GetArrayFromImage(out), source_array[channel])
            assert out.GetSpacing() == pytest.approx(SPACING_4D[:3])
            assert out.GetOrigin() == pytest.approx(ORIGIN_4D[:3])
            np.testing.assert_allclose(np.reshape(out.GetDirection(), (3, 3)), rotation(), atol=1e-6)
            np.testing.assert_allclose(nib.load(path).affine, source_affine, atol=1e-5)
    for case in ("fake_001", "fake_002"):
        name = f"labelsTr/{case}.nii.gz"
        assert (target / name).read_bytes() == (task / name).read_bytes()


def test_parallel_conversion_equals_serial(task: Path, tmp_path: Path) -> None:
    serial = convert_msd_dataset(task, tmp_path / "serial", num_processes=1)
    parallel = convert_msd_dataset(task, tmp_path / "parallel", num_processes=2)
    assert relative_files(parallel) == relative_files(serial)
    for name in relative_files(serial) - {"dataset.json"}:
        a, b = sitk.ReadImage(str(serial / name)), sitk.ReadImage(str(parallel / name))
        np.testing.assert_array_equal(sitk.GetArrayFromImage(a), sitk.GetArrayFromImage(b))
        assert geometry(a) == geometry(b)


def test_refuses_existing_target_unless_overwrite(task: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    existing = raw / "Dataset007_Fake"
    existing.mkdir(parents=True)
    (existing / "mine.txt").write_text("keep me")
    with pytest.raises(DatasetError, match=r"Dataset007_Fake already exists.*--overwrite"):
        convert_msd_dataset(task, raw, num_processes=1)
    assert (existing / "mine.txt").read_text() == "keep me"
    convert_msd_dataset(task, raw, num_processes=1, overwrite=True)
    assert relative_files(existing) == EXPECTED_FILES
    assert [p.name for p in raw.iterdir()] == ["Dataset007_Fake"]


def test_id_taken_by_another_dataset(task: Path, tmp_path: Path) -> None:
    raw, results = tmp_path / "raw", tmp_path / "results"
    (results / "Dataset007_Other").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"id 7 is already used by .*Dataset007_Other.*-overwrite_id"):
        convert_msd_dataset(task, raw, num_processes=1, id_check_folders=[results])
    target = convert_msd_dataset(task, raw, overwrite_id=42, num_processes=1, id_check_folders=[results])
    assert target.name == "Dataset042_Fake"


def test_failed_conversion_leaves_no_half_dataset(task: Path, tmp_path: Path) -> None:
    (task / "imagesTs" / "fake_003.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(AutoSegError, match="fake_003.nii.gz"):
        convert_msd_dataset(task, tmp_path / "raw", num_processes=1)
    assert list((tmp_path / "raw").iterdir()) == []


def test_failed_parallel_conversion_leaves_no_half_dataset(task: Path, tmp_path: Path) -> None:
    (task / "imagesTr" / "fake_002.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(AutoSegError, match="fake_002.nii.gz"):
        convert_msd_dataset(task, tmp_path / "raw", num_processes=2)
    assert list((tmp_path / "raw").iterdir()) == []


def test_without_test_images(task: Path, tmp_path: Path) -> None:
    for path in (task / "imagesTs").iterdir():
        path.unlink()
    (task / "imagesTs").rmdir()
    target = convert_msd_dataset(task, tmp_path / "raw", num_processes=1)
    assert relative_files(target) == {f for f in EXPECTED_FILES if not f.startswith("imagesTs")}


def test_channel_count_mismatch(tmp_path: Path) -> None:
    task = make_msd_task(tmp_path, modality={"0": "FLAIR", "1": "T1w", "2": "T2w"})
    with pytest.raises(
        DatasetError, match=r"fake_00\d.nii.gz has 2 channel\(s\) but dataset.json 'modality' lists 3"
    ):
        convert_msd_dataset(task, tmp_path / "raw", num_processes=1)


def test_single_modality_3d_images_are_copied(tmp_path: Path) -> None:
    task = make_msd_task(tmp_path, name="Task04_Mono", modality={"0": "MRI"})
    for folder, case in (("imagesTr", "fake_001"), ("imagesTr", "fake_002"), ("imagesTs", "fake_003")):
        write_3d(task / folder / f"{case}.nii.gz", np.full(SPATIAL_SIZE_XYZ[::-1], 3, dtype=np.int16))
    target = convert_msd_dataset(task, tmp_path / "raw", num_processes=1)
    assert target.name == "Dataset004_Mono"
    assert (target / "imagesTr/fake_002_0000.nii.gz").read_bytes() == (
        task / "imagesTr/fake_002.nii.gz"
    ).read_bytes()
    assert not (target / "imagesTr/fake_002_0001.nii.gz").exists()


def test_missing_label_is_reported(task: Path, tmp_path: Path) -> None:
    (task / "labelsTr" / "fake_002.nii.gz").unlink()
    with pytest.raises(DatasetError, match=r"labelsTr.fake_002.nii.gz is missing"):
        convert_msd_dataset(task, tmp_path / "raw", num_processes=1)


def test_task_folder_name_is_checked(task: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"TaskXX_Name.*did you mean .*Task07_Fake"):
        convert_msd_dataset(task.parent, tmp_path / "raw", num_processes=1)


def test_missing_source_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist or is not a folder"):
        convert_msd_dataset(tmp_path / "Task05_Prostate", tmp_path / "raw", num_processes=1)


def test_name_with_underscores_is_kept(tmp_path: Path) -> None:
    task = make_msd_task(tmp_path, name="Task03_Liver_Tumour")
    assert convert_msd_dataset(task, tmp_path / "raw", num_processes=1).name == "Dataset003_Liver_Tumour"


# ------------------------------------------------------------------------------------------- oracle
@pytest.mark.oracle
def test_matches_nnunetv2_converter(task: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nnunetv2  # noqa: F401  (the oracle is always installed in the test environment)
    oracle_root = tmp_path / "oracle"
    for variable in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        (oracle_root / variable).mkdir(parents=True)
        monkeypatch.setenv(variable, str(oracle_root / variable))
    from nnunetv2.dataset_conversion.convert_MSD_dataset import convert_msd_dataset as nnunet_convert

    nnunet_convert(str(task), num_processes=1)  # nnU-Net reads nnUNet_raw from the environment when used
    theirs = oracle_root / "nnUNet_raw" / "Dataset007_Fake"
    ours = convert_msd_dataset(task, tmp_path / "raw", num_processes=1)

    assert relative_files(ours) == relative_files(theirs) == EXPECTED_FILES
    assert json.loads((ours / "dataset.json").read_text()) == json.loads(
        (theirs / "dataset.json").read_text()
    )
    for name in EXPECTED_FILES - {"dataset.json"}:
        a, b = sitk.ReadImage(str(ours / name)), sitk.ReadImage(str(theirs / name))
        assert a.GetPixelID() == b.GetPixelID(), name
        np.testing.assert_array_equal(sitk.GetArrayFromImage(a), sitk.GetArrayFromImage(b), err_msg=name)
        assert geometry(a) == geometry(b), name


# ------------------------------------------------------------------------------------------- CLI
def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="autoseg")
    convert_datasets.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for variable in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(variable, str(tmp_path / "ws" / variable))
    monkeypatch.delenv("nnUNet_def_n_proc", raising=False)
    return tmp_path / "ws"


def test_cli_converts_into_nnunet_raw(task: Path, workspace: Path) -> None:
    args = parse(["convert_MSD_dataset", "-i", str(task), "-np", "1"])
    assert args.func(args) == 0
    assert relative_files(workspace / "nnUNet_raw" / "Dataset007_Fake") == EXPECTED_FILES


def test_cli_double_dash_flags_and_overwrite(task: Path, workspace: Path) -> None:
    argv = ["convert_MSD_dataset", "-i", str(task), "--np", "1", "--overwrite_id", "12"]
    args = parse(argv)
    args.func(args)
    with pytest.raises(DatasetError, match="Dataset012_Fake already exists"):
        args.func(parse(argv))
    args = parse([*argv, "--overwrite"])
    assert args.overwrite and args.func(args) == 0


def test_cli_id_clash_checks_preprocessed(task: Path, workspace: Path) -> None:
    (workspace / "nnUNet_preprocessed" / "Dataset007_Prostate").mkdir(parents=True)
    args = parse(["convert_MSD_dataset", "-i", str(task), "-np", "1"])
    with pytest.raises(DatasetError, match="Dataset007_Prostate"):
        args.func(args)


def test_cli_default_processes_from_environment(
    task: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("nnUNet_def_n_proc", "1")
    args = parse(["convert_MSD_dataset", "-i", str(task)])
    assert args.np is None and convert_datasets.default_num_processes() == 1
    assert args.func(args) == 0


def test_cli_help_mentions_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse(["convert_MSD_dataset", "-h"])
    text = capsys.readouterr().out
    for flag in ("-i FOLDER", "-overwrite_id", "-np", "--overwrite", "Decathlon"):
        assert flag in text
