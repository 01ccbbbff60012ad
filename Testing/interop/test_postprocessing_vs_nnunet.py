"""``autoseg determine_postprocessing`` / ``apply_postprocessing`` against nnU-Net's commands.

References are real Hippocampus label maps; predictions are copies with spurious blobs (a stray
label-1 blob, a stray label-2 voxel, scattered speckle), with a second legitimate label-2 component in
the references of the label case so that some candidate steps help and others hurt. On the same folders nnU-Net and
AutoSeg must choose the same steps, write the same postprocessed segmentations and the same Dice
numbers; nnU-Net's apply_postprocessing must run with AutoSeg's postprocessing.pkl, and AutoSeg's with
nnU-Net's, giving identical files. Once with labels and once with regions.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from oracle import SHARED_DATA, run_nnunet

from autoseg.cli.main import main as autoseg_main
from autoseg.paths import Workspace
from autoseg.postprocessing import PostprocessingStep, determine_postprocessing, load_postprocessing

pytestmark = pytest.mark.oracle

NUM_CASES = 6
LABELS = {"background": 0, "Anterior": 1, "Posterior": 2}
REGIONS = {"background": 0, "hippocampus": [1, 2], "Posterior": [2]}


def _perturb(reference: np.ndarray, index: int, rng: np.random.Generator,
             second_component: bool) -> tuple[np.ndarray, np.ndarray]:
    """(reference, prediction) for case ``index``."""
    reference = reference.copy()
    if second_component and index in (2, 5):  # a legitimate, separate label-2 component
        reference[1:6, 1:6, 1:6] = 2
    prediction = reference.copy()
    if index in (0, 3):
        prediction[-4:-1, -4:-1, -3:] = 1  # stray label-1 blob in a corner
    if index in (1, 3, 5):
        prediction[-2, 1, -2] = 2  # stray label-2 voxel
    if index == 4:
        speckle = (rng.random(prediction.shape) < 0.002) & (prediction == 0)
        prediction[speckle] = rng.integers(1, 3, int(speckle.sum()))
    return reference, prediction


def _write(array: np.ndarray, like: sitk.Image, path: Path) -> None:
    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.CopyInformation(like)
    sitk.WriteImage(image, str(path), True)


def _make(root: Path, labels: dict) -> tuple[Path, Path]:
    pred, gt = root / "pred", root / "gt"
    pred.mkdir(parents=True)
    gt.mkdir()
    rng = np.random.default_rng(0)
    sources = sorted((SHARED_DATA / "Hippocampus" / "labelsTr").glob("*.nii.gz"))[:NUM_CASES]
    for index, source in enumerate(sources):
        image = sitk.ReadImage(str(source))
        reference, prediction = _perturb(sitk.GetArrayFromImage(image), index, rng, second_component=labels is LABELS)
        _write(reference, image, gt / source.name)
        _write(prediction, image, pred / source.name)
    dataset = {"channel_names": {"0": "MRI"}, "labels": labels, "numTraining": NUM_CASES, "file_ending": ".nii.gz"}
    if labels is REGIONS:
        dataset["regions_class_order"] = [1, 2]
    (pred / "dataset.json").write_text(json.dumps(dataset))
    (pred / "plans.json").write_text(json.dumps(
        {"dataset_name": "Dataset004_Hippocampus", "plans_name": "nnUNetPlans", "image_reader_writer": "SimpleITKIO",
         "label_manager": "LabelManager", "configurations": {}}))
    return pred, gt


def _segmentations(folder: Path) -> dict[str, tuple[np.ndarray, tuple]]:
    out = {}
    for path in sorted(folder.glob("*.nii.gz")):
        image = sitk.ReadImage(str(path))
        out[path.name] = (sitk.GetArrayFromImage(image), (image.GetSpacing(), image.GetOrigin(), image.GetDirection()))
    return out


def _assert_same_segmentations(ours: Path, theirs: Path) -> None:
    a, b = _segmentations(ours), _segmentations(theirs)
    assert a.keys() == b.keys() and len(a) == NUM_CASES
    for name in a:
        assert np.array_equal(a[name][0], b[name][0]), name
        assert np.allclose(np.concatenate(a[name][1]), np.concatenate(b[name][1])), name


def _same_numbers(x, y) -> bool:
    if isinstance(x, dict):
        return x.keys() == y.keys() and all(_same_numbers(x[k], y[k]) for k in x)
    if isinstance(x, float) and math.isnan(x):
        return isinstance(y, float) and math.isnan(y)
    return x == pytest.approx(y, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("labels", [LABELS, REGIONS], ids=["labels", "regions"])
def test_same_decision_files_and_pickles_as_nnunet(tmp_path: Path, labels: dict) -> None:
    workspace = Workspace.from_root(tmp_path / "ws")
    base_pred, gt = _make(tmp_path / "base", labels)
    nn_pred, our_pred = tmp_path / "nn" / "pred", tmp_path / "ours" / "pred"
    shutil.copytree(base_pred, nn_pred)
    shutil.copytree(base_pred, our_pred)

    run_nnunet("determine_postprocessing", ["-i", str(nn_pred), "-ref", str(gt), "-np", "1"], workspace)
    result = determine_postprocessing(our_pred, gt, num_processes=1)

    # the same steps (nnU-Net's pickle holds numpy ints; it is read with AutoSeg's restricted unpickler)
    nn_steps = load_postprocessing(nn_pred / "postprocessing.pkl")
    assert result.steps == nn_steps
    assert any(c.accepted for c in result.candidates) and not all(c.accepted for c in result.candidates)
    if labels is LABELS:  # the all-foreground step would remove the legitimate label-2 components
        assert result.steps == [PostprocessingStep(1)]
    else:  # no legitimate second components: the all-foreground step removes the stray blobs (speckle
        # touching the hippocampus is left to the per-region steps)
        assert result.steps[0] == PostprocessingStep([1, 2])

    # the same postprocessed files, summary numbers and postprocessing.json content
    _assert_same_segmentations(our_pred / "postprocessed", nn_pred / "postprocessed")
    ours = json.loads((our_pred / "postprocessed" / "summary.json").read_text())
    theirs = json.loads((nn_pred / "postprocessed" / "summary.json").read_text())
    assert _same_numbers(ours["foreground_mean"], theirs["foreground_mean"])
    assert _same_numbers(ours["mean"], theirs["mean"])
    assert len(ours["metric_per_case"]) == len(theirs["metric_per_case"]) == NUM_CASES
    for a, b in zip(ours["metric_per_case"], theirs["metric_per_case"]):
        assert Path(a["prediction_file"]).name == Path(b["prediction_file"]).name
        assert _same_numbers(a["metrics"], b["metrics"])
    ours = json.loads((our_pred / "postprocessing.json").read_text())
    theirs = json.loads((nn_pred / "postprocessing.json").read_text())
    for key in ("input_folder", "postprocessed"):
        assert _same_numbers(ours[key], theirs[key]), key
    for key in ("postprocessing_fns", "postprocessing_kwargs"):
        assert ours[key] == theirs[key], key
    assert _same_numbers(json.loads((our_pred / "summary.json").read_text())["mean"],
                         json.loads((nn_pred / "summary.json").read_text())["mean"])

    # nnU-Net applies AutoSeg's pickle; AutoSeg applies nnU-Net's: same files as determined above
    nn_applied, our_applied = tmp_path / "nn_applied", tmp_path / "our_applied"
    run_nnunet("apply_postprocessing", ["-i", str(base_pred), "-o", str(nn_applied),
                                        "-pp_pkl_file", str(our_pred / "postprocessing.pkl"), "-np", "1"], workspace)
    assert autoseg_main(["apply_postprocessing", "-i", str(base_pred), "-o", str(our_applied),
                         "-pp_pkl_file", str(nn_pred / "postprocessing.pkl"), "-np", "1"]) == 0
    _assert_same_segmentations(nn_applied, nn_pred / "postprocessed")
    _assert_same_segmentations(our_applied, nn_pred / "postprocessed")
