"""``autoseg verify_dataset``: exit status, printed report, JSON output, errors for unknown datasets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from integrity_helpers import make_dataset

from autoseg.cli.main import main
from autoseg.cli.verify_dataset import verify_datasets_or_raise
from autoseg.errors import DatasetError
from autoseg.paths import Workspace


@pytest.fixture()
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    ws = Workspace.from_root(tmp_path / "ws")
    for name, folder in (
        ("nnUNet_raw", ws.raw),
        ("nnUNet_preprocessed", ws.preprocessed),
        ("nnUNet_results", ws.results),
    ):
        folder.mkdir(parents=True)
        monkeypatch.setenv(name, str(folder))
    make_dataset(ws.raw / "Dataset001_Good")
    broken = make_dataset(ws.raw / "Dataset002_Broken")
    (broken / "labelsTr" / "case_001.nii.gz").unlink()
    return ws


def test_valid_dataset_exits_0(workspace: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify_dataset", "-d", "1"]) == 0
    out = capsys.readouterr().out
    assert "Dataset001_Good: 3 case(s), 0 error(s), 0 warning(s) -- OK" in out


def test_broken_dataset_exits_1_and_names_case_and_file(workspace: Workspace, capsys) -> None:
    assert main(["verify_dataset", "-d", "Dataset002_Broken", "-np", "2", "--no_pbar"]) == 1
    out = capsys.readouterr().out
    assert "1 error(s)" in out and "case case_001:" in out and "labelsTr/case_001.nii.gz" in out
    assert "fix:" in out


def test_several_datasets_and_double_dash_flags(workspace: Workspace, capsys) -> None:
    assert main(["verify_dataset", "-d", "1", "2", "--np", "0"]) == 1
    out = capsys.readouterr().out
    assert "Dataset001_Good" in out and "Dataset002_Broken" in out


def test_json_output(workspace: Workspace, capsys) -> None:
    assert main(["verify_dataset", "-d", "2", "--json"]) == 1
    (report,) = json.loads(capsys.readouterr().out)
    assert report["num_errors"] == 1 and report["problems"][0]["case"] == "case_001"
    assert report["problems"][0]["file"].endswith("case_001.nii.gz")


def test_unknown_dataset(workspace: Workspace, capsys) -> None:
    assert main(["verify_dataset", "-d", "9"]) == 1
    err = capsys.readouterr().err
    assert "autoseg verify_dataset: error:" in err and "No dataset with id 9" in err


def test_environment_near_miss(workspace: Workspace, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("nnUNet_results", f" {workspace.results}")
    assert main(["verify_dataset", "-d", "1"]) == 1
    assert "starts or ends with spaces" in capsys.readouterr().err


def test_help(capsys) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["verify_dataset", "-h"])
    assert raised.value.code == 0
    out = capsys.readouterr().out
    assert "-d DATASET" in out and "-np N" in out and "Exits with status 1" in out


def test_verify_datasets_or_raise(workspace: Workspace, capsys) -> None:
    verify_datasets_or_raise([1], 0, show_progress=False, workspace=workspace)
    assert "Dataset001_Good" in capsys.readouterr().out
    with pytest.raises(DatasetError, match="case_001.nii.gz is missing"):
        verify_datasets_or_raise([1, 2], 0, show_progress=False, workspace=workspace)
