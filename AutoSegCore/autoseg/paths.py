"""The workspace (nnUNet_raw / nnUNet_preprocessed / nnUNet_results) and dataset addressing.

The library takes an explicit :class:`Workspace`; only :meth:`Workspace.from_environment` (called by
the CLI) looks at environment variables. Nothing here reads the environment at import time.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from autoseg.errors import DatasetError, WorkspaceError

logger = logging.getLogger(__name__)

FOLDER_VARIABLES = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
HOME_VARIABLE = "AUTOSEG_HOME"
DATASET_NAME_PATTERN = re.compile(r"^Dataset(\d{3})_(.+)$")


@dataclass(frozen=True)
class DatasetName:
    """A dataset folder name, ``DatasetXXX_Name`` (three-digit id)."""

    dataset_id: int
    name: str

    def __str__(self) -> str:
        return f"{self.prefix(self.dataset_id)}{self.name}"

    @staticmethod
    def prefix(dataset_id: int) -> str:
        """``DatasetXXX_``: what every folder of dataset ``dataset_id`` starts with."""
        return f"Dataset{dataset_id:03d}_"

    @classmethod
    def parse(cls, text: str | os.PathLike[str]) -> DatasetName | None:
        """The parts of ``DatasetXXX_Name`` (a folder name or path); None when it is not one."""
        match = DATASET_NAME_PATTERN.match(Path(text).name if isinstance(text, os.PathLike) else str(text))
        return cls(int(match.group(1)), match.group(2)) if match else None


@dataclass(frozen=True)
class ModelFolderName:
    """A results folder name, ``<trainer>__<plans>__<configuration>`` (one trained model of a dataset)."""

    trainer: str
    plans: str
    configuration: str

    def __str__(self) -> str:
        return f"{self.trainer}__{self.plans}__{self.configuration}"

    @classmethod
    def parse(cls, text: str | os.PathLike[str]) -> ModelFolderName | None:
        """The three parts of a folder name (or of a path's last part); None unless all three are there."""
        parts = Path(text).name.split("__") if isinstance(text, os.PathLike) else str(text).split("__")
        return cls(*parts) if len(parts) == 3 and all(parts) else None


@dataclass(frozen=True)
class Workspace:
    """The three nnU-Net folders. Any of them may not exist yet (they are created on demand)."""

    raw: Path
    preprocessed: Path
    results: Path

    @classmethod
    def from_root(cls, root: str | os.PathLike[str]) -> Workspace:
        """A workspace whose three folders live under ``root``."""
        root = Path(root).expanduser()
        return cls(root / "nnUNet_raw", root / "nnUNet_preprocessed", root / "nnUNet_results")

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Workspace:
        """Read ``nnUNet_raw`` etc. from the environment, falling back to ``$AUTOSEG_HOME`` (``~/AutoSeg``).

        Raises :class:`WorkspaceError` for the near-misses users make when setting these variables
        by hand (``set nnUNet_raw = D:\\data`` on Windows, quotes kept in the value, ...).
        """
        environ = os.environ if environ is None else environ
        check_environment_near_misses(environ)
        home_value = environ.get(HOME_VARIABLE)
        home = Path(home_value).expanduser() if home_value else Path.home() / "AutoSeg"
        folders: dict[str, Path] = {}
        defaulted: list[str] = []
        for name in FOLDER_VARIABLES:
            value = environ.get(name)
            if value:
                folders[name] = Path(value).expanduser()
            else:
                folders[name] = home / name
                defaulted.append(name)
        if defaulted:
            logger.info(
                "%s not set; using %s (set the variable(s) or %s to change this).",
                ", ".join(defaulted),
                ", ".join(str(folders[n]) for n in defaulted),
                HOME_VARIABLE,
            )
        return cls(folders["nnUNet_raw"], folders["nnUNet_preprocessed"], folders["nnUNet_results"])

    def raw_dataset(self, identifier: str | int) -> Path:
        """The raw folder of a dataset given by id (``4``, ``004``) or name (``Dataset004_Hippocampus``)."""
        return self.raw / self.dataset_name(identifier)

    def preprocessed_dataset(self, identifier: str | int) -> Path:
        return self.preprocessed / self.dataset_name(identifier)

    def results_dataset(self, identifier: str | int) -> Path:
        return self.results / self.dataset_name(identifier)

    def dataset_name(self, identifier: str | int) -> str:
        """Resolve an id or name to ``DatasetXXX_Name`` by looking in raw, preprocessed and results."""
        return find_dataset_name(identifier, [self.raw, self.preprocessed, self.results])


def check_environment_near_misses(environ: Mapping[str, str]) -> None:
    """Raise WorkspaceError for variables that were almost, but not quite, set correctly."""
    problems: list[str] = []
    expected = {*FOLDER_VARIABLES, HOME_VARIABLE}
    for key in environ:
        stripped = key.strip()
        if stripped != key and stripped in expected:
            problems.append(
                f"The environment variable {key!r} has spaces in its name, so {stripped!r} is not set. "
                f"On Windows write `set {stripped}=C:\\path` with no spaces around '='."
            )
        elif stripped != key and stripped.lower() in {e.lower() for e in expected}:
            problems.append(f"The environment variable {key!r} has stray spaces in its name.")
        elif key != stripped:
            continue
        elif key.lower() in {e.lower() for e in expected} and key not in expected:
            right = next(e for e in expected if e.lower() == key.lower())
            problems.append(f"The environment variable {key!r} should be spelled {right!r} (names are case-sensitive).")
    for name in expected:
        value = environ.get(name)
        if value is None or value == "":
            continue
        if value != value.strip():
            problems.append(
                f"{name}={value!r} starts or ends with spaces; remove them "
                f"(on Windows: `set {name}=C:\\path`, no spaces around '=')."
            )
        elif value[:1] in "\"'" or value[-1:] in "\"'":
            problems.append(f"{name}={value!r} contains quote characters; set it without quotes.")
    if problems:
        raise WorkspaceError("The workspace environment variables are misconfigured:\n  - " + "\n  - ".join(problems))


def parse_dataset_id(identifier: str | int) -> int | None:
    """Return the numeric id of ``4``, ``"004"`` or ``"Dataset004_X"``; None when it is not one of those."""
    if isinstance(identifier, int):
        return identifier
    text = str(identifier).strip()
    if text.isdigit():
        return int(text)
    match = DATASET_NAME_PATTERN.match(text)
    return int(match.group(1)) if match else None


def find_dataset_name(identifier: str | int, search_folders: list[Path]) -> str:
    """Resolve a dataset id or name to its ``DatasetXXX_Name`` folder name.

    A full name is returned as is when it exists in any search folder. An id must match exactly one
    name across the folders; otherwise a DatasetError lists what was found.
    """
    text = str(identifier).strip()
    existing = [f for f in search_folders if f.is_dir()]
    if DATASET_NAME_PATTERN.match(text) and any((f / text).is_dir() for f in existing):
        return text
    dataset_id = parse_dataset_id(text)  # None only for text that is neither an id nor a name
    if dataset_id is None:
        raise DatasetError(
            f"{text!r} is not a dataset id or name. Use an id such as 4 or 004, or a name such as "
            f"Dataset004_Hippocampus."
        )
    prefix = DatasetName.prefix(dataset_id)
    candidates = sorted(
        {p.name for f in existing for p in f.iterdir() if p.is_dir() and p.name.startswith(prefix)}
    )
    if len(candidates) == 1:
        return candidates[0]
    searched = ", ".join(str(f) for f in search_folders)
    if not candidates:
        raise DatasetError(
            f"No dataset with id {dataset_id} ({prefix}*) in {searched}. Check the id and the "
            f"nnUNet_raw / nnUNet_preprocessed / nnUNet_results variables; raw datasets must be folders "
            f"named like Dataset004_Hippocampus."
        )
    raise DatasetError(
        f"Dataset id {dataset_id} is ambiguous: {', '.join(candidates)} all exist in {searched}. "
        f"Rename or remove all but one, or pass the full name."
    )
