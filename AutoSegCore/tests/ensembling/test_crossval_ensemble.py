"""``ensemble_crossvalidations``: the fold validations of several models into one folder."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import SimpleITK as sitk
from ensemble_cases import random_probabilities, read, write_prediction_folder

from autoseg.ensembling.crossval import ensemble_crossvalidations
from autoseg.errors import EnsembleError

SPLIT = {0: ["c1", "c3"], 1: ["c2", "c4"]}


def make_model(root, name, seed, split=SPLIT):
    """A model folder with plans.json, dataset.json and fold_K/validation/{case}.npz + properties."""
    rng = np.random.default_rng(seed)
    model = root / name
    probabilities = {}
    for fold, cases in split.items():
        data = {c: random_probabilities(rng) for c in cases}
        probabilities.update(data)
        write_prediction_folder(model / f"fold_{fold}" / "validation", data)
    for name in ("plans.json", "dataset.json"):
        shutil.copyfile(model / "fold_0" / "validation" / name, model / name)
    return model, probabilities


def test_merges_every_fold_of_every_model(tmp_path):
    (a, pa), (b, pb) = make_model(tmp_path, "A", 0), make_model(tmp_path, "B", 1)
    out = tmp_path / "ensembles" / "ensemble___A___B___0_1"
    cases = ensemble_crossvalidations([a, b], out, folds=(0, 1), num_processes=1)
    assert cases == ["c1", "c2", "c3", "c4"]
    assert sorted(p.name for p in out.iterdir()) == ["c1.nii.gz", "c2.nii.gz", "c3.nii.gz", "c4.nii.gz",
                                                     "dataset.json", "plans.json"]
    for case in cases:
        expected = ((pa[case] + pb[case]) / 2).argmax(0)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(read(out / f"{case}.nii.gz")), expected)


def test_overwrite_rebuilds_and_no_overwrite_keeps(tmp_path):
    (a, _), (b, _) = make_model(tmp_path, "A", 0), make_model(tmp_path, "B", 1)
    out = tmp_path / "ens"
    ensemble_crossvalidations([a, b], out, folds=(0, 1), num_processes=1)
    (out / "stale.nii.gz").write_bytes(b"old")
    marker = (out / "c1.nii.gz").stat().st_mtime_ns
    (out / "c2.nii.gz").unlink()
    ensemble_crossvalidations([a, b], out, folds=(0, 1), num_processes=1, overwrite=False)
    assert (out / "c2.nii.gz").is_file() and (out / "c1.nii.gz").stat().st_mtime_ns == marker
    assert (out / "stale.nii.gz").exists()
    ensemble_crossvalidations([a, b], out, folds=(0, 1), num_processes=1)
    assert not (out / "stale.nii.gz").exists() and (out / "c2.nii.gz").is_file()


def test_missing_fold_missing_npz_and_duplicates(tmp_path):
    (a, _), (b, _) = make_model(tmp_path, "A", 0), make_model(tmp_path, "B", 1)
    with pytest.raises(EnsembleError, match="fold 2 of .* has no validation"):
        ensemble_crossvalidations([a, b], tmp_path / "o", folds=(0, 1, 2))
    for p in (b / "fold_1" / "validation").glob("*.npz"):
        p.unlink()
    with pytest.raises(EnsembleError, match="--npz"):
        ensemble_crossvalidations([a, b], tmp_path / "o", folds=(0, 1))
    c, _ = make_model(tmp_path, "C", 2, {0: ["c1", "c3"], 1: ["c2", "c3"]})
    with pytest.raises(EnsembleError, match="c3 is in the validation of more than one fold"):
        ensemble_crossvalidations([a, c], tmp_path / "o", folds=(0, 1))
    d, _ = make_model(tmp_path, "D", 3, {0: ["c1", "c3"], 1: ["c2"]})
    with pytest.raises(EnsembleError, match="lacks 1 case.*c4.npz"):
        ensemble_crossvalidations([a, d], tmp_path / "o", folds=(0, 1))
    assert not (tmp_path / "o").exists()
