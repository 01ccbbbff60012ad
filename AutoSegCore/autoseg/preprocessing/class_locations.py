"""Foreground locations per class or region, for oversampling foreground patches during training."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

LabelOrRegion = int | tuple[int, ...]
MIN_SAMPLES = 10000
MIN_COVERAGE = 0.01
SEED = 1234


def sample_class_locations(
    seg: np.ndarray,
    classes_or_regions: Sequence[int | tuple[int, ...] | list[int]],
    seed: int = SEED,
    min_num_samples: int = MIN_SAMPLES,
    min_percent_coverage: float = MIN_COVERAGE,
) -> dict[LabelOrRegion, np.ndarray]:
    """Random voxel coordinates (rows of ``seg.ndim`` indices) of every class or region.

    Per class: ``max(min(10000, n), ceil(1% of n))`` distinct voxels, drawn with a fixed seed so
    repeated preprocessing gives identical results (nnU-Net's sampling, bit for bit).
    """
    rng = np.random.RandomState(seed)
    keys: list[LabelOrRegion] = []
    wanted: set[int] = set()
    for c in classes_or_regions:
        labels = tuple(int(x) for x in c) if isinstance(c, (tuple, list)) else int(c)
        keys.append(labels)
        wanted.update(labels if isinstance(labels, tuple) else (labels,))
    selected = np.isin(seg, np.fromiter(wanted, dtype=np.int32, count=len(wanted)))
    coordinates = np.argwhere(selected)
    values = seg[selected]
    del selected
    if values.size == 0:
        return {k: np.zeros((0, seg.ndim), dtype=np.int64) for k in keys}
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    sorted_coordinates = coordinates[order]
    boundaries = np.flatnonzero(sorted_values[1:] != sorted_values[:-1]) + 1
    starts = np.r_[0, boundaries]
    ends = np.r_[boundaries, values.size]
    ranges = {int(sorted_values[s]): (int(s), int(e)) for s, e in zip(starts, ends)}
    return {
        key: _pick(key, ranges, sorted_coordinates, rng, min_num_samples, min_percent_coverage, seg.ndim)
        for key in keys
    }


def _pick(
    key: LabelOrRegion,
    ranges: dict[int, tuple[int, int]],
    sorted_coordinates: np.ndarray,
    rng: np.random.RandomState,
    min_num_samples: int,
    min_percent_coverage: float,
    ndim: int,
) -> np.ndarray:
    labels = key if isinstance(key, tuple) else (key,)
    spans = [ranges[lab] for lab in labels if lab in ranges and ranges[lab][1] > ranges[lab][0]]
    if not spans:
        return np.zeros((0, ndim), dtype=np.int64)
    counts = np.array([e - s for s, e in spans])
    total = int(counts.sum())
    n = max(min(min_num_samples, total), int(np.ceil(total * min_percent_coverage)))
    offsets = rng.choice(total, n, replace=False)
    cumulative = np.cumsum(counts)
    which = np.searchsorted(cumulative, offsets, side="right")
    previous = np.concatenate(([0], cumulative[:-1]))
    span_starts = np.array([s for s, _ in spans], dtype=np.int64)
    return sorted_coordinates[span_starts[which] + (offsets - previous[which]).astype(np.int64)]


def classes_to_sample(
    foreground_labels: Sequence[int],
    foreground_regions: Sequence[LabelOrRegion],
    has_regions: bool,
    all_labels: Sequence[int],
    ignore_label: int | None,
) -> list[int | tuple[int, ...]]:
    """What to collect locations for: labels (or regions), plus everything annotated when an ignore label exists."""
    wanted: list[int | tuple[int, ...]] = list(foreground_regions if has_regions else foreground_labels)
    if ignore_label is not None:
        wanted.append((-1, *all_labels))
    return wanted
