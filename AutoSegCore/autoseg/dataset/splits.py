"""Cross-validation splits (``splits_final.json``): nnU-Net's 5-fold KFold and custom splits."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from autoseg.errors import DatasetError
from autoseg.utils.files import atomic_path, save_json

SPLIT_SEED = 12345
Split = dict[str, list[str]]


def kfold_splits(identifiers: Sequence[str], n_splits: int = 5, seed: int = SPLIT_SEED) -> list[Split]:
    """Shuffled K-fold over the sorted identifiers (identical to sklearn's KFold(shuffle=True, random_state=seed))."""
    ids = sorted(identifiers)
    if len(ids) < n_splits:
        raise DatasetError(f"{n_splits}-fold cross-validation needs at least {n_splits} cases, found {len(ids)}.")
    order = np.arange(len(ids))
    np.random.RandomState(seed).shuffle(order)
    sizes = np.full(n_splits, len(ids) // n_splits, dtype=int)
    sizes[: len(ids) % n_splits] += 1
    splits, start = [], 0
    for size in sizes:
        val_idx = np.sort(order[start : start + size])
        train_idx = np.sort(np.setdiff1d(np.arange(len(ids)), val_idx))
        splits.append({"train": [ids[i] for i in train_idx], "val": [ids[i] for i in val_idx]})
        start += size
    return splits


def load_splits(path: Path) -> list[Split]:
    """Read and validate a splits file."""
    try:
        splits = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise DatasetError(f"Cannot read splits file {path}: {err}.") from err
    if not isinstance(splits, list) or not all(isinstance(s, dict) and {"train", "val"} <= set(s) for s in splits):
        raise DatasetError(f"{path} must be a list of {{\"train\": [...], \"val\": [...]}} objects, one per fold.")
    return splits


def add_new_cases(splits: Sequence[Split], identifiers: Sequence[str]) -> tuple[list[Split], dict[str, int]]:
    """``splits`` with every identifier they do not name yet added, and {new case: its validation fold}.

    Existing cases keep their folds. New cases, in sorted order, each go to the validation set of the fold
    with the fewest validation cases (the lowest fold on a tie) and to the training set of every other fold:
    deterministic, balanced, and the same whichever order the cases were added in one round.
    """
    extended = [{"train": list(s["train"]), "val": list(s["val"])} for s in splits]
    known = {case for s in extended for case in (*s["train"], *s["val"])}
    added: dict[str, int] = {}
    if not extended:
        return extended, added
    for case in sorted(set(identifiers) - known):
        fold = min(range(len(extended)), key=lambda f: (len(extended[f]["val"]), f))
        for index, split in enumerate(extended):
            split["val" if index == fold else "train"].append(case)
        added[case] = fold
    return extended, added


def extends(original: Sequence[Split], extended: Sequence[Split]) -> bool:
    """True when ``extended`` is ``original`` with only cases that ``original`` never names added."""
    if len(original) != len(extended):
        return False
    known = {case for s in original for case in (*s["train"], *s["val"])}
    for a, b in zip(original, extended):
        for part in ("train", "val"):
            if not set(a[part]) <= set(b[part]) or (set(b[part]) - set(a[part])) & known:
                return False
    return True


def copy_or_check_splits(source: Path, target: Path) -> None:
    """Copy a user's ``splits_final.json`` from nnUNet_raw, or check the existing copy is it (or it with the
    cases added since, see :func:`add_new_cases`)."""
    source_splits = load_splits(source)
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)
        return
    target_splits = load_splits(target)
    if len(source_splits) != len(target_splits):
        raise DatasetError(f"{source} has {len(source_splits)} folds but {target} has {len(target_splits)}.")
    if not extends(source_splits, target_splits):
        fold = next((f for f, (a, b) in enumerate(zip(source_splits, target_splits)) if not extends([a], [b])), 0)
        raise DatasetError(
            f"{source} and {target} disagree on fold {fold}. Delete {target} to use the splits from "
            f"nnUNet_raw, or make them identical."
        )


def create_splits_file(path: Path, identifiers: Sequence[str], n_splits: int = 5) -> list[Split]:
    """Write nnU-Net's default splits to ``path`` (unless it exists) and return the splits in force."""
    if path.is_file():
        return load_splits(path)
    splits = kfold_splits(identifiers, n_splits)
    save_json(splits, path)
    return splits
