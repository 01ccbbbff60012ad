"""Every rule a ``dataset.json`` must follow, in one place.

:func:`structure_problems` are the rules :class:`~autoseg.dataset.dataset_json.DatasetJson` enforces on
load (it refuses the file, listing every broken rule); :func:`label_definition_problems` are further label
rules (regions, the ignore label, duplicate values) that only the integrity check reports, as errors or
warnings. The integrity check applies all of them leniently: it reports and goes on. The label helpers
(:func:`all_label_values`, :func:`foreground_regions`, ...) define what the ``labels`` entry means.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

LabelValue = int | tuple[int, ...]
REQUIRED_KEYS = ("labels", "numTraining", "file_ending")


@dataclass(frozen=True)
class RuleProblem:
    """A broken rule: ``message`` says what is wrong, ``fix`` how to repair it."""

    severity: Literal["error", "warning"]
    message: str
    fix: str


def error(message: str, fix: str) -> RuleProblem:
    return RuleProblem("error", message, fix)


def warning(message: str, fix: str) -> RuleProblem:
    return RuleProblem("warning", message, fix)


def is_int(value: Any) -> bool:
    """A JSON integer (``true``/``false`` are not)."""
    return isinstance(value, int) and not isinstance(value, bool)


def nonconsecutive_values(values: Sequence[int], subject: str) -> str | None:
    """The consecutive-labels rule: ``values`` (sorted) must be 0, 1, 2, ...; the problem sentence, or None."""
    if list(values) == list(range(len(values))):
        return None
    return f"{subject} must be consecutive integers starting at 0, found {list(values)}"


# ------------------------------------------------------------------------------------- label meaning
def has_regions(labels: Mapping[str, LabelValue]) -> bool:
    """Region-based training: some label maps to more than one value."""
    return any(isinstance(v, tuple) and len(v) > 1 for v in labels.values())


def all_label_values(labels: Mapping[str, LabelValue]) -> list[int]:
    """Every label value in use (background included, ignore excluded), sorted."""
    values: set[int] = set()
    for name, value in labels.items():
        if name != "ignore":
            values.update(value if isinstance(value, tuple) else (value,))
    return sorted(values)


def foreground_regions(labels: Mapping[str, LabelValue]) -> list[LabelValue]:
    """The regions (tuples, or ints for one-value regions) other than background and ignore."""
    regions: list[LabelValue] = []
    for name, value in labels.items():
        values = value if isinstance(value, tuple) else (value,)
        if name != "ignore" and set(values) != {0}:
            regions.append(value)
    return regions


# ------------------------------------------------------------------------- rules DatasetJson enforces
def structure_problems(raw: Any) -> list[str]:
    """Every structural problem of a parsed dataset.json, as readable sentences (empty when fine): what
    :meth:`DatasetJson.load <autoseg.dataset.dataset_json.DatasetJson.load>` refuses."""
    if not isinstance(raw, Mapping):
        return [f"the top level must be a JSON object, found {type(raw).__name__}"]
    problems: list[str] = []
    missing = [k for k in REQUIRED_KEYS if k not in raw]
    if "channel_names" not in raw and "modality" not in raw:
        missing.insert(0, "channel_names")
    if missing:
        problems.append(f"missing required key(s): {', '.join(missing)}")
    channels = raw.get("channel_names", raw.get("modality"))
    if channels is not None:
        if not isinstance(channels, Mapping) or not channels:
            problems.append('"channel_names" must be a non-empty object such as {"0": "CT"}')
        else:
            keys = list(channels.keys())
            if {str(k) for k in keys} != {str(i) for i in range(len(keys))}:
                problems.append(
                    f'"channel_names" keys must be "0", "1", ... (one per channel file _0000, _0001, ...), '
                    f"found {keys}"
                )
            if any(not isinstance(v, str) for v in channels.values()):
                problems.append('"channel_names" values must be strings such as "CT", "T2" or "zscore"')
    if "numTraining" in raw and not is_int(raw["numTraining"]):
        problems.append(f'"numTraining" must be an integer, found {raw["numTraining"]!r}')
    if "file_ending" in raw:
        ending = raw["file_ending"]
        if not isinstance(ending, str) or not ending.startswith("."):
            problems.append(f'"file_ending" must be a string starting with a dot, such as ".nii.gz", found {ending!r}')
    if "labels" in raw:
        problems.extend(_label_problems(raw["labels"], raw.get("regions_class_order")))
    if "dataset" in raw:
        problems.extend(_dataset_map_problems(raw["dataset"]))
    return problems


def _dataset_map_problems(dataset: Any, max_listed: int = 10) -> list[str]:
    """Problems of an explicit ``dataset`` map: each entry needs an ``images`` list and a ``label`` path."""
    if not isinstance(dataset, Mapping):
        return ['"dataset" must map case ids to {"images": [...], "label": ...}']
    bad = [
        case
        for case, entry in dataset.items()
        if not (
            isinstance(entry, Mapping)
            and isinstance(entry.get("images"), list)
            and entry["images"]
            and all(isinstance(i, str) for i in entry["images"])
            and isinstance(entry.get("label"), str)
        )
    ]
    if not bad:
        return []
    listed = ", ".join(str(c) for c in bad[:max_listed])
    if len(bad) > max_listed:
        listed += f" and {len(bad) - max_listed} more"
    return [
        f'"dataset" entries must be {{"images": ["path_0000...", ...], "label": "path..."}}; '
        f"malformed entries: {listed}"
    ]


def _label_problems(labels: Any, regions_class_order: Any) -> list[str]:
    if not isinstance(labels, Mapping) or not labels:
        return ['"labels" must be a non-empty object such as {"background": 0, "liver": 1}']
    problems: list[str] = []
    for name, value in labels.items():
        ok = is_int(value) or (
            isinstance(value, (list, tuple)) and value and all(is_int(v) for v in value)
        )
        if not ok:
            problems.append(f'label "{name}" must be an integer or a list of integers (a region), found {value!r}')
    if problems:
        return problems
    if "background" not in labels:
        problems.append('"labels" must contain "background": 0')
    elif labels["background"] != 0:
        problems.append(f'"background" must be 0, found {labels["background"]!r}')
    is_region = {k: isinstance(v, (list, tuple)) and len(v) > 1 for k, v in labels.items()}
    ignore = labels.get("ignore")
    if ignore is not None and not is_int(ignore):
        problems.append(f'the "ignore" label must be a single integer, found {ignore!r}')
    plain = sorted(
        {int(v) for k, v in labels.items() if k != "ignore" and is_int(v)}
        | {int(v[0]) for k, v in labels.items() if k != "ignore" and isinstance(v, (list, tuple)) and len(v) == 1}
    )
    if any(is_region.values()):
        if regions_class_order is None:
            problems.append(
                'region-based labels (lists) need "regions_class_order", the label painted for each region in order'
            )
        else:
            n_regions = sum(
                1
                for k, v in labels.items()
                if k != "ignore" and set(v if isinstance(v, (list, tuple)) else [v]) != {0}
            )
            if not isinstance(regions_class_order, list) or not all(is_int(i) for i in regions_class_order):
                problems.append('"regions_class_order" must be a list of integers')
            elif len(regions_class_order) != n_regions:
                problems.append(
                    f'"regions_class_order" has {len(regions_class_order)} entries but there are {n_regions} '
                    f"foreground regions; give one label value per region"
                )
        all_values = sorted(
            {int(x) for k, v in labels.items() if k != "ignore" for x in (v if isinstance(v, (list, tuple)) else [v])}
        )
    else:
        all_values = plain
        problem = nonconsecutive_values(all_values, "label values")
        if problem:
            problems.append(f"{problem}; renumber them (e.g. {list(range(len(all_values)))}) in dataset.json and "
                            f"in the label files")
    if ignore is not None and is_int(ignore) and all_values and ignore != max(all_values) + 1:
        problems.append(
            f'the "ignore" label must be the highest value, {max(all_values) + 1}, found {ignore}'
        )
    return problems


def usable_labels(labels: Any) -> dict[str, int | tuple[int, ...]]:
    """The labels as DatasetJson stores them, or {} when any value is not an int or list of ints."""
    if not isinstance(labels, Mapping):
        return {}
    usable: dict[str, int | tuple[int, ...]] = {}
    for name, value in labels.items():
        if is_int(value):
            usable[str(name)] = value
        elif isinstance(value, list) and value and all(is_int(v) for v in value):
            usable[str(name)] = value[0] if len(value) == 1 else tuple(value)
        else:
            return {}
    return usable


# ------------------------------------------------------------------ rules only the integrity check reports
def label_definition_problems(labels: Mapping[str, LabelValue],
                              regions_class_order: Sequence[int] | None) -> list[RuleProblem]:
    """Label rules the structure check does not cover (regions, ignore label, duplicate values), for the
    integrity check only: ``labels`` as :func:`usable_labels` returns them."""
    if not labels:
        return []
    problems: list[RuleProblem] = []
    for name in labels:
        if name != "ignore" and name.strip().lower() == "ignore":
            problems.append(
                warning(
                    f'label "{name}" is an ordinary class: only a label named exactly "ignore" is the '
                    "ignore label",
                    'Rename it to "ignore" if its voxels should be excluded from training.',
                )
            )
    if not has_regions(labels):
        by_value: dict[Any, list[str]] = {}
        for name, value in labels.items():
            if name != "ignore":  # a clash with the ignore label is reported with the ignore rules
                by_value.setdefault(value, []).append(name)
        problems.extend(
            warning(
                f"labels {', '.join(repr(n) for n in names)} share the value {value}; only one name is used",
                "Give every class its own value (regions are written as lists).",
            )
            for value, names in by_value.items()
            if len(names) > 1
        )
        if regions_class_order is not None:
            problems.append(
                warning(
                    '"regions_class_order" is set but no label is a region (a list of values); it is ignored',
                    'Remove "regions_class_order" or define the regions.',
                )
            )
        return problems
    return problems + _region_problems(labels, regions_class_order)


def _region_problems(labels: Mapping[str, LabelValue], regions_class_order: Sequence[int] | None) -> list[RuleProblem]:
    problems: list[RuleProblem] = []
    values = all_label_values(labels)
    problem = nonconsecutive_values(values, "the label values used by the regions")
    if problem:
        problems.append(
            error(
                problem,
                f"Renumber them to {list(range(len(values)))} in dataset.json and in the label files.",
            )
        )
    order = regions_class_order or ()
    foreground = [v for v in values if v != 0]
    for region, painted in zip(foreground_regions(labels), order):
        members = region if isinstance(region, tuple) else (region,)
        what = f'"regions_class_order" paints value {painted} for region {list(members)}'
        if painted not in foreground:
            problems.append(
                error(
                    f"{what}, but {painted} is not a foreground label value ({foreground})",
                    "Use one of the region's label values, so predictions can be converted back to labels.",
                )
            )
        elif painted not in members:
            problems.append(
                warning(
                    f"{what}, which is not in that region",
                    "Usually each region paints one of its own values (e.g. the innermost label).",
                )
            )
    return problems
