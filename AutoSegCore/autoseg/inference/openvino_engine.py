"""The OpenVINO engine: each fold's U-Net built from ``plans.json`` and its weights, compiled for the CPU, and
evaluated window by window by the shared numpy sliding window. Needs no PyTorch.

The networks are built by :mod:`autoseg.inference.openvino_network` (never loaded from a file that came
with a model), with the mirrored test-time-augmentation copies inside the graph, so that one call evaluates
a window and all its flips as one batch. Precision: ``fp32`` (exact to ~1e-5 of PyTorch's logits) or
``bf16`` (bfloat16 multiplications with float32 accumulation; only where the CPU has native bfloat16).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from autoseg.errors import AutoSegError, PredictionError
from autoseg.inference.numpy_sliding_window import sliding_window_logits
from autoseg.inference.openvino_network import build_openvino_model
from autoseg.utils.parallel import available_cpus

if TYPE_CHECKING:
    from autoseg.inference.model_folder import ModelFolder
    from autoseg.inference.prediction_settings import PredictionSettings

logger = logging.getLogger(__name__)

PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16"}


def openvino_cpu_has_bf16(core: Any) -> bool:
    """Whether OpenVINO's CPU plugin reports native bfloat16 support on this machine (the OpenVINO counterpart of
    :func:`autoseg.training.precision.cpu_has_native_bf16`, which asks PyTorch)."""
    return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def compile_properties(precision: str, num_threads: int) -> dict[str, Any]:
    """CPU plugin settings: the precision hint (always explicit: OpenVINO defaults to bf16 where the CPU has
    it), latency mode with one stream and ``num_threads`` threads."""
    if precision not in PRECISION_HINTS:
        raise AutoSegError(f"Unknown precision {precision!r}: use {', '.join(PRECISION_HINTS)}.")
    return {
        "INFERENCE_PRECISION_HINT": PRECISION_HINTS[precision],
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": "1",
        "INFERENCE_NUM_THREADS": int(num_threads),
    }


class OpenVinoEngine:
    """Compiled per-fold networks and the sliding window around them."""

    name = "openvino"

    def __init__(self, model: ModelFolder, settings: PredictionSettings, mirror_axes: Sequence[int] | None) -> None:
        import openvino as ov

        self.model = model
        self.settings = settings
        self.device = "cpu"
        self.num_threads = settings.num_threads or available_cpus()
        core = ov.Core()
        precision = settings.precision
        if precision == "bf16" and not openvino_cpu_has_bf16(core):
            logger.warning("This CPU has no native bfloat16: predicting in fp32 instead of bf16.")
            precision = "fp32"
        self.precision = precision
        self.mirror_axes = tuple(mirror_axes) if mirror_axes else None
        self.patch_size = tuple(int(p) for p in model.configuration.patch_size)
        shape = (1, model.num_input_channels, *self.patch_size)
        properties = compile_properties(precision, self.num_threads)
        self._requests = []
        for fold in model.folds:
            network = self._build(fold.fold, fold.state_dict, shape)
            self._requests.append(core.compile_model(network, "CPU", properties).create_infer_request())

    def _build(self, fold: Any, state_dict: Mapping[str, Any], shape: tuple[int, ...]) -> Any:
        weights = {key: np.asarray(value) for key, value in state_dict.items()}
        try:
            return build_openvino_model(self.model.configuration.architecture, self.model.num_input_channels,
                                        self.model.num_output_channels, weights, shape, mirror_axes=self.mirror_axes)
        except ValueError as err:
            raise PredictionError(
                f"The weights of fold {fold} in {self.model.path} do not fit the network described by its "
                f"plans.json (configuration {self.model.configuration_name}): {str(err).splitlines()[0]}"
            ) from err

    @property
    def description(self) -> str:
        return f"cpu with OpenVINO ({self.precision}, {self.num_threads} threads)"

    def fold_logits(self, index: int, data: np.ndarray, tick: Callable[[], None]) -> np.ndarray:
        """Fold ``index``'s sliding-window logits of the preprocessed (c, ...) input (aggregation dtype)."""
        request = self._requests[index]

        def forward(window: np.ndarray) -> np.ndarray:
            request.infer({0: window})
            return request.get_output_tensor(0).data

        return sliding_window_logits(data, self.patch_size, self.settings.step_size, self.model.num_output_channels,
                                     forward, self.settings.use_gaussian, self.settings.aggregation_dtype, tick)
