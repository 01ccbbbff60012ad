"""The plans summary (CLI table and the Planner module's table) reflects every configuration."""

from __future__ import annotations

import json

from tests.planning.test_move_plans import SOURCE_PLANS

from autoseg.planning.summary import SUMMARY_COLUMNS, format_plans_summary, plans_summary_rows
from autoseg.plans.model import Plans


def test_rows_and_text_agree(tmp_path):
    path = tmp_path / "nnUNetPlans.json"
    path.write_text(json.dumps(SOURCE_PLANS))
    plans = Plans.load(path)
    rows = plans_summary_rows(plans)
    assert [row[0] for row in rows] == list(plans.configurations)
    full = {row[0]: row for row in rows}["3d_fullres"]
    assert full == ("3d_fullres", "1x1x1", "16x16x16", "2", "2", "20x20x20")
    assert {row[0]: row for row in rows}["3d_custom"][3] == "4"  # inherited configuration, own batch size
    assert len(SUMMARY_COLUMNS) == len(full)
    text = format_plans_summary(plans)
    assert all(row[0] in text and row[2] in text for row in rows)
