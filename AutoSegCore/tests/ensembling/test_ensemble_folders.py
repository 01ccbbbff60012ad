"""``ensemble_folders`` / ``autoseg ensemble``: averaging, segmentation, geometry, inputs checks."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import SimpleITK as sitk
from ensemble_cases import (
    DIRECTION,
    ORIGIN,
    REGIONS,
    SPACING,
    random_probabilities,
    read,
    write_prediction_folder,
)

from autoseg.cli.main import main
from autoseg.ensembling.ensemble import average_probabilities, ensemble_folders
from autoseg.ensembling.output_folder import rebuilt_folder
from autoseg.errors import EnsembleError


@pytest.fixture
def two_folders(tmp_path):
    rng = np.random.default_rng(0)
    a = {c: random_probabilities(rng) for c in ("case_a", "case_b")}
    b = {c: random_probabilities(rng, dtype=np.float16) for c in ("case_a", "case_b")}
    return write_prediction_folder(tmp_path / "a", a), write_prediction_folder(tmp_path / "b", b), a, b


def test_average_and_segmentation_in_the_input_geometry(two_folders, tmp_path):
    folder_a, folder_b, a, b = two_folders
    out = tmp_path / "out"
    cases = ensemble_folders([folder_a, folder_b], out, save_probabilities=True, num_processes=1)
    assert cases == ["case_a", "case_b"]
    for case in cases:
        expected = (a[case] + b[case].astype(np.float32)) / 2
        image = read(out / f"{case}.nii.gz")
        np.testing.assert_array_equal(sitk.GetArrayFromImage(image), expected.argmax(0))
        assert image.GetSpacing() == pytest.approx(SPACING) and image.GetOrigin() == pytest.approx(ORIGIN)
        assert image.GetDirection() == pytest.approx(DIRECTION)
        with np.load(out / f"{case}.npz") as npz:
            assert npz["probabilities"].dtype == np.float32
            np.testing.assert_allclose(npz["probabilities"], expected, rtol=1e-6)
        assert json.loads((out / f"{case}.json").read_text())["sitk_stuff"]["origin"] == pytest.approx(ORIGIN)
        assert pickle.loads((out / f"{case}.pkl").read_bytes())["spacing"] == pytest.approx(SPACING[::-1])
    assert json.loads((out / "dataset.json").read_text())["labels"]["posterior"] == 2
    assert (out / "plans.json").is_file()


def test_average_follows_nnunet_float32_order(two_folders):
    folder_a, folder_b, a, b = two_folders
    total = a["case_a"].astype(np.float32).copy()
    total += b["case_a"]
    total /= 2
    got = average_probabilities([folder_a / "case_a.npz", folder_b / "case_a.npz"])
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, total)  # bit for bit: same operations in the same order


def test_regions_paint_in_regions_class_order(tmp_path):
    rng = np.random.default_rng(1)
    a = {"case": random_probabilities(rng, channels=2, regions=True)}
    b = {"case": random_probabilities(rng, channels=2, regions=True)}
    out = tmp_path / "out"
    ensemble_folders([write_prediction_folder(tmp_path / "a", a, REGIONS),
                      write_prediction_folder(tmp_path / "b", b, REGIONS)], out, num_processes=1)
    mean = (a["case"] + b["case"]) / 2
    expected = np.zeros(mean.shape[1:], np.uint8)
    expected[mean[0] > 0.5] = 1
    expected[mean[1] > 0.5] = 2
    got = sitk.GetArrayFromImage(read(out / "case.nii.gz"))
    np.testing.assert_array_equal(got, expected)
    assert {0, 1, 2} <= set(np.unique(got))


def test_nnunet_pickle_properties_are_read_and_json_is_preferred(tmp_path):
    rng = np.random.default_rng(2)
    data = {"case": random_probabilities(rng)}
    pickled = write_prediction_folder(tmp_path / "nnunet", data, pickle_only=True, origin=(1.0, 2.0, 3.0))
    assert not (pickled / "case.json").exists()
    ensemble_folders([pickled, write_prediction_folder(tmp_path / "b", data)], tmp_path / "o1", num_processes=1)
    assert read(tmp_path / "o1" / "case.nii.gz").GetOrigin() == pytest.approx((1.0, 2.0, 3.0))

    both = write_prediction_folder(tmp_path / "both", data)  # json with ORIGIN, pkl with another origin
    properties = pickle.loads((both / "case.pkl").read_bytes())
    properties["sitk_stuff"]["origin"] = (9.0, 9.0, 9.0)
    (both / "case.pkl").write_bytes(pickle.dumps(properties))
    ensemble_folders([both, pickled], tmp_path / "o2", num_processes=1)
    assert read(tmp_path / "o2" / "case.nii.gz").GetOrigin() == pytest.approx(ORIGIN)


def test_a_malicious_pickle_is_refused(tmp_path):
    rng = np.random.default_rng(3)
    folder = write_prediction_folder(tmp_path / "a", {"case": random_probabilities(rng)}, pickle_only=True)

    class Exploit:
        def __reduce__(self):
            return (print, ("pwned",))

    (folder / "case.pkl").write_bytes(pickle.dumps({"x": Exploit()}))
    with pytest.raises(Exception, match="builtins.print"):
        ensemble_folders([folder], tmp_path / "out", num_processes=1)


def test_missing_cases_are_listed(tmp_path):
    rng = np.random.default_rng(4)
    a = write_prediction_folder(tmp_path / "a", {c: random_probabilities(rng) for c in ("c1", "c2", "c3")})
    b = write_prediction_folder(tmp_path / "b", {c: random_probabilities(rng) for c in ("c1",)})
    with pytest.raises(EnsembleError) as err:
        ensemble_folders([a, b], tmp_path / "out", num_processes=1)
    message = str(err.value)
    assert str(b) in message and "c2.npz" in message and "c3.npz" in message and str(a) + " lacks" not in message
    assert not (tmp_path / "out").exists()


def test_folder_without_probabilities_says_how_to_get_them(tmp_path):
    rng = np.random.default_rng(5)
    a = write_prediction_folder(tmp_path / "a", {"c1": random_probabilities(rng)})
    empty = tmp_path / "segs_only"
    empty.mkdir()
    (empty / "c1.nii.gz").write_bytes(b"")
    with pytest.raises(EnsembleError, match="--save_probabilities.*--npz"):
        ensemble_folders([a, empty], tmp_path / "out")


def test_bad_inputs(tmp_path):
    rng = np.random.default_rng(6)
    a = write_prediction_folder(tmp_path / "a", {"c1": random_probabilities(rng)})
    with pytest.raises(EnsembleError, match="also an input folder"):
        ensemble_folders([a, tmp_path / "a"], a)
    with pytest.raises(EnsembleError, match="not found"):
        ensemble_folders([a, tmp_path / "nope"], tmp_path / "out")
    four = write_prediction_folder(tmp_path / "four", {"c1": random_probabilities(rng, channels=4)})
    with pytest.raises(EnsembleError, match="shape"):
        ensemble_folders([a, four], tmp_path / "out", num_processes=1)
    with pytest.raises(EnsembleError, match="4 probability channel"):
        ensemble_folders([four], tmp_path / "out4", num_processes=1)
    no_json = write_prediction_folder(tmp_path / "nojson", {"c1": random_probabilities(rng)})
    (no_json / "dataset.json").unlink()
    with pytest.raises(EnsembleError, match="dataset.json"):
        ensemble_folders([no_json, a], tmp_path / "out5")


def test_plans_file_is_optional_when_dataset_json_names_the_format(tmp_path):
    rng = np.random.default_rng(7)
    a = write_prediction_folder(tmp_path / "a", {"c1": random_probabilities(rng)}, plans=False)
    ensemble_folders([a], tmp_path / "out", num_processes=1)
    assert (tmp_path / "out" / "c1.nii.gz").is_file() and not (tmp_path / "out" / "plans.json").exists()


def test_cli(two_folders, tmp_path, capsys):
    folder_a, folder_b, _, _ = two_folders
    assert main(["ensemble", "-i", str(folder_a), str(folder_b), "-o", str(tmp_path / "cli"), "-np", "1",
                 "--save_npz", "--no_pbar"]) == 0
    assert "Ensembled 2 case(s)" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "cli").glob("*.npz")) == ["case_a.npz", "case_b.npz"]
    assert (
        main(
            [
                "ensemble",
                "-i",
                str(folder_a),
                str(tmp_path / "missing"),
                "-o",
                str(tmp_path / "x"),
                "--np",
                "1",
                "--no_pbar",
            ]
        )
        == 1
    )
    assert "autoseg ensemble: error: Prediction folder(s) not found" in capsys.readouterr().err


def test_rebuilt_folder_replaces_only_when_complete(tmp_path):
    target = tmp_path / "results"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), rebuilt_folder(target) as staging:
        (staging / "new.txt").write_text("new")
        raise RuntimeError("killed")
    assert [p.name for p in target.iterdir()] == ["old.txt"]
    with rebuilt_folder(target) as staging:
        (staging / "new.txt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["results"]  # no staging or retired folder left


def test_worker_processes_give_the_same_result(two_folders, tmp_path, monkeypatch):
    folder_a, folder_b, _, _ = two_folders
    ensemble_folders([folder_a, folder_b], tmp_path / "one", num_processes=1)
    monkeypatch.setattr("autoseg.ensembling.ensemble.BYTES_PER_WORKER", 1)  # force two spawned workers
    ensemble_folders([folder_a, folder_b], tmp_path / "two", num_processes=2)
    for case in ("case_a", "case_b"):
        one, two = read(tmp_path / "one" / f"{case}.nii.gz"), read(tmp_path / "two" / f"{case}.nii.gz")
        np.testing.assert_array_equal(sitk.GetArrayFromImage(one), sitk.GetArrayFromImage(two))
