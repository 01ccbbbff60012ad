"""Trained models for the Inference module: find them in a results folder, map volumes to their channels.

Reads only ``dataset.json``/``plans.json`` and looks for checkpoint files (no torch), so the module can
list models instantly. Works on folders written by nnU-Net v2 and by AutoSeg alike.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoseg.dataset.dataset_json import DatasetJson
from autoseg.errors import AutoSegError
from autoseg.paths import DatasetName, ModelFolderName

logger = logging.getLogger(__name__)

CASCADE = "3d_cascade_fullres"
POSTPROCESSING_FILES = ("postprocessing.json", "postprocessing.pkl")  # ours first: no pickle involved


@dataclass
class ModelInfo:
    """One ``<results>/DatasetXXX/<trainer>__<plans>__<configuration>`` folder with at least one usable fold."""

    folder: Path
    dataset_name: str
    trainer: str
    plans: str
    configuration: str
    folds: list[str]  # folds with the checkpoint: "0" ... "4", "all"
    channel_names: dict[str, str]
    labels: dict[str, int | list[int]]
    file_ending: str
    needs_previous_stage: bool
    postprocessing_file: Path | None
    regions_class_order: list[int] | None = None  # region-based models: the label value of each region

    @property
    def title(self) -> str:
        """``Dataset004_Hippocampus — 3d_fullres (nnUNetTrainer, nnUNetPlans), folds 0-4``."""
        return (f"{self.dataset_name} \u2014 {self.configuration} ({self.trainer}, {self.plans}), "
                f"{'fold' if len(self.folds) == 1 else 'folds'} {format_folds(self.folds)}")


def format_folds(folds: Sequence[str | int]) -> str:
    """``["0", "1", "2", "4", "all"]`` -> ``"0-2, 4, all"`` (runs of three or more become ranges)."""
    runs: list[list[int]] = []
    for number in sorted({int(f) for f in folds if str(f).isdigit()}):
        if runs and number == runs[-1][1] + 1:
            runs[-1][1] = number
        else:
            runs.append([number, number])
    parts: list[str] = []
    for first, last in runs:
        parts += [f"{first}-{last}"] if last > first + 1 else sorted({str(first), str(last)}, key=int)
    return ", ".join(parts + [str(f) for f in folds if not str(f).isdigit()])


def _split_model_name(name: str) -> tuple[str, str, str] | None:
    model = ModelFolderName.parse(name)
    return (model.trainer, model.plans, model.configuration) if model else None


def _is_model_folder(folder: Path) -> bool:
    return _split_model_name(folder.name) is not None and (folder / "dataset.json").is_file()


def _usable_folds(folder: Path, checkpoint: str) -> list[str]:
    folds = []
    for child in folder.glob("fold_*"):
        suffix = child.name[len("fold_"):]
        if (suffix.isdigit() or suffix == "all") and (child / checkpoint).is_file():
            folds.append(str(int(suffix)) if suffix.isdigit() else suffix)
    return sorted(folds, key=lambda f: (not f.isdigit(), int(f) if f.isdigit() else 0))


def _read_plans(folder: Path) -> dict[str, Any]:
    try:
        plans = json.loads((folder / "plans.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return plans if isinstance(plans, dict) else {}


def _needs_previous_stage(plans: Mapping[str, Any], configuration: str) -> bool:
    configurations = plans.get("configurations") or {}
    seen: set[str] = set()
    while isinstance(configurations.get(configuration), dict) and configuration not in seen:
        seen.add(configuration)
        entry = configurations[configuration]
        if entry.get("previous_stage"):
            return True
        configuration = entry.get("inherits_from") or ""
    return False


def _postprocessing_file(folder: Path, folds: Sequence[str]) -> Path | None:
    """find_best's postprocessing of this model: the crossval folder of its folds first, then any."""
    candidates = sorted(p for p in folder.glob("crossval_results_folds_*") if p.is_dir())
    preferred = folder / ("crossval_results_folds_" + "_".join(f for f in folds if f.isdigit()))
    for crossval in ([preferred] if preferred in candidates else []) + candidates:
        for name in POSTPROCESSING_FILES:
            if (crossval / name).is_file():
                return crossval / name
    return None


