"""``autoseg install_pretrained_model_from_zip``: round trip, conflicts, and refused (malicious) archives.

Every refusal must leave the file system exactly as it was: nothing outside nnUNet_results, and no
partial model, staging folder or even an empty results folder inside it.
"""

from __future__ import annotations

import os
import pickle
import shutil
import stat
import struct
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from model_sharing_helpers import (
    DATASET_NAME,
    MODEL,
    make_results,
    set_workspace_env,
    tree_snapshot,
    write_input_case,
)

from autoseg.cli.main import main as autoseg_main
from autoseg.errors import ModelSharingError
from autoseg.model_sharing.export_zip import ExportRequest, export_model_to_zip
from autoseg.model_sharing.install_zip import STAGING_PREFIX, install_model_zip
from autoseg.model_sharing.safe_extract import ExtractionLimits
from autoseg.paths import Workspace

PREFIX = f"{DATASET_NAME}/{MODEL}"


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """(workspace with the trained model, its zip: 3d_fullres folds 0 and 1, final and best checkpoints)."""
    root = tmp_path_factory.mktemp("source")
    workspace = Workspace.from_root(root / "ws")
    make_results(workspace)
    output = root / "model.zip"
    export_model_to_zip(workspace, output, ExportRequest(dataset="777", configurations=("3d_fullres",), folds=(0, 1),
                                                         checkpoints=("checkpoint_final.pth", "checkpoint_best.pth")),
                        log=lambda _: None)
    return workspace, output


def _entries(model_zip: Path) -> list[tuple[zipfile.ZipInfo | str, bytes]]:
    with zipfile.ZipFile(model_zip) as archive:
        return [(info.filename, archive.read(info)) for info in archive.infolist()]


