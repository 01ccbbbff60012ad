"""Small crafted prediction/reference folders whose correct postprocessing decision is known."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

SHAPE = (12, 20, 20)
SPACING = (0.8, 0.9, 2.5)  # x, y, z as SimpleITK orders them
ORIGIN = (10.0, -5.0, 3.0)
DIRECTION = (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0)
LABELS = {"background": 0, "anterior": 1, "posterior": 2}
REGION_LABELS = {"background": 0, "whole": [1, 2], "posterior": [2]}


def base_reference(shift: int = 0) -> np.ndarray:
    """Label 1 and label 2 blocks that touch each other (one foreground component)."""
    seg = np.zeros(SHAPE, np.uint8)
    seg[2:6, 2 + shift:8 + shift, 2:8] = 1
    seg[2:6, 8 + shift:12 + shift, 2:8] = 2
    return seg


def spurious_blobs_case(index: int) -> tuple[np.ndarray, np.ndarray]:
    """Reference = touching blocks; prediction adds a stray label 1 blob and a stray label 2 voxel.
    Keeping the largest foreground component restores the reference exactly."""
    reference = base_reference(index % 3)
    prediction = reference.copy()
    prediction[9:11, 15:17, 15:17] = 1
    prediction[10, 2, 16] = 2
    return reference, prediction


def separate_component_case(index: int) -> tuple[np.ndarray, np.ndarray]:
    """Label 2 legitimately has a second, separate component; the prediction adds a stray label 1 pair.
    Only keeping the largest component of label 1 alone helps."""
    reference = base_reference(index % 3)
    reference[8:11, 14:18, 14:18] = 2
    prediction = reference.copy()
    prediction[10, 1:3, 17] = 1
    return reference, prediction


def write_seg(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.SetSpacing(SPACING)
    image.SetOrigin(ORIGIN)
    image.SetDirection(DIRECTION)
    sitk.WriteImage(image, str(path), True)


def read_seg(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def make_folders(root: Path, case, n: int = 3, labels: dict | None = None, plans: bool = True) -> tuple[Path, Path]:
    """``root/pred`` (with dataset.json and plans.json, as prediction writes them) and ``root/gt``."""
    pred, gt = root / "pred", root / "gt"
    for i in range(n):
        reference, prediction = case(i)
        write_seg(gt / f"case_{i:03d}.nii.gz", reference)
        write_seg(pred / f"case_{i:03d}.nii.gz", prediction)
    labels = labels or LABELS
    dataset = {"channel_names": {"0": "MRI"}, "labels": labels, "numTraining": n, "file_ending": ".nii.gz"}
    if any(isinstance(v, list) and len(v) > 1 for v in labels.values()):
        dataset["regions_class_order"] = list(range(1, len(labels)))
    (pred / "dataset.json").write_text(json.dumps(dataset))
    if plans:
        (pred / "plans.json").write_text(json.dumps(
            {"image_reader_writer": "SimpleITKIO", "label_manager": "LabelManager", "configurations": {}}))
    return pred, gt


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
