"""Image geometry between SimpleITK/nnU-Net (LPS) and 3D Slicer (RAS IJK-to-RAS matrices).

SimpleITK and NRRD files describe a volume in LPS: ``point = origin + direction @ diag(spacing) @ index``
with ``index = (i, j, k)`` in x, y, z order. Slicer's volume nodes store the same mapping as a 4x4
IJK-to-RAS matrix; RAS = diag(-1, -1, 1) @ LPS. These functions convert exactly in both directions,
so a labelmap exported from a Slicer node and read back lands on the same voxels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: LPS <-> RAS flips the first two axes (the matrix is its own inverse).
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


@dataclass(frozen=True)
class Geometry:
    """A 3D volume's geometry as SimpleITK gives it (LPS; spacing and origin in x, y, z order)."""

    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]  # 9 values, row-major, columns are the i, j, k axis directions

    @property
    def direction_matrix(self) -> np.ndarray:
        return np.asarray(self.direction, dtype=float).reshape(3, 3)


def lps_to_ras_points(points: np.ndarray | Sequence[float]) -> np.ndarray:
    """Points (..., 3) from LPS to RAS (the same formula converts RAS to LPS)."""
    array = np.asarray(points, dtype=float)
    return array * np.array([-1.0, -1.0, 1.0])


ras_to_lps_points = lps_to_ras_points


def ijk_to_lps_matrix(geometry: Geometry) -> np.ndarray:
    """The 4x4 homogeneous IJK-to-LPS matrix of ``geometry``."""
    matrix = np.eye(4)
    matrix[:3, :3] = geometry.direction_matrix @ np.diag(geometry.spacing)
    matrix[:3, 3] = geometry.origin
    return matrix


def ijk_to_ras_matrix(geometry: Geometry) -> np.ndarray:
    """The 4x4 IJK-to-RAS matrix Slicer uses for a volume of this geometry."""
    flip = np.eye(4)
    flip[:3, :3] = LPS_TO_RAS
    return flip @ ijk_to_lps_matrix(geometry)


def geometry_from_ijk_to_ras(matrix: np.ndarray | Sequence[Sequence[float]]) -> Geometry:
    """The SimpleITK geometry of a Slicer IJK-to-RAS matrix (spacing = column norms, direction = unit columns).

    Raises ValueError for a matrix that is not an affine map with non-zero, finite axis lengths.
    """
    m = np.asarray(matrix, dtype=float)
    if m.shape != (4, 4) or not np.all(np.isfinite(m)) or not np.allclose(m[3], [0, 0, 0, 1]):
        raise ValueError(
            f"An IJK-to-RAS matrix must be a finite 4x4 affine matrix with last row 0 0 0 1, got {m.tolist()}"
        )
    lps = LPS_TO_RAS @ m[:3, :]
    axes = lps[:, :3]
    spacing = np.linalg.norm(axes, axis=0)
    if np.any(spacing <= 0):
        raise ValueError(f"The IJK-to-RAS matrix has an axis of length 0: {m.tolist()}")
    direction = axes / spacing
    return Geometry(spacing=_xyz(spacing), origin=_xyz(lps[:, 3]), direction=tuple(float(v) for v in direction.ravel()))


def _xyz(values: np.ndarray) -> tuple[float, float, float]:
    x, y, z = (float(v) for v in values)
    return x, y, z


def geometry_of_image(image) -> Geometry:
    """The geometry of a 3D ``SimpleITK.Image``."""
    return Geometry(spacing=tuple(image.GetSpacing()), origin=tuple(image.GetOrigin()),
                    direction=tuple(image.GetDirection()))


def apply_geometry(image, geometry: Geometry) -> None:
    """Set ``geometry`` on a 3D ``SimpleITK.Image`` in place."""
    image.SetSpacing(geometry.spacing)
    image.SetOrigin(geometry.origin)
    image.SetDirection(geometry.direction)


def same_geometry(a: Geometry, b: Geometry, tolerance: float = 1e-6) -> bool:
    """Whether two geometries map every voxel to the same point (within ``tolerance`` mm / unit)."""
    return bool(np.allclose(ijk_to_lps_matrix(a), ijk_to_lps_matrix(b), atol=tolerance, rtol=0))
