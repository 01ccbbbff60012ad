"""Integrity checks that need no image data: dataset.json and the names and layout of the files.

Everything here is tolerant: a broken dataset.json or a badly named file becomes a :class:`Problem`
and the check goes on with whatever is still usable, so that one run lists every problem.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autoseg.dataset import json_rules
from autoseg.dataset.cases import CHANNEL_SUFFIX, resolve_dataset_path, strip_ending
from autoseg.dataset.dataset_json import DatasetJson
from autoseg.dataset.integrity.report import Problem, Severity, error, warning

#: File endings that look like images; a file with one of these in the wrong format is an error, other
#: stray files (notes, spreadsheets) only a warning.
IMAGE_ENDINGS = (
    ".nii.gz",
    ".nii",
    ".nrrd",
    ".nhdr",
    ".mha",
    ".mhd",
    ".gipl",
    ".png",
    ".bmp",
    ".tif",
    ".tiff",
    ".jpg",
    ".jpeg",
    ".npy",
    ".npz",
    ".dcm",
    ".hdr",
    ".img",
    ".vtk",
    ".gz",
)
#: Files that legitimately sit next to images of some formats (detached headers' data, TIFF spacing).
COMPANION_ENDINGS = {
    ".mhd": (".raw", ".zraw"),
    ".nhdr": (".raw", ".raw.gz"),
    ".tif": (".json",),
    ".tiff": (".json",),
}


@dataclass(frozen=True)
class CaseFiles:
    """The files of one case that exist and can be read: ``(channel, path)`` pairs and the label."""

    identifier: str
    images: tuple[tuple[int, Path], ...]
    label: Path | None


@dataclass
class Layout:
    """What the file checks found: the usable cases and the problems."""

    cases: dict[str, CaseFiles] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    num_cases: int = 0


# --------------------------------------------------------------------------------------- dataset.json
def load_dataset_json(raw_folder: Path) -> tuple[DatasetJson | None, list[Problem]]:
    """Read dataset.json; every structural problem is returned, with a best-effort model when possible."""
    path = raw_folder / "dataset.json"
    if not raw_folder.is_dir():
        return None, [
            error(
                f"the dataset folder {raw_folder} does not exist",
                "Check the dataset id and nnUNet_raw; a raw dataset is a folder DatasetXXX_Name inside "
                "nnUNet_raw.",
            )
        ]
    if not path.is_file():
        return None, [
            error(
                "dataset.json is missing",
                "Create it with 'channel_names', 'labels', 'numTraining' and 'file_ending' (see nnU-Net's "
                "dataset format documentation).",
                file=path,
            )
        ]
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        return None, [
            error(
                f"dataset.json is not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}",
                "Fix the syntax; a missing comma, a trailing comma or single quotes are the usual causes.",
                file=path,
            )
        ]
    except (UnicodeDecodeError, OSError) as err:
        return None, [
            error(f"dataset.json cannot be read as UTF-8 text: {err}", "Save it as UTF-8 JSON.", file=path)
        ]
    problems = [
        error(text, "Edit dataset.json as described.", file=path) for text in json_rules.structure_problems(raw)
    ]
    if not problems:
        return DatasetJson.from_dict(raw, source=path), []
    return lenient_dataset_json(raw, path), problems


def label_definition_problems(dj: DatasetJson) -> list[Problem]:
    """The label rules beyond the structure (:func:`json_rules.label_definition_problems`) of dataset.json."""
    return [Problem(p.severity, None, dj.source, p.message, p.fix)
            for p in json_rules.label_definition_problems(dj.labels, dj.regions_class_order)]


def lenient_dataset_json(raw: Any, source: Path) -> DatasetJson | None:
    """A DatasetJson built from the usable parts of a malformed file (None without a usable file_ending).

    Unusable parts become empty: no channel names (channel counts are then not checked), no labels
    (label values are then not checked), numTraining -1 (not compared).
    """
    if not isinstance(raw, Mapping):
        return None
    ending = raw.get("file_ending")
    if not isinstance(ending, str) or not ending.startswith(".") or len(ending) < 2:
        return None
    channels = raw.get("channel_names", raw.get("modality"))
    order = raw.get("regions_class_order")
    dataset = raw.get("dataset")
    return DatasetJson(
        channel_names={str(k): str(v) for k, v in channels.items()} if isinstance(channels, Mapping) else {},
        labels=json_rules.usable_labels(raw.get("labels")),
        num_training=raw["numTraining"] if json_rules.is_int(raw.get("numTraining")) else -1,
        file_ending=ending,
        regions_class_order=tuple(order)
        if isinstance(order, list) and all(json_rules.is_int(i) for i in order)
        else None,
        overwrite_image_reader_writer=raw.get("overwrite_image_reader_writer"),
        dataset=dict(dataset) if isinstance(dataset, Mapping) else None,
        raw=dict(raw),
        source=source,
    )


# ------------------------------------------------------------------------------------- file names
def file_ending_of(name: str) -> str:
    """The (possibly double) extension of a file name: ``.nii.gz``, ``.seg.nrrd``, ``.png``."""
    lower = name.lower()
    for double in (".nii.gz", ".seg.nrrd", ".raw.gz"):
        if lower.endswith(double):
            return name[-len(double) :]
    suffix = Path(name).suffix
    return suffix


def _is_companion(name: str, ending: str) -> bool:
    return any(name.lower().endswith(c) for c in COMPANION_ENDINGS.get(ending.lower(), ()))


def _case_of_misnamed(name: str, found: str, is_label: bool) -> str | None:
    """The case a file with the wrong ending was probably meant for (None when unclear)."""
    stem = name[: len(name) - len(found)] if found and name.endswith(found) else None
    if not stem:
        return None
    match = CHANNEL_SUFFIX.match(stem)
    return stem if is_label else (match.group("case") if match else None)


def _wrong_ending_problem(
    path: Path, ending: str, case_severity: Severity, is_label: bool = False
) -> Problem | None:
    """A problem for a file that does not end with the dataset's file_ending (None for companions)."""
    name = path.name
    if _is_companion(name, ending):
        return None
    found = file_ending_of(name) or "(none)"
    case = _case_of_misnamed(name, found, is_label)
    if name.lower().endswith(ending.lower()):
        return Problem(
            case_severity,
            case,
            path,
            f"{name} ends with {found!r} but file_ending is {ending!r}; endings are case-sensitive, "
            f"so the file is ignored",
            f"Rename it to end with {ending!r}.",
        )
    looks_like_image = any(name.lower().endswith(e) for e in IMAGE_ENDINGS)
    severity: Severity = case_severity if looks_like_image else "warning"
    return Problem(
        severity,
        case if looks_like_image else None,
        path,
        f"{name} does not end with the dataset's file_ending {ending!r} (found {found!r}), so it is ignored",
        f"Convert it to {ending} (all files of a dataset use one format), fix 'file_ending' in "
        f"dataset.json, or move the file out of {path.parent.name}/.",
    )


