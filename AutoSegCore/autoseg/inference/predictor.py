"""The predictor: preprocess a case with the model's plan, run sliding-window inference over all
folds (logits averaged before softmax), and export to the input's geometry.

Usable from Python (and Slicer) without files::

    model = open_model_folder("nnUNet_results/Dataset004_Hippocampus/nnUNetTrainer__nnUNetPlans__3d_fullres")
    predictor = Predictor(model, PredictionSettings(device="cpu", use_mirroring=False))
    segmentation, _ = predictor.predict_array(image_zyx, spacing_zyx)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import psutil
import torch

from autoseg.errors import AutoSegError
from autoseg.inference.cpu_graph import TracedNetworks, use_onednn_convolutions
from autoseg.inference.export import export_logits
from autoseg.inference.model_folder import ModelFolder
from autoseg.inference.parallel_copies import ParallelCopies, plan_parallel_copies
from autoseg.inference.sliding_window import (
    gaussian_importance_map,
    pad_to_patch,
    predict_with_mirroring,
    window_slicers,
)
from autoseg.network import build_network
from autoseg.preprocessing.preprocessor import preprocess_case
from autoseg.typing import ProgressCallback
from autoseg.utils.devices import resolve_device
from autoseg.utils.parallel import available_cpus

logger = logging.getLogger(__name__)

#: progress(done_windows, total_windows) over all folds of one case.


class PredictionError(AutoSegError):
    """The input does not fit the model (channels, dimensionality) or prediction failed."""


@dataclass
class PredictionSettings:
    """How to predict: nnU-Net's defaults (step 0.5, Gaussian weighting, mirroring TTA)."""

    step_size: float = 0.5
    use_gaussian: bool = True
    use_mirroring: bool = True
    device: str = "cpu"
    #: Keep the aggregated logits on the GPU (falls back to the CPU when they do not fit).
    perform_everything_on_device: bool = True
    #: Threads for torch on the CPU (None: all available cores).
    num_threads: int | None = None
    #: Run all mirrored copies of a window as one batch (helps GPUs; no gain on CPUs).
    batch_mirrors: bool | None = None
    #: "float16" sums window logits like nnU-Net (same results, half the memory); "float32" is more exact.
    aggregation_dtype: str = "float16"
    #: Network precision on the CPU: "fp32" (as nnU-Net) or "bf16" (autocast; faster on CPUs with native bf16).
    precision: str = "fp32"
    #: On the CPU, switch to a traced, oneDNN-optimised graph for longer jobs (same results, ~25% faster).
    trace_network: bool = True
    #: On a multi-core CPU, run the mirrored copies of a window side by side (one thread each; same result).
    parallel_copies: bool = True


