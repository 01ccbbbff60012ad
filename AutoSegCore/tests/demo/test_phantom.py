"""The demo's phantom generator and dataset writer: geometry, labels, intensities, determinism, layout."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from autoseg.dataset.integrity.verify import verify_dataset_integrity
from autoseg.demo.dataset import DemoDatasetSpec, write_demo_dataset
from autoseg.demo.phantom import INTENSITY, LABELS, PhantomSettings, phantom_case
from autoseg.errors import AutoSegError

SMALL = PhantomSettings(field_of_view_mm=(60.0, 48.0, 48.0), spacing_mm=(3.0, 1.5, 1.5))


@pytest.fixture(scope="module")
def cases():
    return [phantom_case([7, i]) for i in range(3)]


def test_geometry_is_anisotropic_oblique_and_offset(cases) -> None:
    for case in cases:
        z, y, x = case.spacing
        assert z / y > 2.8 and z / x > 2.8  # anisotropic: 3 mm slices, ~0.9 mm in-plane
        assert case.image.shape == case.label.shape
        assert 42 <= case.image.shape[0] <= 54 and 85 <= case.image.shape[1] <= 108
        direction = np.array(case.direction).reshape(3, 3)
        np.testing.assert_allclose(direction @ direction.T, np.eye(3), atol=1e-9)
        assert np.linalg.det(direction) == pytest.approx(1.0)
        assert np.abs(direction - np.eye(3)).max() > 0.05  # oblique, not axis-aligned
        assert np.linalg.norm(case.origin) > 1.0
    assert len({c.spacing for c in cases}) == len(cases)  # every case has its own spacing


def test_labels_are_two_organs_of_plausible_size(cases) -> None:
    for case in cases:
        values, counts = np.unique(case.label, return_counts=True)
        assert values.tolist() == [0, 1, 2]
        voxel_ml = float(np.prod(case.spacing)) / 1000
        liver_ml, kidney_ml = counts[1] * voxel_ml, counts[2] * voxel_ml
        assert 40 < liver_ml < 250 and 8 < kidney_ml < 40 and liver_ml > 2 * kidney_ml
        # the organs do not touch the volume border (the whole organ is in the field of view, in-plane)
        for label in (1, 2):
            _, ys, xs = np.nonzero(case.label == label)
            assert ys.min() > 0 and xs.min() > 0
            assert ys.max() < case.label.shape[1] - 1 and xs.max() < case.label.shape[2] - 1


def test_organs_have_moderate_contrast_under_bias_and_noise(cases) -> None:
    for case in cases:
        liver = case.image[case.label == 1].mean()
        kidney = case.image[case.label == 2].mean()
        assert liver > kidney + 200  # bright liver, dark kidney
        assert abs(liver - INTENSITY["liver"]) < 0.2 * INTENSITY["liver"]  # bias field moves intensities a little
        assert case.image.dtype == np.float32 and case.image.min() >= 0
        # noise: neighbouring voxels inside the liver differ
        inside = case.image[case.label == 1]
        assert inside.std() > 20


def test_same_seed_same_case_other_seed_other_case() -> None:
    a, b, c = phantom_case([1, 2], SMALL), phantom_case([1, 2], SMALL), phantom_case([1, 3], SMALL)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.label, b.label)
    assert a.direction == b.direction and a.origin == b.origin and a.spacing == b.spacing
    assert a.direction != c.direction
    assert a.image.shape != c.image.shape or not np.array_equal(a.label, c.label)


def test_written_dataset_layout_geometry_and_integrity(tmp_path) -> None:
    spec = DemoDatasetSpec(seed=3, num_training=3, num_test=2, phantom=SMALL)
    folder = write_demo_dataset(tmp_path / "Dataset990_AutoSegDemo", spec)
    names = lambda sub: sorted(p.name for p in (folder / sub).iterdir())  # noqa: E731
    assert names("imagesTr") == [f"phantom_{i:03d}_0000.nii.gz" for i in range(3)]
    assert names("labelsTr") == [f"phantom_{i:03d}.nii.gz" for i in range(3)]
    assert names("imagesTs") == [f"phantom_{i:03d}_0000.nii.gz" for i in (3, 4)]
    assert names("labelsTs") == [f"phantom_{i:03d}.nii.gz" for i in (3, 4)]
    assert not list(tmp_path.glob(".*partial*"))
    dataset_json = json.loads((folder / "dataset.json").read_text())
    assert dataset_json["labels"] == LABELS and dataset_json["numTraining"] == 3
    assert dataset_json["demo_generator"]["seed"] == 3

    expected = phantom_case(spec.case_seed(4), SMALL)
    image = sitk.ReadImage(str(folder / "imagesTs" / "phantom_004_0000.nii.gz"))
    label = sitk.ReadImage(str(folder / "labelsTs" / "phantom_004.nii.gz"))
    for itk in (image, label):
        np.testing.assert_allclose(itk.GetSpacing(), expected.spacing[::-1])
        np.testing.assert_allclose(itk.GetDirection(), expected.direction, atol=1e-6)
        np.testing.assert_allclose(itk.GetOrigin(), expected.origin, atol=1e-4)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(label), expected.label)
    np.testing.assert_allclose(sitk.GetArrayFromImage(image), expected.image)

    report = verify_dataset_integrity(folder, num_processes=0)
    assert not report.errors, report.format()

    with pytest.raises(AutoSegError, match="already exists"):
        write_demo_dataset(folder, spec)
