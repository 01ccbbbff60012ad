"""Resampling of images, segmentations and probabilities, numerically identical to nnU-Net v2.

nnU-Net resizes with ``skimage.transform.resize`` (mode ``edge``, no anti-aliasing, clipped to the
input range), which is ``scipy.ndimage.zoom`` on float64 followed by a clip. We call ``zoom`` the same
way, so results are bit-identical, but avoid the work nnU-Net does not need:

* no float64 copy of the whole array (``zoom`` reads float32 input into float64 itself);
* with separate z and ``order_z == 0`` the out-of-plane step is a nearest-neighbour pick of slices, so
  it is done by indexing instead of ``map_coordinates`` with a full float64 coordinate grid, only the
  slices that are picked are resized in-plane, and each of them once;
* segmentations are resized label by label but the per-voxel argmax is accumulated with one running
  score, and slices or shapes that do not change are copied instead of interpolated;
* optional threads (``num_threads``): ``zoom`` releases the GIL, results do not depend on the count.

Segmentations follow batchgenerators' ``resize_segmentation``: every label's indicator is resized
with ``order`` (clipped to [0, 1]); each voxel gets the label with the largest score (the first one on
exact ties), except that the nearest-neighbour label wins when it shares the top score (and it is > 0).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any, TypeVar

import numpy as np
from scipy import ndimage

ANISO_THRESHOLD = 3

ShapeLike = Sequence[int] | np.ndarray
SpacingLike = Sequence[float] | np.ndarray
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class ResamplingSettings:
    """How one kind of array is resampled: the plans' ``resampling_fn_{data,seg,probabilities}_kwargs``.

    ``force_separate_z`` None applies nnU-Net's rule (separate z when a spacing is anisotropic beyond
    ``separate_z_anisotropy_threshold``); note nnU-Net's function default is False, its plans pass None.
    """

    is_seg: bool = False
    order: int = 3
    order_z: int = 0
    force_separate_z: bool | None = False
    separate_z_anisotropy_threshold: float = ANISO_THRESHOLD

    @classmethod
    def from_plan(cls, kwargs: Mapping[str, Any], **defaults: Any) -> ResamplingSettings:
        """From a plan's kwargs dict (``defaults`` fill keys it lacks); ValueError names an unknown key."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise ValueError(f"unknown resampling option(s) {unknown}; known: {sorted(known)}")
        return cls(**{**defaults, **kwargs})


def compute_new_shape(old_shape: ShapeLike, old_spacing: SpacingLike, new_spacing: SpacingLike) -> np.ndarray:
    """Shape after resampling from ``old_spacing`` to ``new_spacing`` (Python ``round``: half to even)."""
    if not len(old_shape) == len(old_spacing) == len(new_spacing):
        raise ValueError(f"shape {old_shape}, old spacing {old_spacing} and new spacing {new_spacing} differ in length")
    return np.array([int(round(i / j * k)) for i, j, k in zip(old_spacing, new_spacing, old_shape)])


def get_do_separate_z(spacing: SpacingLike, anisotropy_threshold: float = ANISO_THRESHOLD) -> bool:
    """True when the largest spacing exceeds ``anisotropy_threshold`` times the smallest."""
    return bool((np.max(spacing) / np.min(spacing)) > anisotropy_threshold)


def get_lowres_axis(spacing: SpacingLike) -> np.ndarray:
    """Indices of the axes whose spacing equals the largest one."""
    return np.where(max(spacing) / np.array(spacing) == 1)[0]


