"""Rank unlabelled cases by model uncertainty: which case to annotate next (what ``autoseg rank_cases`` runs).

Every case of the input folder (``CASE_0000<file_ending>`` ..., as for ``autoseg predict``) is predicted once
per ensemble member (see :mod:`autoseg.ranking.members`), scored (:mod:`autoseg.ranking.uncertainty`,
:mod:`autoseg.ranking.scores`) and ranked most uncertain first into ``ranking.json`` and ``ranking.csv``
(:mod:`autoseg.ranking.report`), optionally with a per-voxel uncertainty map per case::

    ranking = rank_cases("imagesUnlabelled", "ranking_round2", "nnUNet_results/Dataset004_X/"
                         "nnUNetTrainer__nnUNetPlans__3d_fullres", folds=[0, 1, 2, 3, 4], save_maps=True)
    ranking[0].case, ranking[0].reason
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from autoseg.errors import AutoSegError
from autoseg.imageio.base import ImageReaderWriter
from autoseg.imageio.registry import reader_writer_class_by_name
from autoseg.inference.model_folder import ModelFolder, open_model_folder
from autoseg.inference.predict_folder import FolderProgress, InputCase, find_input_cases
from autoseg.inference.predictor import PredictionSettings, Predictor
from autoseg.ranking.map_writer import check_float_maps_supported, write_float_map
from autoseg.ranking.members import MemberPlan, member_probabilities, plan_members
from autoseg.ranking.report import (
    UNCERTAINTY_SUFFIX,
    RankedCase,
    order_by_score,
    refuse_existing_ranking,
    write_ranking,
)
from autoseg.ranking.scores import combined_score, explain
from autoseg.ranking.uncertainty import CaseUncertainty, EnsembleAccumulator
from autoseg.typing import Fold, ProgressCallback

logger = logging.getLogger(__name__)


def score_case(predictor: Predictor, plan: MemberPlan, data: np.ndarray, properties: dict[str, Any],
               keep_map: bool = False, progress: ProgressCallback | None = None,
               source: str = "input") -> CaseUncertainty:
    """The uncertainty of one in-memory case: raw (c, z, y, x) image + reader properties (``{"spacing": [sz,
    sy, sx]}`` at least). ``keep_map`` keeps the per-voxel entropy map (input grid) in the result."""
    accumulator = EnsembleAccumulator(predictor.model.dataset_json.has_regions)
    for probabilities in member_probabilities(predictor, plan, data, properties, progress, source):
        accumulator.add(probabilities)
        del probabilities
    return accumulator.result(keep_map)


def rank_cases(
    input_folder: str | Path,
    output_folder: str | Path,
    model_folder: str | Path,
    folds: Sequence[Fold] | None = None,
    checkpoint: str = "checkpoint_final.pth",
    device: str = "auto",
    tta: bool = True,
    save_maps: bool = False,
    step_size: float = 0.5,
    progress: FolderProgress | None = None,
    num_threads: int | None = None,
) -> list[RankedCase]:
    """Rank every case of ``input_folder`` with the model in ``model_folder`` (``folds``: default every fold with
    ``checkpoint``); write ``ranking.json``/``ranking.csv`` (and ``<case>_uncertainty<file_ending>`` maps with
    ``save_maps``) into ``output_folder`` and return the ranking, most uncertain first. ``progress(case_index,
    num_cases, case, done_windows, total_windows)``; ``num_threads``: CPU threads for the network (None: all
    cores). Refuses a folder that already holds a ranking."""
    input_folder, output_folder = Path(input_folder), Path(output_folder)
    refuse_existing_ranking(output_folder)
    if input_folder.resolve() == output_folder.resolve():
        raise AutoSegError(f"Output folder {output_folder} is the input folder: choose another one.")
    model = _open_model(model_folder, folds, checkpoint)
    dataset_json = model.dataset_json
    cases = find_input_cases(input_folder, dataset_json.file_ending, dataset_json.num_channels)
    reader_writer = reader_writer_class_by_name(model.plans.image_reader_writer)()
    if save_maps:
        check_float_maps_supported(reader_writer, dataset_json.file_ending)
    plan = plan_members(model, tta)
    settings = PredictionSettings(step_size=step_size, use_mirroring=plan.predictor_mirroring, device=device,
                                  num_threads=num_threads)
    predictor = Predictor(model, settings)
    logger.info("Ranking %d case(s) with %s (folds %s, members: %s) on %s.", len(cases), model.path,
                ", ".join(str(f.fold) for f in model.folds), plan.kind, predictor.device)
    rows = []
    for index, case in enumerate(cases):
        case_progress = (
            (lambda d, t, i=index, c=case.identifier: progress(i, len(cases), c, d, t)) if progress else None
        )
        map_folder = output_folder if save_maps else None
        rows.append(_rank_one(predictor, plan, reader_writer, case, map_folder, case_progress))
    ranking = order_by_score(rows)
    refuse_existing_ranking(output_folder)  # another run may have finished meanwhile
    output_folder.mkdir(parents=True, exist_ok=True)
    write_ranking(output_folder, ranking, {
        "model_folder": str(model.path.resolve()), "configuration": model.configuration_name,
        "folds": [f.fold for f in model.folds], "checkpoint": checkpoint, "tta": tta, "members": plan.kind,
        "input_folder": str(input_folder.resolve()),
    })
    return ranking


def _open_model(model_folder: str | Path, folds: Sequence[Fold] | None, checkpoint: str) -> ModelFolder:
    """The model with the chosen folds; a cascade stage (which needs another model's predictions) is refused."""
    model = open_model_folder(model_folder, list(folds) if folds is not None else None, checkpoint)
    if model.configuration.previous_stage:
        raise AutoSegError(
            f"{model.path} is a cascade stage ({model.configuration_name}), which needs the previous stage's "
            f"predictions: rank the cases with the {model.configuration.previous_stage} or 3d_fullres model instead."
        )
    return model


def _rank_one(predictor: Predictor, plan: MemberPlan, reader_writer: ImageReaderWriter, case: InputCase,
              map_folder: Path | None, progress: ProgressCallback | None) -> RankedCase:
    """Read, score and (with ``map_folder``) write the map of one case; its row with rank 0 (set later)."""
    data, properties = _read_case(reader_writer, case)
    uncertainty = score_case(predictor, plan, data, properties, map_folder is not None, progress,
                             source=f"case {case.identifier}")
    del data
    map_path = None
    if map_folder is not None:
        assert uncertainty.entropy_map is not None
        map_path = map_folder / f"{case.identifier}{UNCERTAINTY_SUFFIX}{predictor.model.dataset_json.file_ending}"
        write_float_map(uncertainty.entropy_map, map_path, reader_writer, properties)
    return RankedCase(
        rank=0, case=case.identifier, score=combined_score(uncertainty), fold_disagreement=uncertainty.disagreement,
        mean_entropy=uncertainty.mean_entropy, predicted_foreground_voxels=uncertainty.foreground_voxels,
        reason=explain(uncertainty, plan.kind), uncertainty_map=str(map_path.resolve()) if map_path else None,
    )


def _read_case(reader_writer: ImageReaderWriter, case: InputCase) -> tuple[np.ndarray, dict[str, Any]]:
    try:
        return reader_writer.read_images(case.images)
    except AutoSegError:
        raise
    except Exception as err:  # a reader's own error: name the case and the file
        raise AutoSegError(f"Cannot read case {case.identifier} ({', '.join(map(str, case.images))}): {err}") from err
