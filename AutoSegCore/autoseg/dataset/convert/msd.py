"""Convert a Medical Segmentation Decathlon task (``TaskXX_Name``) into an nnU-Net v2 raw dataset.

The counterpart of ``nnUNetv2_convert_MSD_dataset``: every 4D multi-channel NIfTI image is split into
one 3D file per channel (``{case}_{XXXX}.nii.gz``) that keeps the spatial part of the 4D geometry,
labels are copied, and ``dataset.json`` is rewritten in the v2 schema (``modality`` →
``channel_names``, ``labels`` inverted to name → value, ``file_ending``).

Unlike nnU-Net, the dataset is assembled in a hidden staging folder next to the target and renamed
into place at the end, so an interrupted conversion never leaves a half dataset, and an existing
target is only replaced when ``overwrite=True`` is passed.

The staging/target helpers and the MSD-style ``dataset.json`` translation, shared with
:mod:`autoseg.dataset.convert.old_nnunet` (nnU-Net v1 used the MSD format), are in
:mod:`autoseg.dataset.convert.common`.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from autoseg.dataset.convert.common import (
    MSD_FILE_ENDING,
    check_target,
    dataset_folder_name,
    read_msd_dataset_json,
    staged_dataset_folder,
    v2_dataset_json,
)
from autoseg.errors import DatasetError
from autoseg.imageio.simpleitk_io import read_sitk_image
from autoseg.utils.files import save_json
from autoseg.utils.parallel import run_tasks

logger = logging.getLogger(__name__)

MSD_TASK_PATTERN = re.compile(r"^Task(\d+)_(.+)$")
#: Worker count when the caller does not choose (nnU-Net's default_num_processes).
DEFAULT_NUM_PROCESSES = 8


# ---------------------------------------------------------------------------------------- public API
def convert_msd_dataset(
    source_folder: str | os.PathLike[str],
    raw_root: str | os.PathLike[str],
    overwrite_id: int | None = None,
    num_processes: int | None = None,
    *,
    overwrite: bool = False,
    id_check_folders: Sequence[str | os.PathLike[str]] = (),
) -> Path:
    """Convert the MSD task in ``source_folder`` to ``raw_root/DatasetXXX_Name`` and return that folder.

    ``overwrite_id`` replaces the id taken from ``TaskXX``. ``num_processes`` (default: 8, at most the
    number of CPUs) splits cases in parallel. An existing target folder is replaced only when
    ``overwrite`` is true. ``id_check_folders`` (nnUNet_preprocessed, nnUNet_results) are searched, with
    ``raw_root``, for another dataset already using the target id.
    """
    source = Path(source_folder).expanduser()
    task_id, name = parse_msd_task_name(source)
    check_msd_layout(source)
    dataset_id = task_id if overwrite_id is None else overwrite_id
    target = Path(raw_root).expanduser() / dataset_folder_name(dataset_id, name)
    check_target(
        target, overwrite, [Path(f) for f in id_check_folders], fix="choose another id with -overwrite_id"
    )

    msd_json = read_msd_dataset_json(source / "dataset.json")
    v2_json = v2_dataset_json(msd_json, source / "dataset.json", drop_keys=("training", "test"))
    jobs, num_training = plan_msd_jobs(source, len(v2_json["channel_names"]))
    if num_training != v2_json.get("numTraining"):
        logger.warning(
            "%s says numTraining=%s but %d labelled training cases were found; keeping the file's value.",
            source / "dataset.json",
            v2_json.get("numTraining"),
            num_training,
        )
    workers = resolve_num_processes(num_processes, len(jobs))
    logger.info(
        "Converting %s (%d source files) into %s with %d process(es).", source, len(jobs), target, workers
    )
    with staged_dataset_folder(target, overwrite) as staging:
        for folder in sorted({job.folder for job in jobs}):
            (staging / folder).mkdir()
        run_jobs(jobs, staging, workers)
        save_json(v2_json, staging / "dataset.json")
    logger.info("Wrote %s.", target)
    return target


# ---------------------------------------------------------------------------------------- names
def parse_msd_task_name(source: Path) -> tuple[int, str]:
    """The id and name of an MSD task folder ``TaskXX_Name``; DatasetError with a hint otherwise."""
    match = MSD_TASK_PATTERN.match(source.name)
    if match:
        return int(match.group(1)), match.group(2)
    hint = ""
    if source.is_file() and source.name.endswith((".tar", ".tar.gz", ".zip")):
        hint = (
            f" {source} is an archive: extract it first (e.g. `tar xf {source.name}`) and pass the "
            "extracted folder."
        )
    elif source.is_dir():
        tasks = sorted(p.name for p in source.iterdir() if p.is_dir() and MSD_TASK_PATTERN.match(p.name))
        if tasks:
            hint = f" It contains {', '.join(tasks)}; did you mean {source / tasks[0]}?"
    raise DatasetError(
        f"{source} is not an MSD task folder: its name must look like Task05_Prostate (TaskXX_Name), "
        f"found {source.name!r}.{hint}"
    )


# ---------------------------------------------------------------------------------------- case discovery
def check_msd_layout(source: Path) -> None:
    """DatasetError when ``source`` lacks dataset.json, imagesTr or labelsTr (imagesTs is optional)."""
    if not source.is_dir():
        raise DatasetError(
            f"The MSD task folder {source} does not exist or is not a folder. Pass the extracted "
            "TaskXX_Name folder (the one holding dataset.json, imagesTr/ and labelsTr/)."
        )
    missing = [n for n in ("dataset.json", "imagesTr", "labelsTr") if not (source / n).exists()]
    if missing:
        raise DatasetError(
            f"{source} is not a complete MSD task: missing {', '.join(missing)}. Expected "
            "dataset.json, imagesTr/, labelsTr/ and optionally imagesTs/ as in the extracted Decathlon "
            "archive."
        )


def msd_files(folder: Path) -> list[Path]:
    """The ``.nii.gz`` files of a folder, skipping hidden ``.``/``_`` files (macOS ``._x.nii.gz``)."""
    if not folder.is_dir():
        return []
    files: list[Path] = []
    ignored: list[Path] = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith((".", "_")) or not entry.is_file():
            continue
        (files if entry.name.endswith(MSD_FILE_ENDING) else ignored).append(entry)
    if ignored:
        logger.warning(
            "Ignoring %d file(s) in %s that are not %s: %s",
            len(ignored),
            folder,
            MSD_FILE_ENDING,
            ", ".join(p.name for p in ignored[:5]),
        )
    return files


def case_id(path: Path) -> str:
    return path.name[: -len(MSD_FILE_ENDING)]


@dataclass(frozen=True)
class Job:
    """One file to produce: split ``source`` into ``folder`` (images) or copy it to ``folder`` (labels)."""

    kind: str
    source: Path
    folder: str
    num_channels: int


def plan_msd_jobs(source: Path, num_channels: int) -> tuple[list[Job], int]:
    """The split/copy jobs of a task and its number of training cases; checks images ↔ labels."""
    images = msd_files(source / "imagesTr")
    labels = msd_files(source / "labelsTr")
    image_ids, label_ids = {case_id(p) for p in images}, {case_id(p) for p in labels}
    problems = [
        f"{source / 'labelsTr' / (c + MSD_FILE_ENDING)} is missing" for c in sorted(image_ids - label_ids)
    ]
    problems += [
        f"{source / 'imagesTr' / (c + MSD_FILE_ENDING)} is missing" for c in sorted(label_ids - image_ids)
    ]
    if problems:
        raise DatasetError(
            "Every training image needs a label with the same file name and vice versa:\n  - "
            + "\n  - ".join(problems)
            + "\nAdd the missing files or remove the unmatched ones."
        )
    if not images:
        raise DatasetError(f"{source / 'imagesTr'} contains no {MSD_FILE_ENDING} images.")
    jobs = [Job("split", p, "imagesTr", num_channels) for p in images]
    jobs += [Job("split", p, "imagesTs", num_channels) for p in msd_files(source / "imagesTs")]
    jobs += [Job("copy", p, "labelsTr", num_channels) for p in labels]
    return jobs, len(images)


# ---------------------------------------------------------------------------------------- conversion
def resolve_num_processes(requested: int | None, num_jobs: int) -> int:
    """Workers to use: ``requested`` (default min(8, CPUs)), at least 1, at most one per job."""
    if requested is not None and requested < 1:
        raise DatasetError(f"The number of processes must be at least 1, found {requested}.")
    chosen = requested if requested is not None else min(DEFAULT_NUM_PROCESSES, os.cpu_count() or 1)
    return max(1, min(chosen, num_jobs))


def run_jobs(jobs: Sequence[Job], staging: Path, workers: int) -> None:
    """Run every job, in this process when ``workers == 1``, else in worker processes (``run_tasks``)."""
    run_tasks(run_job, [(job, staging) for job in jobs], workers, progress=_log_progress,
              task_names=[str(job.source) for job in jobs])


def _log_progress(done: int, total: int) -> None:
    """Log about every tenth of the files."""
    if done % max(1, total // 10) == 0 or done == total:
        logger.info("  %d/%d files converted", done, total)


def run_job(job: Job, staging: Path) -> None:
    """Carry out one job (module-level so that spawned workers can unpickle it)."""
    folder = staging / job.folder
    if job.kind == "copy":
        shutil.copyfile(job.source, folder / job.source.name)
    else:
        split_4d_image(job.source, folder, job.num_channels)


def split_4d_image(path: Path, output_folder: Path, num_channels: int) -> list[Path]:
    """Write one 3D ``{case}_{XXXX}.nii.gz`` per channel of a 4D NIfTI (a 3D image is copied as ``_0000``).

    Each 3D image keeps the spatial part of the 4D geometry: the first three spacings and origin
    components and the upper-left 3×3 block of the direction matrix (NIfTI's 4th axis is never rotated
    into space, so this block is the image's exact orientation).
    """
    image = read_sitk_image(path)
    dimension = image.GetDimension()
    found_channels = image.GetSize()[3] if dimension == 4 else 1
    if dimension not in (3, 4) or image.GetNumberOfComponentsPerPixel() != 1:
        raise DatasetError(
            f"{path} is a {dimension}D image with {image.GetNumberOfComponentsPerPixel()} component(s) "
            "per voxel; expected a 3D image or a 4D image with one channel per 4th-axis index."
        )
    if found_channels != num_channels:
        raise DatasetError(
            f"{path} has {found_channels} channel(s) but dataset.json 'modality' lists {num_channels}. Fix "
            f"dataset.json or replace the image."
        )
    stem = case_id(path)
    outputs = [output_folder / f"{stem}_{c:04d}{MSD_FILE_ENDING}" for c in range(num_channels)]
    if dimension == 3:
        shutil.copyfile(path, outputs[0])
        return outputs
    spacing, origin, direction = spatial_geometry(image)
    array = sitk.GetArrayFromImage(image)  # (channel, z, y, x)
    for channel, output in enumerate(outputs):
        channel_image = sitk.GetImageFromArray(array[channel], isVector=False)
        channel_image.SetSpacing(spacing)
        channel_image.SetOrigin(origin)
        channel_image.SetDirection(direction)
        sitk.WriteImage(channel_image, str(output), useCompression=True)
    return outputs


def spatial_geometry(image: sitk.Image) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    """Spacing, origin and direction of the first three axes of a 4D image."""
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(4, 4)
    return (
        tuple(image.GetSpacing()[:3]),
        tuple(image.GetOrigin()[:3]),
        tuple(direction[:3, :3].ravel().tolist()),
    )
