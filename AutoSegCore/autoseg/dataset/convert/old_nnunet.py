"""Convert an nnU-Net v1 task folder (``TaskXXX_Name``) into an nnU-Net v2 raw dataset.

The counterpart of ``nnUNetv2_convert_old_nnUNet_dataset INPUT OUTPUT_NAME``: the image and label
folders are copied unchanged (v1 already used ``{case}_{XXXX}.nii.gz``) and ``dataset.json`` is
rewritten in the v2 schema. The copy is staged in a hidden folder and renamed into place at the end;
an existing target is replaced only when ``overwrite=True``.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from autoseg.dataset.convert.common import (
    check_dataset_folder_name,
    check_target,
    read_msd_dataset_json,
    staged_dataset_folder,
    v2_dataset_json,
)
from autoseg.errors import DatasetError
from autoseg.utils.files import save_json

logger = logging.getLogger(__name__)

#: Subfolders copied when present (imagesTr and labelsTr are required).
V1_DATA_FOLDERS = ("imagesTr", "labelsTr", "imagesTs", "labelsTs", "imagesVal", "labelsVal")
#: v1 keys that have no meaning in v2 (as nnU-Net drops them).
V1_ONLY_KEYS = ("tensorImageSize", "numTest", "training", "test")
#: Operating-system clutter that is never copied.
JUNK_NAMES = (".DS_Store", "Thumbs.db")


def convert_old_nnunet_dataset(
    input_folder: str | os.PathLike[str],
    output_dataset_name: str,
    raw_root: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    id_check_folders: Sequence[str | os.PathLike[str]] = (),
) -> Path:
    """Copy the v1 task in ``input_folder`` to ``raw_root/output_dataset_name`` (a ``DatasetXXX_Name``).

    Returns the new dataset folder. An existing one is replaced only when ``overwrite``;
    ``id_check_folders`` (nnUNet_preprocessed, nnUNet_results) are searched, with ``raw_root``, for
    another dataset already using the same id.
    """
    source = Path(input_folder).expanduser()
    check_dataset_folder_name(output_dataset_name)
    check_v1_layout(source)
    target = Path(raw_root).expanduser() / output_dataset_name
    check_target(target, overwrite, [Path(f) for f in id_check_folders], fix="choose another output name")
    v2_json = v2_dataset_json(
        read_msd_dataset_json(source / "dataset.json"), source / "dataset.json", V1_ONLY_KEYS
    )
    logger.info("Copying the nnU-Net v1 task %s into %s.", source, target)
    with staged_dataset_folder(target, overwrite) as staging:
        for name in V1_DATA_FOLDERS:
            if (source / name).is_dir():
                count = copy_tree(source / name, staging / name)
                logger.info("  %s: %d file(s)", name, count)
        save_json(v2_json, staging / "dataset.json")
    logger.info("Wrote %s.", target)
    return target


def check_v1_layout(source: Path) -> None:
    """DatasetError when ``source`` is not a v1 task folder with dataset.json, imagesTr and labelsTr."""
    if not source.is_dir():
        raise DatasetError(
            f"{source} does not exist or is not a folder. Pass the path of the old task folder (the one "
            "holding imagesTr/, labelsTr/ and dataset.json), not just its name: nnU-Net v2 does not know "
            "where v1 tasks are."
        )
    missing = [n for n in ("dataset.json", "imagesTr", "labelsTr") if not (source / n).exists()]
    if missing:
        raise DatasetError(
            f"{source} is not an nnU-Net v1 task folder: missing {', '.join(missing)}. Expected "
            "dataset.json, imagesTr/ and labelsTr/ (imagesTs/ optional), e.g. "
            "nnUNet_raw_data/Task004_Hippocampus."
        )


def copy_tree(source: Path, destination: Path) -> int:
    """Copy the files under ``source`` to ``destination`` (contents, not permissions), skipping OS junk."""
    count = 0
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if path.name.startswith("._") or path.name in JUNK_NAMES:
            continue
        if path.is_dir():
            (destination / relative).mkdir(parents=True, exist_ok=True)
        elif path.is_file():
            (destination / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination / relative)
            count += 1
    destination.mkdir(parents=True, exist_ok=True)
    return count
