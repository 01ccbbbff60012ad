"""Turn predicted logits (in the preprocessed space) into a segmentation in the input's geometry.

Reverses preprocessing like nnU-Net v2: resample the logits to the cropped shape (order 1, separate-z
rule), apply softmax/sigmoid and argmax or the region order, put the crop back into the full image and
undo the transpose. Without probabilities the channels are resampled one at a time and reduced on the
fly (running argmax for labels, painting for regions), so the peak memory is two full-size volumes
instead of one per class, with the same result.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.special import expit, softmax

from autoseg.dataset.dataset_json import DatasetJson
from autoseg.plans.model import ConfigurationPlan, Plans
from autoseg.preprocessing.cropping import insert_crop_into_image, uncrop_probabilities
from autoseg.preprocessing.resampling import ResamplingSettings, resample_to_shape


def segmentation_dtype_for(dataset_json: DatasetJson) -> type[np.integer]:
    """uint8 unless there are 255 or more foreground labels (as nnU-Net)."""
    return np.uint8 if len(dataset_json.foreground_labels) < 255 else np.uint16


def _spacings(
    plans: Plans, configuration: ConfigurationPlan, properties: dict[str, Any]
) -> tuple[list[float], list[float]]:
    """(spacing of the logits, spacing of the cropped image), both in transposed axis order."""
    original = [float(properties["spacing"][i]) for i in plans.transpose_forward]
    current = [float(s) for s in configuration.spacing]
    if len(current) < len(original):  # 2d: the first axis was never resampled
        current = [original[0], *current]
    return current, original


def resample_channels(logits: np.ndarray, shape: Sequence[int], current: list[float], original: list[float],
                       configuration: ConfigurationPlan, num_threads: int) -> np.ndarray:
    settings = ResamplingSettings.from_plan(configuration.resampling_fn_probabilities_kwargs)
    out = resample_to_shape(logits.astype(np.float32, copy=False), shape, current, original, settings, num_threads)
    if logits.dtype == np.float16 and out is not logits:  # keep the input's precision, as nnU-Net does
        out = out.astype(np.float16).astype(np.float32)
    return out


def _as_numpy(logits: Any) -> np.ndarray:
    """float32 numpy logits (from numpy or a CPU tensor); float16 ones (large cases) stay float16 and are widened
    channel by channel."""
    if hasattr(logits, "detach"):  # a torch tensor (final validation hands over the trainer's)
        logits = logits.detach().to("cpu").numpy()
    logits = np.asarray(logits)
    return logits if logits.dtype in (np.float16, np.float32) else logits.astype(np.float32)


def probabilities_from_logits(logits: np.ndarray, dataset_json: DatasetJson) -> np.ndarray:
    """Softmax over channels (labels) or sigmoid per channel (regions), float32."""
    array = np.ascontiguousarray(logits, dtype=np.float32)
    return expit(array) if dataset_json.has_regions else softmax(array, axis=0)


def segmentation_from_probabilities(probabilities: np.ndarray, dataset_json: DatasetJson) -> np.ndarray:
    """Argmax for labels; for regions paint ``regions_class_order[i]`` where channel i exceeds 0.5."""
    if not dataset_json.has_regions:
        return probabilities.argmax(0)
    segmentation = np.zeros(probabilities.shape[1:], dtype=np.uint16)
    for channel, value in enumerate(_region_order(dataset_json)):
        segmentation[probabilities[channel] > 0.5] = value
    return segmentation


def _region_order(dataset_json: DatasetJson) -> tuple[int, ...]:
    if dataset_json.regions_class_order is None:
        raise ValueError("region-based dataset.json without regions_class_order")
    return dataset_json.regions_class_order


def _segmentation_channelwise(
    logits: np.ndarray,
    shape: Sequence[int],
    current: list[float],
    original: list[float],
    configuration: ConfigurationPlan,
    dataset_json: DatasetJson,
    num_threads: int,
) -> np.ndarray:
    """Resample one channel at a time and reduce immediately (same result, a fraction of the memory)."""
    if dataset_json.has_regions:
        segmentation = np.zeros(tuple(shape), dtype=np.uint16)
        for channel, value in enumerate(_region_order(dataset_json)):
            resampled = resample_channels(
                logits[channel : channel + 1], shape, current, original, configuration, num_threads
            )[0]
            segmentation[resampled > 0] = value  # sigmoid(x) > 0.5  <=>  x > 0
        return segmentation
    best = resample_channels(logits[:1], shape, current, original, configuration, num_threads)[0].copy()
    segmentation = np.zeros(tuple(shape), dtype=np.uint16)
    for channel in range(1, logits.shape[0]):
        resampled = resample_channels(
            logits[channel : channel + 1], shape, current, original, configuration, num_threads
        )[0]
        better = resampled > best  # strict: ties keep the lower label, as argmax does
        segmentation[better] = channel
        np.maximum(best, resampled, out=best)
    return segmentation


def export_logits(
    logits: np.ndarray,
    plans: Plans,
    configuration: ConfigurationPlan,
    dataset_json: DatasetJson,
    properties: dict[str, Any],
    return_probabilities: bool = False,
    num_threads: int = 1,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Logits (c, *preprocessed shape) -> (segmentation in the input's array layout, probabilities or None).

    The segmentation has the input file's (z, y, x) shape; probabilities are (c, z, y, x) float32.
    """
    array = _as_numpy(logits)
    current, original = _spacings(plans, configuration, properties)
    cropped_shape = [int(s) for s in properties["shape_after_cropping_and_before_resampling"]]
    if return_probabilities:
        resampled = resample_channels(array, cropped_shape, current, original, configuration, num_threads)
        probabilities = probabilities_from_logits(resampled, dataset_json)
        del resampled
        segmentation = segmentation_from_probabilities(probabilities, dataset_json)
    else:
        probabilities = None
        segmentation = _segmentation_channelwise(array, cropped_shape, current, original, configuration,
                                                 dataset_json, num_threads)
    full = np.zeros([int(s) for s in properties["shape_before_cropping"]], dtype=segmentation_dtype_for(dataset_json))
    insert_crop_into_image(full, segmentation.astype(full.dtype, copy=False), properties["bbox_used_for_cropping"])
    full = full.transpose(plans.transpose_backward)
    if probabilities is not None:
        probabilities = uncrop_probabilities(probabilities, properties["bbox_used_for_cropping"],
                                             properties["shape_before_cropping"], dataset_json.has_regions)
        probabilities = probabilities.transpose([0, *(i + 1 for i in plans.transpose_backward)])
    return np.ascontiguousarray(full), probabilities
