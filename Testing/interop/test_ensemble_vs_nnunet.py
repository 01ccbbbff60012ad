"""``autoseg ensemble`` against ``nnUNetv2_ensemble`` on the same probability folders, in both directions.

Inputs are three real Hippocampus images with spatially smooth generated probabilities (float32, as
prediction writes them). "nnU-Net folders" carry the case properties nnU-Net's own code produces
(``{case}.pkl`` from its SimpleITKIO reader and cropping, nothing else); "AutoSeg folders" are written by
AutoSeg's prediction writer (``{case}.json`` + ``.pkl``). Each pair is ensembled by both tools, which must
agree voxel for voxel, in geometry and in the averaged probabilities.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from oracle import SHARED_DATA, run_nnunet, run_nnunet_python
from scipy.ndimage import gaussian_filter

from autoseg.imageio.simpleitk_io import SimpleITKIO
from autoseg.inference.predict_folder import write_probabilities
from autoseg.paths import Workspace

pytestmark = pytest.mark.oracle

CASES = ("hippocampus_001", "hippocampus_003", "hippocampus_004")
IMAGES = SHARED_DATA / "Hippocampus" / "imagesTr"
PLANS = {"dataset_name": "Dataset004_Hippocampus", "plans_name": "nnUNetPlans", "image_reader_writer": "SimpleITKIO",
         "label_manager": "LabelManager", "configurations": {}}

_NNUNET_PROPERTIES = r"""
from batchgenerators.utilities.file_and_folder_operations import save_pickle
from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
from nnunetv2.preprocessing.cropping.cropping import crop_to_nonzero
data, properties = SimpleITKIO().read_images([image])
properties['shape_before_cropping'] = data.shape[1:]
data, seg, bbox = crop_to_nonzero(data, None)
properties['bbox_used_for_cropping'] = bbox
properties['shape_after_cropping_and_before_resampling'] = data.shape[1:]
for t in targets:
    save_pickle(properties, t)
"""


def smooth_probabilities(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Softmax of smoothed noise: blob-shaped labels, with close calls along their borders."""
    rng = np.random.default_rng(seed)
    logits = np.stack([gaussian_filter(rng.normal(0, 1, shape), 2.0) * 12 for _ in range(3)])
    logits -= logits.max(0, keepdims=True)
    return (np.exp(logits) / np.exp(logits).sum(0, keepdims=True)).astype(np.float32)


def _common_files(folder: Path) -> None:
    dataset = json.loads((SHARED_DATA / "Hippocampus" / "dataset.json").read_text())
    (folder / "dataset.json").write_text(json.dumps(dataset))
    (folder / "plans.json").write_text(json.dumps(PLANS))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Workspace:
    return Workspace.from_root(tmp_path_factory.mktemp("ensemble_oracle"))


@pytest.fixture(scope="module")
def folders(workspace) -> dict[str, Path]:
    """nnunet_a, nnunet_b (pkl properties by nnU-Net) and autoseg_a, autoseg_b (written by AutoSeg)."""
    root = workspace.raw.parent
    named = {name: root / name for name in ("nnunet_a", "nnunet_b", "autoseg_a", "autoseg_b")}
    for folder in named.values():
        folder.mkdir(parents=True)
        _common_files(folder)
    for index, case in enumerate(CASES):
        image = IMAGES / f"{case}_0000.nii.gz"
        targets = [str(named[n] / f"{case}.pkl") for n in ("nnunet_a", "nnunet_b")]
        run_nnunet_python(f"image = {str(image)!r}\ntargets = {targets!r}\n" + _NNUNET_PROPERTIES, workspace)
        data, properties = SimpleITKIO().read_images([image])
        for k, suffix in enumerate(("a", "b")):
            probabilities = smooth_probabilities(data.shape[1:], seed=100 * index + k)
            np.savez_compressed(named[f"nnunet_{suffix}"] / f"{case}.npz", probabilities=probabilities)
            write_probabilities(named[f"autoseg_{suffix}"], case, probabilities, properties)
    return named


