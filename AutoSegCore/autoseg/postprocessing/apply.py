"""Apply postprocessing steps to every segmentation of a folder (``autoseg apply_postprocessing``).

Each file is read with the reader/writer of the plans (or dataset.json), postprocessed and written to
the output folder with its geometry unchanged; the input folder is never written to.
``dataset.json`` and ``plans.json`` are written next to the results so the output folder can be
evaluated or postprocessed again like a prediction folder.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from autoseg.errors import PostprocessingError
from autoseg.imageio.base import ImageReaderWriter
from autoseg.postprocessing.folder_settings import (
    DatasetSource,
    PlansSource,
    resolve_settings,
    segmentation_names,
)
from autoseg.postprocessing.steps import PostprocessingStep, apply_steps
from autoseg.typing import ProgressCallback
from autoseg.utils.parallel import choose_num_workers, run_tasks

logger = logging.getLogger(__name__)


def postprocess_file(
    source: str, target: str, reader: ImageReaderWriter, steps: Sequence[PostprocessingStep]
) -> None:
    """Read one segmentation, apply ``steps``, write it (atomically) with the same geometry."""
    segmentation, properties = reader.read_seg(source)
    reader.write_seg(apply_steps(segmentation[0], steps), target, properties)


def apply_postprocessing_to_folder(
    input_folder: str | os.PathLike[str],
    output_folder: str | os.PathLike[str],
    steps: Sequence[PostprocessingStep],
    dataset_json: DatasetSource = None,
    plans: PlansSource = None,
    num_processes: int | None = None,
    search: Sequence[str | os.PathLike[str]] = (),
    progress: ProgressCallback | None = None,
) -> list[str]:
    """Postprocess every ``*file_ending`` file of ``input_folder`` into ``output_folder``.

    ``dataset_json``/``plans`` (objects, dicts or paths) default to ``input_folder``'s ``dataset.json`` and
    ``plans.json``, then to the same files in the ``search`` folders. ``num_processes`` None uses every
    CPU. Returns the file names written.
    """
    input_folder, output_folder = Path(input_folder), Path(output_folder)
    if output_folder.exists() and output_folder.resolve() == input_folder.resolve():
        raise PostprocessingError(
            f"The output folder {output_folder} is the input folder; choose another one (inputs are never "
            f"overwritten)."
        )
    settings = resolve_settings(input_folder, dataset_json, plans, [Path(s) for s in search])
    names = segmentation_names(input_folder, settings.file_ending, "input")
    if not names:
        raise PostprocessingError(f"The input folder {input_folder} contains no *{settings.file_ending} files.")
    reader = settings.reader(input_folder / names[0])
    output_folder.mkdir(parents=True, exist_ok=True)
    arguments = [(str(input_folder / n), str(output_folder / n), reader, list(steps)) for n in names]
    workers = choose_num_workers(num_processes, num_tasks=len(arguments))
    logger.info("Postprocessing %d file(s) from %s into %s with %d step(s).", len(names), input_folder,
                output_folder, len(steps))
    run_tasks(postprocess_file, arguments, workers, progress=progress, task_names=names)
    settings.write_copies(output_folder)
    return names
