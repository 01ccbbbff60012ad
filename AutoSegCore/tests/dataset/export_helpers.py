"""Generated volumes and segmentations for the export tests (oblique, reflected and RAS geometries)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy.spatial.transform import Rotation

from autoseg.imageio.ras_geometry import Geometry, apply_geometry, ijk_to_lps_matrix
from autoseg.imageio.segmentation_file import write_segmentation_file

SHAPE = (10, 14, 12)  # (k, j, i)


def oblique_geometry(reflect: bool = False, degrees: float = 25.0) -> Geometry:
    """Rotation about a non-axis direction, anisotropic spacing, non-zero origin; ``reflect`` flips k."""
    axis = np.array([1.0, 2.0, 3.0]) / np.linalg.norm([1.0, 2.0, 3.0])
    direction = Rotation.from_rotvec(np.deg2rad(degrees) * axis).as_matrix()
    if reflect:
        direction = direction @ np.diag([1.0, 1.0, -1.0])
    return Geometry(spacing=(0.8, 1.3, 2.5), origin=(-12.5, 40.25, 7.75), direction=tuple(direction.ravel()))


def write_volume(path: Path, array: np.ndarray, geometry: Geometry) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    apply_geometry(image, geometry)
    sitk.WriteImage(image, str(path), True)
    return sitk.ReadImage(str(path))


def random_volume(seed: int = 0, shape: tuple[int, int, int] = SHAPE) -> np.ndarray:
    return np.random.default_rng(seed).integers(-200, 800, shape).astype(np.int16)


def painted_labels(shape: tuple[int, int, int] = SHAPE, seed: int = 1) -> np.ndarray:
    """Two irregular blobs (values 1 and 2) away from the borders, plus one voxel in a corner region."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, dtype=np.uint8)
    labels[2:6, 3:9, 2:7] = (rng.random((4, 6, 5)) > 0.3).astype(np.uint8)
    labels[6:9, 8:12, 6:11][rng.random((3, 4, 5)) > 0.4] = 2
    labels[1, 2, 4] = 2
    return labels


def shifted_geometry(
    geometry: Geometry, offset_ijk: tuple[float, float, float], spacing_factor: float = 1.0
) -> Geometry:
    """Same axes; origin at voxel ``offset_ijk`` of ``geometry``; spacing scaled by ``spacing_factor``."""
    origin = (ijk_to_lps_matrix(geometry) @ np.array([*offset_ijk, 1.0]))[:3]
    spacing = tuple(s * spacing_factor for s in geometry.spacing)
    return Geometry(spacing=spacing, origin=tuple(float(v) for v in origin), direction=geometry.direction)


def seg_on_grid(labels: np.ndarray, geometry: Geometry, kind: str) -> tuple[np.ndarray, Geometry]:
    """The painted ``labels`` re-expressed on another grid in the same space.

    ``cropped``: the labelled bounding box only (as Slicer saves); ``larger``: 1-4 voxels of margin on every
    side, beyond the volume; ``finer``: every voxel split into 2x2x2 half-size voxels.
    """
    if kind == "cropped":
        nonzero = np.nonzero(labels)
        lo = [int(a.min()) for a in nonzero]
        hi = [int(a.max()) + 1 for a in nonzero]
        crop = labels[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        return crop, shifted_geometry(geometry, (lo[2], lo[1], lo[0]))
    if kind == "larger":
        return np.pad(labels, ((3, 2), (1, 4), (2, 1))), shifted_geometry(geometry, (-2, -1, -3))
    if kind == "finer":
        fine = labels.repeat(2, 0).repeat(2, 1).repeat(2, 2)
        return fine, shifted_geometry(geometry, (-0.25, -0.25, -0.25), 0.5)
    raise ValueError(kind)


def write_case(
    folder: Path,
    case: str,
    labels: np.ndarray,
    geometry: Geometry,
    names: Mapping[int, str],
    kind: str = "cropped",
    seed: int = 0,
) -> np.ndarray:
    """``case.nrrd`` volume + ``case.seg.nrrd``; returns the volume's voxels."""
    folder.mkdir(parents=True, exist_ok=True)
    volume = random_volume(seed, labels.shape)
    write_volume(folder / f"{case}.nrrd", volume, geometry)
    seg, seg_geometry = seg_on_grid(labels, geometry, kind)
    write_segmentation_file(folder / f"{case}.seg.nrrd", seg, seg_geometry, names)
    return volume


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def folder_hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): file_hash(p) for p in sorted(folder.rglob("*")) if p.is_file()}
