"""Generated test images for the image I/O tests."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk


def rotation(ax: float = 20.0, ay: float = -35.0, az: float = 50.0) -> np.ndarray:
    """An oblique (not axis-aligned) proper rotation matrix from three angles in degrees."""
    a, b, c = (math.radians(v) for v in (ax, ay, az))
    rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


OBLIQUE = tuple(rotation().ravel())
#: A flipped, permuted axis-aligned direction (LPS -> an "SAL"-like orientation).
PERMUTED = (0.0, 0.0, -1.0, -1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
ANISOTROPIC = (0.7, 1.3, 3.1)
ORIGIN = (-12.345, 67.89, 0.123)


def labels(shape: Sequence[int], n_labels: int = 4, seed: int = 0, dtype: Any = np.uint8) -> np.ndarray:
    """A random label map."""
    return np.random.default_rng(seed).integers(0, n_labels, size=tuple(shape)).astype(dtype)


def intensities(shape: Sequence[int], dtype: Any, seed: int = 1) -> np.ndarray:
    """Random image intensities of a given dtype (signed ranges for int16, fractions for floats)."""
    rng = np.random.default_rng(seed)
    if np.issubdtype(dtype, np.floating):
        return (rng.standard_normal(tuple(shape)) * 100).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(max(info.min, -3000), min(info.max, 3000), size=tuple(shape), endpoint=True).astype(
        dtype
    )


def write_sitk(
    path: Path,
    array: np.ndarray,
    spacing: Sequence[float] | None = None,
    origin: Sequence[float] | None = None,
    direction: Sequence[float] | None = None,
    vector: bool = False,
) -> Path:
    """Write ``array`` (SimpleITK array order) with the given geometry."""
    image = sitk.GetImageFromArray(array, isVector=vector)
    if spacing is not None:
        image.SetSpacing(tuple(spacing))
    if origin is not None:
        image.SetOrigin(tuple(origin))
    if direction is not None:
        image.SetDirection(tuple(direction))
    sitk.WriteImage(image, str(path))
    return path


def sitk_geometry(path: Path) -> tuple[tuple, tuple, tuple]:
    """Spacing, origin and direction of a file as SimpleITK reads them."""
    image = sitk.ReadImage(str(path))
    return image.GetSpacing(), image.GetOrigin(), image.GetDirection()


def assert_same_properties(ours: Any, theirs: Any, where: str = "properties") -> None:
    """Exact, recursive equality; lists and tuples compare element-wise, arrays with array_equal."""
    if isinstance(theirs, dict):
        assert isinstance(ours, dict), where
        assert set(ours) == set(theirs), f"{where}: keys {sorted(ours)} != {sorted(theirs)}"
        for key in theirs:
            assert_same_properties(ours[key], theirs[key], f"{where}[{key!r}]")
    elif isinstance(theirs, np.ndarray):
        assert isinstance(ours, np.ndarray) and ours.shape == theirs.shape, where
        assert np.array_equal(ours, theirs), f"{where}: {ours} != {theirs}"
    elif isinstance(theirs, (list, tuple)):
        assert isinstance(ours, (list, tuple)) and len(ours) == len(theirs), f"{where}: {ours} != {theirs}"
        for i, (a, b) in enumerate(zip(ours, theirs)):
            assert_same_properties(a, b, f"{where}[{i}]")
    else:
        assert ours == theirs, f"{where}: {ours!r} != {theirs!r}"