def scan_images_folder(
    folder: Path, ending: str, num_channels: int, severity: Severity = "error"
) -> tuple[dict[str, dict[int, Path]], list[Problem]]:
    """``{case: {channel: file}}`` of a folder of ``{case}_{XXXX}{ending}`` files, and naming problems.

    Channel files beyond ``num_channels`` (when > 0) are reported and left out of the result.
    """
    found: dict[str, dict[int, Path]] = {}
    problems: list[Problem] = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        stem = strip_ending(path.name, ending)
        if stem is None:
            problem = _wrong_ending_problem(path, ending, severity)
            problems.extend([problem] if problem else [])
            continue
        match = CHANNEL_SUFFIX.match(stem)
        if not match:
            problems.append(
                Problem(
                    severity,
                    None,
                    path,
                    f"{path.name} has no 4-digit channel suffix: image files must be named "
                    f"{{case}}_{{XXXX}}{ending} (e.g. {stem}_0000{ending}), so it is ignored",
                    f"Rename it to {stem}_0000{ending} (_0001, ... for further channels).",
                )
            )
            continue
        case, channel = match.group("case"), int(match.group("channel"))
        found.setdefault(case, {})
        if num_channels and channel >= num_channels:
            problems.append(
                Problem(
                    severity,
                    case,
                    path,
                    f"extra channel file {path.name}: dataset.json declares {num_channels} "
                    f"channel(s) (_0000 to _{num_channels - 1:04d}), found channel {channel}",
                    f"Remove {path.name}, or declare channel \"{channel}\" in 'channel_names' "
                    f"(every case then needs it).",
                )
            )
            continue
        found[case][channel] = path
    return found, problems


