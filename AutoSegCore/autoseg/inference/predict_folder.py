"""Predict every case of an input folder into an output folder (what ``autoseg predict`` runs).

Input cases are ``{case}_{CCCC}{file_ending}`` files (one per channel) as in ``imagesTs``. Reading and
preprocessing the next case runs in a background thread while the network works on the current one,
and so does writing the previous result; every file is written atomically, so ``continue_prediction``
can trust whatever exists.
"""

from __future__ import annotations

import logging
import pickle
import re
import shutil
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autoseg.errors import AutoSegError
from autoseg.imageio.registry import reader_writer_class_by_name
from autoseg.inference.predictor import Predictor
from autoseg.utils.files import atomic_path, save_json

logger = logging.getLogger(__name__)

#: progress(case_index, num_cases, case_id, done_windows, total_windows)
FolderProgress = Callable[[int, int, str, int, int], None]


@dataclass(frozen=True)
class InputCase:
    identifier: str
    images: list[Path]
    previous_stage: Path | None = None


def find_input_cases(folder: Path, file_ending: str, num_channels: int) -> list[InputCase]:
    """Group ``{case}_{CCCC}{ending}`` files by case; every problem is reported at once."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AutoSegError(f"Input folder {folder} does not exist.")
    pattern = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})" + re.escape(file_ending) + "$")
    channels: dict[str, dict[int, Path]] = {}
    stray: list[str] = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.is_dir():
            continue
        match = pattern.match(path.name)
        if match:
            channels.setdefault(match["case"], {})[int(match["channel"])] = path
        elif path.name.endswith(file_ending):
            stray.append(path.name)
    problems: list[str] = []
    if stray:
        problems.append(
            f"{len(stray)} file(s) lack the channel suffix _0000 ... (e.g. {stray[0]}): name them "
            f"CASE_0000{file_ending}"
            + (f" ... CASE_{num_channels - 1:04d}{file_ending}" if num_channels > 1 else "")
        )
    for case, found in sorted(channels.items()):
        missing = [c for c in range(num_channels) if c not in found]
        extra = sorted(c for c in found if c >= num_channels)
        if missing:
            problems.append(
                f"case {case}: missing channel file(s) "
                + ", ".join(f"{case}_{c:04d}{file_ending}" for c in missing)
                + f" (the model expects {num_channels} channel(s))"
            )
        if extra:
            problems.append(
                f"case {case}: unexpected channel file(s) "
                + ", ".join(f"{case}_{c:04d}{file_ending}" for c in extra)
                + f" (the model expects {num_channels} channel(s))"
            )
    if not channels and not problems:
        endings = sorted({_ending(p.name) for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")})
        hint = (
            f" It contains files ending in {', '.join(endings)}; convert them to {file_ending}."
            if endings
            else " It is empty."
        )
        problems.append(f"no input files ending in {file_ending} (the model's file_ending).{hint}")
    if problems:
        raise AutoSegError(f"Input folder {folder}:\n  - " + "\n  - ".join(problems))
    return [InputCase(case, [found[c] for c in range(num_channels)]) for case, found in sorted(channels.items())]


def _ending(name: str) -> str:
    parts = name.split(".")
    return (
        "." + ".".join(parts[-2:])
        if len(parts) > 2 and parts[-1] == "gz"
        else "." + parts[-1]
        if len(parts) > 1
        else "(none)"
    )


def attach_previous_stage(cases: list[InputCase], folder: Path, file_ending: str) -> list[InputCase]:
    missing = [c.identifier for c in cases if not (folder / f"{c.identifier}{file_ending}").is_file()]
    if missing:
        raise AutoSegError(
            f"-prev_stage_predictions {folder} lacks the previous stage's prediction of {len(missing)} case(s), e.g. "
            f"{folder / (missing[0] + file_ending)}. Predict them with the 3d_lowres model first."
        )
    return [InputCase(c.identifier, c.images, folder / f"{c.identifier}{file_ending}") for c in cases]


def select_part(cases: list[InputCase], num_parts: int, part_id: int) -> list[InputCase]:
    """Every ``num_parts``-th case starting at ``part_id`` (nnU-Net's sharding)."""
    if num_parts < 1 or not 0 <= part_id < num_parts:
        raise AutoSegError(f"-part_id must be in 0 ... {num_parts - 1} for -num_parts {num_parts}, got {part_id}.")
    return cases[part_id::num_parts]


def outputs_exist(output_folder: Path, identifier: str, file_ending: str, save_probabilities: bool) -> bool:
    wanted = [output_folder / f"{identifier}{file_ending}"]
    if save_probabilities:
        wanted.append(output_folder / f"{identifier}.npz")
    return all(p.is_file() for p in wanted)


def write_probabilities(
    output_folder: Path, identifier: str, probabilities: np.ndarray, properties: dict[str, Any]
) -> None:
    with atomic_path(output_folder / f"{identifier}.npz", ".npz") as tmp:
        np.savez_compressed(tmp, probabilities=probabilities)
    save_json(properties, output_folder / f"{identifier}.json")
    with atomic_path(output_folder / f"{identifier}.pkl") as tmp:  # what nnU-Net's ensembling reads
        tmp.write_bytes(pickle.dumps(properties))


def predict_folder(
    predictor: Predictor,
    input_folder: Path,
    output_folder: Path,
    save_probabilities: bool = False,
    continue_prediction: bool = False,
    previous_stage_folder: Path | None = None,
    num_parts: int = 1,
    part_id: int = 0,
    progress: FolderProgress | None = None,
) -> list[str]:
    """Predict all (selected) cases; returns the identifiers predicted in this run. Reading the next case and
    writing the previous one overlap with the network work on this one (one background thread each)."""
    model = predictor.model
    input_folder, output_folder = Path(input_folder), Path(output_folder)
    if input_folder.resolve() == output_folder.resolve():
        raise AutoSegError(
            f"Output folder {output_folder} is the input folder: choose another one, inputs are never overwritten."
        )
    cases = _cases_to_predict(predictor, input_folder, output_folder, save_probabilities, continue_prediction,
                              previous_stage_folder, num_parts, part_id)
    output_folder.mkdir(parents=True, exist_ok=True)
    _write_model_files(model.path, output_folder)
    load, write = _case_reader_and_writer(predictor, output_folder)
    predicted: list[str] = []
    with ThreadPoolExecutor(max_workers=1) as reader_pool, ThreadPoolExecutor(max_workers=1) as writer_pool:
        pending_read: Future | None = reader_pool.submit(load, cases[0]) if cases else None
        pending_write: Future | None = None
        for index, case in enumerate(cases):
            assert pending_read is not None
            data, properties, previous = pending_read.result()
            pending_read = reader_pool.submit(load, cases[index + 1]) if index + 1 < len(cases) else None
            tile_progress = (
                (lambda d, t, i=index, c=case.identifier: progress(i, len(cases), c, d, t)) if progress else None
            )
            segmentation, probabilities, properties = predictor.predict_case(
                data, properties, previous, save_probabilities, tile_progress, source=f"case {case.identifier}",
            )
            del data
            if pending_write is not None:
                pending_write.result()
            pending_write = writer_pool.submit(write, case, segmentation, probabilities, properties)
            predicted.append(case.identifier)
        if pending_write is not None:
            pending_write.result()
    return predicted


def _cases_to_predict(predictor: Predictor, input_folder: Path, output_folder: Path, save_probabilities: bool,
                      continue_prediction: bool, previous_stage_folder: Path | None, num_parts: int,
                      part_id: int) -> list[InputCase]:
    """The input cases of this part, without those already predicted when continuing."""
    dataset_json = predictor.model.dataset_json
    ending = dataset_json.file_ending
    cases = find_input_cases(input_folder, ending, dataset_json.num_channels)
    if previous_stage_folder is not None:
        cases = attach_previous_stage(cases, Path(previous_stage_folder), ending)
    cases = select_part(cases, num_parts, part_id)
    if continue_prediction:
        done = [c for c in cases if outputs_exist(output_folder, c.identifier, ending, save_probabilities)]
        if done:
            logger.info("%d of %d case(s) already predicted in %s; continuing with the rest.", len(done),
                        len(cases), output_folder)
        cases = [c for c in cases if c not in done]
    return cases


def _case_reader_and_writer(
    predictor: Predictor, output_folder: Path
) -> tuple[Callable[..., Any], Callable[..., None]]:
    """``load(case)`` -> (data, properties, previous stage) and ``write(case, segmentation, probabilities,
    properties)`` with the model's image reader/writer."""
    ending = predictor.model.dataset_json.file_ending
    reader_writer = reader_writer_class_by_name(predictor.model.plans.image_reader_writer)()

    def load(case: InputCase) -> tuple[np.ndarray, dict[str, Any], np.ndarray | None]:
        try:
            data, properties = reader_writer.read_images(case.images)
            previous = reader_writer.read_seg(case.previous_stage)[0] if case.previous_stage else None
        except AutoSegError:
            raise
        except Exception as err:  # a reader's own error: name the case and the file
            raise AutoSegError(
                f"Cannot read case {case.identifier} ({', '.join(map(str, case.images))}): {err}"
            ) from err
        return data, properties, previous

    def write(case: InputCase, segmentation: np.ndarray, probabilities: np.ndarray | None,
              properties: dict[str, Any]) -> None:
        reader_writer.write_seg(segmentation, output_folder / f"{case.identifier}{ending}", properties)
        if probabilities is not None:
            write_probabilities(output_folder, case.identifier, probabilities, properties)

    return load, write


def _write_model_files(model_path: Path, output_folder: Path) -> None:
    """Copy dataset.json and plans.json next to the predictions (as nnU-Net does; ensembling reads them)."""
    for name in ("dataset.json", "plans.json"):
        target = output_folder / name
        with atomic_path(target) as tmp:
            shutil.copyfile(model_path / name, tmp)