def _autoseg(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([str(Path(sys.executable).parent / "autoseg"), *args], capture_output=True, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _compare(theirs: Path, ours: Path) -> None:
    for case in CASES:
        a, b = sitk.ReadImage(str(theirs / f"{case}.nii.gz")), sitk.ReadImage(str(ours / f"{case}.nii.gz"))
        assert a.GetSize() == b.GetSize() and a.GetSpacing() == b.GetSpacing()
        assert a.GetOrigin() == b.GetOrigin() and a.GetDirection() == b.GetDirection()
        assert b.GetPixelID() == a.GetPixelID()
        x, y = sitk.GetArrayFromImage(a), sitk.GetArrayFromImage(b)
        assert len(np.unique(x)) == 3  # every label present: the comparison means something
        assert np.mean(x == y) >= 0.999, f"{case}: {np.mean(x == y):.5f} of the voxels agree"
        with np.load(theirs / f"{case}.npz") as t, np.load(ours / f"{case}.npz") as o:
            assert o["probabilities"].dtype == t["probabilities"].dtype == np.float32
            np.testing.assert_allclose(o["probabilities"], t["probabilities"], rtol=0, atol=1e-6)
        ours_properties = pickle.loads((ours / f"{case}.pkl").read_bytes())
        assert list(ours_properties["sitk_stuff"]["spacing"]) == pytest.approx(a.GetSpacing())


@pytest.mark.parametrize("source", ["nnunet", "autoseg"])
def test_both_tools_ensemble_the_same_folders_identically(folders, workspace, tmp_path, source):
    inputs = [str(folders[f"{source}_a"]), str(folders[f"{source}_b"])]
    run_nnunet("ensemble", ["-i", *inputs, "-o", str(tmp_path / "nnunet"), "--save_npz", "-np", "1"], workspace)
    _autoseg("ensemble", "-i", *inputs, "-o", str(tmp_path / "autoseg"), "--save_npz", "-np", "1", "--no_pbar")
    _compare(tmp_path / "nnunet", tmp_path / "autoseg")


def test_nnunet_ensemble_output_feeds_autoseg_and_vice_versa(folders, workspace, tmp_path):
    """Ensemble outputs (with --save_npz) are valid ensemble inputs for the other tool."""
    run_nnunet("ensemble", ["-i", str(folders["nnunet_a"]), str(folders["nnunet_b"]), "-o", str(tmp_path / "n1"),
                            "--save_npz", "-np", "1"], workspace)
    _autoseg("ensemble", "-i", str(folders["autoseg_a"]), str(folders["autoseg_b"]), "-o", str(tmp_path / "a1"),
             "--save_npz", "-np", "1", "--no_pbar")
    # nnU-Net's output has no plans.json: AutoSeg picks the writer from dataset.json's file ending
    _autoseg("ensemble", "-i", str(tmp_path / "n1"), str(folders["autoseg_a"]), "-o", str(tmp_path / "ours"),
             "--save_npz", "-np", "1", "--no_pbar")
    (tmp_path / "a1" / "plans.json").unlink()  # nnU-Net needs a plans.json in the first folder; give it the same
    (tmp_path / "a1" / "plans.json").write_text(json.dumps(PLANS))
    run_nnunet("ensemble", ["-i", str(tmp_path / "a1"), str(folders["nnunet_a"]), "-o", str(tmp_path / "theirs"),
                            "--save_npz", "-np", "1"], workspace)
    for case in CASES:
        mean_n1 = (smooth_probabilities_of(folders, case, "a") + smooth_probabilities_of(folders, case, "b")) / 2
        with np.load(tmp_path / "ours" / f"{case}.npz") as ours:
            np.testing.assert_allclose(
                ours["probabilities"], (mean_n1 + smooth_probabilities_of(folders, case, "a")) / 2, atol=1e-6
            )
        with np.load(tmp_path / "theirs" / f"{case}.npz") as theirs:
            np.testing.assert_allclose(
                theirs["probabilities"], (mean_n1 + smooth_probabilities_of(folders, case, "a")) / 2, atol=1e-6
            )
        a = sitk.ReadImage(str(tmp_path / "ours" / f"{case}.nii.gz"))
        b = sitk.ReadImage(str(tmp_path / "theirs" / f"{case}.nii.gz"))
        assert a.GetOrigin() == b.GetOrigin() and a.GetSpacing() == b.GetSpacing()
        assert np.mean(sitk.GetArrayFromImage(a) == sitk.GetArrayFromImage(b)) >= 0.999


def smooth_probabilities_of(folders: dict[str, Path], case: str, suffix: str) -> np.ndarray:
    with np.load(folders[f"autoseg_{suffix}"] / f"{case}.npz") as npz:
        return npz["probabilities"]
