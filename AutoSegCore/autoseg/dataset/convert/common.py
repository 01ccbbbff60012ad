"""What every converter into an nnU-Net v2 raw dataset needs: the target folder's name and checks, assembling
it in a hidden staging folder that is renamed into place at the end (an interrupted conversion never leaves a
half dataset; an existing dataset is replaced only with ``overwrite``), and the translation of an MSD-style
``dataset.json`` (MSD tasks and nnU-Net v1 tasks) to the v2 schema.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from autoseg.errors import DatasetError
from autoseg.paths import DatasetName
from autoseg.utils.files import load_json

logger = logging.getLogger(__name__)

#: Largest id that gives a ``DatasetXXX_`` name with three digits.
MAX_DATASET_ID = 999
#: The file ending of MSD and nnU-Net v1 images.
MSD_FILE_ENDING = ".nii.gz"
STAGING_MARKER = ".converting-"


# ---------------------------------------------------------------------------------------- names
def dataset_folder_name(dataset_id: int, name: str) -> str:
    """``DatasetXXX_Name``; DatasetError when the id does not fit three digits or the name is unusable."""
    if not 0 <= dataset_id <= MAX_DATASET_ID:
        raise DatasetError(
            f"Dataset id {dataset_id} is out of range: expected 0 to {MAX_DATASET_ID} so that the folder is "
            f"named DatasetXXX_{name}. Pick another id with -overwrite_id."
        )
    folder = str(DatasetName(dataset_id, name))
    check_dataset_folder_name(folder)
    return folder


def check_dataset_folder_name(folder: str) -> int:
    """Return the id of a ``DatasetXXX_Name`` folder name; DatasetError when it is not one."""
    parsed = DatasetName.parse(folder)
    if parsed is None or any(c in folder for c in "/\\:") or folder.strip() != folder:
        raise DatasetError(
            f"{folder!r} is not a valid dataset name: expected DatasetXXX_Name with a three-digit id, e.g. "
            f"Dataset004_Hippocampus (a name, not a path; no slashes, colons or surrounding spaces)."
        )
    return parsed.dataset_id


# ---------------------------------------------------------------------------------------- target folder
def check_target(target: Path, overwrite: bool, id_check_folders: Sequence[Path], fix: str) -> None:
    """Refuse an existing target (unless ``overwrite``) and an id already used by another dataset."""
    if target.exists() and not overwrite:
        raise DatasetError(
            f"The target dataset folder {target} already exists. AutoSeg never replaces a dataset silently: "
            f"remove or rename it, {fix}, or pass --overwrite (overwrite=True) to replace it."
        )
    if target.exists() and not target.is_dir():
        raise DatasetError(f"{target} exists and is not a folder; remove it or choose another target name.")
    dataset_id = check_dataset_folder_name(target.name)
    prefix = DatasetName.prefix(dataset_id)
    clashes = sorted(
        str(folder / p.name)
        for folder in {target.parent, *id_check_folders}
        if folder.is_dir()
        for p in folder.iterdir()
        if p.is_dir() and p.name.startswith(prefix) and p.name != target.name
    )
    if clashes:
        raise DatasetError(
            f"Dataset id {dataset_id} is already used by {', '.join(clashes)}; a second dataset with "
            f"that id would make `-d {dataset_id}` ambiguous. Fix: {fix}, or remove the other dataset."
        )
    elsewhere = [str(f / target.name) for f in id_check_folders if (f / target.name).is_dir()]
    if elsewhere:
        logger.warning(
            "%s already exist(s); they were made from an earlier %s. Re-run preprocessing/training "
            "if the data changed.",
            ", ".join(elsewhere),
            target.name,
        )
    stale = sorted(target.parent.glob(f".{target.name}{STAGING_MARKER}*")) if target.parent.is_dir() else []
    if stale:
        logger.warning(
            "Leftovers of interrupted conversions found (safe to delete once no conversion runs): %s",
            ", ".join(str(s) for s in stale),
        )


@contextmanager
def staged_dataset_folder(target: Path, overwrite: bool) -> Iterator[Path]:
    """Yield a hidden staging folder next to ``target``; move it onto ``target`` when the block succeeds.

    On any failure (or Ctrl+C) the staging folder is removed and ``target`` is left as it was.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}{STAGING_MARKER}", dir=target.parent))
    try:
        yield staging
        publish_folder(staging, target, overwrite)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def publish_folder(staging: Path, target: Path, overwrite: bool) -> None:
    """Rename ``staging`` to ``target``, replacing an existing ``target`` only when ``overwrite``."""
    if not target.exists():
        os.rename(staging, target)
        return
    if not overwrite:
        raise DatasetError(
            f"{target} appeared while converting (another process?). Nothing was changed; remove it or pass "
            f"--overwrite, then run the conversion again."
        )
    retired = target.parent / f".{target.name}.replaced-{uuid.uuid4().hex[:8]}"
    os.rename(target, retired)
    try:
        os.rename(staging, target)
    except OSError:
        os.rename(retired, target)
        raise
    shutil.rmtree(retired, ignore_errors=True)
    logger.info("Replaced the previous %s (--overwrite).", target)


