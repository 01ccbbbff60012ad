"""3D Slicer ``.seg.nrrd`` segmentation files: read, write, and turn into a label image on a volume's grid.

A ``.seg.nrrd`` stores one or more *layers* of integer voxels (several layers only when segments
overlap) plus, per segment, its name, the value it has in its layer, colour and terminology. Reading
and writing go through ``slicerio``; arrays here are in numpy/SimpleITK order: ``layers`` is
``(num_layers, k, j, i)`` and geometries are LPS (:class:`~autoseg.imageio.ras_geometry.Geometry`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from autoseg.errors import DatasetError
from autoseg.imageio.ras_geometry import LPS_TO_RAS, Geometry, geometry_from_ijk_to_ras, ijk_to_lps_matrix
from autoseg.imageio.segment_colors import distinct_colors
from autoseg.typing import Color
from autoseg.utils.files import atomic_path

SEG_ENDING = ".seg.nrrd"
OVERLAP_MODES = ("error", "last")
_SEGMENT_FIELD = re.compile(r"^Segment(\d+)_")


class SegmentationFileError(DatasetError):
    """A segmentation file cannot be read or written, or does not contain what was asked for."""


class SegmentNotFoundError(SegmentationFileError, KeyError):
    """A segment name that the segmentation file does not have."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def name_key(name: str) -> str:
    """The matching key of a segment or label name (case and runs of whitespace do not matter)."""
    return " ".join(name.split()).casefold()

@dataclass(frozen=True)
class SegmentInfo:
    """One segment of a segmentation file."""

    name: str
    label_value: int  # the value in its layer
    layer: int  # 0-based layer index
    color: Color | None = None  # 0..1 RGB
    terminology: str | None = None  # Slicer terminology string, as stored in the file
    segment_id: str = ""


@dataclass
class SegmentationHeader:
    """What a segmentation file says without its voxels (cheap to read)."""

    path: Path | None
    segments: list[SegmentInfo]
    geometry: Geometry
    shape: tuple[int, int, int]  # (k, j, i)
    num_layers: int
    extents: dict[str, tuple[int, ...]] = field(default_factory=dict)  # segment id -> i0 i1 j0 j1 k0 k1

    def segment_names(self) -> list[str]:
        return [s.name for s in self.segments]


@dataclass
class SegmentationFile:
    """A segmentation: its segments and the voxels of every layer on one LPS grid."""

    path: Path | None
    segments: list[SegmentInfo]
    geometry: Geometry  # LPS geometry of the voxel grid (the arrays below)
    layers: np.ndarray  # (num_layers, k, j, i) integer array

    @property
    def shape(self) -> tuple[int, int, int]:
        """The grid's shape in array order ``(k, j, i)``."""
        return tuple(int(s) for s in self.layers.shape[1:])  # type: ignore[return-value]

    def segment_names(self) -> list[str]:
        return [s.name for s in self.segments]

    def segment(self, name: str) -> SegmentInfo:
        """The segment called ``name`` (exactly, else ignoring case and spaces)."""
        exact = [s for s in self.segments if s.name == name]
        matches = exact or [s for s in self.segments if name_key(s.name) == name_key(name)]
        if len(matches) == 1:
            return matches[0]
        where = self.path or "the segmentation"
        if not matches:
            raise SegmentNotFoundError(
                f"{where} has no segment named {name!r}; its segments are: "
                f"{', '.join(repr(n) for n in self.segment_names()) or 'none'}."
            )
        raise SegmentationFileError(
            f"{where} has {len(matches)} segments matching {name!r} "
            f"({', '.join(repr(s.name) for s in matches)}); rename them so names are "
            f"unique (ignoring case and spaces)."
        )

    def segment_mask(self, name: str) -> np.ndarray:
        """Bool ``(k, j, i)`` mask of the segment called ``name``."""
        info = self.segment(name)
        return self.layers[info.layer] == info.label_value