class Predictor:
    """Sliding-window prediction with a loaded :class:`ModelFolder`."""

    def __init__(self, model: ModelFolder, settings: PredictionSettings | None = None) -> None:
        self.model = model
        self.settings = settings or PredictionSettings()
        self.device = resolve_device(self.settings.device)
        if self.device.type == "cpu":
            threads = self.settings.num_threads or available_cpus()
            torch.set_num_threads(threads)
        self.configuration = model.configuration
        self.network = build_network(
            self.configuration.architecture,
            model.num_input_channels,
            model.num_output_channels,
            deep_supervision=False,
            initialize=False,
        )
        self._fold_states = [fold.state_dict for fold in model.folds]
        for fold in model.folds:  # fail early, naming the fold, if a checkpoint does not fit the plans
            try:
                self.network.load_state_dict(fold.state_dict, strict=True)
            except RuntimeError as err:
                raise PredictionError(
                    f"The weights of fold {fold.fold} in {model.path} do not fit the network described by its "
                    f"plans.json (configuration {model.configuration_name}): {str(err).splitlines()[0]}"
                ) from err
        self.network.to(self.device).eval()
        self.mirror_axes = model.mirror_axes if self.settings.use_mirroring else None
        batch_mirrors = self.settings.batch_mirrors
        self.batch_mirrors = self.device.type == "cuda" if batch_mirrors is None else batch_mirrors
        self._parallel: ParallelCopies | None = None
        fp32_cpu = self.device.type == "cpu" and self.settings.precision == "fp32"
        if fp32_cpu and self.mirror_axes and self.settings.parallel_copies:  # (autocast is per thread)
            activations = 8 * self.network.compute_conv_feature_map_size(self.configuration.patch_size)
            copies = 2 ** len(self.mirror_axes)
            self._parallel = plan_parallel_copies(torch.get_num_threads(), copies, activations)
        # a traced graph helps one multi-threaded pass; parallel single-threaded passes do better without it
        self._graphs = TracedNetworks(self.network, fp32_cpu and self.settings.trace_network and self._parallel is None)
        if fp32_cpu:
            use_onednn_convolutions(self.network)

    # ------------------------------------------------------------------ preprocessing
    def check_input(self, data: np.ndarray, source: str = "input") -> None:
        """Channel count and dimensionality against the model; raises :class:`PredictionError`."""
        expected = self.model.dataset_json.num_channels
        if data.shape[0] != expected:
            names = ", ".join(f"{k}: {v}" for k, v in self.model.dataset_json.channel_names.items())
            raise PredictionError(
                f"{source}: the model expects {expected} channel(s) ({names}), got {data.shape[0]}. Provide one "
                f"file per channel named CASE_0000{self.model.dataset_json.file_ending} ... "
                f"CASE_{expected - 1:04d}{self.model.dataset_json.file_ending}."
            )
        if (
            not self.configuration.is_2d
            and data.shape[1] == 1
            and self.model.plans.original_median_shape_after_transp[0] != 1
        ):
            raise PredictionError(
                f"{source} is a 2D image (shape {tuple(data.shape[1:])}) but the model's configuration "
                f"{self.model.configuration_name} is 3D. Use a 2d model or a 3D volume."
            )

    def preprocess(self, data: np.ndarray, properties: dict[str, Any],
                   previous_stage: np.ndarray | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        """Raw (c, z, y, x) image -> network input (plus the previous stage's one-hot for a cascade)."""
        configuration = self.configuration
        cascade = bool(configuration.previous_stage)
        if cascade and previous_stage is None:
            raise PredictionError(
                f"Configuration {self.model.configuration_name} is a cascade stage: give the previous stage's "
                f"predictions with -prev_stage_predictions."
            )
        seg = previous_stage if cascade else None
        data, seg, properties = preprocess_case(data, seg, dict(properties), self.model.plans, configuration,
                                                self.model.dataset_json, sample_locations=False)
        if cascade:
            labels = self.model.dataset_json.foreground_labels
            one_hot = np.stack([seg[0] == label for label in labels]).astype(data.dtype)
            data = np.concatenate([data, one_hot])
        return torch.from_numpy(np.ascontiguousarray(data)), properties

    # ------------------------------------------------------------------ sliding window
    def _num_windows(self, shape: tuple[int, ...]) -> int:
        patch = self.configuration.patch_size
        padded = [
            *shape[: len(shape) - len(patch)],
            *(max(s, p) for s, p in zip(shape[len(shape) - len(patch) :], patch)),
        ]
        return len(window_slicers(padded, patch, self.settings.step_size))

    @torch.inference_mode()
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

    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", enabled=True)
        if self.device.type == "cpu" and self.settings.precision == "bf16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return torch.autocast("cpu", enabled=False)

    @torch.inference_mode()
    def predict_logits(self, data: torch.Tensor, progress: ProgressCallback | None = None) -> torch.Tensor:
        """Preprocessed (c, ...) input -> logits averaged over the folds, on the CPU (aggregation dtype)."""
        summed: torch.Tensor | None = None
        for logits in self.iter_fold_logits(data, progress):
            summed = logits if summed is None else summed.add_(logits)
        assert summed is not None
        if len(self._fold_states) > 1:
            summed /= len(self._fold_states)
        return summed

    @torch.inference_mode()
    def iter_fold_logits(self, data: torch.Tensor, progress: ProgressCallback | None = None) -> Iterator[torch.Tensor]:
        """Preprocessed (c, ...) input -> each fold's logits in turn (fold order of the model), on the CPU
        (aggregation dtype); ``progress`` counts the windows of all folds. For per-fold uncertainty."""
        total = self._num_windows(tuple(data.shape[1:])) * len(self._fold_states)
        done = 0

        def tick() -> None:
            nonlocal done
            done += 1
            if progress:
                progress(done, total)

        for index, state in enumerate(self._fold_states):
            if index or len(self._fold_states) > 1:
                self.network.load_state_dict(state)
            with self._autocast():
                logits = self._predict_on_best_device(data, tick, self._graphs.forward_for(index))
            yield logits.to("cpu")

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

    # ------------------------------------------------------------------ whole cases
    def predict_case(
        self,
        data: np.ndarray,
        properties: dict[str, Any],
        previous_stage: np.ndarray | None = None,
        return_probabilities: bool = False,
        progress: ProgressCallback | None = None,
        source: str = "input",
    ) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
        """Raw image (c, z, y, x) + reader properties -> (segmentation (z, y, x), probabilities, properties)."""
        self.check_input(data, source)
        network_input, properties = self.preprocess(data, properties, previous_stage)
        self._warn_if_memory_is_short(tuple(network_input.shape[1:]), properties, return_probabilities, source)
        logits = self.predict_logits(network_input, progress)
        del network_input
        segmentation, probabilities = export_logits(
            logits, self.model.plans, self.configuration, self.model.dataset_json, properties,
            return_probabilities=return_probabilities, num_threads=torch.get_num_threads(),
        )
        return segmentation, probabilities, properties

    def estimated_peak_bytes(self, preprocessed_shape: tuple[int, ...], properties: dict[str, Any],
                             return_probabilities: bool) -> int:
        """Rough peak RAM of one case: aggregated logits (float16, two copies with several folds) plus the
        export (two float32 volumes of the cropped image, or all classes when probabilities are written)."""
        classes = self.model.num_output_channels
        logits = 2 * classes * math.prod(preprocessed_shape) * (2 if len(self._fold_states) > 1 else 1)
        cropped = math.prod(properties["shape_after_cropping_and_before_resampling"])
        export = 4 * cropped * (2 * classes + 1 if return_probabilities else 3)
        return logits + export

    def _warn_if_memory_is_short(self, shape: tuple[int, ...], properties: dict[str, Any], return_probabilities: bool,
                                 source: str) -> None:
        needed = self.estimated_peak_bytes(shape, properties, return_probabilities)
        available = psutil.virtual_memory().available
        if needed > 0.8 * available:
            logger.warning(
                "%s needs about %.1f GB of RAM to predict%s, %.1f GB are free: close other programs%s.",
                source, needed / 1e9, " and save probabilities" if return_probabilities else "", available / 1e9,
                " or drop --save_probabilities" if return_probabilities else "",
            )

    def predict_array(
        self,
        image: np.ndarray,
        spacing: tuple[float, ...] | list[float],
        return_probabilities: bool = False,
        progress: ProgressCallback | None = None,
        previous_stage: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Predict an in-memory image: ``image`` is (z, y, x) or (c, z, y, x) in array order and ``spacing``
        (sz, sy, sx). Returns the (z, y, x) segmentation and optional (c, z, y, x) probabilities; origin and
        direction are the caller's to keep (the result is on the input's voxel grid)."""
        data = np.asarray(image, dtype=np.float32)
        if data.ndim == 3:
            data = data[None]
        if data.ndim != 4 or len(spacing) != 3:
            raise PredictionError(
                f"predict_array wants (c, z, y, x) data and 3 spacings, got {data.shape} and {spacing}."
            )
        properties = {"spacing": [float(s) for s in spacing]}
        previous = None if previous_stage is None else np.asarray(previous_stage)
        if previous is not None and previous.ndim == 3:
            previous = previous[None]
        segmentation, probabilities, _ = self.predict_case(data, properties, previous, return_probabilities, progress)
        return segmentation, probabilities
