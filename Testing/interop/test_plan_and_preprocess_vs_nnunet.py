"""End to end on real data: ``autoseg plan_and_preprocess`` against ``nnUNetv2_plan_and_preprocess``.

The fingerprint and every configuration of the plans must match nnU-Net v2; preprocessed cases must
have identical segmentations and data within 1e-3 after normalisation.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from generated_datasets import WRITERS
from oracle import SHARED_DATA, link_dataset, load_json, run_nnunet
from test_planner_vs_nnunet import _assert_same_plans

from autoseg.cli.main import main as autoseg_main
from autoseg.paths import Workspace
from autoseg.preprocessing import storage

DATASETS = {
    "Hippocampus": ("Dataset004_Hippocampus", 20),
    "BraTS2015Subset": ("Dataset005_BraTS", None),
    "CT_TotalSegExamples": ("Dataset006_CTTotal", None),
    # generated: formats and geometries the shared data lacks
    "PNG2D": ("Dataset007_PNG2D", None),
    "ObliqueTwoChannel": ("Dataset008_ObliqueTwoChannel", None),
    "Tiff3D": ("Dataset009_Tiff3D", None),
}


def _subset(raw, limit: int | None) -> None:
    """Keep the first ``limit`` cases (sorted) so the comparison stays quick; numTraining follows."""
    if limit is None:
        return
    labels = sorted((raw / "labelsTr").iterdir())
    for label in labels[limit:]:
        case = label.name[: -len(".nii.gz")]
        label.unlink()
        for image in (raw / "imagesTr").glob(f"{case}_*"):
            image.unlink()
    dataset_json = load_json(raw / "dataset.json")
    dataset_json["numTraining"] = limit
    import json

    (raw / "dataset.json").write_text(json.dumps(dataset_json))


@pytest.fixture(scope="module", params=list(DATASETS))
def both_runs(request, tmp_path_factory, monkeypatch_module):
    source, (name, limit) = request.param, DATASETS[request.param]
    root = tmp_path_factory.mktemp(source)
    theirs, ours = Workspace.from_root(root / "nnunet"), Workspace.from_root(root / "autoseg")
    for ws in (theirs, ours):
        if source in WRITERS:
            WRITERS[source](ws.raw / name)
        else:
            _subset(link_dataset(SHARED_DATA / source, ws, name), limit)
    configurations = ["2d", "3d_fullres"]
    run_nnunet("plan_and_preprocess", ["-d", name[7:10], "-c", *configurations, "-np", "2", "-npfp", "2"], theirs)
    for key, folder in (
        ("nnUNet_raw", ours.raw),
        ("nnUNet_preprocessed", ours.preprocessed),
        ("nnUNet_results", ours.results),
    ):
        monkeypatch_module.setenv(key, str(folder))
    code = autoseg_main(
        ["plan_and_preprocess", "-d", name[7:10], "-c", *configurations, "-np", "2", "-npfp", "2", "--no_pbar"]
    )
    assert code == 0
    return theirs.preprocessed / name, ours.preprocessed / name


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_fingerprint_matches(both_runs):
    theirs_dir, ours_dir = both_runs
    theirs, ours = load_json(theirs_dir / "dataset_fingerprint.json"), load_json(ours_dir / "dataset_fingerprint.json")
    np.testing.assert_allclose(ours["spacings"], theirs["spacings"], rtol=1e-12)
    assert ours["shapes_after_crop"] == theirs["shapes_after_crop"]
    assert ours["median_relative_size_after_cropping"] == pytest.approx(theirs["median_relative_size_after_cropping"])
    for channel, stats in theirs["foreground_intensity_properties_per_channel"].items():
        for key, value in stats.items():
            assert ours["foreground_intensity_properties_per_channel"][channel][key] == pytest.approx(
                value, rel=1e-6, abs=1e-6
            ), key


def test_plans_match(both_runs):
    theirs_dir, ours_dir = both_runs
    _assert_same_plans(
        load_json(ours_dir / "nnUNetPlans.json"), load_json(theirs_dir / "nnUNetPlans.json"), theirs_dir.name
    )


def _nnunet_case(folder, identifier):
    import blosc2

    data = blosc2.open(str(folder / f"{identifier}.b2nd"), mode="r")[:]
    seg = blosc2.open(str(folder / f"{identifier}_seg.b2nd"), mode="r")[:]
    with open(folder / f"{identifier}.pkl", "rb") as f:
        properties = pickle.load(f)
    return data, seg, properties


def test_preprocessed_cases_match(both_runs):
    theirs_dir, ours_dir = both_runs
    configurations = [
        c for c in ("3d_fullres", "2d") if c in load_json(theirs_dir / "nnUNetPlans.json")["configurations"]
    ]
    assert "2d" in configurations
    for configuration in configurations:
        _assert_same_preprocessed_cases(
            theirs_dir / f"nnUNetPlans_{configuration}", ours_dir / f"nnUNetPlans_{configuration}"
        )


def _assert_same_preprocessed_cases(theirs_folder, ours_folder) -> None:
    identifiers = storage.list_cases(ours_folder)
    assert identifiers and len(identifiers) == len(list(theirs_folder.glob("*.pkl")))
    for identifier in identifiers[:4]:
        data_t, seg_t, props_t = _nnunet_case(theirs_folder, identifier)
        data_o, seg_o, props_o = storage.load_case(ours_folder, identifier, mmap=False)
        assert data_o.shape == data_t.shape and data_o.dtype == np.float32
        np.testing.assert_array_equal(seg_o, seg_t, err_msg=identifier)
        np.testing.assert_allclose(data_o, data_t, atol=1e-3, err_msg=identifier)
        assert props_o["bbox_used_for_cropping"] == [list(map(int, b)) for b in props_t["bbox_used_for_cropping"]]
        assert tuple(props_o["shape_before_cropping"]) == tuple(props_t["shape_before_cropping"])
        for key, locations in props_t["class_locations"].items():
            json_key = ",".join(map(str, key)) if isinstance(key, tuple) else str(key)
            np.testing.assert_array_equal(np.asarray(props_o["class_locations"][json_key]).reshape(-1, 4),
                                          np.asarray(locations).reshape(-1, 4))


def test_gt_segmentations_copied(both_runs):
    theirs_dir, ours_dir = both_runs
    assert sorted(p.name for p in (ours_dir / "gt_segmentations").iterdir()) == sorted(
        p.name for p in (theirs_dir / "gt_segmentations").iterdir()
    )
