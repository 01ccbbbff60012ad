"""Incremental preprocessing: new, changed (by content) and unchanged cases; plans untouched; misfits refused."""

from __future__ import annotations

import logging
import os
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from autoseg.demo.synthetic import write_synthetic_dataset
from autoseg.errors import PreprocessingError
from autoseg.paths import Workspace
from autoseg.plan_and_preprocess import fingerprint_dataset, plan_dataset, preprocess_dataset_configurations
from autoseg.preprocessing import storage
from autoseg.preprocessing.incremental import DIGEST_KEY, file_sha256

NAME = "Dataset061_Incremental"


@pytest.fixture(scope="module")
def first_round(tmp_path_factory):
    """A workspace planned and preprocessed (3d_fullres) on 4 cases; a pristine copy for each test."""
    root = tmp_path_factory.mktemp("incremental")
    ws = Workspace.from_root(root)
    write_synthetic_dataset(ws.raw / NAME, num_cases=6)
    for case in ("synth_004", "synth_005"):  # held back: "annotated later"
        (ws.raw / NAME / "imagesTr" / f"{case}_0000.nii.gz").rename(root / f"{case}_0000.nii.gz")
        (ws.raw / NAME / "labelsTr" / f"{case}.nii.gz").rename(root / f"{case}.nii.gz")
    fingerprint_dataset(ws, NAME, num_processes=1)
    plan_dataset(ws, NAME)
    preprocess_dataset_configurations(ws, NAME, configurations=["3d_fullres"], num_processes=[1])
    return root


@pytest.fixture()
def workspace(first_round, tmp_path):
    shutil.copytree(first_round, tmp_path / "ws", copy_function=shutil.copy2)
    return Workspace.from_root(tmp_path / "ws"), tmp_path / "ws"


def _add_held_back_cases(ws, root):
    for case in ("synth_004", "synth_005"):
        shutil.copy2(root / f"{case}_0000.nii.gz", ws.raw / NAME / "imagesTr" / f"{case}_0000.nii.gz")
        shutil.copy2(root / f"{case}.nii.gz", ws.raw / NAME / "labelsTr" / f"{case}.nii.gz")


def _replace_label_keeping_size_and_time(path):
    """Flip some label voxels in place; same byte count and file times (only the content tells)."""
    before = path.stat()
    image = sitk.ReadImage(str(path))
    array = sitk.GetArrayFromImage(image)
    array[array == 2] = 1
    edited = sitk.GetImageFromArray(array)
    edited.CopyInformation(image)
    sitk.WriteImage(edited, str(path), True)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_new_and_changed_cases_are_preprocessed_and_the_rest_kept(workspace, caplog):
    ws, root = workspace
    preprocessed = ws.preprocessed / NAME
    output = preprocessed / "nnUNetPlans_3d_fullres"
    plans_before = (preprocessed / "nnUNetPlans.json").read_bytes()
    fingerprint_before = (preprocessed / "dataset_fingerprint.json").read_bytes()
    kept_times = {c: storage.case_files(output, c)[0].stat().st_mtime_ns for c in ("synth_000", "synth_002")}
    _add_held_back_cases(ws, root)
    label = ws.raw / NAME / "labelsTr" / "synth_001.nii.gz"
    _replace_label_keeping_size_and_time(label)
    with caplog.at_level(logging.INFO):
        preprocess_dataset_configurations(ws, NAME, configurations=["3d_fullres"], num_processes=[1])
    assert "3 case(s) up to date, 2 new, 1 changed, 0 removed" in caplog.text
    assert storage.list_cases(output) == [f"synth_{i:03d}" for i in range(6)]
    for case, mtime in kept_times.items():  # untouched, not rewritten
        assert storage.case_files(output, case)[0].stat().st_mtime_ns == mtime
    seg = storage.load_case(output, "synth_001")[1]
    assert 2 not in np.unique(seg)  # the edited label was preprocessed again
    assert storage.load_case(output, "synth_001")[2][DIGEST_KEY]["synth_001.nii.gz"] == file_sha256(label)
    assert file_sha256(preprocessed / "gt_segmentations" / "synth_001.nii.gz") == file_sha256(label)
    # the plans and the fingerprint's intensity statistics are those the first model was trained with
    assert (preprocessed / "nnUNetPlans.json").read_bytes() == plans_before
    assert (preprocessed / "dataset_fingerprint.json").read_bytes() == fingerprint_before
    caplog.clear()
    with caplog.at_level(logging.INFO):
        preprocess_dataset_configurations(ws, NAME, configurations=["3d_fullres"], num_processes=[1])
    assert "6 case(s) up to date, 0 new, 0 changed, 0 removed" in caplog.text


def test_a_removed_case_is_dropped(workspace, caplog):
    ws, _ = workspace
    (ws.raw / NAME / "imagesTr" / "synth_003_0000.nii.gz").unlink()
    (ws.raw / NAME / "labelsTr" / "synth_003.nii.gz").unlink()
    with caplog.at_level(logging.INFO):
        preprocess_dataset_configurations(ws, NAME, configurations=["3d_fullres"], num_processes=[1])
    assert "3 case(s) up to date, 0 new, 0 changed, 1 removed" in caplog.text
    assert "synth_003" not in storage.list_cases(ws.preprocessed / NAME / "nnUNetPlans_3d_fullres")


def test_a_new_case_with_an_extra_channel_is_refused_naming_it(workspace):
    ws, root = workspace
    _add_held_back_cases(ws, root)
    shutil.copy2(root / "synth_005_0000.nii.gz", ws.raw / NAME / "imagesTr" / "synth_005_0001.nii.gz")
    with pytest.raises(PreprocessingError, match=r"1 channel.*synth_005 \(2 file\(s\)"):
        preprocess_dataset_configurations(ws, NAME, configurations=["3d_fullres"], num_processes=[1])


def test_a_new_case_with_an_undefined_label_value_is_refused_naming_it(workspace):
    ws, root = workspace
    _add_held_back_cases(ws, root)
    path = ws.raw / NAME / "labelsTr" / "synth_004.nii.gz"
    image = sitk.ReadImage(str(path))
    array = sitk.GetArrayFromImage(image)
    array[0, 0, 0] = 7
    edited = sitk.GetImageFromArray(array)
    edited.CopyInformation(image)
    sitk.WriteImage(edited, str(path), True)
    with pytest.raises(PreprocessingError, match=r"synth_004.*label value\(s\) \[7\]"):
        preprocess_dataset_configurations(ws, NAME, configurations=["3d_fullres"], num_processes=[1])
    # the cases that fit were preprocessed; the misfit is not
    assert "synth_004" not in storage.list_cases(ws.preprocessed / NAME / "nnUNetPlans_3d_fullres")