def model_info(folder: str | Path, checkpoint: str = "checkpoint_final.pth") -> ModelInfo | None:
    """The model in ``folder``, or None when no fold has ``checkpoint`` (raises for a broken dataset.json)."""
    folder = Path(folder)
    names = _split_model_name(folder.name)
    if names is None:
        raise AutoSegError(f"{folder} is not a model folder: its name must be <trainer>__<plans>__<configuration>, "
                           f"e.g. nnUNetTrainer__nnUNetPlans__3d_fullres.")
    folds = _usable_folds(folder, checkpoint)
    if not folds:
        return None
    dataset_json = DatasetJson.load(folder / "dataset.json")
    plans = _read_plans(folder)
    trainer, plans_name, configuration = names
    parent = folder.parent.name
    dataset_name = parent if DatasetName.parse(parent) is not None else str(plans.get("dataset_name") or parent)
    labels = {name: (list(value) if isinstance(value, tuple) else value) for name, value in dataset_json.labels.items()}
    return ModelInfo(
        folder=folder, dataset_name=dataset_name, trainer=trainer, plans=plans_name, configuration=configuration,
        folds=folds, channel_names=dict(dataset_json.channel_names), labels=labels,
        file_ending=dataset_json.file_ending,
        needs_previous_stage=configuration == CASCADE or _needs_previous_stage(plans, configuration),
        postprocessing_file=_postprocessing_file(folder, folds),
        regions_class_order=list(dataset_json.regions_class_order) if dataset_json.regions_class_order else None,
    )


def _candidate_folders(folder: Path) -> list[Path]:
    if _is_model_folder(folder):
        return [folder]
    found: list[Path] = []
    for child in sorted(p for p in folder.iterdir() if p.is_dir()):
        if _is_model_folder(child):
            found.append(child)
        elif child.name != "ensembles":
            found += [g for g in sorted(p for p in child.iterdir() if p.is_dir()) if _is_model_folder(g)]
    return found


def find_models(folder: str | Path, checkpoint: str = "checkpoint_final.pth") -> list[ModelInfo]:
    """Models under ``folder`` (an nnUNet_results folder, one dataset folder or one model folder).

    Models without any fold holding ``checkpoint`` are skipped, and so are folders with an unreadable
    dataset.json (logged). Sorted by dataset, configuration, trainer, plans.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise AutoSegError(f"Model folder {folder} does not exist. Choose an nnUNet_results folder, a "
                           f"DatasetXXX_Name folder in it, or one <trainer>__<plans>__<configuration> folder.")
    models: list[ModelInfo] = []
    for candidate in _candidate_folders(folder):
        try:
            info = model_info(candidate, checkpoint)
        except AutoSegError as err:
            logger.warning("Skipping %s: %s", candidate, err)
            continue
        if info is not None:
            models.append(info)
    return sorted(models, key=lambda m: (m.dataset_name, m.configuration, m.trainer, m.plans, str(m.folder)))


def _words(name: str) -> set[str]:
    """Lower-case words: split on non-alphanumerics and camelCase ("CTChest" -> ct, chest), not on digits."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", name)
    return {w for w in re.split(r"[^0-9a-z]+", spaced.lower()) if w}


def _compact(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "", name.lower())


def _score(channel: str, volume: str) -> tuple[int, int] | None:
    """How well ``volume`` matches ``channel``: (level, -extra words), None for no match."""
    if volume.strip().lower() == channel.strip().lower():
        return (4, 0)
    if _compact(channel) and _compact(volume) == _compact(channel):
        return (3, 0)
    channel_words, volume_words = _words(channel), _words(volume)
    if channel_words and channel_words <= volume_words:
        return (2, -len(volume_words - channel_words))
    if volume_words and volume_words <= channel_words:
        return (1, -len(channel_words - volume_words))
    return None


def match_channels(channel_names: Mapping[str, str], volume_names: Sequence[str]) -> list[int | None]:
    """For each model channel (in channel index order) the index of the best-matching volume, or None.

    Matching is case-insensitive: the same name, the same letters and digits ignoring separators, the
    channel's words all in the volume's name ("T1" matches "BraTS_001_t1" but not "t1ce"), or the volume's
    words all in the channel name. Each volume is used once, best matches first. A single-channel model
    with a single volume always gets that volume.
    """
    keys = sorted(channel_names, key=lambda k: (int(k) if str(k).isdigit() else 1 << 30, str(k)))
    channels = [str(channel_names[k]) for k in keys]
    if len(channels) == 1 and len(volume_names) == 1:
        return [0]
    scored = []
    for c, channel in enumerate(channels):
        for v, volume in enumerate(volume_names):
            score = _score(channel, str(volume))
            if score is not None:
                scored.append((score, c, v))
    scored.sort(key=lambda item: (-item[0][0], -item[0][1], item[1], item[2]))
    result: list[int | None] = [None] * len(channels)
    used: set[int] = set()
    for _, c, v in scored:
        if result[c] is None and v not in used:
            result[c] = v
            used.add(v)
    return result
