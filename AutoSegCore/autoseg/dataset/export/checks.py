"""Checks of the cases to export, from file headers: every problem is collected, none raised."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from autoseg.dataset.export.cases import ExportCase, case_id_problem
from autoseg.dataset.export.grid_alignment import bounds_overlap, world_bounds
from autoseg.dataset.export.label_mapping import LabelTable
from autoseg.dataset.export.write import volume_information
from autoseg.imageio.ras_geometry import Geometry
from autoseg.imageio.segmentation_file import (
    SegmentationFileError,
    SegmentationHeader,
    combine_segments,
    read_segmentation_file,
    read_segmentation_header,
)


def check_cases(
    cases: Sequence[ExportCase], num_channels: int, problems: list[str]
) -> dict[str, SegmentationHeader]:
    """Check names, files, channel counts and overlap of every case; the readable segmentation headers."""
    spellings: dict[str, list[str]] = {}
    for case in cases:  # Windows and macOS file names ignore case
        spellings.setdefault(case.case_id.casefold(), []).append(case.case_id)
    problems.extend(
        f"case id {ids[0]!r} is used {len(ids)} times ({', '.join(map(repr, ids))}); case ids must be unique "
        f"(ignoring upper/lower case)."
        for ids in spellings.values()
        if len(ids) > 1
    )
    if not cases:
        problems.append("there are no cases to export.")
    headers: dict[str, SegmentationHeader] = {}
    for case in cases:
        reason = case_id_problem(case.case_id)
        if reason:
            problems.append(f"{case.segmentation}: {reason}. Rename the case (its files).")
        if num_channels and len(case.images) != num_channels:
            problems.append(
                f"case {case.case_id!r} has {len(case.images)} volume(s) but the dataset has "
                f"{num_channels} channel(s); give one volume per channel, in channel order."
            )
        volumes = _volumes(case, problems)
        try:
            header = read_segmentation_header(case.segmentation)
        except SegmentationFileError as err:
            problems.append(f"case {case.case_id!r}: {err}")
            continue
        headers[case.case_id] = header
        if volumes:
            problems.extend(_placement_problems(case, header, volumes))
    return headers


def _volumes(case: ExportCase, problems: list[str]) -> list[tuple[Geometry, tuple[int, int, int]]] | None:
    """Geometry and ``(k, j, i)`` shape of every channel, or None (problems added) when one is unusable."""
    if not case.images:
        problems.append(
            f"case {case.case_id!r} has no volume; give at least the reference volume (channel 0)."
        )
        return None
    grids = []
    for path in case.images:
        if not path.is_file():
            problems.append(f"case {case.case_id!r}: volume {path} does not exist.")
            return None
        info, reason = volume_information(path)
        if reason:
            problems.append(f"case {case.case_id!r}: {reason}.")
            return None
        geometry = Geometry(
            spacing=tuple(info["spacing"]), origin=tuple(info["origin"]), direction=tuple(info["direction"])
        )
        grids.append((geometry, tuple(info["size"])[::-1]))
    return grids


def _placement_problems(
    case: ExportCase, header: SegmentationHeader, volumes: list[tuple[Geometry, tuple[int, int, int]]]
) -> list[str]:
    """Segmentation and extra channels that do not overlap the reference volume (channel 0) in space."""
    problems = []
    reference = world_bounds(*volumes[0])
    seg_bounds = _painted_bounds(header)
    if seg_bounds is not None and not bounds_overlap(seg_bounds, reference):
        problems.append(
            f"case {case.case_id!r}: the segmentation {case.segmentation.name} does not overlap the volume "
            f"{case.images[0].name} (segmented LPS box {_box(seg_bounds)}, volume {_box(reference)}). "
            f"Check that the segmentation belongs to this volume."
        )
    for path, grid in zip(case.images[1:], volumes[1:]):
        if not bounds_overlap(world_bounds(*grid), reference):
            problems.append(
                f"case {case.case_id!r}: channel volume {path.name} does not overlap the reference volume "
                f"{case.images[0].name}; all channels of a case must cover the same region."
            )
    return problems


def _painted_bounds(header: SegmentationHeader) -> np.ndarray | None:
    """The LPS box of the segments' extents (whole grid without extents; None when all are empty)."""
    boxes = []
    for segment in header.segments:
        extent = header.extents.get(segment.segment_id)
        if extent is None:
            boxes.append(world_bounds(header.geometry, header.shape))
        elif len(extent) == 6 and all(extent[a] <= extent[a + 1] for a in (0, 2, 4)):
            boxes.append(world_bounds(header.geometry, header.shape, extent))
    if not boxes:
        return None
    stacked = np.stack(boxes)
    return np.stack([stacked[:, 0].min(axis=0), stacked[:, 1].max(axis=0)])


def _box(bounds: np.ndarray) -> str:
    return "[" + ", ".join(f"{lo:.1f}..{hi:.1f}" for lo, hi in zip(bounds[0], bounds[1])) + "]"


def overlap_problems(
    cases: Sequence[ExportCase], headers: Mapping[str, SegmentationHeader], table: LabelTable
) -> list[str]:
    """Overlapping segments of segmentations stored in several layers (a single layer cannot overlap)."""
    problems = []
    for case in cases:
        header = headers.get(case.case_id)
        if header is None or header.num_layers < 2:
            continue
        try:
            combine_segments(
                read_segmentation_file(case.segmentation), table.case_segments.get(case.case_id, {})
            )
        except SegmentationFileError as err:
            problems.append(f"case {case.case_id!r}: {err}")
    return problems
