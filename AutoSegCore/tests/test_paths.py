"""Workspace folders from the environment (with near-miss detection) and dataset id/name resolution."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from autoseg.errors import DatasetError, WorkspaceError
from autoseg.paths import Workspace, check_environment_near_misses, find_dataset_name, parse_dataset_id


@pytest.fixture()
def workspace(tmp_path: Path) -> Workspace:
    ws = Workspace.from_root(tmp_path)
    (ws.raw / "Dataset004_Hippocampus").mkdir(parents=True)
    (ws.raw / "Dataset017_Abdomen").mkdir()
    (ws.preprocessed / "Dataset020_OnlyPreprocessed").mkdir(parents=True)
    (ws.results / "Dataset030_OnlyResults").mkdir(parents=True)
    return ws


# -------------------------------------------------------------------------------------- folders
def test_from_root(tmp_path: Path) -> None:
    ws = Workspace.from_root(tmp_path)
    assert (ws.raw, ws.preprocessed, ws.results) == (
        tmp_path / "nnUNet_raw",
        tmp_path / "nnUNet_preprocessed",
        tmp_path / "nnUNet_results",
    )


def test_from_environment_uses_the_variables(tmp_path: Path) -> None:
    env = {
        "nnUNet_raw": str(tmp_path / "r"),
        "nnUNet_preprocessed": str(tmp_path / "p"),
        "nnUNet_results": str(tmp_path / "s"),
        "PATH": "/usr/bin",
    }
    ws = Workspace.from_environment(env)
    assert (ws.raw, ws.preprocessed, ws.results) == (tmp_path / "r", tmp_path / "p", tmp_path / "s")


def test_unset_variables_default_to_autoseg_home(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="autoseg.paths"):
        ws = Workspace.from_environment({"AUTOSEG_HOME": str(tmp_path), "nnUNet_raw": str(tmp_path / "mine")})
    assert ws.raw == tmp_path / "mine"
    assert ws.preprocessed == tmp_path / "nnUNet_preprocessed" and ws.results == tmp_path / "nnUNet_results"
    assert "nnUNet_preprocessed, nnUNet_results not set" in caplog.text


def test_default_home_is_home_autoseg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("USERPROFILE", str(tmp_path))
    assert Workspace.from_environment({}).raw == tmp_path / "AutoSeg" / "nnUNet_raw"


def test_reads_os_environ_when_no_mapping_is_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(name, str(tmp_path / name))
    assert Workspace.from_environment().results == tmp_path / "nnUNet_results"


# ---------------------------------------------------------------------------------- near misses
def test_variable_name_with_trailing_space() -> None:
    # what `set nnUNet_raw = D:\data` defines on Windows
    with pytest.raises(WorkspaceError) as raised:
        Workspace.from_environment({"nnUNet_raw ": " D:\\data"})
    message = str(raised.value)
    assert "'nnUNet_raw '" in message and "spaces in its name" in message and "set nnUNet_raw=" in message


def test_value_with_leading_space() -> None:
    with pytest.raises(WorkspaceError, match=r"nnUNet_results=' /data/results' starts or ends with spaces"):
        Workspace.from_environment({"nnUNet_results": " /data/results"})


def test_value_with_quotes() -> None:
    with pytest.raises(WorkspaceError, match="contains quote characters"):
        Workspace.from_environment({"nnUNet_preprocessed": '"C:\\data\\pre"'})
    with pytest.raises(WorkspaceError, match="contains quote characters"):
        Workspace.from_environment({"AUTOSEG_HOME": "'/home/me/AutoSeg'"})


def test_wrong_capitalisation() -> None:
    with pytest.raises(WorkspaceError, match="'nnunet_raw' should be spelled 'nnUNet_raw'"):
        Workspace.from_environment({"nnunet_raw": "/data"})


def test_every_near_miss_is_listed_at_once() -> None:
    env = {"nnUNet_raw ": "/a", "nnUNet_results": " /b", "nnUNet_preprocessed": "'/c'"}
    with pytest.raises(WorkspaceError) as raised:
        check_environment_near_misses(env)
    assert str(raised.value).count("\n  - ") == 3


def test_clean_environment_passes() -> None:
    check_environment_near_misses({"nnUNet_raw": "/a", "PATH": " odd but not ours ", "HOME": "/root"})


# ----------------------------------------------------------------------------------- dataset ids
@pytest.mark.parametrize(
    ("identifier", "expected"),
    [
        (4, 4),
        ("4", 4),
        ("004", 4),
        (" 17 ", 17),
        ("Dataset004_Hippocampus", 4),
        ("Hippocampus", None),
        ("Dataset4_X", None),
        ("", None),
    ],
)
def test_parse_dataset_id(identifier, expected) -> None:
    assert parse_dataset_id(identifier) == expected


@pytest.mark.parametrize("identifier", [4, "4", "004", "Dataset004_Hippocampus"])
def test_dataset_name_by_id_or_name(workspace: Workspace, identifier) -> None:
    assert workspace.dataset_name(identifier) == "Dataset004_Hippocampus"
    assert workspace.raw_dataset(identifier) == workspace.raw / "Dataset004_Hippocampus"
    assert workspace.preprocessed_dataset(identifier) == workspace.preprocessed / "Dataset004_Hippocampus"
    assert workspace.results_dataset(identifier) == workspace.results / "Dataset004_Hippocampus"


def test_dataset_found_in_preprocessed_or_results(workspace: Workspace) -> None:
    assert workspace.dataset_name(20) == "Dataset020_OnlyPreprocessed"
    assert workspace.dataset_name("030") == "Dataset030_OnlyResults"


def test_unknown_dataset_id(workspace: Workspace) -> None:
    with pytest.raises(DatasetError) as raised:
        workspace.dataset_name(99)
    message = str(raised.value)
    assert "No dataset with id 99 (Dataset099_*)" in message and str(workspace.raw) in message


def test_ambiguous_dataset_id(workspace: Workspace) -> None:
    (workspace.results / "Dataset004_Other").mkdir()
    with pytest.raises(DatasetError) as raised:
        workspace.dataset_name(4)
    message = str(raised.value)
    assert "ambiguous" in message and "Dataset004_Hippocampus" in message and "Dataset004_Other" in message
    # the full name is still unambiguous
    assert workspace.dataset_name("Dataset004_Other") == "Dataset004_Other"


def test_not_an_id_or_name(workspace: Workspace) -> None:
    with pytest.raises(DatasetError, match="'Hippocampus' is not a dataset id or name"):
        workspace.dataset_name("Hippocampus")


def test_files_are_not_datasets(workspace: Workspace) -> None:
    (workspace.raw / "Dataset050_File").write_text("not a folder")
    with pytest.raises(DatasetError, match="No dataset with id 50"):
        workspace.dataset_name(50)


def test_missing_workspace_folders(tmp_path: Path) -> None:
    ws = Workspace.from_root(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="No dataset with id 4"):
        ws.dataset_name(4)
    with pytest.raises(DatasetError, match="No dataset with id 4"):
        find_dataset_name("Dataset004_X", [tmp_path / "a"])
