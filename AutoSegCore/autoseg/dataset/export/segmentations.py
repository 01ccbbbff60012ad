"""Export annotated cases (volumes + Slicer ``.seg.nrrd``) to a new or existing ``nnUNet_raw`` dataset.

Two steps, so that a GUI can show what will happen before anything is written:

* :func:`plan_export` reads only headers (and the voxels of segmentations with overlapping layers or of
  partially annotated cases) and returns an :class:`ExportPlan`: the dataset folder, the segment-name ->
  label table across cases, the partially annotated cases and their slices, the cases that already exist,
  and *every* problem found.
* :func:`write_export` writes ``imagesTr``/``labelsTr`` (label images on channel 0's grid) and writes or
  extends ``dataset.json``. Every file is written atomically; existing cases are replaced only with
  ``overwrite=True``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autoseg.dataset.export.annotated_slices import AnnotatedSlices, SliceRequest
from autoseg.dataset.export.cases import ExportCase, find_cases_in_folder
from autoseg.dataset.export.checks import check_cases, overlap_problems
from autoseg.dataset.export.label_mapping import (
    BACKGROUND,
    LabelMappingError,
    LabelTable,
    build_label_table,
    name_key,
)
from autoseg.dataset.export.partial import IGNORE, choose_ignore_label, drop_ignore_segments, plan_partial_cases
from autoseg.dataset.export.target import (
    choose_channel_names,
    choose_file_ending,
    count_label_files,
    existing_case_ids,
    load_existing_json,
    resolve_target,
)
from autoseg.errors import AutoSegError, DatasetError
from autoseg.imageio.segmentation_file import OVERLAP_MODES
from autoseg.typing import CaseProgressCallback

__all__ = ["ExportCase", "ExportPlan", "find_cases_in_folder", "plan_export", "write_export"]


@dataclass
class ExportPlan:
    """What :func:`write_export` would write (shown to the user before writing)."""

    dataset_folder: Path  # nnUNet_raw/DatasetXXX_Name
    cases: list[ExportCase]
    label_table: LabelTable
    channel_names: dict[str, str]
    file_ending: str
    existing_cases: list[str]  # case ids already in imagesTr/labelsTr (would be overwritten)
    problems: list[str]  # everything wrong, all listed at once
    new_dataset: bool = True
    overlap: str = "error"
    dataset_json: dict[str, Any] | None = field(default=None, repr=False)  # the existing one, to extend
    partial: dict[str, AnnotatedSlices] = field(default_factory=dict)  # partially annotated case -> its slices
    ignore_label: int | None = None  # the dataset's "ignore" value (None: it has none)

    @property
    def ok(self) -> bool:
        return not self.problems

    def label_rows(self) -> list[tuple[int, str, int, list[str]]]:
        """``(value, name, number of cases that have it, cases missing it)`` per foreground label."""
        rows: list[tuple[int, str, int, list[str]]] = []
        for name, value in self.label_table.labels.items():
            if name_key(name) == BACKGROUND:
                continue
            if name == IGNORE:  # the not annotated voxels of the partial cases
                rows.append((value, name, len(self.partial), []))
                continue
            count = sum(value in mapping.values() for mapping in self.label_table.case_segments.values())
            missing = [case for case, names in self.label_table.missing.items() if name in names]
            rows.append((value, name, count, missing))
        return rows

    def format(self) -> str:
        """A text summary: target, label table, cases, problems."""
        what = "new dataset" if self.new_dataset else "existing dataset, extended"
        lines = [
            f"Target: {self.dataset_folder} ({what}); channels {self.channel_names}; file ending "
            f"{self.file_ending}",
            "",
            "Labels (value, name, cases with it, cases missing it):",
        ]
        lines.append(f"  {0:>5}  {BACKGROUND}")
        for value, name, count, missing in self.label_rows():
            absent = f"  missing in: {', '.join(missing)}" if missing else ""
            new = " (new)" if name in self.label_table.new_labels else ""
            if name == IGNORE:
                lines.append(f"  {value:>5}  {name}{new}: not annotated voxels of {count} partial case(s)")
                continue
            lines.append(f"  {value:>5}  {name}{new}: {count}/{len(self.cases)} case(s){absent}")
        lines += ["", f"Cases ({len(self.cases)}):"]
        existing = set(self.existing_cases)
        for case in self.cases:
            status = "exists, would be overwritten" if case.case_id in existing else "new"
            annotated = self.partial.get(case.case_id)
            extent = f", partial: {annotated.summary()}" if annotated else ""
            lines.append(
                f"  {case.case_id}: {len(case.images)} channel(s), {case.segmentation.name} [{status}]{extent}"
            )
        if self.problems:
            lines += ["", f"Problems ({len(self.problems)}):", *(f"  - {p}" for p in self.problems)]
        return "\n".join(lines)


def plan_export(
    cases: Sequence[ExportCase],
    raw_folder: str | Path,
    dataset: str | int,
    dataset_name: str | None = None,
    channel_names: Mapping[str, str] | Sequence[str] | None = None,
    file_ending: str | None = None,
    overlap: str = "error",
    annotated_slices: str | SliceRequest | None = None,
) -> ExportPlan:
    """Check the cases against the target dataset and build the label table; nothing is written.

    ``dataset``: an id (``5``, ``"005"``) or ``"Dataset005_Name"``. An existing ``Dataset005_*`` in
    ``raw_folder`` is extended (its label values, channel names and file ending are kept and must match);
    a new one needs ``dataset_name`` (or the full name) and ``channel_names``. ``file_ending`` defaults to
    the existing dataset's, else ``.nii.gz``. ``overlap``: ``"error"`` (overlapping segments are a problem)
    or ``"last"`` (the later label wins). ``annotated_slices`` (``"K:10-20,35"``, ``"K:auto"``) makes every case
    without a ``CASE.annotated_slices.json`` sidecar partially annotated (see
    :mod:`autoseg.dataset.export.annotated_slices`); partial cases add the ignore label when the dataset has
    none. Raises DatasetError only when the target cannot be determined.
    """
    if overlap not in OVERLAP_MODES:
        raise ValueError(f"overlap must be one of {OVERLAP_MODES}, got {overlap!r}")
    raw_folder = Path(raw_folder)
    folder = resolve_target(raw_folder, dataset, dataset_name)
    problems: list[str] = []
    existing_json = load_existing_json(folder, problems)
    ending = choose_file_ending(file_ending, existing_json, problems, folder)
    channels = choose_channel_names(channel_names, existing_json, problems, folder)
    cases = list(cases)
    headers = check_cases(cases, len(channels), problems)
    segment_names = drop_ignore_segments(headers, problems)
    table = _label_table(segment_names, existing_json, problems)
    if overlap == "error":
        problems.extend(overlap_problems(cases, headers, table))
    partial = plan_partial_cases([c for c in cases if c.case_id in headers], table, annotated_slices, problems)
    ignore_label = choose_ignore_label(table, bool(partial), problems)
    return ExportPlan(
        dataset_folder=folder,
        cases=cases,
        label_table=table,
        channel_names=channels,
        file_ending=ending,
        existing_cases=existing_case_ids(folder, [c.case_id for c in cases], ending),
        problems=problems,
        new_dataset=existing_json is None,
        overlap=overlap,
        dataset_json=existing_json,
        partial=partial,
        ignore_label=ignore_label,
    )


def _label_table(
    segment_names: Mapping[str, list[str]], existing_json: Mapping[str, Any] | None, problems: list[str]
) -> LabelTable:
    existing_labels = (existing_json or {}).get("labels") or None
    try:
        table = build_label_table(segment_names, existing_labels)
    except LabelMappingError as err:
        problems.append(str(err))
        return LabelTable(labels={BACKGROUND: 0})
    ignore = table.labels.get(IGNORE)
    if ignore is not None and ignore != max(table.labels.values()):
        known = [n for n in table.labels if n not in table.new_labels and n not in (BACKGROUND, IGNORE)]
        problems.append(
            f"The dataset's ignore label ({ignore}) must have the highest value, but the new label(s) "
            f"{', '.join(map(repr, table.new_labels))} would come after it, and its label files already use "
            f"{ignore} for not annotated voxels. Name the segments like the existing labels "
            f"({', '.join(map(repr, known))}), or export into a new dataset."
        )
    return table


def write_export(plan: ExportPlan, overwrite: bool = False, progress: CaseProgressCallback | None = None) -> list[str]:
    """Write the planned cases and dataset.json; returns the written case ids.

    Raises DatasetError when the plan has problems, or when cases already exist (checked again now) and
    ``overwrite`` is False. ``progress(done, total, case_id)`` is called after each case.
    """
    if plan.problems:
        raise DatasetError(f"Cannot export to {plan.dataset_folder}:\n  - " + "\n  - ".join(plan.problems))
    folder, ending = plan.dataset_folder, plan.file_ending
    existing = existing_case_ids(folder, [c.case_id for c in plan.cases], ending)
    if existing and not overwrite:
        raise DatasetError(
            f"{len(existing)} case(s) already exist in {folder}: {', '.join(existing)}. Nothing was "
            f"written. Rename these cases, or pass --overwrite (overwrite=True) to replace them."
        )
    from autoseg.dataset.export.write import write_case

    written: list[str] = []
    for index, case in enumerate(plan.cases, start=1):
        try:
            write_case(
                case,
                folder,
                ending,
                plan.label_table.case_segments.get(case.case_id, {}),
                plan.overlap,
                plan.partial.get(case.case_id),
                plan.ignore_label,
            )
        except AutoSegError as err:
            raise DatasetError(
                f"Case {case.case_id!r}: {err} ({len(written)} case(s) before it were written; "
                f"dataset.json is not updated yet: fix this and export again with --overwrite.)"
            ) from err
        written.append(case.case_id)
        if progress:
            progress(index, len(plan.cases), case.case_id)
    _write_dataset_json(plan)
    return written


def _write_dataset_json(plan: ExportPlan) -> None:
    from autoseg.utils.files import save_json

    content = dict(plan.dataset_json or {})
    content.pop("modality", None)
    content.update(
        {
            "channel_names": plan.channel_names,
            "labels": dict(plan.label_table.labels),
            "numTraining": count_label_files(plan.dataset_folder, plan.file_ending),
            "file_ending": plan.file_ending,
        }
    )
    save_json(content, plan.dataset_folder / "dataset.json")
