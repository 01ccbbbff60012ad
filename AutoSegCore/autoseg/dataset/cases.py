"""Find the training cases of a raw dataset: imagesTr/labelsTr naming or an explicit ``dataset`` map."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from autoseg.dataset.dataset_json import DatasetJson

CHANNEL_SUFFIX = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


@dataclass(frozen=True)
class TrainingCase:
    """One case: one image file per channel (in channel order) and its label file."""

    identifier: str
    images: tuple[Path, ...]
    label: Path


def strip_ending(name: str, file_ending: str) -> str | None:
    """``name`` without ``file_ending`` (case-sensitive, as nnU-Net), or None if it does not end with it."""
    return name[: -len(file_ending)] if name.endswith(file_ending) and len(name) > len(file_ending) else None


def is_hidden(name: str) -> bool:
    """Hidden files (``.DS_Store``, macOS ``._case_0000.nii.gz`` resource forks) are never cases."""
    return name.startswith(".")


def files_by_case(images_folder: Path, file_ending: str) -> dict[str, list[Path]]:
    """``{case: [channel files by channel]}`` of a folder of ``{case}_{XXXX}{ending}`` files, in one pass.

    Hidden files and files with another ending or without the 4-digit channel suffix are skipped.
    """
    found: dict[str, list[tuple[int, Path]]] = {}
    if not images_folder.is_dir():
        return {}
    for entry in images_folder.iterdir():
        stem = strip_ending(entry.name, file_ending)
        if stem is None or is_hidden(entry.name) or not entry.is_file():
            continue
        match = CHANNEL_SUFFIX.match(stem)
        if match:
            found.setdefault(match.group("case"), []).append((int(match.group("channel")), entry))
    return {case: [p for _, p in sorted(found[case])] for case in sorted(found)}


def case_identifiers(images_folder: Path, file_ending: str) -> list[str]:
    """Sorted unique case ids of ``{case}_{XXXX}{ending}`` files in a folder (hidden files skipped)."""
    return list(files_by_case(images_folder, file_ending))


def channel_files(images_folder: Path, identifier: str, file_ending: str) -> list[Path]:
    """The ``{identifier}_XXXX{ending}`` files of one case, sorted by channel index."""
    return files_by_case(images_folder, file_ending).get(identifier, [])


def resolve_dataset_path(raw_folder: Path, value: str) -> Path:
    """A path from a dataset.json ``dataset`` map: variables expanded, relative to the dataset folder."""
    expanded = os.path.expandvars(value)
    path = Path(expanded)
    return path if path.is_absolute() else (raw_folder / path).absolute()


_resolve = resolve_dataset_path


def training_cases(raw_folder: str | Path, dataset_json: DatasetJson) -> dict[str, TrainingCase]:
    """All training cases of a raw dataset folder, by case id (sorted)."""
    raw_folder = Path(raw_folder)
    if dataset_json.dataset is not None:
        return {
            str(k): TrainingCase(
                identifier=str(k),
                images=tuple(_resolve(raw_folder, i) for i in v["images"]),
                label=_resolve(raw_folder, v["label"]),
            )
            for k, v in sorted(dataset_json.dataset.items())
        }
    ending = dataset_json.file_ending
    return {
        case: TrainingCase(case, tuple(files), raw_folder / "labelsTr" / f"{case}{ending}")
        for case, files in files_by_case(raw_folder / "imagesTr", ending).items()
    }


def test_cases(images_folder: str | Path, file_ending: str) -> dict[str, list[Path]]:
    """Cases of an ``imagesTs``-style folder (images only), by case id."""
    return files_by_case(Path(images_folder), file_ending)
