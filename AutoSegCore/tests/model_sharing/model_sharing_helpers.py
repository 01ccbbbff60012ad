"""A tiny but real results folder (a 2-stage PlainConvUNet with random weights) and zip helpers."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

from autoseg.dataset.dataset_json import DatasetJson
from autoseg.network.build import build_network
from autoseg.network.checkpoint import init_args
from autoseg.paths import Workspace
from autoseg.plans.model import Plans

DATASET_NAME = "Dataset777_Tiny"
MODEL = "nnUNetTrainer__nnUNetPlans__3d_fullres"
LOWRES = "nnUNetTrainer__nnUNetPlans__3d_lowres"
ENSEMBLE_EXPORTED = f"ensemble___{MODEL}___{LOWRES}___0"
ENSEMBLE_OTHER = f"ensemble___{MODEL}___nnUNetTrainer__nnUNetPlans__2d___0_1"

DATASET_JSON = {"channel_names": {"0": "MRI"}, "labels": {"background": 0, "a": 1, "b": 2}, "numTraining": 2,
                "file_ending": ".nii.gz"}
_RESAMPLING = {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None}
CONFIGURATION = {
    "data_identifier": "nnUNetPlans_3d_fullres", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2,
    "patch_size": [16, 16, 16], "median_image_size_in_voxels": [20.0, 24.0, 20.0], "spacing": [1.0, 1.0, 1.0],
    "normalization_schemes": ["ZScoreNormalization"], "use_mask_for_norm": [False],
    "resampling_fn_data": "resample_data_or_seg_to_shape", "resampling_fn_seg": "resample_data_or_seg_to_shape",
    "resampling_fn_data_kwargs": _RESAMPLING, "resampling_fn_seg_kwargs": {**_RESAMPLING, "is_seg": True, "order": 1},
    "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
    "resampling_fn_probabilities_kwargs": {**_RESAMPLING, "order": 1},
    "architecture": {
        "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
        "arch_kwargs": {
            "n_stages": 2, "features_per_stage": [4, 8], "conv_op": "torch.nn.modules.conv.Conv3d",
            "kernel_sizes": [[3, 3, 3], [3, 3, 3]], "strides": [[1, 1, 1], [2, 2, 2]], "n_conv_per_stage": [1, 1],
            "n_conv_per_stage_decoder": [1], "conv_bias": True,
            "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d", "norm_op_kwargs": {"eps": 1e-05, "affine": True},
            "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
            "nonlin_kwargs": {"inplace": True},
        },
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
    },
    "batch_dice": False,
}
PLANS = {
    "dataset_name": DATASET_NAME, "plans_name": "nnUNetPlans", "original_median_spacing_after_transp": [1.0, 1.0, 1.0],
    "original_median_shape_after_transp": [20, 24, 20], "image_reader_writer": "SimpleITKIO",
    "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
    "configurations": {"3d_fullres": CONFIGURATION}, "experiment_planner_used": "ExperimentPlanner",
    "label_manager": "LabelManager", "foreground_intensity_properties_per_channel": {"0": {
        "max": 10.0, "mean": 1.0, "median": 1.0, "min": -10.0, "percentile_00_5": -5.0, "percentile_99_5": 5.0,
        "std": 2.0}},
}


def _short_string(text: str) -> bytes:
    encoded = text.encode()
    return b"\x8c" + bytes([len(encoded)]) + encoded


#: nnU-Net's postprocessing.pkl for "keep the largest component of labels 1 and 2": the pickled pair
#: ([remove_all_but_largest_component_from_segmentation], [{"labels_or_regions": [1, 2]}]), opcode by opcode.
NNUNET_POSTPROCESSING_PKL = (
    b"\x80\x04](" + _short_string("nnunetv2.postprocessing.remove_connected_components")
    + _short_string("remove_all_but_largest_component_from_segmentation") + b"\x93e"
    + b"](}(" + _short_string("labels_or_regions") + b"](K\x01K\x02eue\x86."
)


def _checkpoint(fold: int | str, seed: int) -> dict:
    plans = Plans.from_dict(PLANS)
    torch.manual_seed(seed)
    network = build_network(plans.configuration("3d_fullres").architecture, 1, 3)
    return {
        "network_weights": network.state_dict(), "optimizer_state": {}, "grad_scaler_state": None,
        "logging": {"mean_fg_dice": [np.float64(0.5)], "epoch_end_timestamps": [1.0]}, "_best_ema": np.float64(0.4),
        "current_epoch": 1, "trainer_name": "nnUNetTrainer", "inference_allowed_mirroring_axes": (0, 1, 2),
        "init_args": init_args(plans, "3d_fullres", fold, DatasetJson.from_dict(DATASET_JSON), torch.device("cpu")),
    }


def _write_model(folder: Path, folds: tuple[int, ...], seed: int) -> None:
    folder.mkdir(parents=True)
    (folder / "plans.json").write_text(json.dumps(PLANS))
    (folder / "dataset.json").write_text(json.dumps(DATASET_JSON))
    (folder / "dataset_fingerprint.json").write_text(json.dumps({"spacings": [[1.0, 1.0, 1.0]]}))
    for fold in folds:
        fold_folder = folder / f"fold_{fold}"
        (fold_folder / "validation").mkdir(parents=True)
        torch.save(_checkpoint(fold, seed + fold), fold_folder / "checkpoint_final.pth")
        torch.save(_checkpoint(fold, seed + fold + 100), fold_folder / "checkpoint_best.pth")
        (fold_folder / "debug.json").write_text("{}")
        (fold_folder / "progress.png").write_bytes(b"\x89PNG fake")
        (fold_folder / "training_log_2024_1_1_00_00_00.txt").write_text("log")
        (fold_folder / "validation" / "summary.json").write_text('{"foreground_mean": {"Dice": 0.5}}')
        (fold_folder / "validation" / "case_0.nii.gz").write_bytes(b"prediction")
        (fold_folder / "validation" / "case_0.npz").write_bytes(b"probabilities")
        (fold_folder / "validation" / "case_0.pkl").write_bytes(pickle.dumps({"spacing": [1, 1, 1]}))


def make_results(workspace: Workspace) -> Path:
    """Dataset777_Tiny with 3d_fullres (folds 0, 1) and 3d_lowres (fold 0), ensembles and instructions."""
    dataset = workspace.results / DATASET_NAME
    _write_model(dataset / MODEL, (0, 1), seed=0)
    _write_model(dataset / LOWRES, (0,), seed=50)
    crossval = dataset / MODEL / "crossval_results_folds_0_1"
    crossval.mkdir()
    (crossval / "summary.json").write_text("{}")
    (crossval / "case_0.nii.gz").write_bytes(b"prediction")
    (crossval / "postprocessing.pkl").write_bytes(NNUNET_POSTPROCESSING_PKL)
    (crossval / "postprocessing.json").write_text("{}")
    for name in (ENSEMBLE_EXPORTED, ENSEMBLE_OTHER):
        (dataset / "ensembles" / name).mkdir(parents=True)
        (dataset / "ensembles" / name / "summary.json").write_text("{}")
        (dataset / "ensembles" / name / "case_0.nii.gz").write_bytes(b"prediction")
    (dataset / "inference_information.json").write_text("{}")
    (dataset / "inference_instructions.txt").write_text("autoseg predict ...")
    (dataset / "unrelated_notes.txt").write_text("not part of a model")
    return dataset


def write_input_case(folder: Path, seed: int = 0, shape: tuple[int, int, int] = (20, 24, 20)) -> Path:
    """A random single-channel image ``case_000_0000.nii.gz``."""
    folder.mkdir(parents=True, exist_ok=True)
    array = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((1.0, 1.0, 1.0))
    path = folder / "case_000_0000.nii.gz"
    sitk.WriteImage(image, str(path))
    return path


def set_workspace_env(monkeypatch, workspace: Workspace) -> None:
    monkeypatch.setenv("nnUNet_raw", str(workspace.raw))
    monkeypatch.setenv("nnUNet_preprocessed", str(workspace.preprocessed))
    monkeypatch.setenv("nnUNet_results", str(workspace.results))


def zip_names(path: Path) -> set[str]:
    with zipfile.ZipFile(path) as archive:
        return set(archive.namelist())


def tree_snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` with a digest of its content (folders and links included)."""
    snapshot = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            key = str(path.relative_to(root))
            if path.is_symlink():
                snapshot[key] = "link:" + os.readlink(path)
            elif path.is_dir():
                snapshot[key] = "dir"
            else:
                snapshot[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return snapshot
