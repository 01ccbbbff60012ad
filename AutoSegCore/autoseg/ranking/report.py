"""The ranking's files (``ranking.json``, ``ranking.csv``) and its printed table.

``ranking.json``::

    {"model_folder": "/abs/path/Trainer__Plans__config", "configuration": "3d_fullres", "folds": [0, 1],
     "checkpoint": "checkpoint_final.pth", "tta": true, "members": "folds", "input_folder": "/abs/path",
     "cases": [{"rank": 1, "case": "case_007", "score": 0.93, "fold_disagreement": 0.41, "mean_entropy": 0.52,
                "predicted_foreground_voxels": 12345, "reason": "...", "uncertainty_map": "/abs/path" or null},
               ...]}                                           # most uncertain first

``ranking.csv`` has one row per case with the columns of :data:`COLUMNS` (null: an empty cell). A folder that
already holds a ``ranking.json`` is never written into again.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from autoseg.errors import AutoSegError
from autoseg.utils.files import save_json, write_atomic

RANKING_JSON = "ranking.json"
RANKING_CSV = "ranking.csv"
#: a case's uncertainty map is `<case>_uncertainty<file_ending>`
UNCERTAINTY_SUFFIX = "_uncertainty"
COLUMNS = ("rank", "case", "score", "fold_disagreement", "mean_entropy", "predicted_foreground_voxels", "reason",
           "uncertainty_map")


@dataclass(frozen=True)
class RankedCase:
    """One row of the ranking (the fields are :data:`COLUMNS`; ``rank`` 1 is the case to annotate first)."""

    rank: int
    case: str
    score: float
    fold_disagreement: float | None
    mean_entropy: float
    predicted_foreground_voxels: int
    reason: str
    uncertainty_map: str | None = None


def refuse_existing_ranking(output_folder: Path) -> None:
    """A ranking is never overwritten: raise when ``output_folder`` already holds one."""
    existing = Path(output_folder) / RANKING_JSON
    if existing.exists():
        raise AutoSegError(
            f"{existing} already exists: rank_cases never overwrites a ranking. Choose a new output folder with -o."
        )


def order_by_score(rows: list[RankedCase]) -> list[RankedCase]:
    """Most uncertain first (ties by case name), ranks renumbered from 1."""
    ordered = sorted(rows, key=lambda row: (-row.score, row.case))
    return [RankedCase(**{**asdict(row), "rank": index + 1}) for index, row in enumerate(ordered)]


def write_ranking(output_folder: Path, cases: list[RankedCase], metadata: dict[str, Any]) -> None:
    """Write ``ranking.csv`` then ``ranking.json`` (last: its presence means the ranking is complete)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in cases:
        values = asdict(row)
        writer.writerow(["" if values[c] is None else values[c] for c in COLUMNS])
    text = buffer.getvalue()
    write_atomic(Path(output_folder) / RANKING_CSV, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    save_json({**metadata, "cases": [asdict(row) for row in cases]}, Path(output_folder) / RANKING_JSON)


def format_table(cases: list[RankedCase]) -> str:
    """The ranking as a plain-text table (rank, case, score, disagreement, entropy, voxels, reason)."""
    header = ("rank", "case", "score", "disagree", "entropy", "fg voxels", "reason")
    rows = [
        (str(c.rank), c.case, f"{c.score:.3f}", "-" if c.fold_disagreement is None else f"{c.fold_disagreement:.3f}",
         f"{c.mean_entropy:.3f}", f"{c.predicted_foreground_voxels:,}", c.reason)
        for c in cases
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for row in [header, *rows]:
        cells = [cell.rjust(w) if i not in (1,) else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))]
        lines.append("  ".join([*cells, row[-1]]))
    return "\n".join(lines)
