"""Incremental preprocessing: which raw cases are new, changed, up to date or gone, decided by content.

Each preprocessed case records the SHA-256 of its raw files (``source_sha256`` in its properties JSON). A
case is *up to date* when that record equals the digests of its raw files now, *changed* when it differs
(a replaced label, an edited image: file times are never trusted), *new* when it has no preprocessed
files yet, and *removed* when its raw files are gone. Cases about to be preprocessed are checked against
the dataset first (channel count; label values are checked when read), so a case that does not fit is
refused naming it instead of silently changing what the model learns.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from autoseg.dataset.cases import TrainingCase
from autoseg.dataset.dataset_json import DatasetJson
from autoseg.errors import PreprocessingError
from autoseg.preprocessing import storage
from autoseg.utils.files import load_json, save_json

#: properties key holding {raw file name: sha256} of the files a case was preprocessed from
DIGEST_KEY = "source_sha256"
_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def case_digests(case: TrainingCase) -> dict[str, str]:
    """{file name: sha256} of a case's raw image and label files."""
    return {p.name: file_sha256(p) for p in (*case.images, case.label)}


def dataset_digests(cases: Mapping[str, TrainingCase], num_threads: int = 4) -> dict[str, dict[str, str]]:
    """:func:`case_digests` of every case (hashing runs in threads: it is I/O-bound and releases the GIL)."""
    with ThreadPoolExecutor(max_workers=num_threads) as pool:
        return dict(zip(cases, pool.map(case_digests, cases.values())))


def _legacy_signature(case: TrainingCase) -> list[list]:
    """What AutoSeg ≤ 0.x recorded instead of digests: name, size and modification time."""
    return [[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in (*case.images, case.label)]


@dataclass
class CaseInventory:
    """The state of a preprocessed folder against the raw dataset."""

    up_to_date: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def todo(self) -> list[str]:
        return sorted(self.new + self.changed)

    def summary(self) -> str:
        """E.g. ``27 case(s) up to date, 3 new, 1 changed, 0 removed``."""
        return (f"{len(self.up_to_date)} case(s) up to date, {len(self.new)} new, {len(self.changed)} changed, "
                f"{len(self.removed)} removed")


def _stored_digests(output_folder: Path, case: TrainingCase) -> dict[str, str] | None:
    """The digests recorded for a preprocessed case (upgrading a still-valid legacy record); None if unknown."""
    properties_file = storage.case_files(output_folder, case.identifier)[2]
    try:
        properties = load_json(properties_file)
    except (OSError, ValueError):
        return None
    stored = properties.get(DIGEST_KEY)
    if isinstance(stored, dict):
        return stored
    legacy = properties.get("source_files")
    if legacy is not None and legacy == json.loads(json.dumps(_legacy_signature(case))):
        properties[DIGEST_KEY] = case_digests(case)
        save_json(properties, properties_file, indent=None)
        return dict(properties[DIGEST_KEY])
    return None


def take_inventory(
    output_folder: Path, cases: Mapping[str, TrainingCase], digests: Mapping[str, dict[str, str]]
) -> CaseInventory:
    """Classify every raw case (and every preprocessed case without raw files) by content."""
    inventory = CaseInventory()
    for identifier, case in cases.items():
        if not storage.is_complete(output_folder, identifier):
            inventory.new.append(identifier)
        elif _stored_digests(output_folder, case) == digests[identifier]:
            inventory.up_to_date.append(identifier)
        else:
            inventory.changed.append(identifier)
    inventory.removed = sorted(set(storage.list_cases(output_folder)) - set(cases))
    return inventory


def check_channel_counts(cases: Mapping[str, TrainingCase], dataset_json: DatasetJson, raw_folder: Path) -> None:
    """Refuse cases whose number of image files is not the dataset's channel count (all listed at once)."""
    expected = dataset_json.num_channels
    wrong = [f"{c.identifier} ({len(c.images)} file(s): {', '.join(p.name for p in c.images)})"
             for c in cases.values() if len(c.images) != expected]
    if wrong:
        raise PreprocessingError(
            f"{raw_folder / 'dataset.json'} declares {expected} channel(s) but these case(s) have another number of "
            f"image files: {'; '.join(wrong)}. Add or remove their _XXXX channel files (or fix channel_names) and "
            f"preprocess again."
        )


def check_label_values(seg: np.ndarray, case: TrainingCase, dataset_json: DatasetJson) -> None:
    """Refuse a label image with values that dataset.json does not define, naming the case and file."""
    allowed = set(dataset_json.all_labels)
    if dataset_json.ignore_label is not None:
        allowed.add(dataset_json.ignore_label)
    found = np.unique(seg)
    unexpected = [int(v) for v in found if int(v) not in allowed or v != int(v)]
    if unexpected:
        raise PreprocessingError(
            f"Case {case.identifier}: {case.label} holds label value(s) {unexpected} that dataset.json does not "
            f"define (labels: {sorted(allowed)}). Fix the label file, or add the label to dataset.json and plan "
            f"again (a trained model cannot learn a new label by updating)."
        )
