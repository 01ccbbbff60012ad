"""Where an export goes: the ``nnUNet_raw/DatasetXXX_Name`` folder (new or existing) and what it holds."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoseg.dataset.cases import files_by_case, is_hidden, strip_ending
from autoseg.errors import DatasetError
from autoseg.paths import DatasetName, parse_dataset_id

MAX_DATASET_ID = 999
#: Endings the export can write (SimpleITK writers that keep the full 3D geometry).
WRITABLE_ENDINGS = (".nii.gz", ".nii", ".nrrd", ".mha")
DEFAULT_FILE_ENDING = ".nii.gz"


@dataclass
class ExportTarget:
    """The dataset folder and, when it already has one, its dataset.json (as a dict)."""

    folder: Path
    dataset_json: dict[str, Any] | None

    @property
    def is_new(self) -> bool:
        return self.dataset_json is None


def resolve_target(raw_folder: Path, dataset: str | int, dataset_name: str | None) -> Path:
    """The dataset folder for ``dataset`` (id or ``DatasetXXX_Name``) and an optional name.

    An existing ``DatasetXXX_*`` in ``raw_folder`` is extended; a new one needs a name. DatasetError when
    the id/name is invalid, ambiguous or clashes with an existing dataset of another name.
    """
    text = str(dataset).strip()
    parsed = DatasetName.parse(text)
    dataset_id = parse_dataset_id(text)
    if dataset_id is None:
        raise DatasetError(
            f"{text!r} is not a dataset id or name; use an id such as 5 or 005, or a name such as "
            f"Dataset005_Liver."
        )
    if not 0 <= dataset_id <= MAX_DATASET_ID:
        raise DatasetError(
            f"Dataset id {dataset_id} is out of range: use 0 to {MAX_DATASET_ID} (three digits)."
        )
    name = dataset_name.strip() if dataset_name else (parsed.name if parsed else None)
    if parsed and dataset_name and dataset_name.strip() != parsed.name:
        raise DatasetError(f"The dataset {text!r} and the name {dataset_name!r} disagree; give one of them.")
    prefix = DatasetName.prefix(dataset_id)
    if name is not None and (raw_folder / (prefix + name)).is_dir():
        return raw_folder / (prefix + name)
    existing = (
        sorted(p for p in raw_folder.iterdir() if p.is_dir() and p.name.startswith(prefix))
        if raw_folder.is_dir()
        else []
    )
    if len(existing) > 1:
        raise DatasetError(
            f"Dataset id {dataset_id} is ambiguous in {raw_folder}: "
            f"{', '.join(p.name for p in existing)}. Give the full name (-d DatasetXXX_Name), and "
            f"remove or renumber the duplicate."
        )
    if existing:
        if name is not None and existing[0].name != prefix + name:
            raise DatasetError(
                f"Dataset id {dataset_id} is already used by {existing[0]}. To add cases to it, "
                f"give -d {dataset_id} without a name (or its full name {existing[0].name}); for a "
                f"new dataset called {name!r}, choose an unused id."
            )
        return existing[0]
    if not name:
        raise DatasetError(
            f"There is no dataset with id {dataset_id} in {raw_folder}. To create one, also give its "
            f"name (-n NAME), e.g. {prefix}Liver."
        )
    folder_name = prefix + name
    if DatasetName.parse(folder_name) is None or any(c in name for c in '/\\:*?"<>|') or " " in name:
        raise DatasetError(
            f"{name!r} cannot be a dataset name: use letters, digits, '-' and '_' (no spaces, "
            f"slashes or colons), e.g. {prefix}Liver."
        )
    return raw_folder / folder_name


def load_existing_json(folder: Path, problems: list[str]) -> dict[str, Any] | None:
    """The dataset.json of an existing dataset as a dict (None when there is none); problems appended."""
    from autoseg.dataset.dataset_json import DatasetJson

    path = folder / "dataset.json"
    if not path.is_file():
        return None
    try:
        dataset_json = DatasetJson.load(path)
    except DatasetError as err:
        problems.append(f"{err} Fix it before adding cases.")
        return {}
    if dataset_json.dataset is not None:
        problems.append(
            f"{path} lists its cases in an explicit 'dataset' map; the export writes imagesTr/labelsTr "
            f"files and cannot extend it. Export into a new dataset instead."
        )
    return dict(dataset_json.raw)


def choose_file_ending(
    requested: str | None, existing: Mapping[str, Any] | None, problems: list[str], folder: Path
) -> str:
    """The file ending to write: the request, else the existing dataset's, else ``.nii.gz``."""
    current = existing.get("file_ending") if existing else None
    ending = requested or current or DEFAULT_FILE_ENDING
    if current and requested and requested != current:
        problems.append(
            f"{folder / 'dataset.json'} has file_ending {current!r}, but {requested!r} was asked for; "
            f"a dataset uses one file ending (leave it out to use {current!r})."
        )
    if ending not in WRITABLE_ENDINGS:
        problems.append(
            f"file ending {ending!r} cannot be exported; use one of {', '.join(WRITABLE_ENDINGS)}."
        )
    return ending


def choose_channel_names(
    requested: Mapping[str, str] | Sequence[str] | None,
    existing: Mapping[str, Any] | None,
    problems: list[str],
    folder: Path,
) -> dict[str, str]:
    """The channel names: the request (a mapping or a list in channel order), else the existing dataset's."""
    current = existing.get("channel_names", existing.get("modality")) if existing else None
    current = {str(k): str(v) for k, v in current.items()} if isinstance(current, Mapping) else None
    if requested is not None and not isinstance(requested, Mapping):
        requested = {str(i): str(n) for i, n in enumerate(requested)}
    wanted = {str(k): str(v) for k, v in requested.items()} if requested else None
    if current is not None and wanted is not None and wanted != current:
        problems.append(
            f"{folder / 'dataset.json'} has channel_names {current}, but {wanted} was asked for; "
            f"added cases must have the same channels (leave them out to use the dataset's)."
        )
    names = wanted or current
    if not names:
        problems.append(
            "channel names are needed for a new dataset, one per volume of a case (e.g. CT, or T2 ADC): "
            "they choose the intensity normalization ('CT' uses CT normalization, others z-score)."
        )
        return {}
    if sorted(names) != sorted(str(i) for i in range(len(names))):
        problems.append(f"channel_names keys must be 0, 1, ... in order; got {list(names)}.")
    return names


def existing_case_ids(folder: Path, case_ids: Iterable[str], file_ending: str) -> list[str]:
    """Those of ``case_ids`` that already have files in ``imagesTr`` or ``labelsTr`` (to be overwritten)."""
    present = set(files_by_case(folder / "imagesTr", file_ending))
    labels = folder / "labelsTr"
    if labels.is_dir():
        present.update(
            s
            for p in labels.iterdir()
            if not is_hidden(p.name) and (s := strip_ending(p.name, file_ending)) is not None
        )
    return sorted(c for c in set(case_ids) if c in present)


def count_label_files(folder: Path, file_ending: str) -> int:
    """numTraining: the label files in ``labelsTr``."""
    labels = folder / "labelsTr"
    if not labels.is_dir():
        return 0
    return sum(
        1
        for p in labels.iterdir()
        if p.is_file() and not is_hidden(p.name) and strip_ending(p.name, file_ending) is not None
    )