def determine_do_sep_z_and_axis(
    force_separate_z: bool | None,
    current_spacing: SpacingLike,
    new_spacing: SpacingLike,
    separate_z_anisotropy_threshold: float = ANISO_THRESHOLD,
) -> tuple[bool, int | None]:
    """Decide whether to resample the low-resolution axis separately, and which axis that is.

    ``force_separate_z`` None applies the rule: the current spacing is checked first, then the new
    one. When two or three axes share the largest spacing there is no separate z.
    """
    if force_separate_z is not None:
        axes = get_lowres_axis(current_spacing) if force_separate_z else None
        do_separate_z = bool(force_separate_z)
    elif get_do_separate_z(current_spacing, separate_z_anisotropy_threshold):
        do_separate_z, axes = True, get_lowres_axis(current_spacing)
    elif get_do_separate_z(new_spacing, separate_z_anisotropy_threshold):
        do_separate_z, axes = True, get_lowres_axis(new_spacing)
    else:
        do_separate_z, axes = False, None
    if axes is None:
        return do_separate_z, None
    if len(axes) != 1:
        return False, None
    return do_separate_z, int(axes[0])


def resize_image(image: np.ndarray, new_shape: ShapeLike, order: int = 3) -> np.ndarray:
    """float64 result of ``skimage.transform.resize(image.astype(float), new_shape, order, mode='edge',
    anti_aliasing=False)`` (clip to the input range included), without the float64 input copy."""
    if image.dtype not in (np.float32, np.float64):
        image = image.astype(np.float64)  # exact; zoom converts float32 to float64 itself
    zoom = [1 / f for f in np.divide(image.shape, tuple(new_shape))]
    out = ndimage.zoom(image, zoom, output=np.float64, order=order, mode="nearest", cval=0, grid_mode=True)
    if order == 0:
        return out  # every value is an input value: the clip would change nothing
    low = np.min(image)
    if np.isnan(low):
        low, high = np.nanmin(image), np.nanmax(image)
    else:
        high = np.max(image)
    np.clip(out, np.asarray(low), np.asarray(high), out=out)
    return out


def resize_segmentation(seg: np.ndarray, new_shape: ShapeLike, order: int = 3, num_threads: int = 1) -> np.ndarray:
    """Resize a label map per label, as batchgenerators' ``resize_segmentation`` (tie-break 'nearest').

    Returns an array of ``seg.dtype``. ``order`` 0 is plain nearest neighbour.
    """
    new_shape = tuple(int(s) for s in new_shape)
    if len(new_shape) != seg.ndim:
        raise ValueError(f"new shape {new_shape} does not match the segmentation's dimensionality {seg.shape}")
    if seg.size == 0:
        return np.zeros(new_shape, dtype=seg.dtype)
    if seg.shape == new_shape and _zoom_identity_is_exact():
        return seg.copy()  # zoom with factor 1 returns its input: every label keeps its voxels
    if order == 0:
        return resize_image(seg, new_shape, 0).astype(seg.dtype)
    labels = np.unique(seg)
    if len(labels) == 1:
        return np.full(new_shape, labels[0], dtype=seg.dtype)
    nearest = resize_image(seg, new_shape, 0)
    winner = np.zeros(new_shape, dtype=np.int16 if len(labels) < 2**15 else np.int32)
    best = np.zeros(new_shape)  # scores are >= 0, so starting at 0 equals starting with the first label
    nearest_score = np.zeros(new_shape)
    scorer = _LabelScorer(seg, labels, new_shape, order)
    for i, (region, score) in enumerate(_ordered_map(scorer.score, range(len(labels)), num_threads)):
        if score is None:
            continue  # the label reaches no output voxel
        np.copyto(winner[region], i, where=score > best[region])
        np.maximum(best[region], score, out=best[region])
        np.copyto(nearest_score[region], score, where=nearest[region] == labels[i])
    result = labels[winner]
    tie = (nearest_score == best) & (nearest_score > 0)
    result[tie] = nearest[tie]
    return result.astype(seg.dtype, copy=False)


