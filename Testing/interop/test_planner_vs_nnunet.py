"""Our planner against nnU-Net v2's on many dataset geometries (crafted fingerprints, no image reading).

nnU-Net's planner only looks at the fingerprint and dataset.json, so a fingerprint written by hand
lets one test cover isotropic, anisotropic (the 10th-percentile rule), huge (3d_lowres + cascade), 2D,
thin-slab and multi-channel datasets under every planner preset and VRAM target.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from oracle import load_json, run_nnunet_python

from autoseg.paths import Workspace
from autoseg.plan_and_preprocess import plan_dataset

PLANNERS = {
    "ExperimentPlanner": "nnUNetPlans",
    "nnUNetPlannerResEncM": "nnUNetResEncUNetMPlans",
    "nnUNetPlannerResEncL": "nnUNetResEncUNetLPlans",
    "nnUNetPlannerResEncXL": "nnUNetResEncUNetXLPlans",
}

CONFIG_KEYS = (
    "data_identifier", "preprocessor_name", "batch_size", "patch_size", "median_image_size_in_voxels", "spacing",
    "normalization_schemes", "use_mask_for_norm", "resampling_fn_data", "resampling_fn_seg",
    "resampling_fn_data_kwargs", "resampling_fn_seg_kwargs", "resampling_fn_probabilities",
    "resampling_fn_probabilities_kwargs", "architecture", "batch_dice", "next_stage", "previous_stage", "inherits_from",
)
TOP_KEYS = (
    "dataset_name", "plans_name", "original_median_spacing_after_transp", "original_median_shape_after_transp",
    "image_reader_writer", "transpose_forward", "transpose_backward", "experiment_planner_used", "label_manager",
)


def _geometries() -> dict[str, dict]:
    """name -> (spacings, shapes, channel names, labels, relative size after crop)."""
    rng = np.random.RandomState(0)
    g = {}
    g["iso_small"] = dict(spacings=[[1.0, 1.0, 1.0]] * 20, shapes=[[36 + i % 5, 50, 35 + i % 3] for i in range(20)])
    g["aniso_ct"] = dict(
        spacings=[[float(s), 0.78, 0.78] for s in rng.choice([2.5, 3.0, 5.0, 5.0, 5.0], 30)],
        shapes=[[int(n), 512, 512] for n in rng.randint(40, 120, 30)], channels=["CT"],
    )
    g["aniso_rule"] = dict(  # median z spacing 10 >> 1.5 and few slices: uses the 10th percentile
        spacings=[[float(s), 1.5, 1.5] for s in [5.0, 6.0, 10.0, 10.0, 10.0, 10.0, 10.0, 8.0, 10.0, 10.0]],
        shapes=[[10, 256, 216]] * 10,
    )
    g["huge_lowres"] = dict(spacings=[[0.8, 0.8, 0.8]] * 12, shapes=[[400 + 3 * i, 420, 380] for i in range(12)],
                            channels=["CT"], rel=0.6)
    g["x_axis_coarse"] = dict(spacings=[[0.9, 1.1, 4.0]] * 8, shapes=[[300, 260, 40]] * 8, channels=["T2", "ADC"])
    g["slab_2d"] = dict(spacings=[[999.0, 0.5, 0.5]] * 15, shapes=[[1, 512, 640]] * 15, channels=["R", "G", "B"])
    g["tiny"] = dict(spacings=[[2.0, 2.0, 2.0]] * 5, shapes=[[12, 14, 9]] * 5)
    g["mixed_spacing"] = dict(
        spacings=[[float(a), float(b), float(b)] for a, b in zip(rng.uniform(0.6, 3.0, 25), rng.uniform(0.5, 1.0, 25))],
        shapes=[[int(a), int(b), int(b)] for a, b in zip(rng.randint(60, 300, 25), rng.randint(200, 512, 25))],
        channels=["MRI"], rel=0.5,
    )
    return g


def _write_dataset(workspace: Workspace, dataset_id: int, name: str, geometry: dict) -> str:
    dataset_name = f"Dataset{dataset_id:03d}_{name}"
    channels = geometry.get("channels", ["MRI"])
    raw = workspace.raw / dataset_name
    (raw / "imagesTr").mkdir(parents=True)
    (raw / "labelsTr").mkdir()
    for c in range(len(channels)):
        sitk.WriteImage(
            sitk.GetImageFromArray(np.zeros((4, 4, 4), np.float32)), str(raw / "imagesTr" / f"a_{c:04d}.nii.gz")
        )
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 4, 4), np.uint8)), str(raw / "labelsTr" / "a.nii.gz"))
    labels = {"background": 0, "a": 1, "b": 2} if len(channels) < 3 else {"background": 0, "cell": 1}
    dataset_json = {"channel_names": {str(i): n for i, n in enumerate(channels)}, "labels": labels,
                    "numTraining": len(geometry["spacings"]), "file_ending": ".nii.gz"}
    (raw / "dataset.json").write_text(json.dumps(dataset_json))
    stats = {"mean": 100.0, "median": 90.0, "std": 50.0, "min": -1000.0, "max": 3000.0,
             "percentile_99_5": 1500.0, "percentile_00_5": -900.0}
    fingerprint = {"spacings": geometry["spacings"], "shapes_after_crop": geometry["shapes"],
                   "foreground_intensity_properties_per_channel": {str(i): stats for i in range(len(channels))},
                   "median_relative_size_after_cropping": geometry.get("rel", 0.9)}
    (workspace.preprocessed / dataset_name).mkdir(parents=True)
    (workspace.preprocessed / dataset_name / "dataset_fingerprint.json").write_text(json.dumps(fingerprint))
    return dataset_name


def _assert_same_plans(ours: dict, theirs: dict, context: str) -> None:
    for key in TOP_KEYS:
        assert ours[key] == theirs[key], f"{context}: {key}: ours {ours[key]} vs nnU-Net {theirs[key]}"
    assert list(ours["configurations"]) == list(theirs["configurations"]), context
    for cname, theirs_cfg in theirs["configurations"].items():
        ours_cfg = ours["configurations"][cname]
        for key in CONFIG_KEYS:
            a, b = ours_cfg.get(key), theirs_cfg.get(key)
            if isinstance(b, list) and b and isinstance(b[0], float):
                np.testing.assert_allclose(a, b, rtol=1e-12, err_msg=f"{context} {cname} {key}")
            else:
                assert a == b, f"{context} {cname} {key}: ours {a} vs nnU-Net {b}"


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    """Plan every geometry x planner with nnU-Net (one subprocess) and with AutoSeg."""
    root = tmp_path_factory.mktemp("planner")
    theirs_ws, ours_ws = Workspace.from_root(root / "nnunet"), Workspace.from_root(root / "autoseg")
    cases = []
    for i, (name, geometry) in enumerate(_geometries().items()):
        for ws in (theirs_ws, ours_ws):
            dataset_name = _write_dataset(ws, 100 + i, name, geometry)
        cases.append(dataset_name)
    runs = [(d, p, None, None) for d in cases for p in PLANNERS]
    runs += [
        (cases[1], "ExperimentPlanner", 24.0, None),
        (cases[3], "nnUNetPlannerResEncL", 11.0, None),
        (cases[0], "ExperimentPlanner", None, [2.0, 1.5, 1.5]),
        (cases[2], "ExperimentPlanner", None, [4.0, 1.0, 1.0]),
    ]
    snippet = ["from nnunetv2.experiment_planning.plan_and_preprocess_api import plan_experiment_dataset",
               "from nnunetv2.utilities.find_class_by_name import recursive_find_python_class",
               "import nnunetv2, os, json, shutil",
               "from batchgenerators.utilities.file_and_folder_operations import join"]
    for j, (d, planner, gpu, spacing) in enumerate(runs):
        plans_name = f"run{j}"
        snippet.append(
            f"cls = recursive_find_python_class(join(nnunetv2.__path__[0], 'experiment_planning'), '{planner}', "
            f"current_module='nnunetv2.experiment_planning')\n"
            f"plan_experiment_dataset({int(d[7:10])}, cls, {gpu!r}, overwrite_target_spacing={spacing!r}, "
            f"overwrite_plans_name='{plans_name}')"
        )
    run_nnunet_python("\n".join(snippet), theirs_ws)
    results = []
    for j, (d, planner, gpu, spacing) in enumerate(runs):
        plan_dataset(ours_ws, d, planner, gpu, spacing, overwrite_plans_name=f"run{j}")
        ours = load_json(ours_ws.preprocessed / d / f"run{j}.json")
        theirs = load_json(theirs_ws.preprocessed / d / f"run{j}.json")
        results.append((f"{d} {planner} gpu={gpu} spacing={spacing}", ours, theirs))
    return results


def test_plans_match_nnunet_for_every_geometry_and_planner(planned):
    assert len(planned) == 8 * 4 + 4
    for context, ours, theirs in planned:
        _assert_same_plans(ours, theirs, context)


def test_geometries_cover_lowres_cascade_2d_only_and_anisotropic_rule(planned):
    by_dataset = {context.split()[0]: ours for context, ours, _ in planned if "ExperimentPlanner" in context}
    huge = next(v for k, v in by_dataset.items() if "huge_lowres" in k)
    assert {"3d_lowres", "3d_cascade_fullres"} <= set(huge["configurations"])
    slab = next(v for k, v in by_dataset.items() if "slab_2d" in k)
    assert list(slab["configurations"]) == ["2d"]
    aniso = next(v for k, v in by_dataset.items() if "aniso_rule" in k)
    assert aniso["configurations"]["3d_fullres"]["spacing"][0] < 10.0  # the 10th-percentile rule fired
