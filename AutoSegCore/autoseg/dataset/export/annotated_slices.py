"""Which slices of a partially annotated case are annotated: parsing, the sidecar file, the ignore mask.

A case is partially annotated when only some slices of its channel-0 volume were segmented; every other
voxel of its label image gets the dataset's ignore label. The slices are given per case in a sidecar file
next to the segmentation, ``CASE.annotated_slices.json``::

    {"axis": "K", "slices": [3, "10-20", 35]}

or for every case with ``-annotated_slices K:3,10-20,35`` (``K:auto``: the slices holding any segment).
``axis`` is an axis of the channel-0 volume's voxel grid as in Slicer's IJK (I = x, fastest; K = z,
slowest); ranges ``"a-b"`` are inclusive; ``"slices": "auto"`` is accepted in the file too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autoseg.errors import DatasetError
from autoseg.imageio.segmentation_file import SEG_ENDING
from autoseg.utils.files import save_json

#: Slicer IJK axis -> axis of a numpy/SimpleITK ``(k, j, i)`` array.
ARRAY_AXIS = {"I": 2, "J": 1, "K": 0}
SIDECAR_ENDING = ".annotated_slices.json"
AUTO = "auto"


class AnnotatedSlicesError(DatasetError):
    """An annotated-slices request that cannot be used (bad axis, bad slice, empty, out of range)."""


@dataclass(frozen=True)
class SliceRequest:
    """The annotated slices as asked for, before they are checked against the case's volume."""

    axis: str  # "I", "J" or "K"
    slices: tuple[int, ...] | None  # sorted and unique; None: "auto"
    source: str  # where the request comes from (a sidecar file or the flag), for messages

    @property
    def is_auto(self) -> bool:
        return self.slices is None

    def describe(self) -> str:
        return f"{self.axis}:{AUTO if self.slices is None else format_slices(self.slices)}"


@dataclass(frozen=True)
class AnnotatedSlices:
    """The checked annotated slices of one case on its channel-0 grid."""

    axis: str
    slices: tuple[int, ...]  # sorted, unique, within 0 .. num_slices - 1
    num_slices: int  # slices of the volume along ``axis``
    source: str
    outside_voxels: int = 0  # labelled voxels outside the annotated slices (they become ignore)

    def summary(self) -> str:
        """E.g. ``12/40 slices along K annotated (a.annotated_slices.json)``."""
        text = f"{len(self.slices)}/{self.num_slices} slices along {self.axis} annotated ({self.source})"
        if self.outside_voxels:
            text += f"; {self.outside_voxels} labelled voxel(s) outside them become ignore"
        return text


def sidecar_path(segmentation: str | Path) -> Path:
    """``CASE.annotated_slices.json`` next to ``CASE.seg.nrrd``."""
    segmentation = Path(segmentation)
    name = segmentation.name
    stem = name[: -len(SEG_ENDING)] if name.lower().endswith(SEG_ENDING) else segmentation.stem
    return segmentation.with_name(stem + SIDECAR_ENDING)


def format_slices(slices: Iterable[int]) -> str:
    """Slice numbers as compact ranges: ``[1, 2, 3, 7]`` -> ``"1-3,7"``."""
    runs: list[list[int]] = []
    for value in sorted({int(s) for s in slices}):
        if runs and value == runs[-1][1] + 1:
            runs[-1][1] = value
        else:
            runs.append([value, value])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def parse_slices(items: Sequence[int | str], source: str) -> tuple[int, ...]:
    """Sorted unique slice numbers of ints, ``"7"`` and inclusive ``"a-b"`` ranges; error naming ``source``."""
    values: set[int] = set()
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, str)):
            raise AnnotatedSlicesError(f"{source}: slice {item!r} is not a slice number or an 'a-b' range.")
        if isinstance(item, int):
            first, last = item, item
        else:
            first, last = _parse_range(item.strip(), source)
        if first < 0:
            raise AnnotatedSlicesError(f"{source}: slice {item!r} is negative; slices are numbered from 0.")
        if last < first:
            raise AnnotatedSlicesError(f"{source}: range {item!r} ends before it starts; write it as 'low-high'.")
        values.update(range(first, last + 1))
    if not values:
        raise AnnotatedSlicesError(f"{source}: no slices are selected; list at least one annotated slice.")
    return tuple(sorted(values))


def _parse_range(text: str, source: str) -> tuple[int, int]:
    low, dash, high = text.partition("-")
    try:
        return (int(low), int(high)) if dash else (int(text), int(text))
    except ValueError:
        raise AnnotatedSlicesError(
            f"{source}: {text!r} is not a slice number or an inclusive range such as '10-20'."
        ) from None


def _axis(value: object, source: str) -> str:
    axis = value.strip().upper() if isinstance(value, str) else None
    if axis not in ARRAY_AXIS:
        raise AnnotatedSlicesError(
            f"{source}: axis {value!r} is not one of I, J, K (the channel-0 volume's voxel axes as in Slicer's "
            f"IJK: I = x, J = y, K = z, the usual slice axis)."
        )
    return axis


