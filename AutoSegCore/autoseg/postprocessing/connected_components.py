"""Keep only the largest connected component of a binary mask, fast.

Components are connected through faces, edges and corners (full connectivity: 8 neighbours in 2D, 26
in 3D), as ``acvl_utils.morphology.remove_all_but_largest_component`` (scikit-image's default
connectivity) that nnU-Net uses. When several components share the largest size, all of them are kept,
as there.

Speed comes from labelling only the bounding box of the mask (``scipy.ndimage.label``) and sizing the
components with one ``bincount``; masks with a single component are recognised without building any
full-size output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np
from scipy import ndimage

BoundingBox = tuple[slice, ...]


@dataclass(frozen=True)
class SmallerComponents:
    """The voxels of a mask outside its largest component(s), within the mask's bounding box."""

    box: BoundingBox
    removed: np.ndarray  # bool, the shape of the box

    @property
    def count(self) -> int:
        return int(np.count_nonzero(self.removed))


def full_connectivity(ndim: int) -> np.ndarray:
    """The ``3 x ... x 3`` all-True structuring element: faces, edges and corners connect."""
    return np.ones((3,) * ndim, dtype=bool)


def bounding_box(mask: np.ndarray) -> BoundingBox | None:
    """The smallest box holding every True voxel of ``mask``; None when it is empty."""
    if mask.ndim == 0:
        raise ValueError("bounding_box needs an array with at least one axis.")
    if mask.ndim == 1:
        hits = np.flatnonzero(mask)
        return (slice(int(hits[0]), int(hits[-1]) + 1),) if hits.size else None
    first = mask.any(axis=tuple(range(1, mask.ndim)))  # one pass over the full array
    rows = np.flatnonzero(first)
    if rows.size == 0:
        return None
    start, stop = int(rows[0]), int(rows[-1]) + 1
    rest = cast(np.ndarray, mask[start:stop].any(axis=0))  # a second pass, over the occupied slab only
    box = [slice(start, stop)]
    for axis in range(rest.ndim):
        hits = np.flatnonzero(rest.any(axis=tuple(a for a in range(rest.ndim) if a != axis)))
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)


def smaller_components(mask: np.ndarray) -> SmallerComponents | None:
    """What keeping the largest component removes from ``mask``; None when nothing would be removed
    (empty mask, a single component, or components that all tie for the largest size)."""
    mask = np.asarray(mask, dtype=bool)
    box = bounding_box(mask)
    if box is None:
        return None
    cropped = mask[box]
    labelled, count = ndimage.label(cropped, structure=full_connectivity(mask.ndim))
    if count <= 1:
        return None
    sizes = np.bincount(labelled.ravel(), minlength=count + 1)
    sizes[0] = 0
    keep = sizes == sizes.max()
    if int(np.count_nonzero(keep)) == count:
        return None
    keep[0] = True  # background stays "not removed"
    return SmallerComponents(box=box, removed=~keep[labelled])


def largest_component(mask: np.ndarray) -> np.ndarray:
    """A copy of ``mask`` (as bool) without the voxels outside its largest connected component(s)."""
    kept = np.array(mask, dtype=bool, copy=True)
    smaller = smaller_components(kept)
    if smaller is not None:
        kept[smaller.box][smaller.removed] = False
    return kept
