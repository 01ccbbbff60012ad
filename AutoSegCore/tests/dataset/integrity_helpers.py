"""Small generated raw datasets for the integrity-check tests (and a worker that crashes on purpose)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

SHAPE = (4, 6, 5)  # (z, y, x)
SPACING = (0.8, 0.8, 2.5)  # (x, y, z)
CHANNELS = {"0": "CT", "1": "T2"}
LABELS = {"background": 0, "liver": 1, "tumor": 2}


def write_image(
    path: Path,
    array: np.ndarray,
    spacing: Sequence[float] = SPACING,
    origin: Sequence[float] | None = None,
    direction: Sequence[float] | None = None,
) -> Path:
    """Write a (z, y, x) or (y, x) array with SimpleITK; geometry defaults to SPACING, identity frame."""
    image = sitk.GetImageFromArray(array)
    dim = image.GetDimension()
    image.SetSpacing(tuple(float(s) for s in spacing[:dim]))
    image.SetOrigin(tuple(float(o) for o in (origin or (0.0,) * dim)))
    if direction is not None:
        image.SetDirection(tuple(float(d) for d in direction))
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return path


def image_array(seed: int, shape: Sequence[int] = SHAPE) -> np.ndarray:
    return np.random.default_rng(seed).normal(100.0, 20.0, size=tuple(shape)).astype(np.float32)


def label_array(seed: int, shape: Sequence[int] = SHAPE, values: Sequence[int] = (0, 1, 2)) -> np.ndarray:
    """A label map containing every value of ``values`` (the first voxels are set so none is missing)."""
    array = np.random.default_rng(seed).choice(np.asarray(values), size=tuple(shape)).astype(np.uint8)
    array.flat[: len(values)] = values
    return array


def write_dataset_json(root: Path, **overrides: Any) -> Path:
    """dataset.json with 2 channels and 3 labels; a value of None in ``overrides`` removes that key."""
    content: dict[str, Any] = {
        "channel_names": dict(CHANNELS),
        "labels": dict(LABELS),
        "numTraining": 3,
        "file_ending": ".nii.gz",
        "name": "Test",
    }
    content.update(overrides)
    content = {k: v for k, v in content.items() if v is not None}
    root.mkdir(parents=True, exist_ok=True)
    path = root / "dataset.json"
    path.write_text(json.dumps(content, indent=2), encoding="utf-8")
    return path


def write_case(
    root: Path,
    case: str,
    seed: int = 0,
    num_channels: int = 2,
    ending: str = ".nii.gz",
    shape: Sequence[int] = SHAPE,
    values: Sequence[int] = (0, 1, 2),
) -> None:
    for channel in range(num_channels):
        write_image(
            root / "imagesTr" / f"{case}_{channel:04d}{ending}", image_array(seed * 10 + channel, shape)
        )
    write_image(root / "labelsTr" / f"{case}{ending}", label_array(seed, shape, values))


def make_dataset(
    root: Path, num_cases: int = 3, num_channels: int = 2, ending: str = ".nii.gz", **json_overrides: Any
) -> Path:
    """A valid dataset: cases case_000, case_001, ... with ``num_channels`` channels each."""
    channels = {str(i): f"mod{i}" for i in range(num_channels)} if num_channels != 2 else dict(CHANNELS)
    json_overrides.setdefault("channel_names", channels)
    json_overrides.setdefault("numTraining", num_cases)
    write_dataset_json(root, file_ending=ending, **json_overrides)
    (root / "imagesTr").mkdir(parents=True, exist_ok=True)
    (root / "labelsTr").mkdir(parents=True, exist_ok=True)
    for i in range(num_cases):
        write_case(root, f"case_{i:03d}", seed=i, num_channels=num_channels, ending=ending)
    return root


def crash_on_marked_cases(index: int, files: Any, ctx: Any, marker_dir: str | None = None) -> Any:
    """A case-check worker that kills its own process for cases named ``crash*`` (as a segfault would)."""
    from autoseg.dataset.integrity.image_checks import run_case

    if files.identifier.startswith("crash"):
        if marker_dir is not None:
            (Path(marker_dir) / str(index)).touch()
        os._exit(3)
    return run_case(index, files, ctx, marker_dir)
