from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import slicerio

from autoseg.imageio.ras_geometry import (
    Geometry,
    apply_geometry,
    geometry_from_ijk_to_ras,
    geometry_of_image,
    ijk_to_lps_matrix,
    ijk_to_ras_matrix,
    lps_to_ras_points,
    ras_to_lps_points,
    same_geometry,
)

SLICERIO_DATA = Path(slicerio.__file__).parent / "data"


def _random_geometry(seed: int) -> Geometry:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))  # random orthonormal axes, possibly a reflection
    return Geometry(spacing=tuple(rng.uniform(0.3, 5.0, 3)), origin=tuple(rng.uniform(-300, 300, 3)),
                    direction=tuple(q.ravel()))


@pytest.mark.parametrize("seed", range(20))
def test_ijk_to_ras_round_trip_oblique(seed):
    geometry = _random_geometry(seed)
    back = geometry_from_ijk_to_ras(ijk_to_ras_matrix(geometry))
    np.testing.assert_allclose(back.spacing, geometry.spacing, rtol=1e-12)
    np.testing.assert_allclose(back.origin, geometry.origin, atol=1e-9)
    np.testing.assert_allclose(back.direction, geometry.direction, atol=1e-12)
    assert same_geometry(back, geometry)


def test_voxel_lands_on_the_same_physical_point_as_simpleitk():
    geometry = _random_geometry(3)
    image = sitk.Image(7, 9, 11, sitk.sitkUInt8)
    apply_geometry(image, geometry)
    for index in [(0, 0, 0), (6, 8, 10), (3, 1, 7)]:
        lps = np.asarray(image.TransformIndexToPhysicalPoint(index))
        ras = ijk_to_ras_matrix(geometry) @ np.array([*index, 1.0])
        np.testing.assert_allclose(ras[:3], lps_to_ras_points(lps), atol=1e-9)
        np.testing.assert_allclose(ras_to_lps_points(ras[:3]), lps, atol=1e-9)


def test_matches_a_slicer_written_segmentation():
    """Slicer's seg.nrrd: SimpleITK's LPS geometry -> our IJK-to-RAS equals the matrix Slicer stored."""
    path = SLICERIO_DATA / "Segmentation.seg.nrrd"
    segmentation = slicerio.read_segmentation(str(path))
    image = sitk.ReadImage(str(path))
    geometry = geometry_of_image(image)
    np.testing.assert_allclose(ijk_to_lps_matrix(geometry), segmentation["ijkToLPS"], atol=1e-4)
    # the "Reference image geometry" conversion parameter is the IJK-to-RAS matrix Slicer used (row-major)
    reference = next(
        p["value"] for p in segmentation["conversionParameters"] if p["name"] == "Reference image geometry"
    )
    ras = np.array([float(v) for v in reference.split(";")[:16]]).reshape(4, 4)
    np.testing.assert_allclose(ijk_to_ras_matrix(geometry)[:3, :3], ras[:3, :3], atol=1e-4)
    # origins differ by the segment extent offset only
    offset = np.asarray(segmentation["referenceImageExtentOffset"], dtype=float)
    np.testing.assert_allclose(ijk_to_ras_matrix(geometry)[:3, 3], (ras @ np.array([*offset, 1.0]))[:3], atol=1e-3)


def test_degenerate_matrices_are_refused():
    with pytest.raises(ValueError, match="axis of length 0"):
        geometry_from_ijk_to_ras(np.diag([1.0, 0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="4x4 affine"):
        geometry_from_ijk_to_ras(np.ones((3, 3)))
    bad = np.eye(4)
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        geometry_from_ijk_to_ras(bad)
