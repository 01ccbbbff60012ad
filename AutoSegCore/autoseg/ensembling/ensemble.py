"""Average the probabilities of several prediction folders into one segmentation per case (``autoseg ensemble``).

As nnU-Net's ``nnUNetv2_ensemble``: every folder must hold ``{case}.npz`` for the same cases; the average
is taken in float32 in folder order, the segmentation follows the labels (argmax) or regions
(``regions_class_order``) of the first folder's ``dataset.json``, and it is written with the first
folder's case properties and the reader/writer of its ``plans.json``. Each worker holds one case at a
time (the running sum, one loaded file and the segmentation).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from autoseg.dataset.dataset_json import DatasetJson
from autoseg.ensembling.inputs import (
    NPZ_HINT,
    PROBABILITIES_KEY,
    EnsembleSetup,
    check_folders,
    common_cases,
    load_case_properties,
    load_setup,
    npz_uncompressed_bytes,
    probability_files,
)
from autoseg.errors import EnsembleError
from autoseg.typing import ProgressCallback
from autoseg.utils.files import atomic_path, save_json
from autoseg.utils.parallel import choose_num_workers, run_tasks

logger = logging.getLogger(__name__)

#: Peak memory of one merge relative to the largest probabilities file (sum, one loaded file, segmentation).
PEAK_FACTOR = 4.0
#: Starting a worker process costs seconds (imports); below this much data per worker, fewer workers are faster.
BYTES_PER_WORKER = 256 * 1024**2


def expected_channels(dataset_json: DatasetJson) -> int:
    """Probability channels a model of this dataset writes: one per region, or one per label with background."""
    return len(dataset_json.foreground_regions) if dataset_json.has_regions else len(dataset_json.all_labels)


def _load_probabilities(path: Path) -> np.ndarray:
    try:
        with np.load(path) as npz:
            if PROBABILITIES_KEY not in npz:
                raise EnsembleError(
                    f"{path} has no '{PROBABILITIES_KEY}' array (found: {', '.join(npz.files) or 'none'}). {NPZ_HINT}"
                )
            return npz[PROBABILITIES_KEY]
    except EnsembleError:
        raise
    except Exception as err:  # truncated/corrupt zip, not an npz at all
        raise EnsembleError(f"Cannot read {path} ({type(err).__name__}: {err}); re-create it. {NPZ_HINT}") from err


def average_probabilities(files: Sequence[Path]) -> np.ndarray:
    """Mean of the ``probabilities`` arrays of ``files``, float32, summed in the given order (as nnU-Net)."""
    if not files:
        raise EnsembleError("No probability files to average.")
    total: np.ndarray | None = None
    for path in files:
        probabilities = _load_probabilities(Path(path))
        if total is None:
            total = probabilities if probabilities.dtype == np.float32 else probabilities.astype(np.float32)
            first = path
        elif probabilities.shape != total.shape:
            raise EnsembleError(
                f"{path} has probabilities of shape {probabilities.shape} but {first} has {total.shape}: "
                f"ensembled predictions must be of the same case, image and labels."
            )
        else:
            total += probabilities
    assert total is not None
    total /= len(files)
    return total


def merge_case(
    files: Sequence[Path],
    output_truncated: Path,
    dataset_json: DatasetJson,
    reader_writer_name: str,
    save_probabilities: bool = False,
) -> None:
    """Ensemble one case: average ``files``, write ``output_truncated + file_ending`` (+ ``.npz`` and properties).

    The properties (image geometry) come from the first file's folder. Runs in worker processes.
    """
    from autoseg.imageio.registry import reader_writer_class_by_name
    from autoseg.inference.export import segmentation_from_probabilities
    from autoseg.inference.predict_folder import write_probabilities

    first = Path(files[0])
    case = first.name[:-4]
    properties = load_case_properties(first.parent, case)
    probabilities = average_probabilities(files)
    channels = expected_channels(dataset_json)
    if probabilities.shape[0] != channels:
        raise EnsembleError(
            f"{first} has {probabilities.shape[0]} probability channel(s) but {dataset_json.source or 'dataset.json'} "
            f"defines {channels} label(s)/region(s): the folders were not predicted by models of this dataset."
        )
    segmentation = segmentation_from_probabilities(probabilities, dataset_json)
    output_truncated = Path(output_truncated)
    reader_writer = reader_writer_class_by_name(reader_writer_name)()
    reader_writer.write_seg(segmentation, f"{output_truncated}{dataset_json.file_ending}", properties)
    if save_probabilities:
        write_probabilities(output_truncated.parent, output_truncated.name, probabilities, properties)


def peak_bytes_per_case(files: Sequence[Path]) -> float:
    """Estimated peak memory of merging the largest of these cases."""
    return PEAK_FACTOR * max((npz_uncompressed_bytes(Path(f)) for f in files), default=0)


def _useful_workers(file_lists: Sequence[Sequence[Path]]) -> int:
    """Worker processes worth starting: one per ``BYTES_PER_WORKER`` of probabilities to read."""
    total = sum(npz_uncompressed_bytes(Path(f)) for files in file_lists for f in files)
    return max(1, int(total // BYTES_PER_WORKER))


def run_merges(
    file_lists: Sequence[Sequence[Path]],
    output_folder: Path,
    setup: EnsembleSetup,
    save_probabilities: bool,
    num_processes: int | None,
    progress: ProgressCallback | None = None,
) -> None:
    """Merge every case of ``file_lists`` (one list of files per case) into ``output_folder``."""
    arguments = [
        (list(files), Path(output_folder) / Path(files[0]).name[:-4], setup.dataset_json, setup.reader_writer_name,
         save_probabilities)
        for files in file_lists
    ]
    workers = min(choose_num_workers(num_processes, peak_bytes_per_case([f[0] for f in file_lists]), len(arguments)),
                  _useful_workers(file_lists))
    names = [Path(files[0]).name[:-4] for files in file_lists]
    run_tasks(merge_case, arguments, workers, progress=progress, task_names=names)


def write_model_files(setup: EnsembleSetup, output_folder: Path) -> None:
    """Put ``dataset.json`` (and ``plans.json`` when known) next to the ensembled predictions."""
    save_json(setup.dataset_json.to_dict(), Path(output_folder) / "dataset.json", sort_keys=False)
    if setup.plans_file is not None:
        with atomic_path(Path(output_folder) / "plans.json") as tmp:
            shutil.copyfile(setup.plans_file, tmp)


def ensemble_folders(
    input_folders: Sequence[str | Path],
    output_folder: str | Path,
    save_probabilities: bool = False,
    num_processes: int | None = None,
    dataset_json_file: str | Path | None = None,
    plans_file: str | Path | None = None,
    progress: ProgressCallback | None = None,
) -> list[str]:
    """Ensemble the ``.npz`` probabilities of ``input_folders`` into ``output_folder``; returns the case ids.

    ``dataset_json_file``/``plans_file`` default to the copies in the first input folder.
    """
    folders = [Path(f) for f in input_folders]
    output_folder = Path(output_folder)
    check_folders(folders, output_folder)
    setup = load_setup(folders[0], Path(dataset_json_file) if dataset_json_file else None,
                       Path(plans_file) if plans_file else None)
    files_per_folder = {folder: probability_files(folder) for folder in folders}
    cases = common_cases(files_per_folder)
    output_folder.mkdir(parents=True, exist_ok=True)
    write_model_files(setup, output_folder)
    logger.info("Ensembling %d case(s) from %d folder(s) into %s.", len(cases), len(folders), output_folder)
    run_merges([[files_per_folder[f][case] for f in folders] for case in cases], output_folder, setup,
               save_probabilities, num_processes, progress)
    return cases
