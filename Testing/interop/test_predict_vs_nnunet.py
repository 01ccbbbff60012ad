"""``autoseg predict`` against ``nnUNetv2_predict`` on real nnU-Net v2 models (built by nnU-Net itself).

Every comparison requires >= 99.9% identical voxels, the exact same geometry (shape, spacing, origin,
direction) and, with ``--save_probabilities``, probabilities within 1e-3: all of them with the PyTorch engine
(the same float32 operations as nnU-Net), 99.99% of them (and all within 1e-2) with the default engine
(OpenVINO on the CPU), whose float32 logits differ in the last bits, which nnU-Net's float16 window
aggregation can round one float16 step apart.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from nnunet_models import model_ids, predict_with_nnunet, write_prediction_inputs

from autoseg.cli.main import main as autoseg_main

pytestmark = pytest.mark.oracle

MIN_AGREEMENT = 0.999


def _autoseg_predict(model_folder: Path, inputs: Path, output: Path, *flags: str) -> None:
    code = autoseg_main(["predict", "-i", str(inputs), "-o", str(output), "-m", str(model_folder), "-device", "cpu",
                         "--no_pbar", *flags])
    assert code == 0


def assert_probabilities_close(p: np.ndarray, q: np.ndarray, case: str, exact_engine: bool) -> None:
    """Within 1e-3 everywhere (``exact_engine``), or for 99.99% of the values and within 1e-2 everywhere."""
    assert p.shape == q.shape, case
    if exact_engine:
        np.testing.assert_allclose(q, p, atol=1e-3, err_msg=case)
        return
    difference = np.abs(p - q)
    assert float((difference <= 1e-3).mean()) >= 0.9999, case
    assert float(difference.max()) <= 1e-2, case


def assert_same_predictions(theirs: Path, ours: Path, file_ending: str, probabilities: bool = False,
                            exact_engine: bool = False) -> None:
    cases = sorted(p.name[: -len(file_ending)] for p in theirs.glob(f"*{file_ending}"))
    assert cases, f"nnU-Net wrote nothing into {theirs}"
    for case in cases:
        a, b = sitk.ReadImage(str(theirs / f"{case}{file_ending}")), sitk.ReadImage(str(ours / f"{case}{file_ending}"))
        assert a.GetSize() == b.GetSize(), case
        assert a.GetSpacing() == b.GetSpacing() and a.GetOrigin() == b.GetOrigin(), case
        assert a.GetDirection() == b.GetDirection(), case
        assert a.GetPixelID() == b.GetPixelID(), case
        x, y = sitk.GetArrayFromImage(a), sitk.GetArrayFromImage(b)
        agreement = float((x == y).mean())
        assert agreement >= MIN_AGREEMENT, f"{case}: only {agreement:.5f} of the voxels agree"
        assert len(np.unique(x)) > 1, f"{case}: the oracle predicted a single label (weights not decisive)"
        if probabilities:
            p, q = np.load(theirs / f"{case}.npz")["probabilities"], np.load(ours / f"{case}.npz")["probabilities"]
            assert_probabilities_close(p, q, case, exact_engine)


def _compare(model: dict, configuration: str, tmp_path: Path, folds: list, flags: list[str],
             engine: str = "auto") -> None:
    inputs = tmp_path / "inputs"
    if not inputs.exists():
        write_prediction_inputs(model, inputs, n=2)
    folder = model["model_folders"][configuration]
    theirs = predict_with_nnunet(model["workspace"], model_ids(model, configuration), inputs, tmp_path / "nnunet",
                                 folds, flags)
    _autoseg_predict(folder, inputs, tmp_path / "autoseg", "-f", *map(str, folds), *flags, "-engine", engine)
    assert_same_predictions(theirs, tmp_path / "autoseg", model["file_ending"], "--save_probabilities" in flags,
                            exact_engine=engine == "torch")


@pytest.fixture(scope="module")
def hippocampus(nnunet_model_factory):
    return nnunet_model_factory("hippocampus", ["3d_fullres", "2d"], [0, 1])


def test_3d_fullres_one_fold_without_tta(hippocampus, tmp_path):
    _compare(hippocampus, "3d_fullres", tmp_path, [0], ["--disable_tta"])


def test_3d_fullres_two_folds_tta_probabilities(hippocampus, tmp_path):
    _compare(hippocampus, "3d_fullres", tmp_path, [0, 1], ["--save_probabilities"])


def test_torch_engine_3d_fullres_tta_probabilities(hippocampus, tmp_path):
    _compare(hippocampus, "3d_fullres", tmp_path, [0], ["--save_probabilities"], engine="torch")


def test_2d_two_folds_tta(hippocampus, tmp_path):
    _compare(hippocampus, "2d", tmp_path, [0, 1], [])


def test_resenc_m(nnunet_model_factory, tmp_path):
    model = nnunet_model_factory("hippocampus", ["3d_fullres"], [0], planner="nnUNetPlannerResEncM")
    _compare(model, "3d_fullres", tmp_path, [0], ["--disable_tta"])


def test_regions_with_probabilities(nnunet_model_factory, tmp_path):
    model = nnunet_model_factory("regions", ["3d_fullres"], [0])
    _compare(model, "3d_fullres", tmp_path, [0], ["--save_probabilities"])


def test_brats_two_channels(nnunet_model_factory, tmp_path):
    model = nnunet_model_factory("brats", ["3d_fullres"], [0])
    _compare(model, "3d_fullres", tmp_path, [0], ["--disable_tta"])


def test_in_memory_api_matches_files_and_reports_progress(hippocampus, tmp_path):
    """What the Slicer module calls: a numpy array + spacing in, the segmentation on the same grid out."""
    from autoseg.inference.model_folder import open_model_folder
    from autoseg.inference.predictor import PredictionSettings, Predictor

    inputs = tmp_path / "inputs"
    write_prediction_inputs(hippocampus, inputs, n=1)
    folder = hippocampus["model_folders"]["3d_fullres"]
    _autoseg_predict(folder, inputs, tmp_path / "files", "-f", "0", "--disable_tta")
    (image_file,) = inputs.glob("*_0000.nii.gz")
    image = sitk.ReadImage(str(image_file))
    predictor = Predictor(open_model_folder(folder, [0]), PredictionSettings(use_mirroring=False))
    calls: list[tuple[int, int]] = []
    segmentation, probabilities = predictor.predict_array(
        sitk.GetArrayFromImage(image),
        image.GetSpacing()[::-1],
        return_probabilities=True,
        progress=lambda d, t: calls.append((d, t)),
    )
    from_file = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "files" / image_file.name.replace("_0000", ""))))
    np.testing.assert_array_equal(segmentation, from_file)
    assert probabilities.shape == (3, *segmentation.shape)
    assert calls and calls[-1][0] == calls[-1][1] and [d for d, _ in calls] == list(range(1, len(calls) + 1))
