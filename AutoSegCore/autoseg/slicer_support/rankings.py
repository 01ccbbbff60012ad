"""The Planner's "annotate these first": where each ``autoseg rank_cases`` run writes, what it found, how far it is.

Each run writes into a new folder ``<workspace>/AutoSegRankings/<dataset>/<YYYYmmdd-HHMMSS>`` (rank_cases
never writes into a folder holding a ranking). :func:`read_ranking` turns its ``ranking.json`` into rows that
also name each case's input files (for showing the image under its uncertainty map). ``rank_cases`` writes
no progress stream, but with ``--save_maps`` it writes each case's map as soon as the case is scored:
:class:`RankingMonitor` counts them for the module's progress bar and ETA.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from autoseg.dataset.cases import files_by_case
from autoseg.errors import AutoSegError
from autoseg.ranking.report import RANKING_JSON, UNCERTAINTY_SUFFIX
from autoseg.slicer_support.training_monitor import format_duration

RANKINGS_FOLDER = "AutoSegRankings"


def new_ranking_folder(workspace_root: str | Path, dataset_name: str, now: datetime | None = None) -> Path:
    """``<workspace_root>/AutoSegRankings/<dataset_name>/<YYYYmmdd-HHMMSS>``, with ``-2``, ``-3``... when taken."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    parent = Path(workspace_root) / RANKINGS_FOLDER / (dataset_name or "unknown")
    folder, number = parent / stamp, 1
    while folder.exists():
        number += 1
        folder = parent / f"{stamp}-{number}"
    return folder


@dataclass(frozen=True)
class RankingRow:
    """One ranked case, with the files to show it: its input images (channel order) and its uncertainty map."""

    rank: int
    case: str
    score: float
    reason: str
    fold_disagreement: float | None
    mean_entropy: float | None
    uncertainty_map: Path | None
    images: tuple[Path, ...]

    def table_row(self) -> tuple[str, str, str, str]:
        """(rank, case, score, reason) as text."""
        return str(self.rank), self.case, f"{self.score:.3f}", self.reason


def _file_ending(ranking: dict[str, Any]) -> str | None:
    """The model's file ending (its dataset.json), or the one the maps were written with."""
    model = ranking.get("model_folder")
    if model:
        try:
            ending = json.loads((Path(model) / "dataset.json").read_text(encoding="utf-8")).get("file_ending")
            if isinstance(ending, str) and ending:
                return ending
        except (OSError, ValueError):
            pass
    for case in ranking.get("cases") or []:
        name = Path(case.get("uncertainty_map") or "").name
        prefix = f"{case.get('case')}{UNCERTAINTY_SUFFIX}"
        if name.startswith(prefix) and len(name) > len(prefix):
            return name[len(prefix):]
    return None


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def read_ranking(output_folder: str | Path) -> list[RankingRow]:
    """The rows of ``output_folder/ranking.json``, most uncertain first."""
    path = Path(output_folder) / RANKING_JSON
    try:
        ranking = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AutoSegError(f"{path} does not exist: that folder holds no finished ranking.") from None
    except (OSError, ValueError) as err:
        raise AutoSegError(f"Cannot read {path}: {err}") from err
    ending = _file_ending(ranking)
    input_folder = Path(ranking.get("input_folder") or "")
    inputs = files_by_case(input_folder, ending) if ending and input_folder.is_dir() else {}
    rows = []
    for case in sorted(ranking.get("cases") or [], key=lambda c: int(c["rank"])):
        name = str(case["case"])
        uncertainty = case.get("uncertainty_map")
        rows.append(RankingRow(
            rank=int(case["rank"]), case=name, score=float(case["score"]), reason=str(case.get("reason") or ""),
            fold_disagreement=_optional_float(case.get("fold_disagreement")),
            mean_entropy=_optional_float(case.get("mean_entropy")),
            uncertainty_map=Path(uncertainty) if uncertainty else None, images=tuple(inputs.get(name, [])),
        ))
    return rows


@dataclass
class RankingStatus:
    """What the module shows while rank_cases runs (``fraction`` 0-1, ``message`` one line)."""

    done: int = 0
    total: int = 0
    fraction: float = 0.0
    eta_seconds: float | None = None
    message: str = "Starting the ranking..."


class RankingMonitor:
    """Counts the uncertainty maps a ``rank_cases --save_maps`` run has written (one per finished case)."""

    def __init__(self, input_folder: str | Path, output_folder: str | Path, file_ending: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.output_folder = Path(output_folder)
        self.file_ending = file_ending
        self.cases = list(files_by_case(Path(input_folder), file_ending))
        self._clock = clock
        self._started = clock()
        self.status = RankingStatus(total=len(self.cases))

    def poll(self) -> RankingStatus:
        status = self.status
        done = sum((self.output_folder / f"{case}{UNCERTAINTY_SUFFIX}{self.file_ending}").is_file()
                   for case in self.cases)
        status.done = done
        status.fraction = done / status.total if status.total else 0.0
        elapsed = self._clock() - self._started
        status.eta_seconds = elapsed / done * (status.total - done) if done else None
        eta = format_duration(status.eta_seconds)
        status.message = f"Ranked {done}/{status.total} case(s)" + (f", ETA {eta}" if eta and done < status.total
                                                                    else "")
        return status
