"""Finding trained models for the Inference module, and matching volumes to their channels."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest

from autoseg.errors import AutoSegError
from autoseg.slicer_support.models import find_models, format_folds, match_channels, model_info

BRATS = {"channel_names": {"0": "T1", "1": "T1ce", "2": "T2", "3": "FLAIR"},
         "labels": {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": 3},
         "regions_class_order": [1, 2, 3], "numTraining": 4, "file_ending": ".nii.gz"}
HIPPOCAMPUS = {"channel_names": {"0": "MRI"}, "labels": {"background": 0, "Anterior": 1, "Posterior": 2},
               "numTraining": 260, "file_ending": ".nii.gz"}


def _model(results: Path, dataset: str, name: str, dataset_json: dict, folds=(0, 1, 2, 3, 4),
           checkpoint: str = "checkpoint_final.pth", plans: dict | None = None) -> Path:
    folder = results / dataset / name
    folder.mkdir(parents=True)
    (folder / "dataset.json").write_text(json.dumps(dataset_json))
    (folder / "plans.json").write_text(json.dumps(plans or {"dataset_name": dataset, "configurations": {}}))
    for fold in folds:
        (folder / f"fold_{fold}").mkdir()
        (folder / f"fold_{fold}" / checkpoint).write_bytes(b"weights")
    return folder


@pytest.fixture()
def results(tmp_path) -> Path:
    """An nnUNet_results folder laid out as nnU-Net v2 writes it."""
    root = tmp_path / "nnUNet_results"
    fullres = _model(root, "Dataset004_Hippocampus", "nnUNetTrainer__nnUNetPlans__3d_fullres", HIPPOCAMPUS)
    crossval = fullres / "crossval_results_folds_0_1_2_3_4"
    crossval.mkdir()
    (crossval / "postprocessing.pkl").write_bytes(b"pickle")
    _model(root, "Dataset004_Hippocampus", "nnUNetTrainer__nnUNetPlans__2d", HIPPOCAMPUS, folds=("all",))
    lowres_plans = {
        "configurations": {
            "3d_lowres": {"next_stage": "3d_cascade_fullres"},
            "3d_cascade_fullres": {"inherits_from": "3d_fullres", "previous_stage": "3d_lowres"},
            "3d_fullres": {},
        }
    }
    _model(root, "Dataset004_Hippocampus", "nnUNetTrainer__nnUNetPlans__3d_cascade_fullres", HIPPOCAMPUS, folds=(0,),
           plans=lowres_plans)
    _model(root, "Dataset004_Hippocampus", "nnUNetTrainer__nnUNetPlans__3d_lowres", HIPPOCAMPUS, folds=(0, 1),
           plans=lowres_plans)
    _model(root, "Dataset004_Hippocampus", "nnUNetTrainer__nnUNetPlans__2d_unfinished", HIPPOCAMPUS, folds=(0,),
           checkpoint="checkpoint_latest.pth")
    _model(root, "Dataset001_BrainTumour", "nnUNetTrainer_250epochs__nnUNetResEncUNetMPlans__3d_fullres", BRATS,
           folds=(0, 2))
    (root / "Dataset004_Hippocampus" / "ensembles" / "ensemble___a___b___0_1_2_3_4").mkdir(parents=True)
    (root / "Dataset004_Hippocampus" / "inference_instructions.txt").write_text("...")
    return root


def test_find_models_in_a_results_folder(results):
    models = find_models(results)
    assert [(m.dataset_name, m.configuration) for m in models] == [
        ("Dataset001_BrainTumour", "3d_fullres"), ("Dataset004_Hippocampus", "2d"),
        ("Dataset004_Hippocampus", "3d_cascade_fullres"), ("Dataset004_Hippocampus", "3d_fullres"),
        ("Dataset004_Hippocampus", "3d_lowres")]  # the model with only checkpoint_latest.pth is skipped
    brats, two_d, cascade, fullres, lowres = models
    assert brats.trainer == "nnUNetTrainer_250epochs" and brats.plans == "nnUNetResEncUNetMPlans"
    assert brats.folds == ["0", "2"] and brats.channel_names == BRATS["channel_names"]
    assert brats.labels == {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": 3}
    assert fullres.folds == ["0", "1", "2", "3", "4"] and fullres.file_ending == ".nii.gz"
    assert fullres.postprocessing_file == fullres.folder / "crossval_results_folds_0_1_2_3_4" / "postprocessing.pkl"
    assert fullres.labels == {"background": 0, "Anterior": 1, "Posterior": 2}
    assert two_d.folds == ["all"] and two_d.postprocessing_file is None
    assert cascade.needs_previous_stage and not lowres.needs_previous_stage and not fullres.needs_previous_stage
    assert fullres.title == "Dataset004_Hippocampus \u2014 3d_fullres (nnUNetTrainer, nnUNetPlans), folds 0-4"
    assert two_d.title.endswith("(nnUNetTrainer, nnUNetPlans), fold all")
    assert brats.title.endswith("folds 0, 2")


def test_find_models_in_a_dataset_or_model_folder(results):
    dataset = results / "Dataset001_BrainTumour"
    assert [m.folder for m in find_models(dataset)] == [
        dataset / "nnUNetTrainer_250epochs__nnUNetResEncUNetMPlans__3d_fullres"]
    model = results / "Dataset004_Hippocampus" / "nnUNetTrainer__nnUNetPlans__3d_lowres"
    [info] = find_models(model)
    assert info.folder == model and info.folds == ["0", "1"]
    unfinished = results / "Dataset004_Hippocampus" / "nnUNetTrainer__nnUNetPlans__2d_unfinished"
    assert find_models(unfinished) == []
    [latest] = find_models(unfinished, checkpoint="checkpoint_latest.pth")
    assert latest.configuration == "2d_unfinished"


def test_model_copied_out_of_its_dataset_folder_uses_the_plans_name(tmp_path):
    folder = _model(tmp_path, "downloads", "nnUNetTrainer__nnUNetPlans__3d_fullres", HIPPOCAMPUS, folds=(0,),
                    plans={"dataset_name": "Dataset004_Hippocampus", "configurations": {}})
    assert model_info(folder).dataset_name == "Dataset004_Hippocampus"


def test_postprocessing_prefers_json_and_the_models_folds(tmp_path):
    folder = _model(tmp_path, "Dataset009_Spleen", "nnUNetTrainer__nnUNetPlans__3d_fullres", HIPPOCAMPUS, folds=(0, 1))
    for name, files in (("crossval_results_folds_0_1_2_3_4", ("postprocessing.pkl",)),
                        ("crossval_results_folds_0_1", ("postprocessing.pkl", "postprocessing.json"))):
        (folder / name).mkdir()
        for file in files:
            (folder / name / file).write_text("x")
    assert model_info(folder).postprocessing_file == folder / "crossval_results_folds_0_1" / "postprocessing.json"


def test_broken_and_missing_folders(tmp_path, results, caplog):
    broken = _model(results, "Dataset004_Hippocampus", "nnUNetTrainer__nnUNetPlans__3d_broken", HIPPOCAMPUS)
    (broken / "dataset.json").write_text("{not json")
    with caplog.at_level(logging.WARNING):
        names = [m.configuration for m in find_models(results)]
    assert "3d_broken" not in names and len(names) == 5
    assert "3d_broken" in caplog.text
    with pytest.raises(AutoSegError, match="does not exist"):
        find_models(tmp_path / "nowhere")
    with pytest.raises(AutoSegError, match="<trainer>__<plans>__<configuration>"):
        model_info(results / "Dataset004_Hippocampus")
    assert find_models(tmp_path / "nnUNet_results" / "Dataset004_Hippocampus" / "ensembles") == []


def test_format_folds():
    assert format_folds(["0", "1", "2", "3", "4"]) == "0-4"
    assert format_folds(["0", "1"]) == "0, 1"
    assert format_folds([0, 2, 3, 4, "all"]) == "0, 2-4, all"
    assert format_folds(["all"]) == "all" and format_folds([]) == ""


@pytest.mark.parametrize(("channels", "volumes", "expected"), [
    # BraTS: T1 must not take t1ce, whatever the volume order
    (BRATS["channel_names"], ["BraTS_001_t1ce", "BraTS_001_flair", "BraTS_001_t1", "BraTS_001_t2"], [2, 0, 3, 1]),
    (BRATS["channel_names"], ["flair", "T2", "t1ce", "T1"], [3, 2, 1, 0]),
    # exact (case-insensitive) names beat word containment; each volume is used once
    ({"0": "T2", "1": "ADC"}, ["prostate T2", "t2", "ADC map"], [1, 2]),
    ({"0": "CT", "1": "PET"}, ["CTChest", "PET-CT fused"], [0, 1]),
    # nothing matches: None (a multi-channel model is never guessed)
    ({"0": "T2", "1": "ADC"}, ["volume_1", "volume_2"], [None, None]),
    ({"0": "T1", "1": "T2"}, ["case_t1"], [0, None]),
    # one channel, one volume: always that volume
    ({"0": "MRI"}, ["MRHead"], [0]),
    # a single channel among several volumes is matched by name
    ({"0": "CT"}, ["MRHead", "CTChest"], [1]),
    ({"0": "CT"}, ["MRHead", "Segmentation"], [None]),
    # channel keys are ordered numerically
    ({"10": "B", "2": "A"}, ["a", "b"], [0, 1]),
])
def test_match_channels(channels, volumes, expected):
    assert match_channels(channels, volumes) == expected


def test_import_is_cheap():
    import subprocess

    code = ("import sys, autoseg.slicer_support.models, autoseg.slicer_support.commands, "
            "autoseg.imageio.segment_colors, autoseg.slicer_support.training_monitor, "
            "autoseg.slicer_support.prediction_monitor, autoseg.slicer_support.run_queue; "
            "print(sorted(m for m in ('torch', 'numpy', 'SimpleITK', 'slicer', 'qt', 'vtk') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).parents[2])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
