"""The cases to export: case-id rules and finding ``X.seg.nrrd`` + its volume(s) in a folder."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from autoseg.dataset.export.annotated_slices import SIDECAR_ENDING
from autoseg.errors import DatasetError

SEG_ENDING = ".seg.nrrd"
#: Volume file endings looked for next to a ``.seg.nrrd`` (formats SimpleITK reads and Slicer saves).
VOLUME_ENDINGS = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
CHANNEL_SUFFIX = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")
_FORBIDDEN = set('/\\:*?"<>|')


@dataclass
class ExportCase:
    """One annotated case: a volume per channel (channel 0 is the reference grid) and its segmentation."""

    case_id: str  # nnU-Net case identifier
    images: list[Path]  # one file per channel
    segmentation: Path  # .seg.nrrd


def case_id_problem(case_id: str) -> str | None:
    """Why ``case_id`` cannot name an nnU-Net case (None when it can)."""
    if not case_id or case_id.strip() != case_id:
        return f"case id {case_id!r} is empty or starts/ends with spaces"
    bad = sorted({c for c in case_id if c in _FORBIDDEN or ord(c) < 32})
    if bad:
        allowed = "".join(sorted(_FORBIDDEN))
        return f"case id {case_id!r} contains {''.join(bad)!r} (no path separators or {allowed})"
    if case_id.startswith("."):
        return f"case id {case_id!r} starts with '.' (hidden files are never cases)"
    if CHANNEL_SUFFIX.match(case_id):
        return (
            f"case id {case_id!r} ends with a 4-digit channel suffix; nnU-Net would read it as channel "
            f"{case_id[-4:]} of case {case_id[:-5]!r}"
        )
    return None


def split_ending(name: str, endings: Sequence[str]) -> tuple[str, str] | None:
    """``(stem, ending)`` for the longest of ``endings`` the name ends with (case-insensitive)."""
    lower = name.lower()
    hits = [e for e in endings if lower.endswith(e) and len(name) > len(e)]
    if not hits:
        return None
    ending = max(hits, key=len)
    return name[: -len(ending)], name[-len(ending) :]


def find_cases_in_folder(
    folder: str | Path, channel_suffixes: Sequence[str] | None = None
) -> list[ExportCase]:
    """The cases of a folder of ``X.seg.nrrd`` files with their volumes, sorted by case id.

    Volumes are ``X_0000.<ext>``, ``X_0001.<ext>``, ... (consecutive from 0) or ``X.<ext>`` (one channel);
    with ``channel_suffixes`` (e.g. ``["_T1", "_T2"]``) they are ``X<suffix>.<ext>`` in that order.
    ``<ext>`` is any of :data:`VOLUME_ENDINGS`. DatasetError lists every segmentation whose volume is
    missing or ambiguous, and every ``X.annotated_slices.json`` without its ``X.seg.nrrd``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(
            f"{folder} is not a folder; give the folder holding the .seg.nrrd files and their volumes."
        )
    segmentations: dict[str, Path] = {}
    volumes: dict[str, list[Path]] = {}
    sidecars: dict[str, Path] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or not entry.is_file():
            continue
        seg = split_ending(entry.name, (SEG_ENDING,))
        if seg:
            segmentations[seg[0]] = entry
            continue
        sidecar = split_ending(entry.name, (SIDECAR_ENDING,))
        if sidecar:
            sidecars[sidecar[0]] = entry
            continue
        volume = split_ending(entry.name, VOLUME_ENDINGS)
        if volume:
            volumes.setdefault(volume[0], []).append(entry)
    if not segmentations:
        raise DatasetError(
            f"{folder} has no .seg.nrrd files. Save each case's segmentation from 3D Slicer as "
            f"<case>.seg.nrrd next to its volume <case>.nrrd (or <case>_0000.nii.gz, ...)."
        )
    cases, problems = [], [
        f"{path.name} has no {stem}{SEG_ENDING} next to it, so it marks no case as partially annotated; "
        f"rename it after its segmentation (CASE{SIDECAR_ENDING} next to CASE{SEG_ENDING}) or remove it."
        for stem, path in sidecars.items()
        if stem not in segmentations
    ]
    for case_id, seg_path in segmentations.items():
        images, problem = _case_volumes(case_id, seg_path, volumes, channel_suffixes)
        if problem:
            problems.append(problem)
        else:
            cases.append(ExportCase(case_id=case_id, images=images, segmentation=seg_path))
    if problems:
        raise DatasetError(
            f"Cannot pair the segmentations in {folder} with their volumes:\n  - " + "\n  - ".join(problems)
        )
    return cases


def _case_volumes(
    case_id: str, seg_path: Path, volumes: dict[str, list[Path]], channel_suffixes: Sequence[str] | None
) -> tuple[list[Path], str | None]:
    if channel_suffixes:
        stems = [case_id + suffix for suffix in channel_suffixes]
    else:
        numbered = sorted(
            int(m.group("channel"))
            for stem in volumes
            if (m := CHANNEL_SUFFIX.match(stem)) and m.group("case") == case_id
        )
        if numbered and case_id in volumes:
            names = ", ".join(p.name for p in volumes[case_id])
            return [], (
                f"{seg_path.name}: both {names} and {case_id}_0000... volumes exist; keep one naming "
                f"scheme per case."
            )
        if numbered and numbered != list(range(len(numbered))):
            missing = sorted(set(range(max(numbered) + 1)) - set(numbered))
            return [], (
                f"{seg_path.name}: channel file(s) {', '.join(f'{case_id}_{c:04d}' for c in missing)} "
                f"missing (channels must be numbered _0000, _0001, ... without gaps)."
            )
        stems = [f"{case_id}_{c:04d}" for c in numbered] if numbered else [case_id]
    images = []
    for stem in stems:
        found = volumes.get(stem, [])
        if not found:
            expected = (
                f"{stem}.<ext>"
                if channel_suffixes or stem != case_id
                else f"{case_id}.<ext> or {case_id}_0000.<ext>"
            )
            return [], (
                f"{seg_path.name} has no volume: expected {expected} next to it (<ext> one of "
                f"{', '.join(VOLUME_ENDINGS)})."
            )
        if len(found) > 1:
            return [], (
                f"{seg_path.name}: several volumes could be channel {stems.index(stem)} "
                f"({', '.join(p.name for p in found)}); keep one."
            )
        images.append(found[0])
    return images, None
