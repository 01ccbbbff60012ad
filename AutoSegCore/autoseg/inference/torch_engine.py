"""The PyTorch engine: the plan's U-Net as a torch module on the CPU, CUDA or MPS, with the sliding window in
torch (logits aggregated on the GPU when they fit), oneDNN convolutions and a traced graph on the CPU, and
the mirrored copies of a window side by side on multi-core CPUs."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from autoseg.errors import PredictionError
from autoseg.inference.cpu_graph import TracedNetworks, use_onednn_convolutions
from autoseg.inference.parallel_copies import ParallelCopies, plan_parallel_copies
from autoseg.inference.sliding_window import gaussian_importance_map, pad_to_patch, predict_with_mirroring
from autoseg.inference.window_grid import window_slicers
from autoseg.network import build_network
from autoseg.utils.parallel import available_cpus

if TYPE_CHECKING:
    from autoseg.inference.model_folder import ModelFolder
    from autoseg.inference.prediction_settings import PredictionSettings

logger = logging.getLogger(__name__)


def _as_tensors(state_dict: dict[str, Any]) -> dict[str, torch.Tensor]:
    return {key: torch.as_tensor(np.asarray(value)) if not isinstance(value, torch.Tensor) else value
            for key, value in state_dict.items()}


class TorchEngine:
    """One torch network whose weights are switched per fold."""

    name = "torch"

    def __init__(self, model: ModelFolder, settings: PredictionSettings, device: str,
                 mirror_axes: tuple[int, ...] | None) -> None:
        self.model = model
        self.settings = settings
        self.device = torch.device(device)
        if self.device.type == "cpu":
            torch.set_num_threads(settings.num_threads or available_cpus())
        self.num_threads = torch.get_num_threads()
        self.configuration = model.configuration
        self.network = build_network(self.configuration.architecture, model.num_input_channels,
                                     model.num_output_channels, deep_supervision=False, initialize=False)
        self._fold_states = [_as_tensors(fold.state_dict) for fold in model.folds]
        for fold, state in zip(model.folds, self._fold_states):  # fail early, naming the fold
            try:
                self.network.load_state_dict(state, strict=True)
            except RuntimeError as err:
                raise PredictionError(
                    f"The weights of fold {fold.fold} in {model.path} do not fit the network described by its "
                    f"plans.json (configuration {model.configuration_name}): {' '.join(str(err).split())[:600]}"
                ) from err
        self.network.to(self.device).eval()
        self.mirror_axes = mirror_axes
        batch_mirrors = settings.batch_mirrors
        self.batch_mirrors = self.device.type == "cuda" if batch_mirrors is None else batch_mirrors
        self._parallel: ParallelCopies | None = None
        fp32_cpu = self.device.type == "cpu" and settings.precision == "fp32"
        if fp32_cpu and mirror_axes and settings.parallel_copies:  # (autocast is per thread)
            activations = 8 * self.network.compute_conv_feature_map_size(self.configuration.patch_size)
            self._parallel = plan_parallel_copies(torch.get_num_threads(), 2 ** len(mirror_axes), activations)
        # a traced graph helps one multi-threaded pass; parallel single-threaded passes do better without it
        self._graphs = TracedNetworks(self.network, fp32_cpu and settings.trace_network and self._parallel is None)
        if fp32_cpu:
            use_onednn_convolutions(self.network)

    @property
    def description(self) -> str:
        precision = self.settings.precision if self.device.type == "cpu" else "autocast fp16"
        return f"{self.device} with PyTorch ({precision})"

    def fold_logits(self, index: int, data: np.ndarray, tick: Callable[[], None]) -> np.ndarray:
        """Fold ``index``'s sliding-window logits of the preprocessed (c, ...) input (aggregation dtype)."""
        with torch.inference_mode():
            if len(self._fold_states) > 1:
                self.network.load_state_dict(self._fold_states[index])
            with self._autocast():
                logits = self._predict_on_best_device(torch.from_numpy(data), tick, self._graphs.forward_for(index))
            return logits.to("cpu").numpy()

    def _autocast(self) -> Any:
        if self.device.type == "cuda":
            return torch.autocast("cuda", enabled=True)
        if self.device.type == "cpu" and self.settings.precision == "bf16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return torch.autocast("cpu", enabled=False)

    def _predict_on_best_device(self, data: torch.Tensor, tick: Callable[[], None],
                                forward: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        if self.device.type == "cpu" or not self.settings.perform_everything_on_device:
            return self._sliding_window(data, torch.device("cpu"), tick, forward)
        try:
            return self._sliding_window(data, self.device, tick, forward)
        except torch.OutOfMemoryError:
            logger.warning(
                "The logits of this case do not fit on %s; aggregating them on the CPU instead.", self.device
            )
            torch.cuda.empty_cache()
            return self._sliding_window(data, torch.device("cpu"), tick, forward)

    def _sliding_window(self, data: torch.Tensor, results_device: torch.device,
                        tick: Callable[[], None], forward: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        patch = tuple(int(p) for p in self.configuration.patch_size)
        padded, revert = pad_to_patch(data, patch)
        slicers = window_slicers(padded.shape[1:], patch, self.settings.step_size)
        dtype = torch.float32 if self.settings.aggregation_dtype == "float32" else torch.float16
        logits = torch.zeros((self.model.num_output_channels, *padded.shape[1:]), dtype=dtype, device=results_device)
        weight_sum = torch.zeros(padded.shape[1:], dtype=dtype, device=results_device)
        gaussian = (gaussian_importance_map(patch, device=results_device) if self.settings.use_gaussian
                    else torch.ones(patch, dtype=torch.float16, device=results_device))
        source = padded.to(self.device)
        map_copies = self._parallel.mapper(forward) if self._parallel is not None else None
        for slicer in slicers:
            window = source[slicer][None]
            prediction = predict_with_mirroring(forward, window, self.mirror_axes, self.batch_mirrors, map_copies)[0]
            prediction = prediction.to(results_device, torch.float32)
            prediction *= gaussian
            logits[slicer] += prediction
            weight_sum[slicer[1:]] += gaussian
            tick()
        torch.div(logits, weight_sum, out=logits)
        return logits[revert]
