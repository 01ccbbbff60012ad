"""Preprocess cases with a plan: transpose -> crop to nonzero -> normalize -> resample (+ class locations).

``preprocess_case`` is the pure per-case pipeline shared by training preprocessing and inference;
``preprocess_dataset`` runs it over a raw dataset in parallel, incrementally: only new and changed cases
(by content) are preprocessed, so an interrupted run resumes and an enlarged dataset costs only its new
cases.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from autoseg.dataset.cases import TrainingCase, training_cases
from autoseg.dataset.dataset_json import DatasetJson
from autoseg.errors import PreprocessingError
from autoseg.imageio.registry import reader_writer_class_by_name
from autoseg.plans.model import ConfigurationPlan, Plans
from autoseg.preprocessing import storage
from autoseg.preprocessing.class_locations import classes_to_sample, sample_class_locations
from autoseg.preprocessing.cropping import crop_to_nonzero
from autoseg.preprocessing.incremental import (
    DIGEST_KEY,
    case_digests,
    check_channel_counts,
    check_label_values,
    dataset_digests,
    file_sha256,
    take_inventory,
)
from autoseg.preprocessing.memory import case_peak_bytes
from autoseg.preprocessing.normalization import normalize
from autoseg.preprocessing.resampling import ResamplingSettings, compute_new_shape, resample_to_shape
from autoseg.typing import ProgressCallback
from autoseg.utils.files import atomic_path, load_json, save_json
from autoseg.utils.parallel import choose_num_workers, run_tasks

logger = logging.getLogger(__name__)
SETTINGS_FILE = ".preprocessing_settings.json"


def target_spacing_for(configuration: ConfigurationPlan, original_spacing: Sequence[float], ndim: int) -> list[float]:
    """The configuration's spacing, with the (unresampled) first axis prepended for 2d configurations."""
    spacing = [float(s) for s in configuration.spacing]
    return [float(original_spacing[0]), *spacing] if len(spacing) < ndim else spacing


