"""The Planner's rankings: new output folders, ranking.json read into rows with each case's files, and the
progress of a running rank_cases counted from the maps it has written."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from autoseg.errors import AutoSegError
from autoseg.ranking.report import RANKING_JSON
from autoseg.slicer_support.rankings import (
    UNCERTAINTY_SUFFIX,
    RankingMonitor,
    RankingRow,
    new_ranking_folder,
    read_ranking,
)


class Clock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_each_ranking_gets_a_new_folder(tmp_path):
    now = datetime(2026, 3, 4, 5, 6, 7)
    first = new_ranking_folder(tmp_path, "Dataset004_Hippocampus", now)
    assert first == tmp_path / "AutoSegRankings" / "Dataset004_Hippocampus" / "20260304-050607"
    first.mkdir(parents=True)
    second = new_ranking_folder(tmp_path, "Dataset004_Hippocampus", now)
    assert second.name == "20260304-050607-2"
    second.mkdir()
    assert new_ranking_folder(tmp_path, "Dataset004_Hippocampus", now).name == "20260304-050607-3"
    assert new_ranking_folder(tmp_path, "", now).parent.name == "unknown"


def _ranking(tmp_path: Path, ending: str = ".nii.gz", dataset_json: bool = True) -> Path:
    model = tmp_path / "results" / "Dataset004_X" / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    model.mkdir(parents=True)
    if dataset_json:
        (model / "dataset.json").write_text(json.dumps({"channel_names": {"0": "T1", "1": "T2"}, "labels": {
            "background": 0, "a": 1}, "numTraining": 1, "file_ending": ending}))
    images = tmp_path / "unlabelled"
    images.mkdir()
    for case in ("b", "a"):
        for channel in (1, 0):
            (images / f"{case}_{channel:04d}{ending}").write_bytes(b"")
    output = tmp_path / "ranking"
    output.mkdir()
    cases = [
        {"rank": 2, "case": "a", "score": 0.25, "fold_disagreement": None, "mean_entropy": 0.25,
         "predicted_foreground_voxels": 10, "reason": "low", "uncertainty_map": str(output / f"a_uncertainty{ending}")},
        {"rank": 1, "case": "b", "score": 0.912345, "fold_disagreement": 0.5, "mean_entropy": 0.412345,
         "predicted_foreground_voxels": 0, "reason": "folds disagree", "uncertainty_map": None},
    ]
    (output / RANKING_JSON).write_text(json.dumps({"model_folder": str(model), "input_folder": str(images),
                                                   "cases": cases}))
    return output


def test_rows_in_rank_order_with_their_files(tmp_path):
    output = _ranking(tmp_path)
    rows = read_ranking(output)
    assert [row.case for row in rows] == ["b", "a"]
    b, a = rows
    assert b.table_row() == ("1", "b", "0.912", "folds disagree")
    assert b.fold_disagreement == 0.5 and b.uncertainty_map is None
    assert a.fold_disagreement is None and a.mean_entropy == 0.25
    assert a.uncertainty_map == output / "a_uncertainty.nii.gz"
    images = tmp_path / "unlabelled"
    assert a.images == (images / "a_0000.nii.gz", images / "a_0001.nii.gz")  # channel order
    assert isinstance(a, RankingRow)


def test_the_file_ending_comes_from_the_maps_without_the_model(tmp_path):
    rows = read_ranking(_ranking(tmp_path, ending=".nrrd", dataset_json=False))
    assert rows[1].images[0].name == "a_0000.nrrd"
    assert rows[0].images[0].name == "b_0000.nrrd"  # the ending of another case's map


def test_a_folder_without_a_ranking(tmp_path):
    with pytest.raises(AutoSegError, match="holds no finished ranking"):
        read_ranking(tmp_path)
    (tmp_path / RANKING_JSON).write_text("{")
    with pytest.raises(AutoSegError, match="Cannot read"):
        read_ranking(tmp_path)


def test_progress_counts_the_maps_of_finished_cases(tmp_path):
    images, output = tmp_path / "in", tmp_path / "out"
    images.mkdir()
    for case in ("c1", "c2", "c3", "c4"):
        (images / f"{case}_0000.nii.gz").write_bytes(b"")
    clock = Clock(100.0)
    monitor = RankingMonitor(images, output, ".nii.gz", clock=clock)  # the output folder does not exist yet
    status = monitor.poll()
    assert (status.done, status.total, status.fraction, status.eta_seconds) == (0, 4, 0.0, None)
    assert status.message == "Ranked 0/4 case(s)"
    output.mkdir()
    (output / f"c1{UNCERTAINTY_SUFFIX}.nii.gz").write_bytes(b"")
    (output / ".c2_uncertainty.nii.gz.abc.tmp.nii.gz").write_bytes(b"")  # being written: not done
    clock.now = 130.0
    status = monitor.poll()
    assert (status.done, status.fraction, status.eta_seconds) == (1, 0.25, 90.0)
    assert status.message == "Ranked 1/4 case(s), ETA 2 min"
    for case in ("c2", "c3", "c4"):
        (output / f"{case}_uncertainty.nii.gz").write_bytes(b"")
    assert monitor.poll().message == "Ranked 4/4 case(s)" and monitor.status.fraction == 1.0