# ------------------------------------------------------------------------------------------- reading
def read_segmentation_file(path: str | Path) -> SegmentationFile:
    """Read a ``.seg.nrrd`` file; SegmentationFileError naming the file and why when it cannot be used."""
    path = Path(path)
    raw, header = _read_slicerio(path, skip_voxels=False)
    voxels = raw["voxels"]
    if not np.issubdtype(voxels.dtype, np.integer):
        raise SegmentationFileError(
            f"{path} has {voxels.dtype} voxels: it is an image volume, not a segmentation "
            f"(Slicer segmentations store integer labels). Pick the .seg.nrrd file."
        )
    if voxels.ndim == 3:
        layers = np.ascontiguousarray(voxels.transpose(2, 1, 0))[np.newaxis]
    elif voxels.ndim == 4:
        layers = np.ascontiguousarray(voxels.transpose(0, 3, 2, 1))
    else:
        raise SegmentationFileError(
            f"{path} has {voxels.ndim} dimensions; a segmentation is 3D (or 4D with one "
            f"layer per group of overlapping segments)."
        )
    segments = _segments(raw, header, layers.shape[0], path)
    return SegmentationFile(path=path, segments=segments, geometry=_geometry(raw, path), layers=layers)


def read_segmentation_header(path: str | Path) -> SegmentationHeader:
    """Segments, geometry and shape of a ``.seg.nrrd`` without reading its voxels."""
    path = Path(path)
    raw, header = _read_slicerio(path, skip_voxels=True)
    sizes = [int(s) for s in header["sizes"]]
    if len(sizes) not in (3, 4):
        raise SegmentationFileError(
            f"{path} has {len(sizes)} dimensions; a segmentation is 3D (or 4D with layers)."
        )
    num_layers = sizes[0] if len(sizes) == 4 else 1
    i, j, k = sizes[-3:]
    segments = _segments(raw, header, num_layers, path)
    extents = {s["id"]: tuple(s["extent"]) for s in raw.get("segments", []) if "extent" in s and "id" in s}
    return SegmentationHeader(
        path=path,
        segments=segments,
        geometry=_geometry(raw, path),
        shape=(k, j, i),
        num_layers=num_layers,
        extents=extents,
    )


def _read_slicerio(path: Path, skip_voxels: bool) -> tuple[dict[str, Any], Mapping[str, Any]]:
    import nrrd
    import slicerio

    if not path.is_file():
        raise SegmentationFileError(
            f"{path} does not exist (or is not a file); expected a Slicer .seg.nrrd file."
        )
    try:
        header = nrrd.read_header(str(path))
        raw = slicerio.read_segmentation(str(path), skip_voxels=skip_voxels)
    except Exception as err:  # pynrrd/slicerio raise many types (NRRDError, OSError, ValueError, ...)
        raise SegmentationFileError(
            f"Cannot read {path} as a Slicer segmentation: {err}. Save the segmentation "
            f"from 3D Slicer as a .seg.nrrd file."
        ) from err
    if not raw.get("segments") and not any(str(k).startswith("Segmentation_") for k in header):
        raise SegmentationFileError(
            f"{path} is not a Slicer segmentation: it has no Segment0_Name/"
            f"Segmentation_* fields (it looks like an image volume). Pick the .seg.nrrd "
            f"file Slicer saved for the segmentation node."
        )
    return raw, header


def _geometry(raw: Mapping[str, Any], path: Path) -> Geometry:
    ijk_to_lps = np.asarray(raw["ijkToLPS"], dtype=float)
    flip = np.eye(4)
    flip[:3, :3] = LPS_TO_RAS
    try:
        return geometry_from_ijk_to_ras(flip @ ijk_to_lps)
    except ValueError as err:
        raise SegmentationFileError(
            f"{path} has an unusable geometry ('space directions'/'space origin'): {err}"
        ) from err


