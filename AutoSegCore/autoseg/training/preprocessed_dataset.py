"""Lazy access to the preprocessed training cases of one configuration.

Arrays are memory-mapped on every access (opening a ``.npy`` costs microseconds and no RAM), so a
patch read touches only its own region. Properties are JSON; their decoded class locations are kept
in a small per-process cache bounded in bytes. The dataset pickles as paths only, so it can be sent
to spawned worker processes.

Cascade (``3d_cascade_fullres``) training appends the previous stage's prediction, read from
``previous_stage_folder/{case}.npy`` (memory-mapped, what AutoSeg writes), ``{case}.npz`` (key ``seg``,
nnU-Net < 2.5) or ``{case}.b2nd`` (nnU-Net >= 2.5, read with the optional blosc2 package), so a 3d_lowres
model trained by nnU-Net can feed an AutoSeg cascade.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autoseg.errors import AutoSegError
from autoseg.paths import ModelFolderName
from autoseg.preprocessing import storage
from autoseg.preprocessing.preprocessor import class_locations_from_json

#: Bytes of decoded properties (mostly class locations) kept per process.
PROPERTIES_CACHE_BYTES = 64 * 1024**2
#: Previous-stage file formats, in the order they are looked for.
PREVIOUS_STAGE_SUFFIXES = (".npy", ".npz", ".b2nd")
_CONFIGURATIONS = ("3d_cascade_fullres", "3d_fullres", "3d_lowres", "2d")


@dataclass
class TrainingCase:
    """One case as the loader sees it; ``data``/``seg`` are (c, z, y, x) memory maps."""

    identifier: str
    data: np.ndarray
    seg: np.ndarray
    previous_stage: np.ndarray | None
    properties: dict[str, Any]


class PreprocessedDataset:
    """The cases ``identifiers`` (default: every complete case) of a preprocessed ``folder``."""

    def __init__(
        self,
        folder: str | Path,
        identifiers: Sequence[str] | None = None,
        previous_stage_folder: str | Path | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.previous_stage_folder = Path(previous_stage_folder) if previous_stage_folder is not None else None
        if not self.folder.is_dir():
            hint = _preprocess_hint(self.folder)
            raise AutoSegError(f"The preprocessed folder {self.folder} does not exist. {hint}")
        self.identifiers = sorted(identifiers) if identifiers is not None else storage.list_cases(self.folder)
        if not self.identifiers:
            raise AutoSegError(f"No preprocessed cases in {self.folder}. {_preprocess_hint(self.folder)}")
        self._check_files()
        self._cache: OrderedDict[str, tuple[dict[str, Any], int]] = OrderedDict()
        self._cache_bytes = 0

    def __len__(self) -> int:
        return len(self.identifiers)

    def __getstate__(self) -> dict[str, Any]:
        return {k: self.__dict__[k] for k in ("folder", "previous_stage_folder", "identifiers")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._cache, self._cache_bytes = OrderedDict(), 0

    def load_case(self, identifier: str) -> TrainingCase:
        try:
            data_file, seg_file, _ = storage.case_files(self.folder, identifier)
            data = np.load(data_file, mmap_mode="r")
            seg = np.load(seg_file, mmap_mode="r")
            properties = self._properties(identifier)
        except FileNotFoundError as e:
            raise AutoSegError(
                f"Preprocessed case {identifier!r} in {self.folder} can no longer be read ({e.filename} is missing). "
                f"{_preprocess_hint(self.folder)}"
            ) from None
        previous = self._previous_stage(identifier, data.shape[1:]) if self.previous_stage_folder else None
        return TrainingCase(identifier, data, seg, previous, properties)

    def _properties(self, identifier: str) -> dict[str, Any]:
        if identifier in self._cache:
            self._cache.move_to_end(identifier)
            return self._cache[identifier][0]
        path = storage.case_files(self.folder, identifier)[2]
        properties = json.loads(path.read_text(encoding="utf-8"))
        properties["class_locations"] = class_locations_from_json(properties.get("class_locations", {}))
        size = sum(v.nbytes for v in properties["class_locations"].values()) + 1024
        self._cache[identifier] = (properties, size)
        self._cache_bytes += size
        while self._cache_bytes > PROPERTIES_CACHE_BYTES and len(self._cache) > 1:
            _, (_, dropped) = self._cache.popitem(last=False)
            self._cache_bytes -= dropped
        return properties

    def _previous_stage(self, identifier: str, shape: tuple[int, ...]) -> np.ndarray:
        assert self.previous_stage_folder is not None
        npy, npz, b2nd = (self.previous_stage_folder / f"{identifier}{ext}" for ext in PREVIOUS_STAGE_SUFFIXES)
        try:
            if npy.is_file():
                previous = np.load(npy, mmap_mode="r")
            elif b2nd.is_file() and not npz.is_file():
                previous = _read_b2nd(b2nd)
            else:
                with np.load(npz) as archive:
                    previous = archive["seg"]
        except (FileNotFoundError, KeyError, ValueError, OSError, RuntimeError) as e:
            raise AutoSegError(
                f"Cannot read the previous stage prediction of case {identifier!r} from {self.previous_stage_folder} "
                f"({e}). {_previous_stage_hint(self.previous_stage_folder)}"
            ) from None
        if previous.ndim == len(shape) + 1 and previous.shape[0] == 1:
            previous = previous[0]
        if tuple(previous.shape) != tuple(shape):
            raise AutoSegError(
                f"The previous stage prediction of case {identifier!r} in {self.previous_stage_folder} has shape "
                f"{tuple(previous.shape)}, "
                f"but the preprocessed case {identifier!r} in {self.folder} has shape {tuple(shape)}: it was made "
                f"for other preprocessed data. {_previous_stage_hint(self.previous_stage_folder)}"
            )
        return previous

    def _check_files(self) -> None:
        missing = [i for i in self.identifiers if not storage.is_complete(self.folder, i)]
        if missing:
            raise AutoSegError(
                f"{len(missing)} of {len(self.identifiers)} training case(s) are not (completely) preprocessed in "
                f"{self.folder}: {_examples(missing)}. {_preprocess_hint(self.folder)}"
            )
        if self.previous_stage_folder is None:
            return
        folder = self.previous_stage_folder
        missing = [i for i in self.identifiers
                   if not any((folder / f"{i}{e}").is_file() for e in PREVIOUS_STAGE_SUFFIXES)]
        if missing:
            raise AutoSegError(
                f"Cascade training needs the previous stage's prediction of every training case, but {folder} lacks "
                f"{len(missing)} of {len(self.identifiers)} ({_examples(missing)}). {_previous_stage_hint(folder)}"
            )


def _read_b2nd(path: Path) -> np.ndarray:
    """A previous-stage segmentation written by nnU-Net >= 2.5 (Blosc2 NDArray; needs the optional blosc2)."""
    try:
        import blosc2
    except ImportError:
        raise AutoSegError(
            f"{path} was written by nnU-Net in Blosc2 format; reading it needs the blosc2 package "
            f"(`pip install blosc2`), or re-create the previous stage with `autoseg train ... 3d_lowres ... --val`."
        ) from None
    return np.asarray(blosc2.open(urlpath=str(path), mode="r")[:])


def _examples(identifiers: Sequence[str], shown: int = 5) -> str:
    more = f", ... ({len(identifiers) - shown} more)" if len(identifiers) > shown else ""
    return ", ".join(identifiers[:shown]) + more


def _dataset_and_configuration(folder: Path) -> tuple[str, str]:
    dataset = folder.parent.name if re.match(r"^Dataset\d{3}_", folder.parent.name) else "DATASET"
    configuration = next((c for c in _CONFIGURATIONS if folder.name.endswith("_" + c)), "CONFIGURATION")
    return dataset, configuration


def _preprocess_hint(folder: Path) -> str:
    dataset, configuration = _dataset_and_configuration(folder)
    return (
        f"Run `autoseg plan_and_preprocess -d {dataset} -c {configuration}` (or `autoseg preprocess -d {dataset} "
        f"-c {configuration}` when the plans exist) to create the preprocessed data for this configuration."
    )


def _previous_stage_hint(folder: Path) -> str:
    """How to produce ``.../<Trainer>__<Plans>__3d_lowres/predicted_next_stage/<config>``."""
    parts = folder.parts
    dataset, lowres = ("DATASET", "3d_lowres")
    if len(parts) >= 3 and parts[-2] == "predicted_next_stage":
        dataset = parts[-4] if len(parts) >= 4 else dataset
        model = ModelFolderName.parse(parts[-3])
        if model is not None:
            lowres = model.configuration
    return (
        f"These predictions are written by the final validation of the {lowres} model: run "
        f"`autoseg train {dataset} {lowres} FOLD` for every fold (0 1 2 3 4), or `autoseg train {dataset} {lowres} "
        f"FOLD --val` for folds already trained, then train the cascade."
    )
