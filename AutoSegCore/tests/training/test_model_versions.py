"""Model versions kept by ``--update`` and the checks that refuse an update that would mislead."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest
import torch

from autoseg.dataset.dataset_json import DatasetJson
from autoseg.errors import AutoSegError
from autoseg.inference.model_versions import (
    archive_current_version,
    archived_versions,
    checkpoint_name_for_version,
    current_version,
    set_current_version,
)
from autoseg.plans.model import Plans
from autoseg.training.settings import TrainingSettings
from autoseg.training.update import check_update_compatible, plan_update, update_settings

sys.path.insert(0, str(Path(__file__).parents[1] / "inference"))
from test_model_folder import DATASET, PLANS, _checkpoint, _model


def test_archiving_keeps_every_version_and_names_them_for_predict(tmp_path):
    model = _model(tmp_path, folds=(0,))
    fold = model / "fold_0"
    (fold / "validation").mkdir()
    (fold / "validation" / "case.nii.gz").write_bytes(b"v1 prediction")
    (fold / "debug.json").write_text("{}")
    original = (fold / "checkpoint_final.pth").read_bytes()
    assert current_version(fold) == 1 and archived_versions(fold) == []
    assert archive_current_version(fold, {"why": "test"}) == 1
    assert archive_current_version(fold, {"why": "again"}) == 1  # idempotent: an interrupted update re-runs it
    archive = fold / "versions" / "v1"
    assert (archive / "checkpoint_final.pth").read_bytes() == original
    assert (archive / "validation" / "case.nii.gz").read_bytes() == b"v1 prediction"
    assert not (fold / "validation").exists() and (fold / "checkpoint_final.pth").is_file()
    assert json.loads((archive / "version.json").read_text())["why"] == "test"
    assert checkpoint_name_for_version(model, 1) == "checkpoint_final.pth"  # still the current one
    set_current_version(fold, 2, {})
    assert checkpoint_name_for_version(model, 1) == "versions/v1/checkpoint_final.pth"
    assert checkpoint_name_for_version(model, 2) == "checkpoint_final.pth"
    with pytest.raises(AutoSegError, match="no model version 3 \\(versions: 1, 2\\)"):
        checkpoint_name_for_version(model, 3)


def test_an_archive_never_overwrites_what_is_there(tmp_path):
    model = _model(tmp_path, folds=(0,))
    fold = model / "fold_0"
    (fold / "debug.json").write_text("{}")
    (fold / "versions" / "v1").mkdir(parents=True)
    (fold / "versions" / "v1" / "debug.json").write_text("someone's file")
    with pytest.raises(AutoSegError, match="exists already"):
        archive_current_version(fold, {})
    assert (fold / "versions" / "v1" / "debug.json").read_text() == "someone's file"


def test_update_plan_and_schedule(tmp_path):
    model = _model(tmp_path, folds=(0,))
    plan = plan_update(model / "fold_0")
    assert (plan.from_version, plan.to_version, plan.base_epochs, plan.resume) == (1, 2, 3, False)
    settings = update_settings(TrainingSettings(num_epochs=15), 15)
    assert settings.num_epochs == 4 and settings.initial_lr == pytest.approx(3e-3)
    assert update_settings(TrainingSettings(), 15, epochs=2, initial_lr=0.01).num_epochs == 2
    # an interrupted update (its checkpoint_latest carries the marker for version 2) is continued
    latest = _checkpoint(0)
    latest["autoseg_update"] = {"version": 2, "from_version": 1, "base_epochs": 3, "num_epochs": 1}
    torch.save(latest, model / "fold_0" / "checkpoint_latest.pth")
    assert plan_update(model / "fold_0").resume
    with pytest.raises(AutoSegError, match="needs a trained model"):
        plan_update(model / "fold_7")


def test_an_update_is_refused_when_plans_or_labels_changed(tmp_path):
    model = _model(tmp_path, folds=(0,))
    plans, dataset = Plans.from_dict(copy.deepcopy(PLANS)), DatasetJson.from_dict(copy.deepcopy(DATASET))
    check_update_compatible(model, plans, "3d_fullres", dataset)
    with_ignore = copy.deepcopy(DATASET)
    with_ignore["labels"]["ignore"] = 2  # a partially annotated case added: the model's outputs are the same
    check_update_compatible(model, plans, "3d_fullres", DatasetJson.from_dict(with_ignore))
    changed = copy.deepcopy(PLANS)
    changed["foreground_intensity_properties_per_channel"] = {"0": {"mean": 3.0}}
    with pytest.raises(AutoSegError, match="plans of 3d_fullres changed"):
        check_update_compatible(model, Plans.from_dict(changed), "3d_fullres", dataset)
    new_label = copy.deepcopy(DATASET)
    new_label["labels"]["b"] = 2
    with pytest.raises(AutoSegError, match="labels changed"):
        check_update_compatible(model, plans, "3d_fullres", DatasetJson.from_dict(new_label))
