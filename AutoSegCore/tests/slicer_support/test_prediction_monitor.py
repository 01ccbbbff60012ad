"""Prediction progress: the events ``autoseg predict -progress_file`` writes, and the monitor that reads them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from autoseg.cli.main import main as autoseg_main
from autoseg.inference.progress_file import PredictionProgressFile
from autoseg.slicer_support.commands import predict_command
from autoseg.slicer_support.prediction_monitor import PredictionMonitor
from autoseg.utils.progress_stream import iterate_events

_ARCHITECTURE = {
    "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
    "arch_kwargs": {
        "n_stages": 2, "features_per_stage": [4, 8], "conv_op": "torch.nn.modules.conv.Conv3d",
        "kernel_sizes": [[3, 3, 3], [3, 3, 3]], "strides": [[1, 1, 1], [2, 2, 2]], "n_conv_per_stage": [1, 1],
        "n_conv_per_stage_decoder": [1], "conv_bias": True, "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
        "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
        "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True},
    },
    "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
}
_RESAMPLING = {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None}
PLANS = {
    "dataset_name": "Dataset321_Tiny",
    "plans_name": "nnUNetPlans",
    "original_median_spacing_after_transp": [1, 1, 1],
    "original_median_shape_after_transp": [20, 24, 20],
    "image_reader_writer": "SimpleITKIO",
    "transpose_forward": [0, 1, 2],
    "transpose_backward": [0, 1, 2],
    "experiment_planner_used": "ExperimentPlanner",
    "label_manager": "LabelManager",
    "foreground_intensity_properties_per_channel": {
        "0": {
            "max": 5.0,
            "mean": 0.0,
            "median": 0.0,
            "min": -5.0,
            "percentile_00_5": -3.0,
            "percentile_99_5": 3.0,
            "std": 1.0,
        }
    },
    "configurations": {
        "3d_fullres": {
            "data_identifier": "nnUNetPlans_3d_fullres",
            "preprocessor_name": "DefaultPreprocessor",
            "batch_size": 2,
            "patch_size": [16, 16, 16],
            "median_image_size_in_voxels": [20, 24, 20],
            "spacing": [1.0, 1.0, 1.0],
            "normalization_schemes": ["ZScoreNormalization"],
            "use_mask_for_norm": [False],
            "resampling_fn_data": "resample_data_or_seg_to_shape",
            "resampling_fn_seg": "resample_data_or_seg_to_shape",
            "resampling_fn_data_kwargs": _RESAMPLING,
            "resampling_fn_seg_kwargs": {**_RESAMPLING, "is_seg": True, "order": 1},
            "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
            "resampling_fn_probabilities_kwargs": {**_RESAMPLING, "order": 1},
            "architecture": _ARCHITECTURE,
            "batch_dice": False,
        }
    },
}
DATASET_JSON = {"channel_names": {"0": "MRI"}, "labels": {"background": 0, "liver": 1}, "numTraining": 2,
                "file_ending": ".nii.gz"}


def _tiny_model(folder: Path) -> Path:
    """A real results folder: a 2-stage PlainConvUNet with random weights (fold 0)."""
    import torch

    from autoseg.dataset.dataset_json import DatasetJson
    from autoseg.network.build import build_network
    from autoseg.network.checkpoint import init_args
    from autoseg.plans.model import Plans

    plans = Plans.from_dict(PLANS)
    torch.manual_seed(0)
    network = build_network(plans.configuration("3d_fullres").architecture, 1, 2)
    (folder / "fold_0").mkdir(parents=True)
    (folder / "plans.json").write_text(json.dumps(PLANS))
    (folder / "dataset.json").write_text(json.dumps(DATASET_JSON))
    torch.save(
        {
            "network_weights": network.state_dict(),
            "optimizer_state": {},
            "grad_scaler_state": None,
            "logging": {},
            "_best_ema": None,
            "current_epoch": 1,
            "trainer_name": "nnUNetTrainer",
            "inference_allowed_mirroring_axes": (0, 1, 2),
            "init_args": init_args(plans, "3d_fullres", 0, DatasetJson.from_dict(DATASET_JSON), torch.device("cpu")),
        },
        folder / "fold_0" / "checkpoint_final.pth",
    )
    return folder


def _write_case(folder: Path, name: str, shape: tuple[int, int, int], seed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(np.random.default_rng(seed).normal(size=shape).astype(np.float32))
    sitk.WriteImage(image, str(folder / f"{name}_0000.nii.gz"))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_file_throttles_windows(tmp_path):
    path = tmp_path / "progress.jsonl"
    path.write_text('{"type": "end", "time": 0}\n')  # left over from an earlier run: started afresh
    clock = Clock()
    progress = PredictionProgressFile(path, clock=clock)
    for case_index, case in enumerate(("a", "b")):
        for done in range(1, 11):
            clock.now += 0.2
            progress.window(case_index, 2, case, done, 10)
    progress.finish(2)
    events = list(iterate_events(path))
    kinds = [e["type"] for e in events]
    assert kinds[0] == "start" and events[0]["num_cases"] == 2 and kinds[-1] == "end"
    windows = [(e["case"], e["done"]) for e in events if e["type"] == "window"]
    # every 0.5 s (each third 0.2 s tick) plus the first and last window of each case
    assert windows == [("a", 1), ("a", 4), ("a", 7), ("a", 10), ("b", 1), ("b", 4), ("b", 7), ("b", 10)]
    cases = [e for e in events if e["type"] == "case"]
    assert [(e["case_index"], e["case"]) for e in cases] == [(0, "a"), (1, "b")]
    assert cases[0]["seconds"] == pytest.approx(2.0) and cases[1]["seconds"] == pytest.approx(2.0)
    assert events[-1]["num_cases"] == 2 and events[-1]["seconds"] == pytest.approx(4.0)
    assert kinds.index("case") == kinds.index("window") + 4  # right after the last window of case a


def test_monitor_fraction_eta_and_messages(tmp_path):
    path = tmp_path / "progress.jsonl"
    clock = Clock()
    monitor = PredictionMonitor(path, clock=clock)
    assert monitor.poll() == [] and monitor.status.state == "waiting"
    lines = [{"type": "start", "time": 100.0, "num_cases": 2},
             {"type": "window", "time": 110.0, "case_index": 0, "num_cases": 2, "case": "a", "done": 12, "total": 40}]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    clock.now = 110.0
    monitor.poll()
    status = monitor.status
    assert status.state == "running" and status.case == "a" and (status.window, status.num_windows) == (12, 40)
    assert status.fraction == pytest.approx(12 / 40 / 2)
    assert status.eta_seconds == pytest.approx(10 / 0.15 * 0.85)
    assert status.message == "Case 1/2: window 12/40, ETA 57 s"
    with path.open("a") as stream:
        stream.write(json.dumps({"type": "case", "time": 120.0, "case_index": 0, "num_cases": 2, "case": "a",
                                 "seconds": 20.0}) + "\n")
        stream.write(json.dumps({"type": "window", "time": 125.0, "case_index": 1, "num_cases": 2, "case": "b",
                                 "done": 20, "total": 40}) + "\n")
    clock.now = 125.0
    monitor.poll()
    assert status.fraction == pytest.approx(0.75) and status.eta_seconds == pytest.approx(25 / 0.75 * 0.25)
    assert monitor.case_seconds == {"a": 20.0}
    with path.open("a") as stream:
        stream.write(json.dumps({"type": "error", "time": 126.0, "message": "CUDA out of memory"}) + "\n")
    monitor.poll()
    assert status.state == "failed" and status.message == "Prediction failed: CUDA out of memory"
    assert status.eta_seconds is None
    path.write_text(json.dumps({"type": "end", "time": 1.0, "num_cases": 0, "seconds": 0.5}) + "\n")  # a new run
    monitor.poll()
    assert monitor.status.state == "finished" and monitor.status.fraction == 1.0 and monitor.case_seconds == {}
    assert monitor.status.message == "Predicted 0 case(s) in 0 s."


def test_predict_cli_writes_progress_the_monitor_follows(tmp_path, monkeypatch):
    """``autoseg predict -progress_file`` on a tiny real model, built by predict_command."""
    model = _tiny_model(tmp_path / "results" / "Dataset321_Tiny" / "nnUNetTrainer__nnUNetPlans__3d_fullres")
    inputs = tmp_path / "in"
    _write_case(inputs, "case_a", (20, 24, 20), seed=1)
    _write_case(inputs, "case_b", (18, 20, 30), seed=2)
    progress = tmp_path / "progress.jsonl"
    command = predict_command(None, inputs, tmp_path / "out", model, [0], device="cpu", progress_file=progress)
    for key, value in command.environment.items():
        monkeypatch.setenv(key, value)
    assert autoseg_main(command.args[2:]) == 0
    assert sorted(p.name for p in (tmp_path / "out").glob("*.nii.gz")) == ["case_a.nii.gz", "case_b.nii.gz"]

    events = list(iterate_events(progress))
    kinds = [e["type"] for e in events]
    assert kinds[0] == "start" and events[0]["num_cases"] == 2 and kinds[-1] == "end" and events[-1]["num_cases"] == 2
    cases = [e for e in events if e["type"] == "case"]
    assert [(e["case_index"], e["case"]) for e in cases] == [(0, "case_a"), (1, "case_b")]
    assert all(e["seconds"] >= 0 for e in cases)
    for case in cases:  # the last window of each case comes right before its "case" event
        window = events[events.index(case) - 1]
        assert window["type"] == "window" and window["done"] == window["total"] > 0
        assert window["case"] == case["case"] and window["num_cases"] == 2

    monitor = PredictionMonitor(progress)
    monitor.poll()
    assert monitor.status.state == "finished" and monitor.status.fraction == 1.0
    assert monitor.status.message.startswith("Predicted 2 case(s) in ")
    assert set(monitor.case_seconds) == {"case_a", "case_b"}


def test_predict_cli_reports_errors_in_the_progress_file(tmp_path):
    progress = tmp_path / "progress.jsonl"
    code = autoseg_main(["predict", "-i", str(tmp_path), "-o", str(tmp_path / "out"), "-m", str(tmp_path / "missing"),
                         "-progress_file", str(progress), "--no_pbar"])
    assert code == 1
    events = list(iterate_events(progress))
    assert [e["type"] for e in events] == ["error"] and "does not exist" in events[0]["message"]
    monitor = PredictionMonitor(progress)
    monitor.poll()
    assert monitor.status.state == "failed" and "does not exist" in monitor.status.message


def test_unwritable_progress_file_is_one_clear_error(tmp_path, capsys):
    (tmp_path / "progress.jsonl").mkdir()  # a folder where the file should go
    code = autoseg_main(["predict", "-i", str(tmp_path), "-o", str(tmp_path / "out"), "-m", str(tmp_path / "model"),
                         "-progress_file", str(tmp_path / "progress.jsonl"), "--no_pbar"])
    err = capsys.readouterr().err
    assert code == 1 and "Cannot write the progress file" in err and "Traceback" not in err
