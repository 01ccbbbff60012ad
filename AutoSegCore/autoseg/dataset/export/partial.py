"""Planning the export of partially annotated cases: their annotated slices and the dataset's ignore label.

A case is partial when its ``CASE.annotated_slices.json`` sidecar exists (it wins) or when the export is
asked for ``-annotated_slices`` for all cases. The ignore label follows nnU-Net v2: a label named exactly
``"ignore"`` with the highest value. A dataset that has one keeps it; otherwise the first partial case adds
it as the highest existing value + 1. Segments named "ignore" cannot be exported (they would be read as
that label). Problems are collected, never raised.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from autoseg.dataset.export.annotated_slices import (
    AnnotatedSlices,
    AnnotatedSlicesError,
    SliceRequest,
    check_request,
    parse_request,
    read_sidecar,
    sidecar_path,
)
from autoseg.dataset.export.cases import ExportCase
from autoseg.dataset.export.grid_alignment import labelmap_on_reference
from autoseg.dataset.export.label_mapping import LabelTable
from autoseg.dataset.export.write import volume_information
from autoseg.errors import AutoSegError
from autoseg.imageio.ras_geometry import Geometry
from autoseg.imageio.segmentation_file import SegmentationHeader, name_key, read_segmentation_file

IGNORE = "ignore"


def drop_ignore_segments(headers: Mapping[str, SegmentationHeader], problems: list[str]) -> dict[str, list[str]]:
    """The segment names per case without those named "ignore" (any spelling); each one is a problem."""
    kept: dict[str, list[str]] = {}
    for case, header in headers.items():
        names = header.segment_names()
        kept[case] = [n for n in names if name_key(n) != IGNORE]
        problems.extend(
            f"case {case!r}: segment {name!r} of {header.path} is named like nnU-Net's ignore label, which marks "
            f"the not annotated voxels of partially annotated cases. Rename the segment; to leave parts of the "
            f"case unannotated, list the annotated slices in {case}.annotated_slices.json or with -annotated_slices."
            for name in names
            if name_key(name) == IGNORE
        )
    return kept


def plan_partial_cases(
    cases: Sequence[ExportCase],
    table: LabelTable,
    flag: str | SliceRequest | None,
    problems: list[str],
) -> dict[str, AnnotatedSlices]:
    """The annotated slices of every partial case (case id -> slices); problems appended.

    ``flag``: the ``-annotated_slices`` request for the cases without a sidecar (``"K:10-20"``, ``"K:auto"``).
    Reads the voxels of each partial case's segmentation to check its slices on the channel-0 grid.
    """
    default = None
    if isinstance(flag, str):
        try:
            default = parse_request(flag)
        except AnnotatedSlicesError as err:
            problems.append(str(err))
    else:
        default = flag
    partial: dict[str, AnnotatedSlices] = {}
    for case in cases:
        try:
            request = _case_request(case, default)
            labels = None if request is None else _labels_on_reference(case, table.case_segments.get(case.case_id, {}))
        except AutoSegError as err:
            problems.append(f"case {case.case_id!r}: {err}")
            continue
        if request is None or labels is None:
            continue
        try:
            where = f"case {case.case_id!r} in {case.segmentation.parent}"
            partial[case.case_id] = check_request(request, labels, where)
        except AnnotatedSlicesError as err:
            problems.append(str(err))
    return partial


def _case_request(case: ExportCase, default: SliceRequest | None) -> SliceRequest | None:
    sidecar = sidecar_path(case.segmentation)
    return read_sidecar(sidecar) if sidecar.is_file() else default


def _labels_on_reference(case: ExportCase, name_to_value: Mapping[str, int]) -> np.ndarray | None:
    """The case's label array on its channel-0 grid (None when that volume is unusable: reported elsewhere)."""
    if not case.images or not Path(case.images[0]).is_file():
        return None
    info, reason = volume_information(case.images[0])
    if reason:
        return None
    geometry = Geometry(
        spacing=tuple(info["spacing"]), origin=tuple(info["origin"]), direction=tuple(info["direction"])
    )
    shape = tuple(int(s) for s in info["size"])[::-1]
    image = labelmap_on_reference(read_segmentation_file(case.segmentation), name_to_value, (geometry, shape), "last")
    return sitk.GetArrayFromImage(image)


def choose_ignore_label(table: LabelTable, needed: bool, problems: list[str]) -> int | None:
    """The dataset's ignore value; added to ``table`` (highest value + 1) when ``needed`` and missing."""
    lookalikes = [n for n in table.labels if n != IGNORE and name_key(n) == IGNORE]
    if needed and lookalikes:
        problems.append(
            f"the dataset has a label {lookalikes[0]!r}, an ordinary class for nnU-Net (only a label named exactly "
            f"'ignore' is the ignore label); rename it in dataset.json before exporting partially annotated cases."
        )
        return None
    if IGNORE in table.labels:
        value = table.labels[IGNORE]
        return value if isinstance(value, int) else None
    if not needed:
        return None
    table.labels[IGNORE] = max(table.labels.values()) + 1
    table.new_labels.append(IGNORE)
    return table.labels[IGNORE]
