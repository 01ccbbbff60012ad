"""Numbered versions of a fold's model, kept when the model is updated with new cases.

The newest model is always ``fold_K/checkpoint_final.pth`` (what nnU-Net and ``autoseg predict`` load by
default). Before an update, the current version N is archived as ``fold_K/versions/vN/``: its
``checkpoint_final.pth`` (hard-linked when possible), its ``validation/``, ``debug.json``, ``progress.png``
and ``progress.jsonl``, and a ``version.json`` describing it. ``fold_K/model_version.json`` records the
current version number (absent: version 1, a model that was never updated). An archived version is
predicted with ``-chk versions/vN/checkpoint_final.pth`` (nnU-Net reads that too) or ``-model_version N``.
Nothing is ever overwritten: archiving refuses a version folder that already holds another model.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from autoseg.errors import AutoSegError
from autoseg.evaluation.summary import load_summary
from autoseg.utils.files import atomic_path, load_json, save_json

VERSIONS_FOLDER = "versions"
CURRENT_VERSION_FILE = "model_version.json"
CHECKPOINT = "checkpoint_final.pth"
#: what belongs to one version besides its checkpoint (moved into the archive: the update writes new ones)
VERSION_FILES = ("validation", "validation_before_update", "debug.json", "progress.png", "progress.jsonl",
                 "checkpoint_best.pth")


def current_version(fold_folder: Path) -> int:
    path = fold_folder / CURRENT_VERSION_FILE
    return int(load_json(path)["version"]) if path.is_file() else 1


def version_folder(fold_folder: Path, version: int) -> Path:
    return fold_folder / VERSIONS_FOLDER / f"v{version}"


def archived_versions(fold_folder: Path) -> list[int]:
    """Archived version numbers of a fold, ascending."""
    folder = fold_folder / VERSIONS_FOLDER
    found = [int(p.name[1:]) for p in folder.glob("v*") if p.name[1:].isdigit() and (p / CHECKPOINT).is_file()]
    return sorted(found)


def checkpoint_name_for_version(model_folder: Path, version: int) -> str:
    """The ``-chk`` name (relative to each fold folder) of ``version``; an error names the versions there are."""
    folds = sorted(p for p in model_folder.glob("fold_*") if p.is_dir())
    for fold_folder in folds:
        if current_version(fold_folder) == version and (fold_folder / CHECKPOINT).is_file():
            return CHECKPOINT
        if version in archived_versions(fold_folder):
            return f"{VERSIONS_FOLDER}/v{version}/{CHECKPOINT}"
    known = sorted({v for f in folds for v in [*archived_versions(f), current_version(f)]})
    raise AutoSegError(
        f"{model_folder} has no model version {version} (versions: {', '.join(map(str, known)) or 'none'})."
    )


def _link_or_copy(source: Path, target: Path) -> None:
    with atomic_path(target) as tmp:
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copy2(source, tmp)


def archive_current_version(fold_folder: Path, description: dict[str, Any]) -> int:
    """Archive the current model of ``fold_folder`` as ``versions/vN`` (idempotent); returns N."""
    version = current_version(fold_folder)
    checkpoint = fold_folder / CHECKPOINT
    target = version_folder(fold_folder, version)
    if (target / CHECKPOINT).is_file():
        return version  # an interrupted update archived it already
    if not checkpoint.is_file():
        raise AutoSegError(f"{checkpoint} does not exist: there is no finished model in {fold_folder} to update.")
    target.mkdir(parents=True, exist_ok=True)
    for name in VERSION_FILES:
        source = fold_folder / name
        if source.exists():
            if (target / name).exists():
                raise AutoSegError(f"{target / name} exists already; move it away (nothing is overwritten).")
            shutil.move(str(source), str(target / name))
    summary_file = target / "validation" / "summary.json"
    if summary_file.is_file():
        description = {**description, "mean_validation_dice": load_summary(summary_file).foreground_mean.get("Dice")}
    save_json({"version": version, **description}, target / "version.json")
    _link_or_copy(checkpoint, target / CHECKPOINT)  # last: its presence marks the archive complete
    return version


def set_current_version(fold_folder: Path, version: int, description: dict[str, Any]) -> None:
    save_json({"version": version, **description}, fold_folder / CURRENT_VERSION_FILE)