def parse_request(text: str, source: str = "-annotated_slices") -> SliceRequest:
    """The flag value ``AXIS:SPEC``, e.g. ``K:10-20,35`` or ``K:auto``."""
    axis, colon, spec = text.partition(":")
    if not colon or not spec.strip():
        raise AnnotatedSlicesError(
            f"{source} {text!r}: expected AXIS:SLICES, e.g. K:10-20,35 or K:auto (AXIS one of I, J, K)."
        )
    spec = spec.strip()
    slices = None if spec.lower() == AUTO else parse_slices(spec.split(","), f"{source} {text!r}")
    return SliceRequest(axis=_axis(axis, f"{source} {text!r}"), slices=slices, source=source)


def read_sidecar(path: str | Path) -> SliceRequest:
    """Read a ``CASE.annotated_slices.json`` file; AnnotatedSlicesError naming the file when it is unusable."""
    path = Path(path)
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise AnnotatedSlicesError(f"{path}: cannot be read as JSON ({err}).") from None
    if not isinstance(content, dict) or "axis" not in content or "slices" not in content:
        raise AnnotatedSlicesError(
            f'{path}: expected {{"axis": "K", "slices": [3, "10-20"]}} (axis I, J or K; slices numbers, '
            f'"a-b" ranges, or "auto").'
        )
    axis = _axis(content["axis"], str(path))
    slices = content["slices"]
    if isinstance(slices, str) and slices.strip().lower() == AUTO:
        return SliceRequest(axis=axis, slices=None, source=path.name)
    if not isinstance(slices, list):
        raise AnnotatedSlicesError(f'{path}: "slices" must be a list of slice numbers and "a-b" ranges, or "auto".')
    return SliceRequest(axis=axis, slices=parse_slices(slices, str(path)), source=path.name)


def write_sidecar(segmentation: str | Path, axis: str, slices: Iterable[int] | str) -> Path:
    """Write ``CASE.annotated_slices.json`` next to ``CASE.seg.nrrd``; returns its path.

    ``slices``: the annotated slice numbers along ``axis`` (I, J or K of the channel-0 volume), or ``"auto"``.
    """
    path = sidecar_path(segmentation)
    axis = _axis(axis, str(path))
    if isinstance(slices, str):
        request = parse_request(f"{axis}:{slices}", str(path))
        entries: list[int | str] | str = AUTO if request.slices is None else _ranges(request.slices)
    else:
        entries = _ranges(parse_slices(list(slices), str(path)))
    save_json({"axis": axis, "slices": entries}, path, indent=2)
    return path


def _ranges(slices: Sequence[int]) -> list[int | str]:
    return [int(part) if "-" not in part else part for part in format_slices(slices).split(",")]


def labelled_slices(labels: np.ndarray, axis: str) -> tuple[int, ...]:
    """The slices along ``axis`` of a ``(k, j, i)`` label array that hold any non-zero voxel."""
    other = tuple(a for a in range(3) if a != ARRAY_AXIS[axis])
    return tuple(int(s) for s in np.flatnonzero(np.any(labels != 0, axis=other)))


def check_request(request: SliceRequest, labels: np.ndarray, where: str) -> AnnotatedSlices:
    """The request checked against a case's label array on its channel-0 grid (``(k, j, i)``).

    ``where`` names the case for messages. AnnotatedSlicesError for slices beyond the volume, or an ``auto``
    request on a case without any labelled voxel.
    """
    array_axis = ARRAY_AXIS[request.axis]
    count = int(labels.shape[array_axis])
    slices = labelled_slices(labels, request.axis) if request.slices is None else request.slices
    if not slices:
        raise AnnotatedSlicesError(
            f"{where} ({request.source}): 'auto' found no slice along {request.axis} with a labelled voxel, so "
            f"nothing would be annotated. Paint the annotated slices, or list them explicitly."
        )
    beyond = [s for s in slices if s >= count]
    if beyond:
        raise AnnotatedSlicesError(
            f"{where} ({request.source}): slice(s) {format_slices(beyond)} along {request.axis} are out of range; "
            f"the volume has {count} slices along {request.axis} (0-{count - 1})."
        )
    inside = annotated_mask(labels.shape, request.axis, slices)
    outside = int(np.count_nonzero(labels[~inside]))
    return AnnotatedSlices(request.axis, tuple(slices), count, request.source, outside)


def annotated_mask(shape: Sequence[int], axis: str, slices: Sequence[int]) -> np.ndarray:
    """Bool ``(k, j, i)`` array: True on the annotated slices."""
    array_axis = ARRAY_AXIS[axis]
    selected = np.zeros(int(shape[array_axis]), dtype=bool)
    selected[list(slices)] = True
    view = [1, 1, 1]
    view[array_axis] = selected.size
    return np.broadcast_to(selected.reshape(view), tuple(int(s) for s in shape))


def apply_ignore(labels: np.ndarray, annotated: AnnotatedSlices, ignore_label: int) -> np.ndarray:
    """A copy of ``labels`` with every voxel outside the annotated slices set to ``ignore_label``."""
    dtype = labels.dtype if ignore_label <= np.iinfo(labels.dtype).max else np.uint16
    out = labels.astype(dtype, copy=True)
    out[~annotated_mask(labels.shape, annotated.axis, annotated.slices)] = ignore_label
    return out
