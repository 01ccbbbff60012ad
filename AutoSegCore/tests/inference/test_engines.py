"""The engine choice and the two engines against each other: same windows, same aggregation, same voxels."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from autoseg.errors import DeviceError, PredictionError
from autoseg.inference import engine_choice
from autoseg.inference.engine_choice import choose_engine
from autoseg.inference.model_folder import open_model_folder
from autoseg.inference.numpy_sliding_window import sliding_window_logits
from autoseg.inference.predictor import PredictionSettings, Predictor

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ranking"))
from ranking_model import blob_case, build_tiny_model


def _installed(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    monkeypatch.setattr(engine_choice, "is_installed", lambda name: name in modules)


def test_auto_prefers_openvino_on_the_cpu_and_torch_elsewhere(monkeypatch):
    assert choose_engine("auto", "cpu").engine == "openvino"
    assert choose_engine("torch", "cpu") == engine_choice.EngineChoice("torch", "cpu")
    _installed(monkeypatch, "torch")
    assert choose_engine("auto", "cpu") == engine_choice.EngineChoice("torch", "cpu")


def test_impossible_choices_say_what_to_install(monkeypatch):
    with pytest.raises(DeviceError, match="runs on the CPU; for -device cuda use -engine torch"):
        choose_engine("openvino", "cuda")
    with pytest.raises(DeviceError, match="Unknown engine 'onnx'"):
        choose_engine("onnx", "cpu")
    _installed(monkeypatch, "openvino")
    assert choose_engine("auto", "auto") == engine_choice.EngineChoice("openvino", "cpu")
    with pytest.raises(DeviceError, match="-engine torch needs PyTorch.*or use -engine openvino"):
        choose_engine("torch", "cpu")
    with pytest.raises(DeviceError, match="-device cuda needs PyTorch"):
        choose_engine("auto", "cuda")
    _installed(monkeypatch, "torch")
    with pytest.raises(DeviceError, match="OpenVINO is not installed.*autoseg\\[openvino\\]"):
        choose_engine("openvino", "cpu")
    _installed(monkeypatch)
    with pytest.raises(DeviceError, match="needs PyTorch.*Install OpenVINO"):
        choose_engine("auto", "cpu")


@pytest.mark.parametrize("image_shape,patch,step", [
    ((2, 30, 41, 37), (16, 24, 16), 0.5),   # several windows per axis
    ((1, 10, 12, 9), (16, 16, 16), 0.5),    # smaller than the patch: padded, then cropped back
    ((1, 5, 40, 33), (32, 32), 0.5),        # a 2D patch sliding over every slice
    ((1, 20, 20, 20), (16, 16, 16), 0.25),
])
def test_numpy_sliding_window_equals_the_torch_one(image_shape, patch, step):
    """The same window function through both aggregations gives bit-identical float16 sums."""
    from autoseg.inference.torch_engine import TorchEngine

    rng = np.random.default_rng(0)
    data = rng.normal(size=image_shape).astype(np.float32)
    weights = rng.normal(size=(3, image_shape[0])).astype(np.float32)

    def window_numpy(x: np.ndarray) -> np.ndarray:
        return np.einsum("kc,bc...->bk...", weights, x * x + 0.5 * x).astype(np.float32)

    expected = sliding_window_logits(data, patch, step, 3, window_numpy)
    engine = TorchEngine.__new__(TorchEngine)  # only the sliding window, without a network
    engine.configuration = type("C", (), {"patch_size": list(patch)})()
    engine.settings = PredictionSettings(step_size=step)
    engine.model = type("M", (), {"num_output_channels": 3})()
    engine.device, engine.mirror_axes, engine.batch_mirrors, engine._parallel = torch.device("cpu"), None, False, None
    got = engine._sliding_window(torch.from_numpy(data), torch.device("cpu"), lambda: None,
                                 lambda x: torch.from_numpy(window_numpy(x.numpy())))
    assert got.dtype == torch.float16 and expected.dtype == np.float16
    np.testing.assert_array_equal(got.numpy(), expected)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("results"), folds=(0, 1), steps=30)


@pytest.mark.parametrize("mirroring", [True, False])
def test_engines_agree_on_a_trained_model(tiny_model, mirroring):
    image, _ = blob_case(np.random.RandomState(7), shape=(30, 27, 25))
    model = open_model_folder(tiny_model)
    results = {}
    for engine in ("torch", "openvino"):
        predictor = Predictor(model, PredictionSettings(engine=engine, use_mirroring=mirroring, num_threads=1))
        assert predictor.engine.name == engine
        results[engine] = predictor.predict_array(image, (1.0, 1.2, 0.9), return_probabilities=True)
    (seg_t, prob_t), (seg_o, prob_o) = results["torch"], results["openvino"]
    assert seg_t.shape == image.shape and len(np.unique(seg_t)) == 2
    assert float((seg_t == seg_o).mean()) >= 0.999
    np.testing.assert_allclose(prob_o, prob_t, atol=5e-3)


def test_openvino_bf16_is_close_and_fp32_logits_match(tiny_model):
    model = open_model_folder(tiny_model, [0])
    data = np.random.default_rng(3).normal(size=(1, 20, 20, 20)).astype(np.float32)
    logits = {precision: Predictor(model, PredictionSettings(engine="openvino", precision=precision, num_threads=1,
                                                             aggregation_dtype="float32")).predict_logits(data)
              for precision in ("fp32", "bf16")}
    reference = Predictor(model, PredictionSettings(engine="torch", aggregation_dtype="float32",
                                                    num_threads=1)).predict_logits(data)
    np.testing.assert_allclose(logits["fp32"], reference, atol=1e-4 * max(1.0, float(np.abs(reference).max())))
    assert float(np.abs(logits["bf16"] - reference).max()) < 0.1 * max(1.0, float(np.abs(reference).max()))


def test_weights_that_do_not_fit_the_plans_name_the_fold(tiny_model):
    model = open_model_folder(tiny_model, [1])
    state = dict(model.folds[0].state_dict)
    state.pop("decoder.seg_layers.0.bias")
    model.folds[0].state_dict = state
    for engine in ("torch", "openvino"):
        with pytest.raises(PredictionError, match="weights of fold 1 .* do not fit .*decoder.seg_layers.0.bias"):
            Predictor(model, PredictionSettings(engine=engine))
