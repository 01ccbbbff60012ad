"""The cross-validation table find_best_configuration prints: one row per model or ensemble."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from autoseg.evaluation.metrics import LabelOrRegion, label_or_region_key
from autoseg.evaluation.summary import EvaluationSummary
from autoseg.model_selection.models import TrainedModel


@dataclass(frozen=True)
class TableRow:
    name: str
    summary: EvaluationSummary
    chosen: bool


def display_names(members: Sequence[Sequence[TrainedModel]]) -> list[str]:
    """Short row names: configurations (``2d + 3d_fullres``) when every model shares trainer and plans,
    else the model identifiers."""
    models = {m for group in members for m in group}
    short = len({(m.trainer, m.plans) for m in models}) <= 1
    return [" + ".join(m.configuration if short else m.identifier for m in group) for group in members]


def _number(value: float | None) -> str:
    return "nan" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


def format_results_table(rows: Sequence[TableRow], names: Mapping[LabelOrRegion, str] | None = None) -> str:
    """Model, foreground mean Dice, Dice per label/region (named from dataset.json) and the chosen mark."""
    names = names or {}
    labels: list[LabelOrRegion] = []
    for row in rows:
        labels += [label for label in row.summary.mean if label not in labels]
    headers = ["model / ensemble", "fg mean Dice", *(_label_header(label, names) for label in labels), "chosen"]
    table = [
        [row.name, _number(row.summary.foreground_mean.get("Dice")),
         *(_number(row.summary.mean.get(label, {}).get("Dice")) for label in labels), "<== best" if row.chosen else ""]
        for row in rows
    ]
    widths = [max(len(headers[i]), *(len(r[i]) for r in table)) for i in range(len(headers))]
    lines = ["  ".join(_cell(text, widths[i], i) for i, text in enumerate(headers)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(_cell(text, widths[i], i) for i, text in enumerate(r)).rstrip() for r in table]
    return "\n".join(lines)


def _label_header(label: LabelOrRegion, names: Mapping[LabelOrRegion, str]) -> str:
    key = label_or_region_key(label)
    return f"{names[label]} ({key})" if label in names else key


def _cell(text: str, width: int, column: int) -> str:
    return text.ljust(width) if column == 0 else text.rjust(width)
