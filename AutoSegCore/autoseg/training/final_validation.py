"""The final validation of a fold: whole validation cases predicted with the sliding-window predictor
into ``fold_K/validation/``, scored against ``gt_segmentations`` into ``summary.json``.

With ``save_probabilities`` (``--npz``) each case also gets ``.npz`` probabilities and its properties (what
ensembling and find_best_configuration read). A configuration with a next stage (``3d_lowres``) also writes
its predictions at the next stage's preprocessed shape to ``predicted_next_stage/<next>/`` in the model
folder, which is what the cascade stage trains on. Cases already validated are kept when ``continue_``
is set, so an interrupted validation resumes.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import torch

from autoseg.evaluation.folders import evaluate_with_dataset
from autoseg.evaluation.summary import EvaluationSummary
from autoseg.imageio.registry import reader_writer_class_by_name
from autoseg.inference.export import (
    export_logits,
    probabilities_from_logits,
    resample_channels,
    segmentation_from_probabilities,
)
from autoseg.inference.model_folder import FoldWeights, ModelFolder
from autoseg.inference.predict_folder import outputs_exist, write_probabilities
from autoseg.inference.predictor import PredictionSettings, Predictor
from autoseg.network.checkpoint import clean_state_dict
from autoseg.preprocessing import storage
from autoseg.training.distributed import Ranks
from autoseg.training.fold_split import fold_cases
from autoseg.training.job import TrainingJob
from autoseg.training.preprocessed_dataset import PreprocessedDataset
from autoseg.typing import CaseProgressCallback
from autoseg.utils.files import atomic_path

logger = logging.getLogger(__name__)

#: progress(done, total, case identifier)


def validate_fold(
    job: TrainingJob,
    network_weights: dict[str, torch.Tensor],
    mirror_axes: tuple[int, ...] | None,
    progress: CaseProgressCallback | None = None,
    continue_: bool = False,
    ranks: Ranks = Ranks(),
    output_name: str = "validation",
) -> EvaluationSummary | None:
    """Predict and evaluate the fold's validation cases into ``fold_K/<output_name>``; returns the summary (also
    in ``summary.json``).

    Under DDP every rank predicts its share of the cases and rank 0 evaluates (other ranks return None).
    """
    output = job.fold_folder / output_name
    output.mkdir(parents=True, exist_ok=True)
    identifiers = storage.list_cases(job.data_folder)
    _, val_ids = fold_cases(job.preprocessed_dataset, identifiers, job.fold)
    val_ids = val_ids[ranks.rank::ranks.world_size]
    model = ModelFolder(
        path=job.model_folder, plans=job.plans, dataset_json=job.dataset_json,
        folds=[FoldWeights(job.fold, clean_state_dict(network_weights), job.trainer_name, job.configuration_name,
                           mirror_axes)],
    )
    predictor = Predictor(model, PredictionSettings(device=str(job.device), engine=job.validation_engine))
    reader_writer = reader_writer_class_by_name(job.plans.image_reader_writer)()
    ending = job.dataset_json.file_ending
    # a DDP rank can be left without validation cases (fewer cases than ranks)
    dataset = PreprocessedDataset(job.data_folder, val_ids, job.previous_stage_folder) if val_ids else None
    next_stages = _next_stages(job)
    for index, identifier in enumerate(val_ids):
        if progress:
            progress(index, len(val_ids), identifier)
        if continue_ and outputs_exist(output, identifier, ending, job.save_probabilities) and not next_stages:
            continue
        data, properties = _network_input(job, dataset, identifier)
        logits = predictor.predict_logits(data)
        del data
        segmentation, probabilities = export_logits(
            logits, job.plans, job.configuration, job.dataset_json, properties,
            return_probabilities=job.save_probabilities, num_threads=torch.get_num_threads(),
        )
        reader_writer.write_seg(segmentation, output / f"{identifier}{ending}", properties)
        if probabilities is not None:
            write_probabilities(output, identifier, probabilities, properties)
        for stage in next_stages:
            _save_for_next_stage(job, stage, identifier, logits.astype(np.float32))
    if progress:
        progress(len(val_ids), len(val_ids), "")
    if ranks.distributed:
        import torch.distributed as dist

        dist.barrier()
    if not ranks.is_main:
        return None
    summary, _ = evaluate_with_dataset(
        job.preprocessed_dataset / "gt_segmentations", output, job.model_folder / "dataset.json",
        job.model_folder / "plans.json", output_file=output / "summary.json", chill=True,
    )
    return summary


def _network_input(job: TrainingJob, dataset: PreprocessedDataset | None, identifier: str) -> tuple[np.ndarray, dict]:
    """Preprocessed data (+ the previous stage's one-hot for a cascade) and the case properties."""
    data_file, _, properties_file = storage.case_files(job.data_folder, identifier)
    data = np.load(data_file)
    properties = json.loads(properties_file.read_text(encoding="utf-8"))
    properties.pop("class_locations", None)
    if job.configuration.previous_stage and dataset is not None:
        previous = dataset.load_case(identifier).previous_stage
        one_hot = np.stack([np.asarray(previous) == label for label in job.dataset_json.foreground_labels])
        data = np.concatenate([data, one_hot.astype(data.dtype)])
    return data, properties


def _next_stages(job: TrainingJob) -> list[str]:
    stage = job.configuration.next_stage
    names = [stage] if isinstance(stage, str) else list(stage or [])
    return [n for n in names if n in job.plans.configuration_names]


def _save_for_next_stage(job: TrainingJob, stage: str, identifier: str, logits: np.ndarray) -> None:
    """The prediction resampled to the next stage's preprocessed shape, as ``{id}.npy`` (the segmentation)."""
    next_folder = job.preprocessed_dataset / job.plans.configuration(stage).data_identifier
    data_file = storage.case_files(next_folder, identifier)[0]
    if not data_file.is_file():
        raise FileNotFoundError(
            f"{data_file} is missing: preprocess {stage} (`autoseg preprocess -c {stage}`) before training "
            f"{job.configuration_name}, whose validation feeds the {stage} stage."
        )
    shape = np.load(data_file, mmap_mode="r").shape[1:]
    spacing = [float(s) for s in job.configuration.spacing]
    resampled = resample_channels(logits, shape, spacing, spacing, job.configuration, torch.get_num_threads())
    segmentation = segmentation_from_probabilities(
        probabilities_from_logits(resampled, job.dataset_json), job.dataset_json
    )
    target = job.model_folder / "predicted_next_stage" / stage / f"{identifier}.npy"
    with atomic_path(target, ".npy") as tmp:
        np.save(tmp, segmentation.astype(np.int16 if segmentation.max(initial=0) > 127 else np.int8))
