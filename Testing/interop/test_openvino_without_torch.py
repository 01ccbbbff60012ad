"""The OpenVINO engine in an environment WITHOUT PyTorch (``.venv-openvino``, made by ``make test`` from
``pip install -e "AutoSegCore[openvino]"``), against AutoSeg's PyTorch engine on real nnU-Net-trained models.

Every comparison: >= 99.9% identical voxels, identical geometry (size, spacing, origin, direction, pixel type).
The same models are used by the oracle tests (``nnunet_model_factory``), so they are built once per session.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
from nnunet_models import write_prediction_inputs
from test_predict_vs_nnunet import assert_same_predictions

from autoseg.cli.main import main as autoseg_main

pytestmark = pytest.mark.oracle

REPOSITORY = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def torch_free_python() -> Path:
    """The torch-free environment's python (``AUTOSEG_TORCH_FREE_PYTHON`` or ``.venv-openvino``)."""
    python = Path(os.environ.get("AUTOSEG_TORCH_FREE_PYTHON", REPOSITORY / ".venv-openvino" / "bin" / "python"))
    if not python.is_file():
        pytest.fail(f"{python} does not exist: run `make torch-free-venv` (make test does) to create it.")
    probe = subprocess.run([str(python), "-c", "import torch"], capture_output=True, text=True)
    assert probe.returncode != 0, f"{python} has torch installed: the torch-free environment must not"
    return python


