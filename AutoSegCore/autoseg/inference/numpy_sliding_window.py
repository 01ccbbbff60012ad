"""Sliding-window aggregation in numpy, for engines that take and return numpy arrays (OpenVINO).

Same windows, Gaussian weights, padding and accumulation precision as the torch path
(:meth:`autoseg.inference.torch_engine.TorchEngine.fold_logits`): each window's prediction (float32) is
multiplied by the float16 Gaussian and added into float16 (or float32) sums, which are divided by the summed
weights at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from autoseg.inference.window_grid import gaussian_weights, pad_array_to_patch, window_slicers

#: Evaluate one window: a (1, c, *patch) float32 array -> (1, classes, *patch) logits (mirroring included).
WindowForward = Callable[[np.ndarray], np.ndarray]


def sliding_window_logits(
    data: np.ndarray,
    patch_size: Sequence[int],
    step_size: float,
    num_classes: int,
    forward: WindowForward,
    use_gaussian: bool = True,
    aggregation_dtype: str = "float16",
    tick: Callable[[], None] | None = None,
) -> np.ndarray:
    """Preprocessed (c, ...) input -> (classes, ...) logits, averaged over overlapping windows."""
    patch = tuple(int(p) for p in patch_size)
    padded, revert = pad_array_to_patch(np.asarray(data, dtype=np.float32), patch)
    slicers = window_slicers(padded.shape[1:], patch, step_size)
    dtype = np.float32 if aggregation_dtype == "float32" else np.float16
    logits = np.zeros((num_classes, *padded.shape[1:]), dtype=dtype)
    weight_sum = np.zeros(padded.shape[1:], dtype=dtype)
    gaussian = gaussian_weights(patch) if use_gaussian else np.ones(patch, dtype=np.float16)
    weights32 = gaussian.astype(np.float32)
    for slicer in slicers:
        window = np.ascontiguousarray(padded[slicer][None])
        prediction = forward(window)[0]
        prediction = prediction * weights32  # float32, as the torch path (float16 weights widened)
        logits[slicer] += prediction
        weight_sum[slicer[1:]] += gaussian
        if tick:
            tick()
    np.divide(logits, weight_sum, out=logits)
    return logits[revert]
