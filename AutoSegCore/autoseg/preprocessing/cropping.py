"""Cropping to the nonzero region and putting crops back, as nnU-Net v2 does.

Bounding boxes are lists of ``[lo, hi]`` pairs, one per spatial axis, and are half open: ``lo`` is the
first index inside the box and ``hi`` the first index after it, so ``tuple(slice(lo, hi) ...)`` crops.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

BoundingBox = list[list[int]]


def nonzero_mask(data: np.ndarray) -> np.ndarray:
    """Return the filled nonzero mask of a (c, z, y, x) or (c, y, x) image.

    A voxel is inside when any channel is nonzero there. Background regions that do not reach the
    array border (face connectivity) are then filled, which is what ``binary_fill_holes`` with its
    default structure does. A volume with a single slice therefore has no holes to fill.

    Parameters
    ----------
    data : np.ndarray
        Image with the channels first.

    Returns
    -------
    np.ndarray
        Boolean mask with the spatial shape of ``data``.
    """
    if data.ndim not in (3, 4):
        raise ValueError(f"data must have shape (c, z, y, x) or (c, y, x), got {data.shape}")
    mask = data[0] != 0
    for c in range(1, data.shape[0]):
        mask |= data[c] != 0
    return ndimage.binary_fill_holes(mask)


def bounding_box(mask: np.ndarray) -> BoundingBox:
    """Half-open bounding box of the True voxels of ``mask``.

    An empty mask gives the box of the whole array, as nnU-Net does.

    Parameters
    ----------
    mask : np.ndarray
        Boolean array of any dimensionality.

    Returns
    -------
    list of [lo, hi]
        One pair of Python ints per axis.
    """
    box: BoundingBox = []
    for axis in range(mask.ndim):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(np.any(mask, axis=others)) if others else np.flatnonzero(mask)
        if hits.size == 0:
            return [[0, int(n)] for n in mask.shape]
        box.append([int(hits[0]), int(hits[-1]) + 1])
    return box


def bounding_box_to_slice(bbox: Sequence[Sequence[int]]) -> tuple[slice, ...]:
    """The tuple of slices that crops an array to ``bbox``."""
    return tuple(slice(int(lo), int(hi)) for lo, hi in bbox)


def crop_to_nonzero(
    data: np.ndarray, seg: np.ndarray | None = None, nonzero_label: int = -1
) -> tuple[np.ndarray, np.ndarray, BoundingBox]:
    """Crop image and segmentation to the bounding box of the filled nonzero mask.

    Parameters
    ----------
    data : np.ndarray
        (c, z, y, x) image. The returned data is a view into it.
    seg : np.ndarray or None
        (c, z, y, x) segmentation. It is not modified; the returned one is a cropped copy in which
        background (0) voxels outside the nonzero mask are set to ``nonzero_label``.
    nonzero_label : int
        Value for the outside-the-mask background, -1 in nnU-Net.

    Returns
    -------
    data, seg, bbox
        Without ``seg`` the returned seg is int8 of shape (1, z, y, x): 0 inside the mask and
        ``nonzero_label`` outside, as nnU-Net builds it.
    """
    mask = nonzero_mask(data)
    bbox = bounding_box(mask)
    spatial = bounding_box_to_slice(bbox)
    inside = mask[spatial][None]
    data = data[(slice(None),) + spatial]
    if seg is None:
        return data, np.where(inside, np.int8(0), np.int8(nonzero_label)), bbox
    seg = seg[(slice(None),) + spatial].copy()
    seg[(seg == 0) & ~inside] = nonzero_label
    return data, seg, bbox


def insert_crop_into_image(image: np.ndarray, crop: np.ndarray, bbox: Sequence[Sequence[int]]) -> np.ndarray:
    """Write ``crop`` into ``image`` at ``bbox`` (in place) and return ``image``.

    ``bbox`` covers the last ``len(bbox)`` axes; leading axes (channels) must match. Parts of the box
    outside ``image`` are skipped, and a box entirely outside leaves ``image`` unchanged.
    """
    bbox = [[_exact_int(lo), _exact_int(hi)] for lo, hi in bbox]
    lead = image.ndim - len(bbox)
    if crop.ndim < len(bbox):
        raise ValueError("the bounding box has more axes than the crop")
    if image.shape[:lead] != crop.shape[:lead]:
        raise ValueError(f"leading axes differ: image {image.shape}, crop {crop.shape}")
    dst: list[slice] = [slice(None)] * lead
    src: list[slice] = [slice(None)] * lead
    for (lo, hi), size in zip(bbox, image.shape[lead:]):
        if hi <= 0 or lo >= size:
            return image
        start, stop = max(0, lo), min(hi, size)
        dst.append(slice(start, stop))
        src.append(slice(start - lo, start - lo + stop - start))
    image[tuple(dst)] = crop[tuple(src)]
    return image


def uncrop(
    crop: np.ndarray,
    bbox: Sequence[Sequence[int]],
    shape_before_cropping: Sequence[int],
    fill_value: float | int = 0,
    dtype: np.dtype | type | None = None,
) -> np.ndarray:
    """Place a (…, z, y, x) crop into a new array of the uncropped spatial shape.

    Leading (channel) axes of ``crop`` are kept; everything outside the box is ``fill_value``.
    """
    lead = crop.shape[: crop.ndim - len(shape_before_cropping)]
    out = np.full((*lead, *(int(s) for s in shape_before_cropping)), fill_value,
                  dtype=crop.dtype if dtype is None else dtype)
    return insert_crop_into_image(out, crop, bbox)


def uncrop_probabilities(
    probabilities: np.ndarray,
    bbox: Sequence[Sequence[int]],
    shape_before_cropping: Sequence[int],
    has_regions: bool,
) -> np.ndarray:
    """Un-crop (c, z, y, x) probabilities like nnU-Net's ``revert_cropping_on_probabilities``.

    Outside the box all channels are 0, except that channel 0 (background) is 1 when the dataset
    uses labels rather than regions, so that the argmax there is background.
    """
    out = np.zeros((probabilities.shape[0], *(int(s) for s in shape_before_cropping)),
                   dtype=probabilities.dtype)
    if not has_regions:
        out[0] = 1
    return insert_crop_into_image(out, probabilities, bbox)


def _exact_int(value: float | int) -> int:
    as_int = int(value)
    if as_int != value:
        raise ValueError(f"bounding box value {value!r} is not an integer")
    return as_int