def autoseg_without_torch(python: Path, *args: str, check: bool = True,
                          env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``autoseg ARGS`` in the torch-free environment (``env``: extra environment variables)."""
    env = {**{k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}, **(env or {})}
    result = subprocess.run([str(python), "-m", "autoseg.cli.main", *args], capture_output=True, text=True,
                            env=env, timeout=900)
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def assert_engines_agree(torch_out: Path, openvino_out: Path, file_ending: str, probabilities: bool = False) -> None:
    """Segmentations as the oracle tests demand; probabilities: the engines' float32 logits differ in the last
    bits, which the float16 window aggregation (nnU-Net's) can round one float16 step apart (up to 4e-3 at
    logits of 4-8), so 99.99% of the probabilities agree within 1e-3 and all within 1e-2."""
    assert_same_predictions(torch_out, openvino_out, file_ending)
    if not probabilities:
        return
    for file in sorted(torch_out.glob("*.npz")):
        p, q = np.load(file)["probabilities"], np.load(openvino_out / file.name)["probabilities"]
        assert p.shape == q.shape, file.name
        difference = np.abs(p - q)
        assert float((difference <= 1e-3).mean()) >= 0.9999 and float(difference.max()) <= 1e-2, file.name


def _predict_both(python: Path, model_folder: Path, inputs: Path, tmp_path: Path, *flags: str) -> tuple[Path, Path]:
    torch_out, openvino_out = tmp_path / "torch", tmp_path / "openvino"
    code = autoseg_main(["predict", "-i", str(inputs), "-o", str(torch_out), "-m", str(model_folder), "-device", "cpu",
                         "-engine", "torch", "--no_pbar", *flags])
    assert code == 0
    autoseg_without_torch(python, "predict", "-i", str(inputs), "-o", str(openvino_out), "-m", str(model_folder),
                          "-engine", "openvino", "--no_pbar", *flags)
    return torch_out, openvino_out


@pytest.fixture(scope="module")
def hippocampus(nnunet_model_factory):
    return nnunet_model_factory("hippocampus", ["3d_fullres", "2d"], [0, 1])


@pytest.fixture(scope="module")
def hippocampus_inputs(hippocampus, tmp_path_factory) -> Path:
    inputs = tmp_path_factory.mktemp("hippocampus_inputs")
    write_prediction_inputs(hippocampus, inputs, n=2)
    return inputs


def test_3d_fullres_two_folds_tta_with_probabilities(torch_free_python, hippocampus, hippocampus_inputs, tmp_path):
    ours, theirs = _predict_both(torch_free_python, hippocampus["model_folders"]["3d_fullres"], hippocampus_inputs,
                                 tmp_path, "-f", "0", "1", "--save_probabilities")
    assert_engines_agree(ours, theirs, hippocampus["file_ending"], probabilities=True)


def test_2d(torch_free_python, hippocampus, hippocampus_inputs, tmp_path):
    ours, theirs = _predict_both(torch_free_python, hippocampus["model_folders"]["2d"], hippocampus_inputs, tmp_path,
                                 "-f", "0")
    assert_engines_agree(ours, theirs, hippocampus["file_ending"])


@pytest.mark.parametrize("kind,planner,flags", [
    ("hippocampus", "nnUNetPlannerResEncM", ["--disable_tta"]),
    ("regions", "ExperimentPlanner", ["--save_probabilities"]),
    ("brats", "ExperimentPlanner", ["--disable_tta"]),
], ids=["resenc_m", "regions", "brats_two_channels"])
def test_other_architectures_and_outputs(torch_free_python, nnunet_model_factory, kind, planner, flags, tmp_path):
    model = nnunet_model_factory(kind, ["3d_fullres"], [0], planner=planner)
    inputs = tmp_path / "inputs"
    write_prediction_inputs(model, inputs, n=1 if kind == "brats" else 2)
    ours, theirs = _predict_both(torch_free_python, model["model_folders"]["3d_fullres"], inputs, tmp_path, "-f", "0",
                                 *flags)
    assert_engines_agree(ours, theirs, model["file_ending"], probabilities="--save_probabilities" in flags)


def test_cascade_stage_two(torch_free_python, nnunet_model_factory, tmp_path):
    cascade = nnunet_model_factory("cascade", ["3d_lowres", "3d_cascade_fullres"], [0],
                                   train_folds={"3d_lowres": ["all"]}, validation=["3d_lowres"], validation_tta=False)
    inputs = tmp_path / "inputs"
    write_prediction_inputs(cascade, inputs, n=1)
    lowres = tmp_path / "lowres"
    autoseg_without_torch(torch_free_python, "predict", "-i", str(inputs), "-o", str(lowres), "-m",
                          str(cascade["model_folders"]["3d_lowres"]), "-f", "all", "--disable_tta", "--no_pbar")
    ours, theirs = _predict_both(torch_free_python, cascade["model_folders"]["3d_cascade_fullres"], inputs, tmp_path,
                                 "-f", "0", "--disable_tta", "-prev_stage_predictions", str(lowres))
    assert_engines_agree(ours, theirs, cascade["file_ending"])


def _malicious_checkpoint(path: Path, marker: Path) -> None:
    """A zip checkpoint whose pickle would run ``os.system`` if it were unpickled unsafely."""
    payload = b"cos\nsystem\n(V" + f"touch {marker}".encode() + b"\ntR."
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("checkpoint_final/data.pkl", payload)
        archive.writestr("checkpoint_final/byteorder", "little")
        archive.writestr("checkpoint_final/version", "3\n")


def test_refusals_keep_their_clear_errors(torch_free_python, hippocampus, hippocampus_inputs, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(hippocampus["model_folders"]["3d_fullres"], model)
    marker = tmp_path / "code_ran"
    _malicious_checkpoint(model / "fold_1" / "checkpoint_final.pth", marker)
    result = autoseg_without_torch(torch_free_python, "predict", "-i", str(hippocampus_inputs), "-o",
                                   str(tmp_path / "out"), "-m", str(model), "-f", "1", "--no_pbar", check=False)
    assert result.returncode == 1 and not marker.exists()
    assert "could run arbitrary code" in result.stderr and "os" in result.stderr and "system" in result.stderr
    checkpoint = model / "fold_0" / "checkpoint_final.pth"
    checkpoint.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    result = autoseg_without_torch(torch_free_python, "predict", "-i", str(hippocampus_inputs), "-o",
                                   str(tmp_path / "out"), "-m", str(model), "-f", "0", "--no_pbar", check=False)
    assert result.returncode == 1 and "unreadable or truncated" in result.stderr and str(checkpoint) in result.stderr
    result = autoseg_without_torch(torch_free_python, "predict", "-i", str(hippocampus_inputs), "-o",
                                   str(tmp_path / "out"), "-m", str(model), "-f", "3", "--no_pbar", check=False)
    assert result.returncode == 1 and "has no fold 3" in result.stderr
    wrong = tmp_path / "two_channels"
    wrong.mkdir()
    for source in sorted(hippocampus_inputs.glob("*_0000.nii.gz"))[:1]:
        shutil.copy(source, wrong / source.name)
        shutil.copy(source, wrong / source.name.replace("_0000", "_0001"))
    result = autoseg_without_torch(torch_free_python, "predict", "-i", str(wrong), "-o", str(tmp_path / "out2"), "-m",
                                   str(hippocampus["model_folders"]["3d_fullres"]), "-f", "0", "--no_pbar", check=False)
    assert result.returncode == 1 and "channel" in result.stderr, result.stderr[-2000:]


def test_commands_that_need_torch_say_how_to_get_it(torch_free_python, tmp_path):
    folders = {name: str(tmp_path / name) for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    result = autoseg_without_torch(torch_free_python, "train", "1", "3d_fullres", "0", check=False, env=folders)
    assert result.returncode == 1
    assert "needs torch" in result.stderr and "pip install" in result.stderr
    result = autoseg_without_torch(torch_free_python, "predict", "-i", str(tmp_path), "-o", str(tmp_path / "o"),
                                   "-m", str(tmp_path), "-engine", "torch", check=False)
    assert result.returncode == 1 and "needs PyTorch" in result.stderr

