"""Stable splits: cases added to a dataset after the first training join the folds, old cases stay put."""

from __future__ import annotations

import json

import pytest

from autoseg.dataset.splits import add_new_cases, copy_or_check_splits, kfold_splits
from autoseg.errors import DatasetError
from autoseg.training.fold_split import fold_cases

FIRST = [f"case_{i:03d}" for i in range(12)]
NEW = ["case_100", "case_101", "case_102", "case_050"]


def _val_fold(splits, case):
    return next(f for f, s in enumerate(splits) if case in s["val"])


def test_new_cases_join_the_smallest_folds_and_old_cases_keep_theirs(tmp_path):
    fold_cases(tmp_path, FIRST, 0)  # first training: nnU-Net's 5-fold split of 12 cases (3,3,2,2,2)
    before = json.loads((tmp_path / "splits_final.json").read_text())
    train, val = fold_cases(tmp_path, FIRST + NEW, 0)
    after = json.loads((tmp_path / "splits_final.json").read_text())
    for case in FIRST:
        assert _val_fold(after, case) == _val_fold(before, case)
    # sorted new cases go to the folds with the fewest validation cases: 2, 3, 4, then 0 (all have 3 then)
    assert {c: _val_fold(after, c) for c in NEW} == {"case_050": 2, "case_100": 3, "case_101": 4, "case_102": 0}
    assert sorted(train + val) == sorted(FIRST + NEW) and not set(train) & set(val)
    for split in after:  # every case is used exactly once per fold
        assert sorted(split["train"] + split["val"]) == sorted(FIRST + NEW)
    # deterministic: the same round gives the same splits, whatever order the cases are listed in
    again, _ = add_new_cases(before, list(reversed(FIRST + NEW)))
    assert again == after
    assert fold_cases(tmp_path, FIRST + NEW, 0) == (train, val)


def test_a_users_raw_splits_file_accepts_the_extended_copy_but_not_a_different_one(tmp_path):
    raw, preprocessed = tmp_path / "raw.json", tmp_path / "pre" / "splits_final.json"
    raw.write_text(json.dumps(kfold_splits(FIRST)))
    copy_or_check_splits(raw, preprocessed)
    fold_cases(preprocessed.parent, FIRST + NEW, 1)  # extends the preprocessed copy
    copy_or_check_splits(raw, preprocessed)  # planning again: still consistent
    assert json.loads(raw.read_text()) == kfold_splits(FIRST)  # the user's file is never changed
    moved = json.loads(preprocessed.read_text())
    case = moved[0]["val"][0]
    moved[0]["val"].remove(case)
    moved[1]["val"].append(case)
    preprocessed.write_text(json.dumps(moved))
    with pytest.raises(DatasetError, match="disagree on fold 0"):
        copy_or_check_splits(raw, preprocessed)
