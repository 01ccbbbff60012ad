"""``autoseg export_segmentations``: dry run, real run, refusal to overwrite, missing volumes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from export_helpers import folder_hashes, oblique_geometry, painted_labels, write_case

from autoseg.cli.main import main
from autoseg.paths import Workspace


@pytest.fixture()
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    ws = Workspace.from_root(tmp_path / "ws")
    for name, folder in (
        ("nnUNet_raw", ws.raw),
        ("nnUNet_preprocessed", ws.preprocessed),
        ("nnUNet_results", ws.results),
    ):
        monkeypatch.setenv(name, str(folder))
    return ws


@pytest.fixture()
def annotated(tmp_path: Path) -> Path:
    folder = tmp_path / "annotated"
    geometry = oblique_geometry(reflect=True)
    write_case(folder, "a", painted_labels(), geometry, {1: "Liver", 2: "Tumor"})
    write_case(folder, "b", painted_labels(seed=7), geometry, {1: "liver"}, seed=3)
    return folder


def test_dry_run_prints_the_plan_and_writes_nothing(workspace: Workspace, annotated: Path, capsys) -> None:
    code = main(
        [
            "export_segmentations",
            "-i",
            str(annotated),
            "-d",
            "21",
            "-n",
            "Liver",
            "-channel_names",
            "CT",
            "--dry_run",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "Dataset021_Liver (new dataset)" in out
    assert "1  Liver (new): 2/2 case(s)" in out and "2  Tumor (new): 1/2 case(s)  missing in: b" in out
    assert "a: 1 channel(s), a.seg.nrrd [new]" in out and "Dry run: nothing was written." in out
    assert not workspace.raw.exists()


def test_real_run_writes_the_dataset_and_refuses_to_overwrite(
    workspace: Workspace, annotated: Path, capsys
) -> None:
    argv = [
        "export_segmentations",
        "-i",
        str(annotated),
        "-d",
        "Dataset021_Liver",
        "--channel_names",
        "CT",
        "--file_ending",
        ".nrrd",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    folder = workspace.raw / "Dataset021_Liver"
    assert "[2/2] b" in out and f"Exported 2 case(s) to {folder}" in out
    assert json.loads((folder / "dataset.json").read_text()) == {
        "channel_names": {"0": "CT"},
        "labels": {"background": 0, "Liver": 1, "Tumor": 2},
        "numTraining": 2,
        "file_ending": ".nrrd",
    }
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labelsTr" / "a.nrrd")))
    np.testing.assert_array_equal(labels, painted_labels())
    assert main(["verify_dataset", "-d", "21"]) == 0

    before = folder_hashes(folder)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "2 case(s) already exist" in err and "a, b" in err and "--overwrite" in err
    assert folder_hashes(folder) == before
    assert main([*argv, "--overwrite"]) == 0
    assert sorted(folder_hashes(folder)) == sorted(before)


def test_missing_volume_exits_1_naming_the_segmentation(
    workspace: Workspace, annotated: Path, capsys
) -> None:
    (annotated / "b.nrrd").unlink()
    code = main(["export_segmentations", "-i", str(annotated), "-d", "22", "-n", "X", "-channel_names", "CT"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("autoseg export_segmentations: error:")
    assert "b.seg.nrrd has no volume: expected b.<ext> or b_0000.<ext>" in err
    assert not workspace.raw.exists()


def test_problems_exit_1_and_are_all_printed(workspace: Workspace, annotated: Path, capsys) -> None:
    code = main(
        ["export_segmentations", "-i", str(annotated), "-d", "23", "-n", "X", "-channel_names", "T1", "T2"]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert "case 'a' has 1 volume(s) but the dataset has 2 channel(s)" in captured.out
    assert "case 'b' has 1 volume(s)" in captured.out
    assert "2 problem(s) listed above; nothing was written" in captured.err
    assert not workspace.raw.exists()
