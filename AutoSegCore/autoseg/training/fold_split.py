"""Which preprocessed cases a fold trains and validates on (nnU-Net's rules).

``splits_final.json`` in the preprocessed dataset folder decides; it is created with nnU-Net's 5-fold
KFold (seed 12345, sorted identifiers) when missing, and a user's own file is used as it is (any number
of folds). Cases preprocessed after the splits were made (added to the dataset since) are added to them
by :func:`~autoseg.dataset.splits.add_new_cases`: existing cases keep their folds, so validation numbers
stay comparable across annotation rounds, and every case is used. Fold ``all`` trains and validates on
every case. A fold number beyond the splits file gets a random 80:20 split seeded with ``12345 + fold``,
exactly as nnU-Net does.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from autoseg.dataset.splits import SPLIT_SEED, add_new_cases, create_splits_file
from autoseg.errors import DatasetError
from autoseg.typing import Fold
from autoseg.utils.files import save_json

logger = logging.getLogger(__name__)

SPLITS_FILE = "splits_final.json"


def fold_cases(preprocessed_dataset: Path, identifiers: Sequence[str], fold: Fold) -> tuple[list[str], list[str]]:
    """(training, validation) identifiers of ``fold`` among the preprocessed ``identifiers``."""
    ids = sorted(identifiers)
    if not ids:
        raise DatasetError(f"No preprocessed cases in {preprocessed_dataset}: run `autoseg plan_and_preprocess` first.")
    if fold == "all":
        return ids, ids
    splits_file = Path(preprocessed_dataset) / SPLITS_FILE
    splits = create_splits_file(splits_file, ids)
    splits, added = add_new_cases(splits, ids)
    if added:
        save_json(splits, splits_file)
        logger.info("%s: %d new case(s) added (existing cases keep their folds): %s.", splits_file, len(added),
                    ", ".join(f"{case} -> fold {fold}" for case, fold in added.items()))
    if not isinstance(fold, int):
        raise TypeError(f"fold must be an int or 'all', got {fold!r}")
    if fold < len(splits):
        train, val = list(splits[fold]["train"]), list(splits[fold]["val"])
        missing = sorted(set(train + val) - set(ids))
        if missing:
            raise DatasetError(
                f"{splits_file} names {len(missing)} case(s) that are not preprocessed (first: {missing[0]}). "
                f"Fix the splits file or preprocess those cases."
            )
        if not val:
            raise DatasetError(f"Fold {fold} of {splits_file} has no validation cases.")
        return sorted(train), sorted(val)
    logger.info("Fold %s is beyond the %d folds of %s: using a random 80:20 split (seed %d).",
                fold, len(splits), splits_file, SPLIT_SEED + fold)
    rng = np.random.RandomState(seed=SPLIT_SEED + fold)
    train_idx = rng.choice(len(ids), int(len(ids) * 0.8), replace=False)
    val_idx = [i for i in range(len(ids)) if i not in set(train_idx)]
    return [ids[i] for i in train_idx], [ids[i] for i in val_idx]