class _LabelScorer:
    """Resized indicator ("score") of each label, computed only where it can be nonzero.

    For order 1 a score is 0 wherever the interpolation stencil misses the label, so only the label's
    bounding box (plus a one-voxel margin) is interpolated, with ``map_coordinates`` at exactly the
    coordinates ``zoom`` uses: the same per-axis weights and summation order, hence the same bits. The
    coordinate grid is built slab by slab to bound memory. Large labels and other orders use ``zoom``
    on the whole array.
    """

    SLAB_VOXELS = 1 << 21  # coordinate grid per map_coordinates call: 3 x 8 bytes x this
    CROP_FRACTION = 0.6  # map_coordinates costs ~1.3x zoom per voxel: zoom everything above this share

    def __init__(self, seg: np.ndarray, labels: np.ndarray, new_shape: tuple[int, ...], order: int) -> None:
        self.seg, self.labels, self.new_shape, self.order = seg, labels, new_shape, order
        # zoom's coordinates with grid_mode: (k + 0.5) * (in / out) - 0.5 along each axis
        self.coords = [(np.arange(o) + 0.5) * f - 0.5 for o, f in zip(new_shape, np.divide(seg.shape, new_shape))]
        self.boxes: list[tuple[slice, ...] | None] = [None] * len(labels)
        if order == 1:
            index = np.searchsorted(labels, seg).astype(np.int32) + 1
            self.boxes = list(ndimage.find_objects(index, max_label=len(labels)))

    def score(self, i: int) -> tuple[tuple[slice, ...], np.ndarray | None]:
        """Output region and the clipped score there; None where the label reaches no output voxel."""
        everything = tuple(slice(0, n) for n in self.new_shape)
        box = self.boxes[i]
        crop, region = self._crop_and_region(box) if box is not None else ((), everything)
        if region is None:
            return everything, None
        if box is None or np.prod([r.stop - r.start for r in region]) > self.CROP_FRACTION * np.prod(self.new_shape):
            zoom = [1 / f for f in np.divide(self.seg.shape, self.new_shape)]
            out = ndimage.zoom(self.seg == self.labels[i], zoom, output=np.float64, order=self.order,
                               mode="nearest", cval=0, grid_mode=True)
            return everything, np.clip(out, 0.0, 1.0, out=out)
        indicator = self.seg[crop] == self.labels[i]
        local = [self.coords[a][r] - c.start for a, (r, c) in enumerate(zip(region, crop))]
        out = np.empty([len(c) for c in local])
        step = max(1, self.SLAB_VOXELS // max(1, int(np.prod(out.shape[1:]))))
        for k in range(0, out.shape[0], step):
            grid = np.array(np.meshgrid(local[0][k:k + step], *local[1:], indexing="ij", copy=False))
            ndimage.map_coordinates(indicator, grid, output=out[k:k + step], order=self.order, mode="nearest")
        return region, np.clip(out, 0.0, 1.0, out=out)

    def _crop_and_region(self, box: tuple[slice, ...]) -> tuple[tuple[slice, ...], tuple[slice, ...] | None]:
        """Input crop (box plus one voxel, at least 3 long) and the output voxels whose stencil can
        touch the box; None when there are none."""
        crop: list[slice] = []
        region: list[slice] = []
        for sl, n, cc in zip(box, self.seg.shape, self.coords):
            lo, hi = max(sl.start - 1, 0), min(sl.stop + 1, n)
            if hi - lo < 3:
                lo, hi = max(min(lo, n - 3), 0), min(max(hi, 3), n)
            k0 = 0 if lo == 0 else int(np.searchsorted(cc, lo, side="left"))
            k1 = len(cc) if hi == n else int(np.searchsorted(cc, hi - 1, side="right"))
            if k1 <= k0:
                return tuple(crop), None
            crop.append(slice(lo, hi))
            region.append(slice(k0, k1))
        return tuple(crop), tuple(region)


def resample_data_or_seg_to_spacing(
    data: np.ndarray,
    current_spacing: SpacingLike,
    new_spacing: SpacingLike,
    is_seg: bool = False,
    order: int = 3,
    order_z: int = 0,
    force_separate_z: bool | None = False,
    separate_z_anisotropy_threshold: float = ANISO_THRESHOLD,
    num_threads: int = 1,
) -> np.ndarray:
    """Resample (c, z, y, x) ``data`` from ``current_spacing`` to ``new_spacing``.

    Note nnU-Net's default ``force_separate_z=False``; its plans pass None (apply the rule).
    """
    new_shape = compute_new_shape(np.asarray(data).shape[1:], current_spacing, new_spacing)
    settings = ResamplingSettings(is_seg, order, order_z, force_separate_z, separate_z_anisotropy_threshold)
    return resample_to_shape(data, new_shape, current_spacing, new_spacing, settings, num_threads)


def resample_data_or_seg_to_shape(
    data: np.ndarray,
    new_shape: ShapeLike,
    current_spacing: SpacingLike,
    new_spacing: SpacingLike,
    is_seg: bool = False,
    order: int = 3,
    order_z: int = 0,
    force_separate_z: bool | None = False,
    separate_z_anisotropy_threshold: float = ANISO_THRESHOLD,
    num_threads: int = 1,
) -> np.ndarray:
    """nnU-Net's function of this name, with its keyword arguments (see :func:`resample_to_shape`)."""
    settings = ResamplingSettings(is_seg, order, order_z, force_separate_z, separate_z_anisotropy_threshold)
    return resample_to_shape(data, new_shape, current_spacing, new_spacing, settings, num_threads)


def resample_to_shape(data: np.ndarray, new_shape: ShapeLike, current_spacing: SpacingLike,
                      new_spacing: SpacingLike, settings: ResamplingSettings, num_threads: int = 1) -> np.ndarray:
    """Resample (c, z, y, x) ``data`` to ``new_shape``; the spacings only choose separate-z.

    Covers images (order 3), segmentations (``is_seg``, order 1) and, at export, probabilities or
    logits (order 1). Returns ``data`` itself when the shape does not change, else a new array of
    ``data.dtype``.
    """
    data = np.asarray(data)
    do_separate_z, axis = determine_do_sep_z_and_axis(settings.force_separate_z, current_spacing, new_spacing,
                                                      settings.separate_z_anisotropy_threshold)
    return resample_data_or_seg(data, new_shape, settings, axis, do_separate_z, num_threads=num_threads)


def resample_data_or_seg(
    data: np.ndarray,
    new_shape: ShapeLike,
    settings: ResamplingSettings = ResamplingSettings(),
    axis: int | None = None,
    do_separate_z: bool = False,
    dtype_out: np.dtype | type | None = None,
    num_threads: int = 1,
) -> np.ndarray:
    """Resample every channel of (c, z, y, x) ``data`` to ``new_shape``.

    With ``do_separate_z`` the slices across ``axis`` are resized in-plane with ``settings.order`` and
    then combined along ``axis`` with ``settings.order_z`` (nearest neighbour for 0).
    """
    is_seg, order, order_z = settings.is_seg, settings.order, settings.order_z
    if data.ndim != 4:
        raise ValueError(f"data must be (c, z, y, x), got shape {data.shape}")
    new_shape = tuple(int(s) for s in new_shape)
    if len(new_shape) != 3:
        raise ValueError(f"new_shape must have 3 entries, got {new_shape}")
    if data.shape[1:] == new_shape:
        return data
    out = np.zeros((data.shape[0], *new_shape), dtype=data.dtype if dtype_out is None else dtype_out)
    if not do_separate_z:
        def one_channel(c: int) -> None:
            out[c] = _resize_fn(is_seg)(data[c], new_shape, order)

        _run_all(one_channel, range(data.shape[0]), num_threads)
        return out
    if axis is None:
        raise ValueError("do_separate_z needs the low-resolution axis")
    for c in range(data.shape[0]):
        if order_z == 0:
            _separate_z_nearest(data[c], out[c], axis, is_seg, order, num_threads)
        else:
            in_plane = _resize_in_plane(data[c], new_shape, axis, is_seg, order, num_threads)
            _resample_along_axis(in_plane, out[c], is_seg, order_z)
    return out


def _resize_fn(is_seg: bool) -> Callable[[np.ndarray, ShapeLike, int], np.ndarray]:
    return resize_segmentation if is_seg else resize_image


def _nearest_indices(old_size: int, new_size: int) -> np.ndarray:
    """Source index of each target position: what ``map_coordinates(order=0, mode='nearest')`` picks
    at nnU-Net's coordinates ``old/new * (i + 0.5) - 0.5``."""
    coords = float(old_size) / new_size * (np.arange(new_size) + 0.5) - 0.5
    return np.clip(np.floor(coords + 0.5), 0, old_size - 1).astype(np.intp)


def _resize_slice(image: np.ndarray, shape_2d: tuple[int, ...], is_seg: bool, order: int) -> np.ndarray:
    """In-plane resize of one slice; unchanged slices are copied (zoom by 1 returns its input)."""
    if image.shape == shape_2d and _zoom_identity_is_exact():
        return image
    return _resize_fn(is_seg)(image, shape_2d, order)


def _separate_z_nearest(channel: np.ndarray, out: np.ndarray, axis: int, is_seg: bool, order: int,
                        num_threads: int) -> None:
    """Separate z with ``order_z == 0``: resize only the picked slices and place them by index."""
    src = np.moveaxis(channel, axis, 0)
    dst = np.moveaxis(out, axis, 0)
    shape_2d = dst.shape[1:]
    picks = _nearest_indices(src.shape[0], dst.shape[0])

    def one_slice(source: int) -> None:
        dst[picks == source] = _resize_slice(src[source], shape_2d, is_seg, order)

    _run_all(one_slice, np.unique(picks), num_threads)


def _resize_in_plane(channel: np.ndarray, new_shape: tuple[int, ...], axis: int, is_seg: bool, order: int,
                     num_threads: int) -> np.ndarray:
    """All slices across ``axis`` resized in-plane, as float64 (nnU-Net's ``reshaped_here``)."""
    target = list(new_shape)
    target[axis] = channel.shape[axis]
    result = np.zeros(target)
    src, dst = np.moveaxis(channel, axis, 0), np.moveaxis(result, axis, 0)

    def one_slice(i: int) -> None:
        dst[i] = _resize_slice(src[i], dst.shape[1:], is_seg, order)

    _run_all(one_slice, range(src.shape[0]), num_threads)
    return result


def _resample_along_axis(in_plane: np.ndarray, out: np.ndarray, is_seg: bool, order_z: int) -> None:
    """nnU-Net's ``map_coordinates`` step for ``order_z > 0`` (full coordinate grid; rarely used)."""
    if in_plane.shape == out.shape:
        out[...] = in_plane
        return
    grids = np.mgrid[tuple(slice(0, n) for n in out.shape)]
    coords = np.array([float(o) / n * (g + 0.5) - 0.5 for o, n, g in zip(in_plane.shape, out.shape, grids)])
    if not is_seg:
        out[...] = ndimage.map_coordinates(in_plane, coords, order=order_z, mode="nearest")
        return
    for label in np.unique(in_plane):
        score = ndimage.map_coordinates((in_plane == label).astype(float), coords, order=order_z, mode="nearest")
        out[np.round(score) > 0.5] = label


def _run_all(fn: Callable[[T], None], items: Iterable[T], num_threads: int) -> None:
    """Call ``fn`` on every item, on up to ``num_threads`` threads."""
    if num_threads <= 1:
        for item in items:
            fn(item)
        return
    with ThreadPoolExecutor(num_threads) as pool:
        for _ in pool.map(fn, items):
            pass


def _ordered_map(fn: Callable[[T], R], items: Sequence[T], num_threads: int) -> Iterator[R]:
    """``map(fn, items)`` in order, with at most ``num_threads`` results computed ahead."""
    if num_threads <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(num_threads) as pool:
        pending = [pool.submit(fn, item) for item in items[:num_threads]]
        for k in range(len(items)):
            result = pending.pop(0).result()
            if k + num_threads < len(items):
                pending.append(pool.submit(fn, items[k + num_threads]))
            yield result


@lru_cache(maxsize=1)
def _zoom_identity_is_exact() -> bool:
    """scipy >= 1.15 returns the input unchanged for zoom factor 1; older versions interpolate."""
    probe = np.random.default_rng(0).random((5, 6))
    return bool(np.array_equal(
        ndimage.zoom(probe, (1.0, 1.0), output=np.float64, order=3, mode="nearest", grid_mode=True), probe))
