"""Segment names <-> label values across the cases of a dataset (AutoSegPlanner's label table).

Segments are matched by name case-insensitively, ignoring surrounding and repeated whitespace
("Left Kidney" == "left  kidney"). The first spelling seen (or the existing dataset.json's) is kept.
Label values are consecutive from 1 in order of first appearance, after the labels an existing
dataset already has; "background" is always 0 and cannot be a segment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from autoseg.imageio.segmentation_file import name_key

BACKGROUND = "background"


@dataclass
class LabelTable:
    """The dataset's labels and, per case, which label each segment becomes."""

    labels: dict[str, int]  # name -> value, "background": 0 first, values consecutive
    case_segments: dict[str, dict[str, int]] = field(default_factory=dict)  # case -> segment name -> value
    new_labels: list[str] = field(default_factory=list)  # labels not in the existing dataset.json
    missing: dict[str, list[str]] = field(default_factory=dict)  # case -> labels it has no segment for

    def value_of(self, name: str) -> int | None:
        key = name_key(name)
        return next((v for n, v in self.labels.items() if name_key(n) == key), None)


class LabelMappingError(ValueError):
    """Segment names that cannot be mapped (a segment named background, two segments of one case matching)."""


def build_label_table(
    case_segment_names: Mapping[str, Sequence[str]],
    existing_labels: Mapping[str, int] | None = None,
) -> LabelTable:
    """Match the segment names of every case to one label table.

    ``case_segment_names``: case id -> its segment names. ``existing_labels``: the ``labels`` of the
    dataset.json being extended (values must be 0..N consecutive); its names and values are kept.
    """
    labels = _existing(existing_labels)
    known = {name_key(n) for n in labels}
    new_labels: list[str] = []
    case_segments: dict[str, dict[str, int]] = {}
    for case, names in case_segment_names.items():
        seen: dict[str, str] = {}
        mapping: dict[str, int] = {}
        for name in names:
            key = name_key(name)
            if not key:
                raise LabelMappingError(f"Case {case!r} has a segment without a name; name every segment.")
            if key == BACKGROUND:
                raise LabelMappingError(f"Case {case!r} has a segment named {name!r}; 'background' is label 0 and "
                                        f"cannot be a segment. Rename or remove it.")
            if key in seen:
                raise LabelMappingError(f"Case {case!r} has two segments that match the same label: {seen[key]!r} "
                                        f"and {name!r} (names are compared ignoring case and spaces). Merge or "
                                        f"rename one of them.")
            seen[key] = name
            if key not in known:
                labels[name] = len(labels)
                known.add(key)
                new_labels.append(name)
            mapping[name] = _value(labels, key)
        case_segments[case] = mapping
    missing = {}
    for case, mapping in case_segments.items():
        present = {name_key(n) for n in mapping}
        absent = [n for n in labels if name_key(n) != BACKGROUND and name_key(n) not in present]
        if absent:
            missing[case] = absent
    return LabelTable(labels=labels, case_segments=case_segments, new_labels=new_labels, missing=missing)


def _value(labels: Mapping[str, int], key: str) -> int:
    return next(v for n, v in labels.items() if name_key(n) == key)


def _existing(existing: Mapping[str, int] | None) -> dict[str, int]:
    if not existing:
        return {BACKGROUND: 0}
    values = {}
    for name, value in existing.items():
        if not isinstance(value, int) or isinstance(value, bool):
            raise LabelMappingError(f"Label {name!r} of the existing dataset is {value!r}: only plain integer labels "
                                    f"can be extended from segmentations (region-based datasets cannot).")
        values[name] = value
    ordered = dict(sorted(values.items(), key=lambda item: item[1]))
    if sorted(ordered.values()) != list(range(len(ordered))):
        raise LabelMappingError(
            f"The existing dataset's labels {ordered} are not consecutive from 0; fix its dataset.json."
        )
    if name_key(next(iter(ordered))) != BACKGROUND:
        raise LabelMappingError(f"The existing dataset's label 0 is {next(iter(ordered))!r}; it must be 'background'.")
    return ordered
