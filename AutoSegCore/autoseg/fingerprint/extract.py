"""Extract the dataset fingerprint from a raw dataset (nnU-Net v2's algorithm, parallel and RAM-aware).

Per case: read, crop to the nonzero region, record spacing and cropped shape, and draw a fixed-size
random sample (with replacement, seed 1234) of foreground intensities per channel. The global
statistics are computed over the pooled samples, exactly as nnU-Net does, so CT normalisation matches.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autoseg.dataset.cases import training_cases
from autoseg.dataset.dataset_json import DatasetJson
from autoseg.errors import DatasetError
from autoseg.fingerprint.fingerprint import DatasetFingerprint
from autoseg.imageio.registry import reader_writer_class_by_name, reader_writer_for_dataset_folder
from autoseg.preprocessing.cropping import crop_to_nonzero
from autoseg.preprocessing.memory import case_peak_bytes
from autoseg.typing import ProgressCallback
from autoseg.utils.parallel import choose_num_workers, run_tasks

logger = logging.getLogger(__name__)

#: Foreground intensity samples over the whole dataset (split evenly across cases), as nnU-Net.
TOTAL_FOREGROUND_SAMPLES = 10e7
SAMPLING_SEED = 1234
PERCENTILES = (0.5, 50.0, 99.5)


@dataclass(frozen=True)
class CaseFingerprint:
    spacing: list[float]
    shape_after_crop: list[int]
    foreground_samples: list[np.ndarray]  # per channel
    relative_size_after_cropping: float


def sample_foreground_intensities(seg: np.ndarray, images: np.ndarray, num_samples: int) -> list[np.ndarray]:
    """Per channel, ``num_samples`` foreground intensities drawn with replacement (seed 1234)."""
    rng = np.random.RandomState(SAMPLING_SEED)
    mask = seg[0] > 0
    samples = []
    for channel in images:
        foreground = channel[mask]
        samples.append(
            rng.choice(foreground, num_samples, replace=True) if foreground.size else np.empty(0, np.float32)
        )
    return samples


def fingerprint_case(
    image_files: list[Path], label_file: Path, reader_writer_name: str, num_samples: int
) -> CaseFingerprint:
    """Fingerprint of one case (runs in a worker process)."""
    reader = reader_writer_class_by_name(reader_writer_name)()
    images, properties = reader.read_images(image_files)
    seg, _ = reader.read_seg(label_file)
    if np.isnan(images).any():
        raise DatasetError(f"{image_files[0]}: the image contains NaN values. Replace them before planning.")
    cropped, cropped_seg, _ = crop_to_nonzero(images, seg)
    return CaseFingerprint(
        spacing=[float(s) for s in properties["spacing"]],
        shape_after_crop=[int(s) for s in cropped.shape[1:]],
        foreground_samples=sample_foreground_intensities(cropped_seg, cropped, num_samples),
        relative_size_after_cropping=float(np.prod(cropped.shape[1:]) / np.prod(images.shape[1:])),
    )


def intensity_statistics(samples: np.ndarray) -> dict[str, float]:
    """The fingerprint's per-channel statistics over pooled foreground samples."""
    if samples.size == 0:
        return {k: float("nan") for k in ("mean", "median", "std", "min", "max", "percentile_99_5", "percentile_00_5")}
    p005, median, p995 = np.percentile(samples, PERCENTILES)
    return {
        "mean": float(np.mean(samples)),
        "median": float(median),
        "std": float(np.std(samples)),
        "min": float(np.min(samples)),
        "max": float(np.max(samples)),
        "percentile_99_5": float(p995),
        "percentile_00_5": float(p005),
    }


def _pool_samples(results: list[CaseFingerprint], num_channels: int) -> list[np.ndarray]:
    """Concatenate the per-case samples channel by channel, releasing each case's copy as it goes."""
    pooled = []
    for c in range(num_channels):
        total = sum(r.foreground_samples[c].size for r in results)
        dtype = np.result_type(*[r.foreground_samples[c].dtype for r in results])
        out, position = np.empty(total, dtype=dtype), 0
        for r in results:
            samples = r.foreground_samples[c]
            out[position : position + samples.size] = samples
            position += samples.size
            r.foreground_samples[c] = samples[:0]
        pooled.append(out)
    return pooled


def extract_fingerprint(
    raw_folder: str | Path,
    num_processes: int | None = None,
    progress: ProgressCallback | None = None,
) -> DatasetFingerprint:
    """Compute the fingerprint of the raw dataset in ``raw_folder``."""
    raw_folder = Path(raw_folder)
    dataset_json = DatasetJson.load(raw_folder / "dataset.json")
    cases = training_cases(raw_folder, dataset_json)
    if not cases:
        raise DatasetError(f"{raw_folder} has no training cases (imagesTr/ is empty or missing).")
    first_image = next(iter(cases.values())).images[0]
    reader_name = type(reader_writer_for_dataset_folder(dataset_json.raw, first_image)).__name__
    num_samples = int(TOTAL_FOREGROUND_SAMPLES // len(cases))
    peak = max(case_peak_bytes(c.images, c.label, None) for c in cases.values())
    workers = choose_num_workers(num_processes, peak, len(cases))
    arguments = [(list(c.images), c.label, reader_name, num_samples) for c in cases.values()]
    results = run_tasks(fingerprint_case, arguments, workers, progress, task_names=list(cases))
    pooled = _pool_samples(results, dataset_json.num_channels)
    return DatasetFingerprint(
        spacings=[r.spacing for r in results],
        shapes_after_crop=[r.shape_after_crop for r in results],
        foreground_intensity_properties_per_channel={str(c): intensity_statistics(s) for c, s in enumerate(pooled)},
        median_relative_size_after_cropping=float(np.median([r.relative_size_after_cropping for r in results])),
    )
