"""``autoseg predict`` on bad input: one clear message naming the problem, exit status 1, no traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import SimpleITK as sitk
from nnunet_models import write_prediction_inputs

from autoseg.cli.main import main as autoseg_main

pytestmark = pytest.mark.oracle


@pytest.fixture(scope="module")
def model(nnunet_model_factory):
    return nnunet_model_factory("hippocampus", ["3d_fullres", "2d"], [0, 1])


@pytest.fixture()
def inputs(model, tmp_path) -> Path:
    folder = tmp_path / "in"
    write_prediction_inputs(model, folder, n=1)
    return folder


def _predict(folder: Path, inputs: Path, output: Path, capsys, *flags: str) -> tuple[int, str]:
    code = autoseg_main(["predict", "-i", str(inputs), "-o", str(output), "-m", str(folder), "-device", "cpu",
                         "--no_pbar", "--disable_tta", *flags])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def test_wrong_channel_count(model, inputs, tmp_path, capsys):
    first = next(inputs.iterdir())
    shutil.copy(first, inputs / first.name.replace("_0000", "_0001"))
    code, err = _predict(model["model_folders"]["3d_fullres"], inputs, tmp_path / "out", capsys)
    assert code == 1 and "unexpected channel file" in err and "expects 1 channel" in err


def test_wrong_file_ending(model, inputs, tmp_path, capsys):
    for path in list(inputs.iterdir()):
        sitk.WriteImage(sitk.ReadImage(str(path)), str(path).replace(".nii.gz", ".nrrd"))
        path.unlink()
    code, err = _predict(model["model_folders"]["3d_fullres"], inputs, tmp_path / "out", capsys)
    assert code == 1 and "no input files ending in .nii.gz" in err and ".nrrd" in err


def test_missing_fold(model, inputs, tmp_path, capsys):
    code, err = _predict(model["model_folders"]["3d_fullres"], inputs, tmp_path / "out", capsys, "-f", "0", "3")
    assert code == 1 and "no fold 3" in err and "available: 0, 1" in err


def test_corrupt_checkpoint(model, inputs, tmp_path, capsys):
    folder = tmp_path / "model"
    shutil.copytree(model["model_folders"]["3d_fullres"], folder)
    checkpoint = folder / "fold_1" / "checkpoint_final.pth"
    checkpoint.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    code, err = _predict(folder, inputs, tmp_path / "out", capsys)
    assert code == 1 and "fold_1" in err and "unreadable or truncated" in err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.nii.gz"))


def test_input_smaller_than_patch_is_padded_and_keeps_geometry(model, inputs, tmp_path, capsys):
    path = next(inputs.iterdir())
    image = sitk.ReadImage(str(path))
    small = sitk.RegionOfInterest(image, [10, 12, 8], [5, 10, 6])
    sitk.WriteImage(small, str(path))
    code, err = _predict(model["model_folders"]["3d_fullres"], inputs, tmp_path / "out", capsys)
    assert code == 0, err
    result = sitk.ReadImage(str(tmp_path / "out" / path.name.replace("_0000", "")))
    assert result.GetSize() == small.GetSize() and result.GetOrigin() == small.GetOrigin()
    assert result.GetSpacing() == small.GetSpacing() and result.GetDirection() == small.GetDirection()


def test_2d_input_to_3d_model(model, inputs, tmp_path, capsys):
    path = next(inputs.iterdir())
    volume = sitk.ReadImage(str(path))
    sitk.WriteImage(volume[:, :, volume.GetSize()[2] // 2], str(path))  # one slice: a 2D image
    code, err = _predict(model["model_folders"]["3d_fullres"], inputs, tmp_path / "out", capsys)
    assert code == 1 and "2D image" in err and "3d_fullres" in err


def test_unknown_device(model, inputs, tmp_path, capsys):
    code, err = _predict(model["model_folders"]["3d_fullres"], inputs, tmp_path / "out", capsys, "-device", "tpu")
    assert code == 1 and "Unsupported device" in err


def test_continue_prediction_skips_finished_cases(model, inputs, tmp_path, capsys):
    folder = model["model_folders"]["3d_fullres"]
    out = tmp_path / "out"
    assert _predict(folder, inputs, out, capsys)[0] == 0
    (case_file,) = out.glob("*.nii.gz")
    marker = case_file.stat().st_mtime_ns
    assert _predict(folder, inputs, out, capsys, "--continue_prediction")[0] == 0
    assert case_file.stat().st_mtime_ns == marker  # not predicted again
