"""The demo's workspace bookkeeping: recorded settings, --fresh removing only the demo's files, the report."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from autoseg.demo.layout import DemoPaths
from autoseg.demo.pipeline import remove_demo_files
from autoseg.demo.report import final_line
from autoseg.demo.settings import (
    DATASET_NAME,
    STATE_FILE,
    DemoBudget,
    check_workspace_settings,
    default_settings,
    quick_settings,
)
from autoseg.demo.stages import ensure_dataset
from autoseg.errors import AutoSegError


def test_settings_are_recorded_then_checked(tmp_path) -> None:
    settings = default_settings()
    assert check_workspace_settings(tmp_path, settings) is False
    recorded = json.loads((tmp_path / STATE_FILE).read_text())
    assert recorded["budget"]["epochs"] == settings.budget.epochs
    assert recorded["gpu_memory_target_gb"] == settings.gpu_memory_target_gb
    assert check_workspace_settings(tmp_path, default_settings()) is True
    for other in (default_settings(seed=5), quick_settings(),
                  replace(settings, budget=replace(settings.budget, iterations_per_epoch=7))):
        with pytest.raises(AutoSegError, match="--fresh"):
            check_workspace_settings(tmp_path, other)


def test_fresh_removes_only_what_the_demo_made(tmp_path) -> None:
    paths = DemoPaths(tmp_path)
    made = [paths.raw_dataset / "dataset.json", paths.preprocessed_dataset / "nnUNetPlans.json",
            paths.model_folder("nnUNetTrainerNoMirroring") / "fold_0" / "checkpoint_final.pth",
            paths.predictions / "phantom_024.nii.gz", paths.postprocessed / "phantom_024.nii.gz",
            tmp_path / "overlay_phantom_024.png", tmp_path / STATE_FILE]
    kept = [tmp_path / "nnUNet_raw" / "Dataset004_Hippocampus" / "dataset.json",
            tmp_path / "nnUNet_results" / "Dataset004_Hippocampus" / "model.txt", tmp_path / "notes.txt"]
    for path in made + kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    remove_demo_files(tmp_path)
    assert not [p for p in made if p.exists()]
    assert all(p.read_text() == "x" for p in kept)
    assert not (tmp_path / "nnUNet_raw" / DATASET_NAME).exists()


def test_a_foreign_dataset_with_the_demo_name_is_never_touched(tmp_path) -> None:
    paths = DemoPaths(tmp_path)
    paths.raw_dataset.mkdir(parents=True)
    (paths.raw_dataset / "dataset.json").write_text(json.dumps({"labels": {"background": 0}}))
    with pytest.raises(AutoSegError, match="not made by `autoseg demo`"):
        ensure_dataset(paths, quick_settings(), print)
    assert json.loads((paths.raw_dataset / "dataset.json").read_text()) == {"labels": {"background": 0}}


def test_final_line_format() -> None:
    assert final_line(0.93456) == "Demo foreground mean Dice: 0.935"
    assert final_line(0.9) == "Demo foreground mean Dice: 0.900"
    assert DemoBudget().epochs * DemoBudget().iterations_per_epoch >= 100  # the demo trains for real