# ---------------------------------------------------------------------------------------- dataset.json
def read_msd_dataset_json(path: Path) -> dict[str, Any]:
    """Load an MSD / nnU-Net v1 dataset.json, checking it has ``modality`` and ``labels``."""
    try:
        data = load_json(path)
    except (OSError, ValueError) as err:
        raise DatasetError(f"Cannot read {path}: {err}. It must be the task's JSON description.") from err
    if not isinstance(data, dict):
        raise DatasetError(f"{path} must contain a JSON object, found {type(data).__name__}.")
    missing = [k for k in ("modality", "labels") if k not in data]
    if missing:
        already_v2 = (
            " It already has 'channel_names': it looks like an nnU-Net v2 dataset."
            if "channel_names" in data
            else ""
        )
        raise DatasetError(
            f"{path} has no {' or '.join(repr(m) for m in missing)}; an MSD / nnU-Net v1 dataset.json has "
            f'\'modality\' {{"0": "CT"}} and \'labels\' {{"0": "background", ...}}.{already_v2}'
        )
    return data


def v2_dataset_json(old: Mapping[str, Any], where: Path, drop_keys: Sequence[str]) -> dict[str, Any]:
    """Translate an MSD-style dataset.json to v2, keeping the other keys and their order.

    ``modality`` becomes ``channel_names`` (same place), ``labels`` value → name becomes name → value,
    ``file_ending`` is ``.nii.gz`` and ``drop_keys`` are removed.
    """
    new: dict[str, Any] = {}
    for key, value in old.items():
        if key in drop_keys:
            continue
        if key == "modality":
            new["channel_names"] = {str(k): v for k, v in _checked_modality(value, where).items()}
        elif key == "labels":
            new["labels"] = invert_labels(value, where)
        else:
            new[key] = value
    new["file_ending"] = MSD_FILE_ENDING
    return new


def _checked_modality(modality: Any, where: Path) -> Mapping[str, Any]:
    if not isinstance(modality, Mapping) or not modality:
        raise DatasetError(
            f'{where}: \'modality\' must be a non-empty object such as {{"0": "T2"}}, found {modality!r}.'
        )
    if sorted(str(k) for k in modality) != sorted(str(i) for i in range(len(modality))):
        raise DatasetError(
            f'{where}: \'modality\' keys must be "0", "1", ... (one per channel), found {list(modality)}.'
        )
    return dict(sorted(modality.items(), key=lambda kv: int(kv[0])))


def invert_labels(labels: Any, where: Path) -> dict[str, int]:
    """``{"0": "background", "1": "edema"}`` → ``{"background": 0, "edema": 1}`` with checks."""
    if not isinstance(labels, Mapping) or not labels:
        raise DatasetError(
            f'{where}: \'labels\' must be an object such as {{"0": "background"}}, found {labels!r}.'
        )
    inverted: dict[str, int] = {}
    for value, name in labels.items():
        if not str(value).strip().lstrip("-").isdigit():
            raise DatasetError(
                f'{where}: label keys must be integer values (MSD format {{"1": "edema"}}), '
                f"found key {value!r}."
            )
        if str(name) in inverted:
            raise DatasetError(
                f"{where}: label name {name!r} is used for both {inverted[str(name)]} and {value}; "
                "v2 maps names to values, so names must be unique. Rename one of them."
            )
        inverted[str(name)] = int(value)
    return inverted