def preprocess_case(
    data: np.ndarray,
    seg: np.ndarray | None,
    properties: dict[str, Any],
    plans: Plans,
    configuration: ConfigurationPlan,
    dataset_json: DatasetJson,
    sample_locations: bool = True,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Run the whole preprocessing of one case held in memory (``data`` is (c, z, y, x)).

    ``sample_locations`` adds the foreground class locations training samples from (not needed when
    ``seg`` is a previous stage's prediction at inference). Without ``seg`` the returned one is the nonzero
    mask that ``crop_to_nonzero`` builds (resampled too, as nnU-Net does).
    """
    data = data.astype(np.float32)  # copy: the caller's array stays untouched
    if seg is not None:
        if data.shape[1:] != seg.shape[1:]:
            raise PreprocessingError(
                f"Image shape {data.shape[1:]} and segmentation shape {seg.shape[1:]} differ. Run "
                f"`autoseg verify_dataset` to find the case and fix it."
            )
        seg = np.copy(seg)
    axes = [0, *[i + 1 for i in plans.transpose_forward]]
    data = data.transpose(axes)
    seg = seg.transpose(axes) if seg is not None else None
    original_spacing = [properties["spacing"][i] for i in plans.transpose_forward]
    properties["shape_before_cropping"] = list(data.shape[1:])
    data, seg, bbox = crop_to_nonzero(data, seg)
    properties["bbox_used_for_cropping"] = [[int(a), int(b)] for a, b in bbox]
    properties["shape_after_cropping_and_before_resampling"] = list(data.shape[1:])
    target_spacing = target_spacing_for(configuration, original_spacing, data.ndim - 1)
    new_shape = compute_new_shape(data.shape[1:], original_spacing, target_spacing)
    intensity = plans.foreground_intensity_properties_per_channel
    for c in range(data.shape[0]):
        data[c] = normalize(
            data[c], configuration.normalization_schemes[c], seg[0],
            configuration.use_mask_for_norm[c], intensity[str(c)],
        )
    data = resample_to_shape(data, new_shape, original_spacing, target_spacing,
                             ResamplingSettings.from_plan(configuration.resampling_fn_data_kwargs))
    seg = resample_to_shape(seg, new_shape, original_spacing, target_spacing,
                            ResamplingSettings.from_plan(configuration.resampling_fn_seg_kwargs))
    if not sample_locations:
        return data, seg, properties
    wanted = classes_to_sample(
        dataset_json.foreground_labels, dataset_json.foreground_regions, dataset_json.has_regions,
        dataset_json.all_labels, dataset_json.ignore_label,
    )
    properties["class_locations"] = sample_class_locations(seg, wanted)
    seg = seg.astype(np.int16 if seg.max(initial=0) > 127 else np.int8)
    return data, seg, properties


def class_locations_to_json(locations: dict) -> dict[str, list]:
    """JSON keys: ``"1"`` for a label, ``"1,2,3"`` for a region."""
    return {
        (",".join(str(i) for i in k) if isinstance(k, tuple) else str(k)): np.asarray(v).tolist()
        for k, v in locations.items()
    }


def class_locations_from_json(raw: dict[str, list]) -> dict[int | tuple[int, ...], np.ndarray]:
    return {
        (tuple(int(i) for i in k.split(",")) if "," in k else int(k)): np.asarray(v, dtype=np.int64).reshape(-1, 4)
        for k, v in raw.items()
    }


def preprocess_case_to_disk(
    case: TrainingCase, output_folder: Path, plans: Plans, configuration: ConfigurationPlan, dataset_json: DatasetJson,
    digests: dict[str, str] | None = None,
) -> str:
    """Read, check, preprocess and save one training case (runs in a worker process); ``digests`` are its raw
    files' SHA-256 (computed here when not given)."""
    reader = reader_writer_class_by_name(plans.image_reader_writer)()
    data, properties = reader.read_images(case.images)
    seg, _ = reader.read_seg(case.label)
    check_label_values(seg, case, dataset_json)
    data, seg, properties = preprocess_case(data, seg, properties, plans, configuration, dataset_json)
    properties["class_locations"] = class_locations_to_json(properties["class_locations"])
    properties[DIGEST_KEY] = digests if digests is not None else case_digests(case)
    storage.save_case(output_folder, case.identifier, data.astype(np.float32, copy=False), seg, properties)
    return case.identifier


DATA_AFFECTING_KEYS = (
    "spacing", "normalization_schemes", "use_mask_for_norm", "resampling_fn_data", "resampling_fn_data_kwargs",
    "resampling_fn_seg", "resampling_fn_seg_kwargs",
)


def _settings_signature(configuration: ConfigurationPlan, plans: Plans, dataset_json: DatasetJson) -> dict[str, Any]:
    """A digest of everything that changes the preprocessed arrays (not the network or batch size)."""
    config = configuration.to_dict()
    relevant = {
        "configuration": {k: config[k] for k in DATA_AFFECTING_KEYS},
        "transpose_forward": list(plans.transpose_forward),
        "intensity": plans.foreground_intensity_properties_per_channel,
        "reader": plans.image_reader_writer,
        "labels": {k: list(v) if isinstance(v, tuple) else v for k, v in dataset_json.labels.items()},
    }
    digest = hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()
    return {"format": "autoseg-npy-1", "sha256": digest}


def _prepare_output_folder(output_folder: Path, signature: dict[str, Any]) -> None:
    """Keep finished cases of an interrupted run with the same settings; start afresh otherwise."""
    settings_file = output_folder / SETTINGS_FILE
    if output_folder.is_dir():
        previous = load_json(settings_file) if settings_file.is_file() else None
        if previous != signature:
            logger.info("Settings changed since %s was written; preprocessing it again from scratch.", output_folder)
            shutil.rmtree(output_folder)
    output_folder.mkdir(parents=True, exist_ok=True)
    save_json(signature, settings_file)


def preprocess_dataset(
    raw_folder: Path,
    preprocessed_folder: Path,
    plans: Plans,
    configuration_name: str,
    num_processes: int | None = None,
    progress: ProgressCallback | None = None,
    digests: dict[str, dict[str, str]] | None = None,
) -> Path:
    """Preprocess the new and changed training cases of ``raw_folder`` for one configuration (see
    :mod:`autoseg.preprocessing.incremental`); returns the output folder. The plans are only read: an
    enlarged dataset keeps the normalisation and spacing its models were trained with. ``digests`` (the
    raw files' SHA-256 per case) are computed when not given."""
    configuration = plans.configuration(configuration_name)
    dataset_json = DatasetJson.load(raw_folder / "dataset.json")
    cases = training_cases(raw_folder, dataset_json)
    output_folder = preprocessed_folder / configuration.data_identifier
    _prepare_output_folder(output_folder, _settings_signature(configuration, plans, dataset_json))
    digests = digests if digests is not None else dataset_digests(cases)
    inventory = take_inventory(output_folder, cases, digests)
    logger.info("%s %s: %s.", preprocessed_folder.name, configuration_name, inventory.summary())
    for identifier in inventory.removed:  # cases removed from the raw dataset
        for path in storage.case_files(output_folder, identifier):
            path.unlink(missing_ok=True)
    todo = [cases[i] for i in inventory.todo]
    check_channel_counts({c.identifier: c for c in todo}, dataset_json, raw_folder)
    done = len(cases) - len(todo)
    if todo:
        target = (
            [configuration.spacing[plans.transpose_backward[i]] for i in range(3)] if not configuration.is_2d else None
        )
        peak = max(case_peak_bytes(c.images, c.label, target) for c in todo)
        workers = choose_num_workers(num_processes, peak, len(todo))
        arguments = [(c, output_folder, plans, configuration, dataset_json, digests[c.identifier]) for c in todo]
        offset_progress = (lambda n, total: progress(done + n, len(cases))) if progress else None
        if progress:
            progress(done, len(cases))
        run_tasks(preprocess_case_to_disk, arguments, workers, offset_progress, [c.identifier for c in todo])
    return output_folder


def copy_ground_truth(raw_folder: Path, preprocessed_folder: Path,
                      digests: dict[str, dict[str, str]] | None = None) -> None:
    """Copy the raw label files to ``gt_segmentations/`` (skipping identical ones, compared by content),
    atomically."""
    dataset_json = DatasetJson.load(raw_folder / "dataset.json")
    target_folder = preprocessed_folder / "gt_segmentations"
    target_folder.mkdir(parents=True, exist_ok=True)
    for identifier, case in training_cases(raw_folder, dataset_json).items():
        target = target_folder / f"{identifier}{dataset_json.file_ending}"
        if target.is_file() and target.stat().st_size == case.label.stat().st_size:
            source_digest = digests[identifier][case.label.name] if digests else file_sha256(case.label)
            if file_sha256(target) == source_digest:
                continue
        with atomic_path(target) as tmp:
            shutil.copy2(case.label, tmp)