def _segments(
    raw: Mapping[str, Any], header: Mapping[str, Any], num_layers: int, path: Path
) -> list[SegmentInfo]:
    segments = []
    # slicerio lists segments in the order of the N in the header's SegmentN_* fields
    numbers = sorted({int(m.group(1)) for k in header if (m := _SEGMENT_FIELD.match(str(k)))})
    for index, (number, segment) in enumerate(zip(numbers, raw.get("segments", []))):
        # Slicer < 4.11 stored one segment per layer, value 1, without Layer/LabelValue fields
        layer = int(segment.get("layer", index if num_layers > 1 else 0))
        value = int(segment.get("labelValue", 1))
        if not 0 <= layer < num_layers:
            raise SegmentationFileError(
                f"{path}: segment {segment.get('name')!r} is in layer {layer}, but the file "
                f"has {num_layers} layer(s). The file is inconsistent; re-save it in Slicer."
            )
        color = segment.get("color")
        segments.append(
            SegmentInfo(
                name=str(segment.get("name", segment.get("id", f"Segment_{index}"))),
                label_value=value,
                layer=layer,
                color=_rgb(color[:3]) if color is not None and len(color) >= 3 else None,
                terminology=_terminology_string(header, number),
                segment_id=str(segment.get("id", "")),
            )
        )
    return segments


def _rgb(values: Sequence[float]) -> Color:
    r, g, b = (float(c) for c in values)
    return r, g, b


def _terminology_string(header: Mapping[str, Any], number: int) -> str | None:
    """The ``TerminologyEntry`` tag of the header's segment ``number`` exactly as the file stores it."""
    for tag in str(header.get(f"Segment{number}_Tags", "")).split("|"):
        key, _, value = tag.strip().partition(":")
        if key == "TerminologyEntry" and value:
            return value
    return None


# ------------------------------------------------------------------------------------------- writing
def write_segmentation_file(
    path: str | Path,
    labelmap: np.ndarray,
    geometry: Geometry,
    segments: Sequence[SegmentInfo] | Mapping[int, str],
    colors: Mapping[int, Color] | None = None,
) -> Path:
    """Write a one-layer ``.seg.nrrd`` of a ``(k, j, i)`` integer labelmap, atomically.

    ``segments``: SegmentInfo list (``label_value`` is the voxel value; layer is forced to 0) or a
    ``{value: name}`` mapping. Every listed segment is written, empty ones too (as Slicer does); voxels
    with values no segment lists are written as 0. ``colors`` (by label value) override segment colours;
    segments without a colour get a distinct one.
    """
    import slicerio
    from scipy.ndimage import find_objects

    path = Path(path)
    labelmap = _integer_labels(np.asarray(labelmap), path)
    infos = _segment_list(segments, path)
    values = [s.label_value for s in infos]
    dtype = np.uint8 if max(values, default=0) <= 255 else np.uint16
    voxels = np.where(np.isin(labelmap, values), labelmap, 0).astype(dtype).transpose(2, 1, 0)
    palette = _colors(infos, colors)
    boxes = find_objects(voxels)  # one pass for every segment's extent
    entries = [_segment_entry(info, palette[info.label_value], boxes) for info in infos]
    segmentation = {
        "voxels": voxels,
        "ijkToLPS": ijk_to_lps_matrix(geometry),
        "encoding": "gzip",
        "containedRepresentationNames": ["Binary labelmap"],
        "masterRepresentation": "Binary labelmap",
        "referenceImageExtentOffset": [0, 0, 0],
        "segments": entries,
    }
    with atomic_path(path, suffix=SEG_ENDING) as tmp:
        try:
            slicerio.write_segmentation(str(tmp), segmentation, compression_level=6)
        except (OSError, ValueError) as err:
            raise SegmentationFileError(f"Cannot write {path}: {err}") from err
    return path


def _integer_labels(labelmap: np.ndarray, path: Path) -> np.ndarray:
    """The labelmap as integers (float label files with whole values, as some datasets have, are accepted)."""
    if labelmap.ndim == 3 and np.issubdtype(labelmap.dtype, np.integer):
        return labelmap
    if labelmap.ndim == 3 and np.issubdtype(labelmap.dtype, np.floating) and np.all(np.mod(labelmap, 1) == 0):
        return labelmap.astype(np.int64)
    raise SegmentationFileError(
        f"Cannot write {path}: expected a 3D (k, j, i) labelmap of whole numbers, got "
        f"{labelmap.dtype} of shape {labelmap.shape}."
    )