def _write_zip(path: Path, entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Duplicate name" is what one test wants
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in entries:
                archive.writestr(name, data)
    return path


def _patch_declared_size(path: Path, name: str, size: int) -> None:
    """Overwrite the uncompressed size the central directory declares for ``name``."""
    data = bytearray(path.read_bytes())
    offset = data.find(b"PK\x01\x02")
    while offset >= 0:
        name_length = struct.unpack_from("<H", data, offset + 28)[0]
        if data[offset + 46: offset + 46 + name_length] == name.encode():
            struct.pack_into("<I", data, offset + 24, size)
            path.write_bytes(bytes(data))
            return
        offset = data.find(b"PK\x01\x02", offset + 4)
    raise AssertionError(f"{name} not in {path}")


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _symlink(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


def _predict(model_folder: Path, inputs: Path, output: Path) -> np.ndarray:
    code = autoseg_main(["predict", "-i", str(inputs), "-o", str(output), "-m", str(model_folder), "-f", "0", "1",
                         "-device", "cpu", "--disable_tta", "--no_pbar", "-num_threads", "1"])
    assert code == 0
    return sitk.GetArrayFromImage(sitk.ReadImage(str(output / "case_000.nii.gz")))


def test_export_install_predict_round_trip(source, tmp_path, monkeypatch):
    workspace, model_zip = source
    target = Workspace.from_root(tmp_path / "fresh")
    set_workspace_env(monkeypatch, target)
    assert autoseg_main(["install_pretrained_model_from_zip", str(model_zip)]) == 0
    installed = target.results / DATASET_NAME / MODEL
    original = workspace.results / DATASET_NAME / MODEL
    for name in ("plans.json", "dataset.json", "fold_0/checkpoint_final.pth", "fold_1/checkpoint_best.pth",
                 "crossval_results_folds_0_1/postprocessing.pkl"):
        assert (installed / name).read_bytes() == (original / name).read_bytes()
    assert not (installed / "fold_0" / "training_log_2024_1_1_00_00_00.txt").exists()
    assert [p.name for p in target.results.iterdir()] == [DATASET_NAME]  # no staging folder left
    write_input_case(tmp_path / "input")
    ours = _predict(original, tmp_path / "input", tmp_path / "pred_original")
    theirs = _predict(installed, tmp_path / "input", tmp_path / "pred_installed")
    assert len(np.unique(ours)) > 1
    np.testing.assert_array_equal(ours, theirs)


def test_installed_model_is_never_replaced_silently(source, tmp_path):
    _, model_zip = source
    results = tmp_path / "nnUNet_results"
    install_model_zip(model_zip, results, log=lambda _: None)
    marker = results / PREFIX / "fold_0" / "local_note.txt"
    marker.write_text("mine")
    before = tree_snapshot(tmp_path)
    with pytest.raises(ModelSharingError, match=rf"{MODEL} already exists.*--overwrite"):
        install_model_zip(model_zip, results, log=lambda _: None)
    assert tree_snapshot(tmp_path) == before
    result = install_model_zip(model_zip, results, overwrite=True, log=lambda _: None)
    assert result.replaced == [results / DATASET_NAME / MODEL]
    assert not marker.exists() and (results / PREFIX / "fold_0" / "checkpoint_final.pth").is_file()
    # dataset-level files already installed with the same content are fine; different ones need --overwrite
    shutil.rmtree(results / PREFIX)
    result = install_model_zip(model_zip, results, log=lambda _: None)
    assert result.models == [results / PREFIX] and len(result.unchanged) == 2
    shutil.rmtree(results / PREFIX)
    (results / DATASET_NAME / "inference_information.json").write_text('{"changed": 1}')
    before = tree_snapshot(tmp_path)
    with pytest.raises(ModelSharingError, match="inference_information.json already exists"):
        install_model_zip(model_zip, results, log=lambda _: None)
    assert tree_snapshot(tmp_path) == before


def test_cli_reports_refusal_in_one_message(source, tmp_path, monkeypatch, capsys):
    _, model_zip = source
    set_workspace_env(monkeypatch, Workspace.from_root(tmp_path))
    bad = _write_zip(tmp_path / "bad.zip", [*_entries(model_zip), ("../escape.txt", b"x")])
    assert autoseg_main(["install_pretrained_model_from_zip", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "error: Refusing model zip" in err and "'../escape.txt'" in err and "Nothing was installed" in err
    assert not (tmp_path / "nnUNet_results").exists()


def _bad_cases(tmp_path: Path) -> dict[str, tuple[list, str]]:
    marker = tmp_path / "pwned"
    return {
        "parent_traversal": ([("../../escape.txt", b"x")], "contains '..'"),
        "inner_traversal": ([(f"{PREFIX}/../../../escape.txt", b"x")], "contains '..'"),
        "absolute_path": ([(str(tmp_path / "escape.txt"), b"x")], "absolute path"),
        "drive_letter": ([("C:/escape.txt", b"x")], "drive letter"),
        "backslash": ([(f"{DATASET_NAME}\\..\\..\\escape.txt", b"x")], "backslash"),
        "symlink": ([_symlink(f"{PREFIX}/fold_0/link", str(tmp_path))], "symbolic link"),
        "duplicate": ([(f"{PREFIX}/plans.json", b"{}")], "appears twice"),
        "duplicate_case": ([(f"{PREFIX}/Plans.json", b"{}")], "appears twice"),
        "code_in_postprocessing_pkl": (
            [(f"{PREFIX}/crossval_results_folds_0_1/postprocessing.pkl", pickle.dumps(_RunsCode(marker)))],
            r"postprocessing\.pkl.*system"),
        "code_in_other_pkl": ([(f"{PREFIX}/fold_0/validation/case.pkl", pickle.dumps(_RunsCode(marker)))], "system"),
        "compression_bomb": ([(f"{PREFIX}/fold_0/padding.bin", bytes(11 * 1024**2))], "compressed .*:1"),
        "unknown_folder": ([(f"{DATASET_NAME}/somewhere/else.txt", b"x")], "neither in a model folder"),
    }


@pytest.mark.parametrize("case", list(_bad_cases(Path("/x"))))
def test_malicious_zip_is_refused_without_changing_anything(source, tmp_path, case):
    _, model_zip = source
    extra, message = _bad_cases(tmp_path)[case]
    entries = _entries(model_zip)
    if case.startswith("code_in_postprocessing"):
        entries = [(n, d) for n, d in entries if not str(n).endswith("postprocessing.pkl")]
    bad = _write_zip(tmp_path / "bad.zip", [*entries, *extra])
    results = tmp_path / "ws" / "nnUNet_results"
    before = tree_snapshot(tmp_path)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with pytest.raises(ModelSharingError, match=message) as error:
            install_model_zip(bad, results, log=lambda _: None)
    finally:
        os.chdir(cwd)
    assert "Nothing was installed" in str(error.value)
    assert tree_snapshot(tmp_path) == before
    assert not results.exists() and not (tmp_path / "pwned").exists()


def test_malicious_checkpoint_is_refused(source, tmp_path):
    _, model_zip = source
    checkpoint_path = tmp_path / "evil.pth"
    torch.save({"network_weights": {}, "logging": _RunsCode(tmp_path / "pwned")}, checkpoint_path)
    entries = [(n, checkpoint_path.read_bytes() if n == f"{PREFIX}/fold_1/checkpoint_best.pth" else d)
               for n, d in _entries(model_zip)]
    bad = _write_zip(tmp_path / "bad.zip", entries)
    results = tmp_path / "nnUNet_results"
    results.mkdir()
    (results / "keep.txt").write_text("existing content")
    before = tree_snapshot(tmp_path)
    with pytest.raises(ModelSharingError, match=r"bad\.zip:.*fold_1/checkpoint_best\.pth.*arbitrary code"):
        install_model_zip(bad, results, log=lambda _: None)
    assert tree_snapshot(tmp_path) == before
    assert not any(p.name.startswith(STAGING_PREFIX) for p in results.iterdir())


def test_declared_sizes_are_enforced(source, tmp_path):
    _, model_zip = source
    results = tmp_path / "nnUNet_results"
    huge = _write_zip(tmp_path / "huge.zip", _entries(model_zip))
    _patch_declared_size(huge, f"{PREFIX}/fold_0/debug.json", 0xFFFFFFF0)
    before = tree_snapshot(tmp_path)
    with pytest.raises(ModelSharingError, match=r"expands to more than 1\.0 GiB"):
        install_model_zip(huge, results, limits=ExtractionLimits(max_total_bytes=1024**3), log=lambda _: None)
    # a header that declares less than the entry holds: extraction stops at the declared size and fails the CRC
    lying = _write_zip(tmp_path / "lying.zip", [*_entries(model_zip), (f"{PREFIX}/fold_0/notes.txt", b"a" * 1000)])
    _patch_declared_size(lying, f"{PREFIX}/fold_0/notes.txt", 10)
    before = tree_snapshot(tmp_path)
    with pytest.raises(ModelSharingError, match="notes.txt' cannot be read"):
        install_model_zip(lying, results, log=lambda _: None)
    assert tree_snapshot(tmp_path) == before and not results.exists()


def test_archives_that_are_not_models(source, tmp_path):
    _, model_zip = source
    results = tmp_path / "nnUNet_results"
    no_dataset = _write_zip(tmp_path / "a.zip", [(n[len(DATASET_NAME) + 1:], d) for n, d in _entries(model_zip)
                                                  if n.startswith(PREFIX)])
    with pytest.raises(ModelSharingError, match=f"start with the model folder '{MODEL}'"):
        install_model_zip(no_dataset, results)
    no_plans = _write_zip(tmp_path / "b.zip", [(n, d) for n, d in _entries(model_zip) if not n.endswith("plans.json")])
    with pytest.raises(ModelSharingError, match=f"{MODEL} has no plans.json"):
        install_model_zip(no_plans, results)
    not_zip = tmp_path / "c.zip"
    not_zip.write_bytes(b"this is not a zip")
    with pytest.raises(ModelSharingError, match="not a readable zip archive"):
        install_model_zip(not_zip, results)
    with pytest.raises(ModelSharingError, match="does not exist"):
        install_model_zip(tmp_path / "missing.zip", results)
    assert not results.exists()


def test_failed_overwrite_restores_the_installed_model(source, tmp_path, monkeypatch):
    _, model_zip = source
    results = tmp_path / "nnUNet_results"
    install_model_zip(model_zip, results, log=lambda _: None)
    marker = results / PREFIX / "local_note.txt"
    marker.write_text("mine")
    before = tree_snapshot(tmp_path)
    real_replace = os.replace
    calls = []

    def failing_replace(src, dst):
        calls.append((Path(src), Path(dst)))
        moving_new_model = STAGING_PREFIX in str(src) and ".replaced" not in str(src)
        if Path(dst) == results / PREFIX and moving_new_model:
            raise OSError("disk unplugged")
        real_replace(src, dst)

    monkeypatch.setattr("autoseg.model_sharing.install_zip.os.replace", failing_replace)
    with pytest.raises(ModelSharingError, match="Could not move .*disk unplugged.*Nothing was installed"):
        install_model_zip(model_zip, results, overwrite=True, log=lambda _: None)
    assert any(dst == results / PREFIX for _, dst in calls)  # the old model had been moved aside ...
    assert tree_snapshot(tmp_path) == before  # ... and is back, with no staging folder left