def missing_channel_problems(
    case: str, channels: dict[int, Path], folder: Path, dj: DatasetJson, severity: Severity = "error"
) -> list[Problem]:
    """One problem per declared channel that has no file."""
    problems = []
    for channel in range(dj.num_channels):
        if channel not in channels:
            expected = folder / f"{case}_{channel:04d}{dj.file_ending}"
            name = dj.channel_names.get(str(channel), "?")
            problems.append(
                Problem(
                    severity,
                    case,
                    expected,
                    f"channel {channel} ({name}) is missing: expected {expected.name}, found "
                    f"only {', '.join(p.name for p in channels.values()) or 'no valid channel file'}",
                    f"Add {expected.name} (every case needs one file per channel in "
                    f"'channel_names') or remove the case's other files.",
                )
            )
    return problems


# ------------------------------------------------------------------------------- imagesTr/labelsTr
def folder_layout(raw_folder: Path, dj: DatasetJson) -> Layout:
    """Cases and naming problems of a dataset using imagesTr/labelsTr."""
    layout = Layout()
    images_dir, labels_dir = raw_folder / "imagesTr", raw_folder / "labelsTr"
    if not images_dir.is_dir():
        layout.problems.append(
            error(
                "the imagesTr folder is missing",
                "Put the training images in imagesTr/{case}_{XXXX}"
                f"{dj.file_ending}, or list the cases in a 'dataset' entry of dataset.json.",
                file=images_dir,
            )
        )
        return layout
    found, layout.problems = scan_images_folder(images_dir, dj.file_ending, dj.num_channels)
    layout.num_cases = len(found)
    labels = _label_files(labels_dir, dj, set(found), layout.problems)
    for case, channels in found.items():
        layout.problems.extend(missing_channel_problems(case, channels, images_dir, dj))
        label = labels.get(case)
        if label is None and labels_dir.is_dir():
            expected = labels_dir / f"{case}{dj.file_ending}"
            layout.problems.append(
                error(
                    f"the label file {expected.name} is missing (the case has images but no label)",
                    f"Add labelsTr/{expected.name}, or remove the case's images from imagesTr.",
                    case,
                    expected,
                )
            )
        layout.cases[case] = CaseFiles(case, tuple(sorted(channels.items())), label)
    return layout


