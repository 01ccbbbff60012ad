"""What ensembling reads: per-case probability files, their properties, and the folder's label/IO setup.

A prediction folder written with ``autoseg predict --save_probabilities`` (or ``train --npz``, or nnU-Net's
equivalents) holds ``{case}.npz`` (key ``probabilities``, ``(c, z, y, x)`` in the input's geometry), the
case properties as ``{case}.json`` (AutoSeg) and/or ``{case}.pkl`` (nnU-Net), and ``plans.json`` +
``dataset.json`` of the model. The pickles are read with an allow-list unpickler: nothing in them runs.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoseg.dataset.dataset_json import DatasetJson
from autoseg.errors import AutoSegError, EnsembleError
from autoseg.utils.files import read_json
from autoseg.utils.safe_pickle import load_properties_pickle

PROBABILITIES_KEY = "probabilities"
NPZ_HINT = (
    "Re-run the prediction with --save_probabilities (`autoseg predict ... --save_probabilities`), or for "
    "cross-validation results the validation with --npz (`autoseg train DATASET CONFIG FOLD --val --npz`)."
)


@dataclass(frozen=True)
class EnsembleSetup:
    """Labels, file ending and reader/writer shared by the ensembled folders (taken from the first)."""

    dataset_json: DatasetJson
    reader_writer_name: str
    dataset_json_file: Path | None
    plans_file: Path | None


def probability_files(folder: Path) -> dict[str, Path]:
    """``{case: folder/case.npz}`` for every (non-hidden) ``.npz`` file in ``folder``."""
    return {p.name[:-4]: p for p in sorted(Path(folder).glob("*.npz")) if not p.name.startswith(".")}


def npz_uncompressed_bytes(path: Path) -> int:
    """Size of the arrays inside an ``.npz`` once loaded (read from the zip directory, not decompressed)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return sum(info.file_size for info in archive.infolist())
    except (OSError, zipfile.BadZipFile):
        return os.path.getsize(path)


def load_case_properties(folder: Path, case: str) -> dict[str, Any]:
    """The properties of ``case`` in ``folder``: ``{case}.json`` if present, else nnU-Net's ``{case}.pkl``."""
    json_file, pickle_file = Path(folder) / f"{case}.json", Path(folder) / f"{case}.pkl"
    if json_file.is_file():
        properties = read_json(json_file, EnsembleError, tail=f"; re-run the prediction of {case}.")
        if isinstance(properties, dict):
            return properties
        raise EnsembleError(f"{json_file} should hold the case properties as a JSON object; re-run the prediction.")
    if pickle_file.is_file():
        return load_properties_pickle(pickle_file)
    raise EnsembleError(
        f"{folder} has {case}.npz but neither {case}.json nor {case}.pkl (the image geometry needed to write "
        f"the segmentation). {NPZ_HINT}"
    )


def load_setup(
    first_folder: Path, dataset_json_file: Path | None = None, plans_file: Path | None = None
) -> EnsembleSetup:
    """dataset.json and the image reader/writer of the plans (default: the files in ``first_folder``)."""
    first_folder = Path(first_folder)
    dataset_json_file = Path(dataset_json_file) if dataset_json_file else first_folder / "dataset.json"
    plans_file = Path(plans_file) if plans_file else first_folder / "plans.json"
    if not dataset_json_file.is_file():
        raise EnsembleError(
            f"{dataset_json_file} does not exist: ensembling needs the model's dataset.json (labels, file ending). "
            f"Prediction folders get a copy from `autoseg predict`; otherwise pass -dataset_json FILE."
        )
    dataset_json = DatasetJson.load(dataset_json_file)
    return EnsembleSetup(dataset_json, reader_writer_name(plans_file, dataset_json), dataset_json_file,
                         plans_file if plans_file.is_file() else None)


def reader_writer_name(plans_file: Path, dataset_json: DatasetJson) -> str:
    """``image_reader_writer`` of the plans; without a plans file, the one dataset.json implies."""
    if Path(plans_file).is_file():
        plans = read_json(plans_file, EnsembleError)
        name = plans.get("image_reader_writer") if isinstance(plans, dict) else None
        if name:
            return str(name)
    from autoseg.imageio.registry import reader_writer_for_dataset

    try:
        return type(reader_writer_for_dataset(dataset_json.raw)).__name__
    except AutoSegError as err:
        raise EnsembleError(
            f"{plans_file} does not exist and no image writer fits {dataset_json.source} ({err}). Pass the model's "
            f"plans with -plans_json FILE."
        ) from err


def common_cases(files_per_folder: Mapping[Path, Mapping[str, Path]]) -> list[str]:
    """The sorted case ids, which must be the same in every folder (else one error listing the gaps)."""
    empty = [folder for folder, files in files_per_folder.items() if not files]
    if empty:
        raise EnsembleError(
            f"No probabilities (.npz files) in {', '.join(map(str, empty))}. {NPZ_HINT}"
        )
    union = set().union(*(set(files) for files in files_per_folder.values()))
    problems = []
    for folder, files in files_per_folder.items():
        missing = sorted(union - set(files))
        if missing:
            problems.append(f"{folder} lacks {len(missing)} case(s): {_listing([f'{c}.npz' for c in missing])}")
    if problems:
        raise EnsembleError(
            "The folders to ensemble must hold the probabilities of the same cases:\n  - " + "\n  - ".join(problems)
            + f"\nPredict the missing cases into those folders. {NPZ_HINT}"
        )
    return sorted(union)


def check_folders(folders: Sequence[Path], output_folder: Path) -> None:
    """Every input exists and none of them is the output folder."""
    if not folders:
        raise EnsembleError("Give at least one folder to ensemble (-i FOLDER [FOLDER ...]).")
    missing = [str(f) for f in folders if not Path(f).is_dir()]
    if missing:
        raise EnsembleError(f"Prediction folder(s) not found: {', '.join(missing)}.")
    output = Path(output_folder).resolve()
    clashes = [str(f) for f in folders if Path(f).resolve() == output]
    if clashes:
        raise EnsembleError(
            f"The output folder {output_folder} is also an input folder; choose another -o (inputs are never "
            f"overwritten)."
        )
    duplicates = sorted({str(f) for f in folders if sum(Path(g).resolve() == Path(f).resolve() for g in folders) > 1})
    if duplicates:
        raise EnsembleError(f"Folder(s) given more than once: {', '.join(duplicates)}.")


def _listing(names: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
