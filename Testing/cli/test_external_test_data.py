"""The data the tests read from outside the repository: one setting per location (``AUTOSEG_TEST_DATA``,
``AUTOSEG_SLICER_PYTHON``), and one message before the run, instead of errors at collection, when it is missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import external_test_data
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _pytest_without_data(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, AUTOSEG_TEST_DATA=str(tmp_path / "data"), AUTOSEG_SLICER_PYTHON=str(tmp_path / "slicer"))
    (tmp_path / "data").mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                          cwd=ROOT / "AutoSegCore", env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("selection", [
    ["-k", "nothing"],  # `make test`: both trees
    ["tests/test_paths.py"],  # the component tests alone (AutoSegCore/tests/conftest.py)
    # the whole-command tests alone, found without pyproject.toml
    ["../Testing/slicer_modules/test_slicer_terminology.py"],
], ids=["both-trees", "component-tests", "whole-command-tests"])
def test_missing_data_stops_the_run_with_one_message(tmp_path: Path, selection: list[str]) -> None:
    result = _pytest_without_data(tmp_path, *selection)
    output = result.stdout + result.stderr
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, output
    assert result.stdout == "" and output.startswith("ERROR: AutoSeg's tests need files that are not in the repository")
    assert output.count("AutoSeg's tests need files") == 1 and "Traceback" not in output, output
    assert f"AUTOSEG_TEST_DATA={tmp_path / 'data'}" in output
    assert f"AUTOSEG_SLICER_PYTHON={tmp_path / 'slicer'}" in output
    for name, source in [
        ("Hippocampus", "https://github.com/MinervaRose/nd320-c3-3d-imaging-starter"),
        ("BraTS2015Subset", "https://github.com/deepmedic/deepmedic"),
        ("CT_TotalSegExamples", "https://github.com/wasserth/TotalSegmentator"),
    ]:
        assert f"  - {name} ({tmp_path / 'data' / name}): missing" in output
        assert source in output
        assert f"Testing/test_data_manifests/{name}/" in output
        assert (ROOT / "Testing" / "test_data_manifests" / name / "SHA256SUMS").is_file()
    assert "autoseg convert_MSD_dataset -i Task04_Hippocampus" in output
    for version, commit in [("5.10", "a2b6d082be04274a849884fbb1e85634a9df90fb"),
                            ("main", "583e9b37d50ead7daf7b783dce465ccaecec8809")]:
        assert f"  - {version} ({tmp_path / 'slicer' / version}): missing" in output
        assert commit in output


def test_incomplete_extra_and_changed_files_are_named(tmp_path: Path) -> None:
    """A copy of CT_TotalSegExamples (the smallest dataset) that is not what the tests expect, three ways."""
    source = external_test_data.CT_TOTALSEG
    expected = external_test_data.expected_checksums("CT_TotalSegExamples")
    folder = tmp_path / "CT_TotalSegExamples"
    for name in expected:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).symlink_to(source / name)
    assert external_test_data.dataset_problem(folder, "CT_TotalSegExamples") is None

    (folder / "imagesTr" / "extra_0000.nii.gz").write_bytes(b"")
    problem = external_test_data.dataset_problem(folder, "CT_TotalSegExamples")
    assert problem == "file(s) the tests do not expect: imagesTr/extra_0000.nii.gz"
    (folder / "imagesTr" / "extra_0000.nii.gz").unlink()

    (folder / "labelsTr" / "ts_example_sm.nii.gz").unlink()
    (folder / "labelsTr" / "ts_example_sm.nii.gz").write_bytes(b"not the label")
    problem = external_test_data.dataset_problem(folder, "CT_TotalSegExamples")
    assert problem == "file(s) differ from the expected checksums: labelsTr/ts_example_sm.nii.gz"

    (folder / "dataset.json").unlink()
    (folder / "labelsTr" / "ts_example_dicom.nii.gz").unlink()
    message = external_test_data.missing_message(tmp_path, external_test_data.SLICER_PYTHON)
    assert "incomplete, missing file(s): 2 (first: dataset.json)" in message
    assert f"  - Hippocampus ({tmp_path / 'Hippocampus'}): missing" in message
    assert "\nAUTOSEG_SLICER_PYTHON=" not in message  # only what is missing


def test_incomplete_slicer_library_is_named(tmp_path: Path) -> None:
    for version in ("5.10", "main"):
        (tmp_path / version / "slicer" / "parameterNodeWrapper").mkdir(parents=True)
        for name in external_test_data.SLICER_FILES:
            (tmp_path / version / "slicer" / name).write_text("")
    (tmp_path / "main" / "slicer" / "i18n.py").unlink()
    message = external_test_data.missing_message(external_test_data.TEST_DATA, tmp_path)
    assert f"  - main ({tmp_path / 'main'}): incomplete, missing slicer/i18n.py" in message
    assert "5.10 (" not in message and "\nAUTOSEG_TEST_DATA=" not in message


def test_settings_are_absolute_or_relative_to_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOSEG_TEST_DATA", "/somewhere/data")
    assert external_test_data._setting("AUTOSEG_TEST_DATA", "../shared/data") == Path("/somewhere/data").resolve()
    monkeypatch.setenv("AUTOSEG_TEST_DATA", "test-data")
    assert external_test_data._setting("AUTOSEG_TEST_DATA", "../shared/data") == ROOT / "test-data"
    monkeypatch.delenv("AUTOSEG_TEST_DATA")
    assert external_test_data._setting("AUTOSEG_TEST_DATA", "../shared/data") == (ROOT.parent / "shared" / "data")