def _label_files(
    labels_dir: Path, dj: DatasetJson, case_ids: set[str], problems: list[Problem]
) -> dict[str, Path]:
    """``{case: label file}`` of labelsTr; stray and orphaned label files are reported."""
    if not labels_dir.is_dir():
        problems.append(
            error(
                "the labelsTr folder is missing",
                f"Put one label file per case in labelsTr/{{case}}{dj.file_ending}.",
                file=labels_dir,
            )
        )
        return {}
    labels: dict[str, Path] = {}
    for path in sorted(labels_dir.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        stem = strip_ending(path.name, dj.file_ending)
        if stem is None:
            problem = _wrong_ending_problem(path, dj.file_ending, "error", is_label=True)
            problems.extend([problem] if problem else [])
        elif stem in case_ids:
            labels[stem] = path
        else:
            problems.append(_orphan_label_problem(path, stem, dj.file_ending, case_ids))
    return labels


def _orphan_label_problem(path: Path, stem: str, ending: str, case_ids: set[str]) -> Problem:
    match = CHANNEL_SUFFIX.match(stem)
    if match and match.group("case") in case_ids:
        case = match.group("case")
        return error(
            f"label file {path.name} has a channel suffix; label files are named {{case}}{ending}, so "
            f"it matches no case",
            f"Rename it to {case}{ending} (only images carry the _XXXX suffix).",
            case,
            path,
        )
    return error(
        f"label file {path.name} has no images: expected imagesTr/{stem}_0000{ending}",
        f"Add the images of case {stem!r} to imagesTr, or remove {path.name}.",
        stem,
        path,
    )


# ---------------------------------------------------------------------------- explicit 'dataset' map
def explicit_layout(raw_folder: Path, dj: DatasetJson) -> Layout:
    """Cases and problems of a dataset.json that lists its files in a 'dataset' map."""
    layout = Layout(num_cases=len(dj.dataset or {}))
    source = raw_folder / "dataset.json"
    for case, entry in sorted((dj.dataset or {}).items()):
        case = str(case)
        images, label = entry.get("images") if isinstance(entry, Mapping) else None, None
        if isinstance(entry, Mapping):
            label = entry.get("label")
        if not (
            isinstance(images, list) and all(isinstance(i, str) for i in images) and isinstance(label, str)
        ):
            continue  # reported with the other dataset.json problems
        paths = [resolve_dataset_path(raw_folder, i) for i in images]
        layout.problems.extend(_explicit_case_problems(case, paths, dj, source))
        label_path = resolve_dataset_path(raw_folder, label)
        layout.problems.extend(_explicit_file_problems(case, [label_path], dj, "label"))
        layout.cases[case] = CaseFiles(
            case,
            tuple((c, p) for c, p in enumerate(paths) if p.is_file()),
            label_path if label_path.is_file() else None,
        )
    return layout


def _explicit_case_problems(case: str, paths: list[Path], dj: DatasetJson, source: Path) -> list[Problem]:
    problems = []
    if dj.num_channels and len(paths) != dj.num_channels:
        problems.append(
            error(
                f"case {case} lists {len(paths)} image file(s) in dataset.json but 'channel_names' declares "
                f"{dj.num_channels} channel(s)",
                "List exactly one image file per channel, in channel order.",
                case,
                source,
            )
        )
    return problems + _explicit_file_problems(case, paths, dj, "image")


def _explicit_file_problems(case: str, paths: list[Path], dj: DatasetJson, what: str) -> list[Problem]:
    problems = []
    for path in paths:
        if not path.is_file():
            problems.append(
                error(
                    f"the {what} file {path.name} listed in dataset.json does not exist ({path})",
                    "Fix the path in the 'dataset' entry (relative paths are relative to the "
                    "dataset folder) or add the file.",
                    case,
                    path,
                )
            )
        elif not path.name.endswith(dj.file_ending):
            problems.append(
                warning(
                    f"the {what} file {path.name} does not end with file_ending {dj.file_ending!r}; "
                    f"it is read with the reader chosen for {dj.file_ending!r}",
                    "Use one file format for the whole dataset.",
                    case,
                    path,
                )
            )
    return problems


# ------------------------------------------------------------------------------------------ imagesTs
def images_ts_problems(raw_folder: Path, dj: DatasetJson) -> list[Problem]:
    """Naming problems of the optional imagesTs folder (warnings: they only matter for prediction)."""
    folder = raw_folder / "imagesTs"
    if dj.dataset is not None or not folder.is_dir():
        return []
    found, problems = scan_images_folder(folder, dj.file_ending, dj.num_channels, severity="warning")
    for case, channels in found.items():
        problems.extend(missing_channel_problems(case, channels, folder, dj, severity="warning"))
    return problems


def case_count_problems(layout: Layout, dj: DatasetJson, raw_folder: Path) -> list[Problem]:
    """Empty dataset and numTraining disagreeing with the cases found."""
    source = raw_folder / "dataset.json"
    if layout.num_cases == 0:
        where = "the 'dataset' entry of dataset.json" if dj.dataset is not None else "imagesTr"
        return [
            error(
                f"the dataset has no training cases: found none in {where}",
                f"Add images named {{case}}_0000{dj.file_ending} to imagesTr (and labels to labelsTr); "
                f"check that file_ending {dj.file_ending!r} matches the files.",
                file=source,
            )
        ]
    if dj.num_training >= 0 and dj.num_training != layout.num_cases:
        examples = ", ".join(list(layout.cases)[:5])
        return [
            error(
                f"numTraining is {dj.num_training} in dataset.json but {layout.num_cases} case(s) were "
                f"found (e.g. {examples})",
                f'Set "numTraining": {layout.num_cases} in dataset.json, or add the missing cases.',
                file=source,
            )
        ]
    return []
