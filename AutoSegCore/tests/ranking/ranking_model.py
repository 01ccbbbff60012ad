"""A tiny trained results folder (folds of a 2-stage PlainConvUNet that find a bright blob), built in seconds.

Each fold is trained for a few dozen Adam steps on its own generated cases (z-scored as the preprocessor does),
with one CPU thread (on 2-core machines two threads make these tiny convolutions several times slower)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from autoseg.dataset.dataset_json import DatasetJson
from autoseg.network.build import build_network
from autoseg.network.checkpoint import init_args
from autoseg.plans.model import Plans

SHAPE = (24, 24, 24)
DATASET_JSON = {"channel_names": {"0": "MRI"}, "labels": {"background": 0, "blob": 1}, "numTraining": 8,
                "file_ending": ".nii.gz"}
_RESAMPLING = {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None}
CONFIGURATION = {
    "data_identifier": "nnUNetPlans_3d_fullres", "preprocessor_name": "DefaultPreprocessor", "batch_size": 4,
    "patch_size": [16, 16, 16], "median_image_size_in_voxels": list(SHAPE), "spacing": [1.0, 1.0, 1.0],
    "normalization_schemes": ["ZScoreNormalization"], "use_mask_for_norm": [False],
    "resampling_fn_data": "resample_data_or_seg_to_shape", "resampling_fn_seg": "resample_data_or_seg_to_shape",
    "resampling_fn_data_kwargs": _RESAMPLING, "resampling_fn_seg_kwargs": {**_RESAMPLING, "is_seg": True, "order": 1},
    "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
    "resampling_fn_probabilities_kwargs": {**_RESAMPLING, "order": 1},
    "architecture": {
        "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
        "arch_kwargs": {
            "n_stages": 2, "features_per_stage": [8, 16], "conv_op": "torch.nn.modules.conv.Conv3d",
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
    "dataset_name": "Dataset901_Blobs", "plans_name": "nnUNetPlans", "original_median_spacing_after_transp": [1.0] * 3,
    "original_median_shape_after_transp": list(SHAPE), "image_reader_writer": "SimpleITKIO",
    "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
    "configurations": {"3d_fullres": CONFIGURATION}, "experiment_planner_used": "ExperimentPlanner",
    "label_manager": "LabelManager", "foreground_intensity_properties_per_channel": {"0": {
        "max": 3.0, "mean": 1.0, "median": 1.0, "min": -1.0, "percentile_00_5": -0.5, "percentile_99_5": 2.0,
        "std": 0.3}},
}
MODEL = "nnUNetTrainer__nnUNetPlans__3d_fullres"


def blob_case(rng: np.random.RandomState, shape=SHAPE) -> tuple[np.ndarray, np.ndarray]:
    """A bright ellipsoid (label 1) on a noisy dark background, (z, y, x) float32 and uint8."""
    grid = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij")
    center = np.array(shape) / 2 + rng.uniform(-3, 3, 3)
    radii = rng.uniform(4, 7, 3)
    label = (sum(((g - c) / r) ** 2 for g, c, r in zip(grid, center, radii)) < 1).astype(np.uint8)
    image = label * 1.0 + rng.normal(0, 0.25, shape)
    return image.astype(np.float32), label


def _zscore(image: np.ndarray) -> np.ndarray:
    return (image - image.mean()) / max(float(image.std()), 1e-8)


def _train_fold(seed: int, steps: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    rng = np.random.RandomState(seed)
    plans = Plans.from_dict(PLANS)
    network = build_network(plans.configuration("3d_fullres").architecture, 1, 2)
    cases = [blob_case(rng) for _ in range(6)]
    images = torch.from_numpy(np.stack([_zscore(i) for i, _ in cases])[:, None])
    labels = torch.from_numpy(np.stack([s for _, s in cases]).astype(np.int64))
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-2)
    for _ in range(steps):
        batch = rng.randint(0, len(cases), 4)
        z, y, x = rng.randint(0, SHAPE[0] - 16 + 1, 3)
        crop = (slice(z, z + 16), slice(y, y + 16), slice(x, x + 16))
        logits = network(images[batch][(slice(None), slice(None), *crop)])
        loss = torch.nn.functional.cross_entropy(logits, labels[batch][(slice(None), *crop)])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return network.state_dict()


def build_tiny_model(results: Path, folds: tuple[int, ...] = (0, 1), steps: int = 40) -> Path:
    """``results/Dataset901_Blobs/nnUNetTrainer__nnUNetPlans__3d_fullres`` with ``folds`` trained for ``steps``."""
    folder = results / PLANS["dataset_name"] / MODEL
    folder.mkdir(parents=True)
    (folder / "plans.json").write_text(json.dumps(PLANS))
    (folder / "dataset.json").write_text(json.dumps(DATASET_JSON))
    plans, dataset_json = Plans.from_dict(PLANS), DatasetJson.from_dict(DATASET_JSON)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        weights = {fold: _train_fold(fold, steps) for fold in folds}
    finally:
        torch.set_num_threads(threads)
    for fold in folds:
        (folder / f"fold_{fold}").mkdir()
        checkpoint = {
            "network_weights": weights[fold], "optimizer_state": {}, "grad_scaler_state": None,
            "logging": {}, "_best_ema": None, "current_epoch": 1, "trainer_name": "nnUNetTrainer",
            "inference_allowed_mirroring_axes": (0, 1, 2),
            "init_args": init_args(plans, "3d_fullres", fold, dataset_json, torch.device("cpu")),
        }
        torch.save(checkpoint, folder / f"fold_{fold}" / "checkpoint_final.pth")
    return folder
