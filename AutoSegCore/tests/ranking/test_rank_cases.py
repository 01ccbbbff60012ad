"""``autoseg rank_cases`` end to end with a tiny trained two-fold model: out-of-distribution cases (pure noise,
inverted intensities) rank above cases like the training data, maps keep an oblique input's geometry, a
second run into the same folder is refused, and one fold falls back to the mirrored TTA copies."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from ranking_model import blob_case, build_tiny_model

from autoseg.cli.main import main
from autoseg.imageio.simpleitk_io import SimpleITKIO
from autoseg.ranking.members import MemberPlan, _flip_dims
from autoseg.ranking.rank_cases import rank_cases

TYPICAL = ("typical_a", "typical_b", "oblique")
UNUSUAL = ("inverted", "noise")
OBLIQUE = {"spacing": (0.9, 1.1, 1.25), "origin": (12.5, -30.25, 7.0)}


def _rotation() -> tuple[float, ...]:
    a, b = np.deg2rad(20.0), np.deg2rad(-35.0)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return tuple((rz @ rx).ravel())


def _write(folder, case: str, image: np.ndarray, oblique: bool = False) -> None:
    volume = sitk.GetImageFromArray(image.astype(np.float32))
    if oblique:
        volume.SetSpacing(OBLIQUE["spacing"])
        volume.SetOrigin(OBLIQUE["origin"])
        volume.SetDirection(_rotation())
    sitk.WriteImage(volume, str(folder / f"{case}_0000.nii.gz"))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("rank_cases")
    model = build_tiny_model(root / "results")
    images = root / "unlabelled"
    images.mkdir()
    _write(images, "typical_a", blob_case(np.random.RandomState(100))[0])
    _write(images, "typical_b", blob_case(np.random.RandomState(101))[0])
    _write(images, "oblique", blob_case(np.random.RandomState(102))[0], oblique=True)
    _write(images, "noise", np.random.RandomState(5).normal(0, 1, (24, 24, 24)))
    _write(images, "inverted", -blob_case(np.random.RandomState(7))[0])
    return root, model, images


@pytest.fixture(scope="module", autouse=True)
def _keep_torch_threads():
    threads = torch.get_num_threads()  # the predictor sets them for the whole process (autouse: set up first)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def cli_run(setup):
    root, model, images = setup
    output = root / "ranking"
    code = main(["rank_cases", "-i", str(images), "-o", str(output), "-m", str(model), "-device", "cpu",
                 "--save_maps", "-num_threads", "1", "--disable_progress_bar"])
    return output, code


def _assert_unusual_cases_first(cases: list[dict]) -> None:
    assert {c["case"] for c in cases[:2]} == set(UNUSUAL), [(c["case"], c["score"]) for c in cases]
    assert min(c["score"] for c in cases[:2]) > max(c["score"] for c in cases[2:])
    assert [c["rank"] for c in cases] == [1, 2, 3, 4, 5]
    assert [c["score"] for c in cases] == sorted((c["score"] for c in cases), reverse=True)


def test_unusual_cases_rank_first_in_json_csv_and_table(cli_run, setup, capsys):
    output, code = cli_run
    _, model, images = setup
    assert code == 0
    ranking = json.loads((output / "ranking.json").read_text())
    assert ranking["model_folder"] == str(model.resolve()) and ranking["folds"] == [0, 1]
    assert ranking["checkpoint"] == "checkpoint_final.pth" and ranking["members"] == "folds" and ranking["tta"]
    cases = ranking["cases"]
    _assert_unusual_cases_first(cases)
    for case in cases:
        assert set(case) == {"rank", "case", "score", "fold_disagreement", "mean_entropy",
                             "predicted_foreground_voxels", "reason", "uncertainty_map"}
        assert case["score"] == pytest.approx(case["fold_disagreement"] + case["mean_entropy"])
        assert 0 <= case["fold_disagreement"] <= 1 and 0 <= case["mean_entropy"] <= 1
        assert case["reason"].startswith("folds ") and "mean entropy" in case["reason"]
        assert case["uncertainty_map"] == str((output / f"{case['case']}_uncertainty.nii.gz").resolve())
    typical = [c for c in cases if c["case"] in TYPICAL]
    assert all(c["predicted_foreground_voxels"] > 100 for c in typical)  # the blobs are found
    with open(output / "ranking.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["case"] for r in rows] == [c["case"] for c in cases]
    assert float(rows[0]["score"]) == cases[0]["score"] and rows[0]["reason"] == cases[0]["reason"]


def _geometry(image: sitk.Image) -> tuple:
    return image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection()


def test_maps_are_float32_entropy_on_the_oblique_input_geometry(cli_run, setup, tmp_path):
    output, _ = cli_run
    _, _, images = setup
    source = sitk.ReadImage(str(images / "oblique_0000.nii.gz"))
    uncertainty = sitk.ReadImage(str(output / "oblique_uncertainty.nii.gz"))
    assert uncertainty.GetPixelID() == sitk.sitkFloat32
    assert uncertainty.GetSize() == source.GetSize()
    assert uncertainty.GetSpacing() == source.GetSpacing() and uncertainty.GetOrigin() == source.GetOrigin()
    # NIfTI stores the direction as float32: equal to that precision, and bit for bit what the model's
    # reader/writer writes for a segmentation of this input (what `autoseg predict` would write)
    np.testing.assert_allclose(uncertainty.GetDirection(), source.GetDirection(), rtol=0, atol=1e-7)
    data, properties = SimpleITKIO().read_images([images / "oblique_0000.nii.gz"])
    SimpleITKIO().write_seg(np.zeros(data.shape[1:], np.uint8), tmp_path / "seg.nii.gz", properties)
    assert _geometry(uncertainty) == _geometry(sitk.ReadImage(str(tmp_path / "seg.nii.gz")))
    np.testing.assert_allclose(source.GetDirection(), _rotation(), atol=1e-6)  # really oblique
    values = sitk.GetArrayFromImage(uncertainty)
    assert values.min() >= 0 and values.max() <= 1 and values.max() > 0.5  # uncertain somewhere (the boundary)
    noise = sitk.GetArrayFromImage(sitk.ReadImage(str(output / "noise_uncertainty.nii.gz")))
    assert noise.mean() > values.mean()


def test_second_run_into_the_same_folder_is_refused_and_keeps_the_ranking(cli_run, setup, capsys):
    output, _ = cli_run
    _, model, images = setup
    before = {name: (output / name).read_bytes() for name in ("ranking.json", "ranking.csv")}
    stamp = (output / "ranking.json").stat().st_mtime_ns
    capsys.readouterr()
    code = main(["rank_cases", "-i", str(images), "-o", str(output), "-m", str(model), "-device", "cpu",
                 "-num_threads", "1", "--disable_progress_bar"])
    assert code == 1
    error = capsys.readouterr().err
    assert "ranking.json already exists" in error and "Choose a new output folder with -o" in error
    assert {name: (output / name).read_bytes() for name in before} == before
    assert (output / "ranking.json").stat().st_mtime_ns == stamp


def test_one_fold_uses_the_mirrored_copies_or_reports_no_disagreement(setup, tmp_path):
    _, model, images = setup
    ranking = rank_cases(images, tmp_path / "mirrored", model, folds=[0], device="cpu", num_threads=1)
    cases = [vars(r) for r in ranking]
    _assert_unusual_cases_first(cases)
    assert all(c["fold_disagreement"] is not None and c["uncertainty_map"] is None for c in cases)
    assert all(c["reason"].startswith("mirrored copies ") for c in cases)
    assert json.loads((tmp_path / "mirrored" / "ranking.json").read_text())["members"] == "mirrored copies"

    plain = rank_cases(images, tmp_path / "plain", model, folds=[0], device="cpu", tta=False, num_threads=1)
    assert all(r.fold_disagreement is None and r.score == r.mean_entropy for r in plain)
    assert plain[0].reason.startswith("no disagreement measured")
    with open(tmp_path / "plain" / "ranking.csv", newline="") as f:
        assert {row["fold_disagreement"] for row in csv.DictReader(f)} == {""}


def test_mirrored_copies_flip_the_spatial_axes_of_3d_and_2d_patches():
    image = torch.zeros(1, 4, 8, 8)  # (c, z, y, x) network input
    three_d = MemberPlan("mirrored copies", predictor_mirroring=False, mirror_axes=(0, 1, 2))
    assert three_d.copies == 8
    assert _flip_dims(three_d, image, patch_dims=3)[:5] == [(), (1,), (2,), (3,), (1, 2)]
    two_d = MemberPlan("mirrored copies", predictor_mirroring=False, mirror_axes=(0, 1))  # a 2d configuration
    assert _flip_dims(two_d, image, patch_dims=2) == [(), (2,), (3,), (2, 3)]  # y and x, never the slice axis
    assert _flip_dims(MemberPlan("folds", predictor_mirroring=True), image, patch_dims=3) == [()]
