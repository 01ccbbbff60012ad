"""What postprocessing needs to know about a folder of segmentations: labels, file ending and reader.

As in nnU-Net, ``dataset.json`` gives the labels/regions and the file ending, and the plans give the
image reader/writer (``image_reader_writer``). Both default to the copies that prediction writes into
the folder (``dataset.json``, ``plans.json``); further folders can be searched after it (e.g. the folder
of the postprocessing file). Without any plans the reader follows ``dataset.json`` (its
``overwrite_image_reader_writer``, else the file ending).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from autoseg.dataset.dataset_json import DatasetJson
from autoseg.errors import PostprocessingError
from autoseg.imageio.base import ImageReaderWriter
from autoseg.imageio.registry import reader_writer_class_by_name, reader_writer_for_dataset_folder
from autoseg.plans.model import Plans
from autoseg.utils.files import read_json, save_json

logger = logging.getLogger(__name__)

DATASET_JSON = "dataset.json"
PLANS_JSON = "plans.json"
DatasetSource = Union[DatasetJson, Mapping[str, Any], str, os.PathLike, None]
PlansSource = Union[Plans, Mapping[str, Any], str, os.PathLike, None]


@dataclass(frozen=True)
class FolderSettings:
    """The dataset description and plans a folder of segmentations is read and written with."""

    dataset: DatasetJson
    plans: dict[str, Any] | None  # the plans document, when one was found

    @property
    def file_ending(self) -> str:
        return self.dataset.file_ending

    def reader(self, example_file: str | Path) -> ImageReaderWriter:
        """The plans' reader/writer; without plans, the one dataset.json implies for ``example_file``."""
        if self.plans is not None and self.plans.get("image_reader_writer"):
            return reader_writer_class_by_name(str(self.plans["image_reader_writer"]))()
        return reader_writer_for_dataset_folder(self.dataset.raw, example_file)

    def write_copies(self, folder: Path) -> None:
        """Write ``dataset.json`` (and ``plans.json``) into ``folder`` so it is self-describing."""
        save_json(self.dataset.raw, folder / DATASET_JSON)
        if self.plans is not None:
            save_json(self.plans, folder / PLANS_JSON, sort_keys=False)


def resolve_settings(
    folder: Path, dataset_json: DatasetSource = None, plans: PlansSource = None, search: Sequence[Path] = ()
) -> FolderSettings:
    """Load the given dataset.json/plans, or find them in ``folder`` and then in ``search``."""
    folders = [Path(folder), *(Path(f) for f in search)]
    return FolderSettings(dataset=_dataset(dataset_json, folders), plans=_plans(plans, folders))


def _dataset(source: DatasetSource, folders: Sequence[Path]) -> DatasetJson:
    if isinstance(source, DatasetJson):
        return source
    if isinstance(source, Mapping):
        return DatasetJson.from_dict(dict(source))
    path = Path(source) if source is not None else _first_existing(folders, DATASET_JSON)
    if path is None:
        raise PostprocessingError(
            f"No {DATASET_JSON} in {_listing(folders)}. Prediction copies it next to the segmentations; "
            f"otherwise pass the model's dataset.json with -dataset_json."
        )
    return DatasetJson.load(path)


def _plans(source: PlansSource, folders: Sequence[Path]) -> dict[str, Any] | None:
    if isinstance(source, Plans):
        return source.to_dict()
    if isinstance(source, Mapping):
        return dict(source)
    path = Path(source) if source is not None else _first_existing(folders, PLANS_JSON)
    if path is None:
        logger.info("No %s in %s; reading the segmentations as dataset.json implies.", PLANS_JSON, _listing(folders))
        return None
    if not path.is_file():
        raise PostprocessingError(f"Plans file {path} does not exist (pass the model's plans.json with -plans_json).")
    document = read_json(path, PostprocessingError, f"Plans file {path}")
    if not isinstance(document, dict):
        raise PostprocessingError(f"Plans file {path} does not hold a JSON object.")
    return document


def _first_existing(folders: Sequence[Path], name: str) -> Path | None:
    return next((f / name for f in folders if (f / name).is_file()), None)


def _listing(folders: Sequence[Path]) -> str:
    return " or ".join(str(f) for f in dict.fromkeys(folders))


def segmentation_names(folder: Path, file_ending: str, what: str) -> list[str]:
    """Sorted names of the ``*file_ending`` files of ``folder`` (hidden and temporary files skipped)."""
    if not folder.is_dir():
        raise PostprocessingError(f"The {what} folder {folder} does not exist.")
    return sorted(
        n for n in os.listdir(folder)
        if n.endswith(file_ending) and not n.startswith(".") and (folder / n).is_file()
    )
