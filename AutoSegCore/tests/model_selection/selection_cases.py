"""A generated workspace with trained-model results whose cross-validation outcome is known.

Two models predict with the same 2-fold split. Each is confident and right on its own half of the cases
and wrong (background, less confident) on the other half, so each scores a foreground mean Dice of
0.5 and their probability average is exactly right (Dice 1): the ensemble must win.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from autoseg.imageio.simpleitk_io import SimpleITKIO
from autoseg.inference.predict_folder import write_probabilities
from autoseg.paths import Workspace

DATASET = "Dataset950_Select"
CASES = ("case_0", "case_1", "case_2", "case_3")
SPLIT = {0: ["case_0", "case_2"], 1: ["case_1", "case_3"]}
SHAPE = (8, 12, 12)
LABELS = {"background": 0, "anterior": 1, "posterior": 2}
PLANS = {"dataset_name": DATASET, "plans_name": "nnUNetPlans", "image_reader_writer": "SimpleITKIO",
         "label_manager": "LabelManager",
         "configurations": {"2d": {"data_identifier": "2d"}, "3d_fullres": {"data_identifier": "3d"}}}


def reference(index: int) -> np.ndarray:
    seg = np.zeros(SHAPE, np.uint8)
    seg[2:6, 2 + index:6 + index, 2:8] = 1
    seg[2:6, 6 + index:9 + index, 2:8] = 2
    return seg


def probabilities(seg: np.ndarray, good: bool) -> np.ndarray:
    """Confident and right (``good``), or background with less confidence where the reference is foreground."""
    out = np.full((3, *seg.shape), 0.05, np.float32)
    for label in range(3):
        mask = seg == label
        if good or label == 0:
            out[label][mask] = 0.9
        else:
            out[0][mask], out[label][mask] = 0.6, 0.3
            out[3 - label][mask] = 0.1
    return out


def _write_seg(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.SetSpacing((0.9, 0.8, 2.0))
    image.SetOrigin((3.0, -4.0, 1.0))
    sitk.WriteImage(image, str(path), True)


def make_workspace(root: Path) -> Workspace:
    """References in gt_segmentations and raw labelsTr, plans in nnUNet_preprocessed; no model yet."""
    workspace = Workspace.from_root(root)
    gt = workspace.preprocessed / DATASET / "gt_segmentations"
    for i, case in enumerate(CASES):
        _write_seg(gt / f"{case}.nii.gz", reference(i))
        _write_seg(workspace.raw / DATASET / "labelsTr" / f"{case}.nii.gz", reference(i))
    (workspace.preprocessed / DATASET / "nnUNetPlans.json").write_text(json.dumps(PLANS))
    return workspace


def add_model(workspace: Workspace, configuration: str, good_cases: Iterable[str], trainer: str = "nnUNetTrainer",
              folds: Sequence[int] = (0, 1), npz: bool = True, split: Mapping[int, list[str]] = SPLIT) -> Path:
    """``nnUNet_results/<dataset>/<trainer>__nnUNetPlans__<configuration>`` with validation predictions."""
    good = set(good_cases)
    model = workspace.results / DATASET / f"{trainer}__nnUNetPlans__{configuration}"
    gt = workspace.preprocessed / DATASET / "gt_segmentations"
    for fold in folds:
        validation = model / f"fold_{fold}" / "validation"
        for case in split[fold]:
            seg = reference(CASES.index(case))
            probs = probabilities(seg, case in good)
            _write_seg(validation / f"{case}.nii.gz", probs.argmax(0))
            if npz:
                _, properties = SimpleITKIO().read_images([gt / f"{case}.nii.gz"])
                write_probabilities(validation, case, probs, properties)
    model.mkdir(parents=True, exist_ok=True)
    (model / "plans.json").write_text(json.dumps(PLANS))
    (model / "dataset.json").write_text(json.dumps(
        {"channel_names": {"0": "MRI"}, "labels": LABELS, "numTraining": len(CASES), "file_ending": ".nii.gz"}))
    return model


def environment(monkeypatch, workspace: Workspace) -> None:
    monkeypatch.setenv("nnUNet_raw", str(workspace.raw))
    monkeypatch.setenv("nnUNet_preprocessed", str(workspace.preprocessed))
    monkeypatch.setenv("nnUNet_results", str(workspace.results))


def copy_model(model: Path, trainer: str, folds: Sequence[int]) -> Path:
    """A copy of ``model`` under another trainer name with only ``folds``."""
    target = model.parent / model.name.replace(model.name.split("__")[0], trainer, 1)
    shutil.copytree(model, target, ignore=lambda folder, names: [n for n in names if n.startswith("fold_")
                                                                  and int(n[5:]) not in folds])
    return target