def _segment_list(segments: Sequence[SegmentInfo] | Mapping[int, str], path: Path) -> list[SegmentInfo]:
    if isinstance(segments, Mapping):
        infos = [
            SegmentInfo(name=str(n), label_value=int(v), layer=0, segment_id=f"Segment_{int(v)}")
            for v, n in segments.items()
        ]
    else:
        infos = list(segments)
    seen: dict[int, str] = {}
    for info in infos:
        if info.label_value <= 0:
            raise SegmentationFileError(
                f"Cannot write {path}: segment {info.name!r} has value {info.label_value}; "
                f"segment values start at 1 (0 is empty)."
            )
        if info.label_value in seen:
            raise SegmentationFileError(
                f"Cannot write {path}: segments {seen[info.label_value]!r} and {info.name!r} "
                f"both have value {info.label_value}."
            )
        seen[info.label_value] = info.name
    return infos


def _colors(infos: Sequence[SegmentInfo], overrides: Mapping[int, Color] | None) -> dict[int, Color]:
    spare = iter(distinct_colors(len(infos)))
    palette = {}
    for info in infos:
        color = (overrides or {}).get(info.label_value) or info.color
        palette[info.label_value] = cast(Color, tuple(float(c) for c in color)) if color is not None else next(spare)
    return palette


def _segment_entry(info: SegmentInfo, color: Color, boxes: list[tuple[slice, ...] | None]) -> dict[str, Any]:
    box = boxes[info.label_value - 1] if info.label_value <= len(boxes) else None
    extent = [v for axis in box for v in (axis.start, axis.stop - 1)] if box else [0, -1] * 3
    entry: dict[str, Any] = {
        "id": info.segment_id or f"Segment_{info.label_value}",
        "name": info.name,
        "labelValue": int(info.label_value),
        "layer": 0,
        "color": [round(c, 6) for c in color],
        "extent": extent,
    }
    if info.terminology:
        entry["tags"] = {"TerminologyEntry": info.terminology}
    return entry


def combine_segments(
    seg: SegmentationFile, name_to_value: Mapping[str, int], overlap: str = "error"
) -> np.ndarray:
    """One ``(k, j, i)`` label array on the segmentation's own grid (see
    :func:`autoseg.dataset.export.grid_alignment.labelmap_on_reference`)."""
    chosen = [
        (seg.segment(name), int(value))
        for name, value in name_to_value.items()
        if any(name_key(s.name) == name_key(name) for s in seg.segments)
    ]
    top = max((v for _, v in chosen), default=0)
    dtype = np.uint8 if top <= 255 else np.uint16
    if seg.layers.shape[0] == 1 and seg.layers.size and seg.layers.min() >= 0:
        # one layer: segments cannot overlap; relabel every voxel in one pass
        lookup = np.zeros(int(seg.layers.max()) + 1, dtype=dtype)
        for info, value in chosen:
            if info.label_value < lookup.size:
                lookup[info.label_value] = value
        return lookup[seg.layers[0]]
    out = np.zeros(seg.shape, dtype=dtype)
    owner = np.zeros(seg.shape, dtype=np.int32) if overlap == "error" and seg.layers.shape[0] > 1 else None
    clashes: dict[tuple[int, int], int] = {}
    for index, (info, value) in enumerate(chosen, start=1):
        mask = seg.layers[info.layer] == info.label_value
        if owner is not None:
            previous = owner[mask]
            for other, count in zip(*np.unique(previous[previous > 0], return_counts=True)):
                if chosen[other - 1][1] != value:
                    clashes[(int(other) - 1, index - 1)] = int(count)
            owner[mask] = index
        out[mask] = value
    if clashes:
        pairs = "; ".join(
            f"{chosen[a][0].name!r} and {chosen[b][0].name!r} share {n} voxel(s)"
            for (a, b), n in sorted(clashes.items())
        )
        raise SegmentationFileError(
            f"{seg.path or 'The segmentation'} has overlapping segments: {pairs}. A label "
            f"image holds one label per voxel: remove the overlap in Slicer (e.g. Segment "
            f"Editor > Logical operators), or export with overlap='last' (--overlap last) "
            f"so the later label wins."
        )
    return out
