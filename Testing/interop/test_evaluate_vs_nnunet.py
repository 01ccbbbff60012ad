"""``autoseg evaluate_folder`` / ``evaluate_simple`` against ``nnUNetv2_evaluate_folder`` / ``_simple``.

References are real Hippocampus label maps; predictions are perturbed copies (identical, shifted,
label dropped, eroded, half cut away) on the same voxel grid, and one reference lacks label 2 so that
Dice is NaN there. Both tools evaluate the same folders with the same paths; every ``summary.json``
must have the same structure, the same keys and value types, and the same numbers (NaN where nnU-Net
has NaN).
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
from autoseg.evaluation import load_summary
from autoseg.paths import Workspace

pytestmark = pytest.mark.oracle

NUM_CASES = 5
HIPPOCAMPUS_LABELS = {"background": 0, "Anterior": 1, "Posterior": 2}
REGION_LABELS = {"background": 0, "hippocampus": [1, 2], "Anterior": 1, "Posterior": [2]}


def _erode(mask: np.ndarray) -> np.ndarray:
    """Keep the voxels whose 6 face neighbours are in the mask too."""
    kept = mask.copy()
    for axis in range(mask.ndim):
        for step in (1, -1):
            kept &= np.roll(mask, step, axis=axis)
    return kept


def _perturb(reference: np.ndarray, index: int) -> np.ndarray:
    prediction = reference.copy()
    if index == 1:
        prediction = np.roll(reference, 2, axis=1)
    elif index == 2:
        prediction[prediction == 2] = 0
    elif index == 3:
        prediction[(reference == 1) & ~_erode(reference == 1)] = 0
    elif index == 4:
        prediction[:, :, : prediction.shape[2] // 2] = 0
    return prediction


def _write(array: np.ndarray, like: sitk.Image, path: Path) -> None:
    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.CopyInformation(like)
    sitk.WriteImage(image, str(path))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("evaluate")
    folders = {name: root / name for name in ("gt", "gt_ignore", "pred")}
    for folder in folders.values():
        folder.mkdir()
    sources = sorted((SHARED_DATA / "Hippocampus" / "labelsTr").glob("*.nii.gz"))[:NUM_CASES]
    for index, source in enumerate(sources):
        image = sitk.ReadImage(str(source))
        reference = sitk.GetArrayFromImage(image).astype(np.uint8)
        if index == 2:
            reference[reference == 2] = 0  # label 2 absent from reference and prediction: Dice NaN
        _write(reference, image, folders["gt"] / source.name)
        _write(_perturb(reference, index), image, folders["pred"] / source.name)
        with_ignore = reference.copy()
        with_ignore[:, :, :: 3] = 3  # every third slice unannotated
        _write(with_ignore, image, folders["gt_ignore"] / source.name)
    for name, labels in (("labels", HIPPOCAMPUS_LABELS), ("regions", REGION_LABELS),
                         ("ignore", {**HIPPOCAMPUS_LABELS, "ignore": 3})):
        raw = {"channel_names": {"0": "MRI"}, "labels": labels, "numTraining": NUM_CASES,
               "file_ending": ".nii.gz"}
        if name == "regions":
            raw["regions_class_order"] = [1, 1, 2]
        folders[f"dataset_{name}"] = root / f"dataset_{name}.json"
        folders[f"dataset_{name}"].write_text(json.dumps(raw))
    folders["plans"] = root / "nnUNetPlans.json"
    folders["plans"].write_text(json.dumps({"label_manager": "LabelManager"}))
    folders["root"] = root
    return folders


def _run_both(command: str, gt: Path, pred: Path, flags: list[str], out: Path) -> tuple[dict, dict]:
    theirs, ours = out / "nnunet_summary.json", out / "autoseg_summary.json"
    run_nnunet(command, [str(gt), str(pred), *flags, "-o", str(theirs), "-np", "2"], Workspace.from_root(out))
    assert autoseg_main([command, str(gt), str(pred), *flags, "-o", str(ours), "-np", "2"]) == 0
    return json.loads(theirs.read_text()), json.loads(ours.read_text())


def assert_same_summary(theirs, ours, where: str = "summary") -> None:
    """Same structure, keys and value kinds; numbers allclose with NaN == NaN; strings equal."""
    if isinstance(theirs, dict):
        assert isinstance(ours, dict), f"{where}: {type(ours).__name__} instead of a dict"
        assert list(ours) == list(theirs), f"{where}: keys {list(ours)} != {list(theirs)}"
        for key in theirs:
            assert_same_summary(theirs[key], ours[key], f"{where}.{key}")
    elif isinstance(theirs, list):
        assert isinstance(ours, list) and len(ours) == len(theirs), f"{where}: lengths differ"
        for i, (a, b) in enumerate(zip(theirs, ours)):
            assert_same_summary(a, b, f"{where}[{i}]")
    elif isinstance(theirs, (int, float)):
        assert type(ours) is type(theirs), f"{where}: {type(ours).__name__} != {type(theirs).__name__}"
        if isinstance(theirs, float) and math.isnan(theirs):
            assert math.isnan(ours), f"{where}: {ours} != NaN"
        else:
            assert math.isclose(ours, theirs, rel_tol=1e-12, abs_tol=1e-12), f"{where}: {ours} != {theirs}"
    else:
        assert ours == theirs, f"{where}: {ours!r} != {theirs!r}"


def test_labels_match_nnunet(data, tmp_path):
    theirs, ours = _run_both("evaluate_folder", data["gt"], data["pred"],
                             ["-djfile", str(data["dataset_labels"]), "-pfile", str(data["plans"])], tmp_path)
    assert_same_summary(theirs, ours)
    assert sorted(ours["mean"]) == ["1", "2"] and len(ours["metric_per_case"]) == NUM_CASES
    dice = [case["metrics"]["2"]["Dice"] for case in ours["metric_per_case"]]
    assert math.isnan(dice[2]) and dice[0] == 1.0
    assert len({round(d, 6) for d in dice if not math.isnan(d)}) >= 3  # the perturbations differ
    # the file itself is byte for byte what nnU-Net writes (same paths given to both)
    assert (tmp_path / "autoseg_summary.json").read_text() == (tmp_path / "nnunet_summary.json").read_text()


def test_regions_match_nnunet(data, tmp_path):
    flags = ["-djfile", str(data["dataset_regions"]), "-pfile", str(data["plans"])]
    theirs, ours = _run_both("evaluate_folder", data["gt"], data["pred"], flags, tmp_path)
    assert_same_summary(theirs, ours)
    assert sorted(ours["mean"]) == ["(1, 2)", "(2,)", "1"]
    # AutoSeg's loader reads nnU-Net's file (what find_best_configuration will do)
    loaded = load_summary(tmp_path / "nnunet_summary.json")
    assert set(loaded.mean) == {(1, 2), 1, (2,)}
    assert loaded.foreground_mean["Dice"] == theirs["foreground_mean"]["Dice"]


def test_ignore_label_matches_nnunet(data, tmp_path):
    theirs, ours = _run_both("evaluate_folder", data["gt_ignore"], data["pred"],
                             ["-djfile", str(data["dataset_ignore"]), "-pfile", str(data["plans"])], tmp_path)
    assert_same_summary(theirs, ours)
    assert "3" not in ours["mean"]
    case = ours["metric_per_case"][0]
    counts = case["metrics"]["1"]
    voxels = sitk.ReadImage(case["reference_file"]).GetNumberOfPixels()
    assert counts["TP"] + counts["FP"] + counts["FN"] + counts["TN"] < voxels  # ignored voxels left out


def test_evaluate_simple_matches_nnunet(data, tmp_path):
    flags = ["-l", "0", "1", "2", "-il", "3"]
    theirs, ours = _run_both("evaluate_simple", data["gt_ignore"], data["pred"], flags, tmp_path)
    assert_same_summary(theirs, ours)
    assert sorted(ours["mean"]) == ["0", "1", "2"]  # 0 is reported but not part of the foreground mean
    foreground = (ours["mean"]["1"]["Dice"] + ours["mean"]["2"]["Dice"]) / 2
    assert ours["foreground_mean"]["Dice"] == pytest.approx(foreground)


def test_chill_with_missing_predictions_matches_nnunet(data, tmp_path):
    pred = tmp_path / "pred"
    shutil.copytree(data["pred"], pred)
    missing = sorted(pred.iterdir())[1]
    missing.unlink()
    flags = ["-djfile", str(data["dataset_labels"]), "-pfile", str(data["plans"])]
    assert autoseg_main(["evaluate_folder", str(data["gt"]), str(pred), *flags, "-np", "1"]) == 1
    assert not (pred / "summary.json").exists()
    theirs, ours = _run_both("evaluate_folder", data["gt"], pred, [*flags, "--chill"], tmp_path)
    assert_same_summary(theirs, ours)
    assert len(ours["metric_per_case"]) == NUM_CASES - 1
    assert all(Path(c["prediction_file"]).name != missing.name for c in ours["metric_per_case"])
