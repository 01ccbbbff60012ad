"""The ``dataset.json`` model: channels, labels (plain, regions, ignore), file ending, explicit case map.

:class:`DatasetJson` validates on load with the structural rules of :mod:`autoseg.dataset.json_rules` and
reports *every* problem it finds at once; the original dict is kept (``raw``) so that copying the file
never drops keys we do not know about.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autoseg.dataset.json_rules import (
    LabelValue,
    all_label_values,
    foreground_regions,
    has_regions,
    structure_problems,
)
from autoseg.errors import DatasetError


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
    def load(cls, path: str | os.PathLike[str]) -> DatasetJson:
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
        problems = structure_problems(raw)
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
        return has_regions(self.labels)

    @property
    def ignore_label(self) -> int | None:
        value = self.labels.get("ignore")
        return int(value) if isinstance(value, int) else None

    @property
    def all_labels(self) -> list[int]:
        """Every label value in use (background included, ignore excluded), sorted."""
        return all_label_values(self.labels)

    @property
    def foreground_labels(self) -> list[int]:
        return [v for v in self.all_labels if v != 0]

    @property
    def foreground_regions(self) -> list[LabelValue]:
        """The regions (tuples, or ints for one-value regions) other than background and ignore."""
        return foreground_regions(self.labels)

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
