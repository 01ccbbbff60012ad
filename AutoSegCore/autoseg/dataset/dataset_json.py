"""The ``dataset.json`` model: channels, labels (plain, regions, ignore), file ending, explicit case map.

:class:`DatasetJson` validates on load and reports *every* problem it finds at once; the original
dict is kept (``raw``) so that copying the file never drops keys we do not know about.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autoseg.errors import DatasetError

LabelValue = int | tuple[int, ...]
REQUIRED_KEYS = ("labels", "numTraining", "file_ending")


@dataclass(frozen=True)
class DatasetJson:
    """A validated ``dataset.json``."""

    channel_names: dict[str, str]
    labels: dict[str, LabelValue]
    num_training: int
    file_ending: str
    regions_class_order: tuple[int, ...] | None = None
    overwrite_image_reader_writer: str | None = None
    dataset: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    source: Path | None = field(default=None, compare=False)

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: str | Path) -> DatasetJson:
        """Read and validate a dataset.json file; DatasetError lists every problem found."""
        path = Path(path)
        if not path.is_file():
            raise DatasetError(
                f"{path} does not exist. Every raw dataset needs a dataset.json with 'channel_names', "
                f"'labels', 'numTraining' and 'file_ending'."
            )
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise DatasetError(
                f"{path} is not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}. "
                f"Fix the syntax (a missing comma or quote is the usual cause)."
            ) from err
        except UnicodeDecodeError as err:
            raise DatasetError(f"{path} is not UTF-8 text ({err}). Save it as UTF-8 JSON.") from err
        return cls.from_dict(raw, source=path)

    @classmethod
    def from_dict(cls, raw: Any, source: Path | None = None) -> DatasetJson:
        """Validate a parsed dataset.json; DatasetError lists every problem found."""
        where = str(source) if source else "dataset.json"
        problems = dataset_json_problems(raw)
        if problems:
            raise DatasetError(f"{where} is malformed:\n  - " + "\n  - ".join(problems))
        channels = raw.get("channel_names", raw.get("modality"))
        labels = {str(k): _label_value(v) for k, v in raw["labels"].items()}
        order = raw.get("regions_class_order")
        return cls(
            channel_names={str(k): str(v) for k, v in channels.items()},
            labels=labels,
            num_training=int(raw["numTraining"]),
            file_ending=str(raw["file_ending"]),
            regions_class_order=tuple(int(i) for i in order) if order is not None else None,
            overwrite_image_reader_writer=raw.get("overwrite_image_reader_writer"),
            dataset=raw.get("dataset"),
            raw=dict(raw),
            source=source,
        )

    # ------------------------------------------------------------------ labels
    @property
    def num_channels(self) -> int:
        return len(self.channel_names)

    @property
    def has_regions(self) -> bool:
        """Region-based training: some label maps to a list of more than one value."""
        return any(isinstance(v, tuple) and len(v) > 1 for v in self.labels.values())

    @property
    def ignore_label(self) -> int | None:
        value = self.labels.get("ignore")
        return int(value) if isinstance(value, int) else None

    @property
    def all_labels(self) -> list[int]:
        """Every label value in use (background included, ignore excluded), sorted."""
        values: set[int] = set()
        for name, value in self.labels.items():
            if name == "ignore":
                continue
            values.update(value if isinstance(value, tuple) else (value,))
        return sorted(values)

    @property
    def foreground_labels(self) -> list[int]:
        return [v for v in self.all_labels if v != 0]

    @property
    def foreground_regions(self) -> list[LabelValue]:
        """The regions (tuples, or ints for one-value regions) other than background and ignore."""
        regions: list[LabelValue] = []
        for name, value in self.labels.items():
            if name == "ignore":
                continue
            values = value if isinstance(value, tuple) else (value,)
            if set(values) == {0}:
                continue
            regions.append(value)
        return regions

    @property
    def declared_values(self) -> set[int]:
        """Every value a label file may contain (background, labels, ignore)."""
        values = set(self.all_labels)
        if self.ignore_label is not None:
            values.add(self.ignore_label)
        return values

    def to_dict(self) -> dict[str, Any]:
        """The dict to write back (the original keys, unchanged)."""
        return dict(self.raw)


def _label_value(value: Any) -> LabelValue:
    if isinstance(value, (list, tuple)):
        return int(value[0]) if len(value) == 1 else tuple(int(v) for v in value)
    return int(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def dataset_json_problems(raw: Any) -> list[str]:
    """Every structural problem of a parsed dataset.json, as readable sentences (empty when fine)."""
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
            if sorted(keys, key=lambda k: int(k) if str(k).isdigit() else -1) != [str(i) for i in range(len(keys))]:
                if sorted(str(k) for k in keys) != [str(i) for i in range(len(keys))]:
                    problems.append(
                        f'"channel_names" keys must be "0", "1", ... (one per channel file _0000, _0001, ...), '
                        f"found {keys}"
                    )
            if any(not isinstance(v, str) for v in channels.values()):
                problems.append('"channel_names" values must be strings such as "CT", "T2" or "zscore"')
    if "numTraining" in raw and not _is_int(raw["numTraining"]):
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
        ok = _is_int(value) or (
            isinstance(value, (list, tuple)) and value and all(_is_int(v) for v in value)
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
    if ignore is not None and not _is_int(ignore):
        problems.append(f'the "ignore" label must be a single integer, found {ignore!r}')
    plain = sorted(
        {int(v) for k, v in labels.items() if k != "ignore" and _is_int(v)}
        | {int(v[0]) for k, v in labels.items() if k != "ignore" and isinstance(v, (list, tuple)) and len(v) == 1}
    )
    if any(is_region.values()):
        if regions_class_order is None:
            problems.append(
                'region-based labels (lists) need "regions_class_order", the label painted for each region in order'
            )
        else:
            n_regions = sum(
                1 for k, v in labels.items() if k != "ignore" and not (set(v if isinstance(v, (list, tuple)) else [v]) == {0})
            )
            if not isinstance(regions_class_order, list) or not all(_is_int(i) for i in regions_class_order):
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
        if all_values != list(range(len(all_values))):
            problems.append(
                f"label values must be consecutive integers starting at 0, found {all_values}; "
                f"renumber them (e.g. {list(range(len(all_values)))}) in dataset.json and in the label files"
            )
    if ignore is not None and _is_int(ignore) and all_values and ignore != max(all_values) + 1:
        problems.append(
            f'the "ignore" label must be the highest value, {max(all_values) + 1}, found {ignore}'
        )
    return problems
