"""Small generated prediction folders (probabilities, properties, plans.json, dataset.json) for ensembling tests."""

from __future__ import annotations

import json
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from autoseg.imageio.simpleitk_io import SimpleITKIO
from autoseg.inference.predict_folder import write_probabilities

SHAPE = (6, 9, 11)  # z, y, x
SPACING = (0.7, 0.9, 2.5)  # x, y, z as SimpleITK orders them
ORIGIN = (4.0, -3.0, 12.0)
DIRECTION = (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0)
LABELS = {"background": 0, "anterior": 1, "posterior": 2}
REGIONS = {"background": 0, "whole": [1, 2], "posterior": [2]}
PLANS = {"image_reader_writer": "SimpleITKIO", "label_manager": "LabelManager", "configurations": {}}


def dataset_json(labels: dict | None = None) -> dict:
    labels = labels or LABELS
    content = {"channel_names": {"0": "MRI"}, "labels": labels, "numTraining": 4, "file_ending": ".nii.gz"}
    if any(isinstance(v, list) and len(v) > 1 for v in labels.values()):
        content["regions_class_order"] = [1, 2]
    return content


def case_properties(folder: Path, origin: Sequence[float] = ORIGIN) -> dict:
    """Properties of an image with the test geometry, as the reader returns them."""
    image = sitk.GetImageFromArray(np.zeros(SHAPE, np.float32))
    image.SetSpacing(SPACING)
    image.SetOrigin(tuple(origin))
    image.SetDirection(DIRECTION)
    path = folder / "geometry_source.nii.gz"
    folder.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    _, properties = SimpleITKIO().read_images([path])
    path.unlink()
    return properties


def random_probabilities(rng: np.random.Generator, channels: int = 3, regions: bool = False,
                         dtype: type = np.float32) -> np.ndarray:
    logits = rng.normal(0, 2, (channels, *SHAPE))
    if regions:
        probabilities = 1 / (1 + np.exp(-logits))
    else:
        probabilities = np.exp(logits) / np.exp(logits).sum(0, keepdims=True)
    return probabilities.astype(dtype)


def write_prediction_folder(folder: Path, probabilities: dict[str, np.ndarray], labels: dict | None = None,
                            pickle_only: bool = False, plans: bool = True, origin: Sequence[float] = ORIGIN) -> Path:
    """A folder as ``autoseg predict --save_probabilities`` writes it (``pickle_only``: as nnU-Net writes it)."""
    folder.mkdir(parents=True, exist_ok=True)
    properties = case_properties(folder, origin)
    for case, array in probabilities.items():
        if pickle_only:
            np.savez_compressed(folder / f"{case}.npz", probabilities=array)
            (folder / f"{case}.pkl").write_bytes(pickle.dumps(properties))
        else:
            write_probabilities(folder, case, array, properties)
    (folder / "dataset.json").write_text(json.dumps(dataset_json(labels)))
    if plans:
        (folder / "plans.json").write_text(json.dumps(PLANS))
    return folder


def read(path: Path) -> sitk.Image:
    return sitk.ReadImage(str(path))
