"""Command lines for the ``PythonSlicer -m autoseg.cli.main ...`` subprocesses the Slicer modules start.

Each builder returns an :class:`AutoSegCommand`: the arguments after the Python executable, the
environment variables the child needs (the workspace folders, unbuffered output), a one-line
description for the module's log and the JSON-lines progress file the module can follow.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from autoseg.errors import AutoSegError
from autoseg.paths import ModelFolderName, Workspace
from autoseg.slicer_support.training_monitor import format_duration
from autoseg.training.settings import TrainingSettings
from autoseg.utils.progress_stream import STREAM_NAME

ENTRY_MODULE = ("-m", "autoseg.cli.main")
BASE_ENVIRONMENT = {"PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"}
PathLike = str | os.PathLike[str]


@dataclass
class AutoSegCommand:
    """One ``autoseg`` subprocess: arguments after the Python executable, environment, log line, progress file."""

    args: list[str]
    environment: dict[str, str]
    description: str
    progress_file: Path | None = None

    def command_line(self, python_executable: str) -> list[str]:
        """The full argv, e.g. ``[PythonSlicer, "-m", "autoseg.cli.main", "train", ...]``."""
        return [str(python_executable), *self.args]

    def display(self, python_executable: str = "PythonSlicer", windows: bool | None = None) -> str:
        """The command as one copy-pasteable line for this platform's shell."""
        argv = self.command_line(python_executable)
        on_windows = os.name == "nt" if windows is None else windows
        if on_windows:
            return subprocess.list2cmdline(argv)
        return shlex.join(argv)


@dataclass(frozen=True)
class WorkspaceFolders(Workspace):
    """The three nnU-Net folders (a :class:`Workspace`) plus the environment that points a child at them."""

    def environment(self) -> dict[str, str]:
        return workspace_environment(self)


def workspace_environment(workspace: Workspace | None) -> dict[str, str]:
    """``nnUNet_raw``/``nnUNet_preprocessed``/``nnUNet_results`` (absolute) plus unbuffered UTF-8 output."""
    environment = dict(BASE_ENVIRONMENT)
    if workspace is not None:
        environment.update({
            "nnUNet_raw": str(Path(workspace.raw).absolute()),
            "nnUNet_preprocessed": str(Path(workspace.preprocessed).absolute()),
            "nnUNet_results": str(Path(workspace.results).absolute()),
        })
    return environment


def _command(workspace: Workspace | None, args: Sequence[str], description: str,
             progress_file: Path | None = None) -> AutoSegCommand:
    return AutoSegCommand([*ENTRY_MODULE, *args], workspace_environment(workspace), description, progress_file)


def _fold_text(fold: str | int) -> str:
    text = str(fold).strip()
    if text.isdigit() or text == "all":
        return str(int(text)) if text.isdigit() else text
    raise AutoSegError(f"Invalid fold {fold!r}: use a number (0-4) or 'all'.")


def _positive(value: float | int | None, what: str) -> None:
    if value is not None and value <= 0:
        raise AutoSegError(f"{what} must be positive, got {value}.")


def model_folder_name(trainer: str, plans: str, configuration: str) -> str:
    """``<trainer>__<plans>__<configuration>``, the results sub-folder of one model."""
    return str(ModelFolderName(trainer, plans, configuration))


def plan_and_preprocess_command(ws: Workspace, dataset_id: int | str, configurations: Sequence[str] | None = None,
                                verify: bool = True, gpu_memory_target_gb: float | None = None,
                                num_processes: int | None = None) -> AutoSegCommand:
    """``autoseg plan_and_preprocess -d ID`` (fingerprint, plans, preprocessing; integrity check first)."""
    _positive(gpu_memory_target_gb, "The GPU memory target")
    _positive(num_processes, "The number of processes")
    args = ["plan_and_preprocess", "-d", str(dataset_id)]
    if configurations:
        args += ["-c", *configurations]
    if verify:
        args.append("--verify_dataset_integrity")
    if gpu_memory_target_gb is not None:
        args += ["-gpu_memory_target", f"{gpu_memory_target_gb:g}"]
    if num_processes is not None:
        args += ["-np", str(num_processes), "-npfp", str(num_processes)]
    try:
        name = ws.dataset_name(dataset_id)
    except AutoSegError:
        name = f"dataset {dataset_id}"  # the child reports the problem with the full context
    return _command(ws, args, f"Planning and preprocessing {name}")


def preprocess_command(ws: Workspace, dataset: str | int, configurations: Sequence[str],
                       plans_name: str = "nnUNetPlans", num_processes: int | None = None) -> AutoSegCommand:
    """``autoseg preprocess -d ID -c CONFIGS -plans_name P``: with the existing plans (never re-planned), only the
    cases that are new or changed since the last preprocessing (what an update of the model needs)."""
    if not configurations:
        raise AutoSegError("No configuration to preprocess: plan and preprocess the dataset first.")
    _positive(num_processes, "The number of processes")
    name = ws.dataset_name(dataset)
    args = ["preprocess", "-d", name, "-c", *configurations, "-plans_name", plans_name]
    if num_processes is not None:
        args += ["-np", str(num_processes)]
    return _command(ws, args, f"Preprocessing the new cases of {name} ({', '.join(configurations)})")


def parse_time_budget(text: str | None) -> float | None:
    """Seconds of a training time budget (``45m``, ``1h30m``, ``600s``, plain minutes); None for empty text.

    The trainer's own parser (torch-free ``autoseg.training.run_control.parse_duration``), with a message for
    the modules' "Time budget" field.
    """
    if text is None or not str(text).strip():
        return None
    from autoseg.training.run_control import parse_duration

    try:
        return parse_duration(str(text))
    except AutoSegError:
        raise AutoSegError(f"Time budget {str(text).strip()!r}: give a duration such as 45m, 1h30m, 600s or a number "
                           f"of minutes (90), or leave it empty to train for the number of epochs.") from None


def _check_update(resume: bool, update: bool, update_lr: float | None) -> None:
    if update and resume:
        raise AutoSegError("Updating the model and continuing from a checkpoint cannot be combined: an update starts "
                           "from the fold's trained model and continues an interrupted update by itself.")
    if update_lr is not None and not update:
        raise AutoSegError("The update learning rate only applies when updating the model with new cases.")
    _positive(update_lr, "The update learning rate")


def train_command(ws: Workspace, dataset: str | int, configuration: str, fold: str | int,
                  trainer: str = "nnUNetTrainer", plans: str = "nnUNetPlans", device: str = "auto",
                  epochs: int | None = None, resume: bool = False, save_npz: bool = True,
                  iterations_per_epoch: int | None = None, time_budget: str | None = None, update: bool = False,
                  update_lr: float | None = None) -> AutoSegCommand:
    """``autoseg train DATASET CONFIG FOLD``; its progress file is the fold folder's ``progress.jsonl``.

    ``time_budget`` (``--time_budget``, e.g. ``45m``) sizes the epochs to end training and validation within it:
    ``epochs`` is then not passed. ``update`` (``--update``) fine-tunes the fold's trained model with the cases
    added since; ``epochs`` is then the update's number of epochs (default: a quarter of the model's).
    """
    TrainingSettings().with_options(epochs, iterations_per_epoch)  # the checks the trainer would make
    budget = parse_time_budget(time_budget)
    _check_update(resume, update, update_lr)
    name = ws.dataset_name(dataset)
    fold_text = _fold_text(fold)
    args = ["train", name, configuration, fold_text, "-tr", trainer, "-p", plans, "-device", device]
    if epochs is not None and budget is None:
        args += ["--epochs", str(epochs)]
    if iterations_per_epoch is not None:
        args += ["--iterations_per_epoch", str(iterations_per_epoch)]
    if budget is not None:
        args += ["--time_budget", str(time_budget).strip()]
    if update:
        args.append("--update")
    if update_lr is not None:
        args += ["--update_lr", f"{update_lr:g}"]
    if resume:
        args.append("--c")
    if save_npz:
        args.append("--npz")
    args.append("--no_pbar")  # progress comes from progress.jsonl; bars would flood the log
    progress = ws.results / name / model_folder_name(trainer, plans, configuration) / f"fold_{fold_text}"
    action = "Updating" if update else "Resuming" if resume else "Training"
    within = f" within {format_duration(budget)}" if budget is not None else ""
    return _command(ws, args, f"{action} {configuration} fold {fold_text} of {name}{within}", progress / STREAM_NAME)


def find_best_command(ws: Workspace, dataset: str | int, configurations: Sequence[str], folds: Sequence[int | str],
                      trainer: str = "nnUNetTrainer", plans: str = "nnUNetPlans") -> AutoSegCommand:
    """``autoseg find_best_configuration DATASET -c ... -f ...`` (cross-validation table, postprocessing)."""
    if not configurations:
        raise AutoSegError("Choose at least one configuration for find_best_configuration.")
    fold_texts = [_fold_text(f) for f in folds]
    if not fold_texts or "all" in fold_texts:
        raise AutoSegError("find_best_configuration compares cross-validation folds: give numbered folds (0-4), "
                           "not 'all'.")
    name = ws.dataset_name(dataset)
    args = ["find_best_configuration", name, "-c", *configurations, "-tr", trainer, "-p", plans, "-f", *fold_texts]
    return _command(ws, args, f"Finding the best configuration of {name} ({', '.join(configurations)}; "
                              f"folds {' '.join(fold_texts)})")


def predict_command(ws_or_none: Workspace | None, input_folder: PathLike, output_folder: PathLike,
                    model_folder: PathLike, folds: Sequence[int | str] | None, device: str = "auto",
                    step_size: float = 0.5, tta: bool = False, save_probabilities: bool = False,
                    checkpoint: str = "checkpoint_final.pth", progress_file: Path | None = None,
                    previous_stage: Path | None = None, engine: str = "auto") -> AutoSegCommand:
    """``autoseg predict -m MODEL_FOLDER -i IN -o OUT ...`` (progress as JSON lines with ``-progress_file``);
    ``engine`` auto/openvino/torch (openvino needs no PyTorch)."""
    if not 0 < step_size <= 1:
        raise AutoSegError(f"The step size must be in (0, 1], got {step_size}.")
    model = Path(model_folder)
    args = ["predict", "-i", str(input_folder), "-o", str(output_folder), "-m", str(model),
            "-device", device, "-engine", engine, "-step_size", f"{step_size:g}", "-chk", checkpoint]
    fold_texts = [_fold_text(f) for f in folds] if folds else []
    if fold_texts:
        args += ["-f", *fold_texts]
    if not tta:
        args.append("--disable_tta")
    if save_probabilities:
        args.append("--save_probabilities")
    if previous_stage is not None:
        args += ["-prev_stage_predictions", str(previous_stage)]
    if progress_file is not None:
        args += ["-progress_file", str(progress_file)]
    args.append("--no_pbar")
    which = f"folds {', '.join(fold_texts)}" if fold_texts else "all folds"
    description = f"Predicting with {model.parent.name} {model.name.split('__')[-1]} ({which})"
    return _command(ws_or_none, args, description, Path(progress_file) if progress_file is not None else None)


def rank_cases_command(ws_or_none: Workspace | None, input_folder: PathLike, output_folder: PathLike,
                       model_folder: PathLike, folds: Sequence[int | str] | None = None, device: str = "auto",
                       tta: bool = True, save_maps: bool = True,
                       checkpoint: str = "checkpoint_final.pth") -> AutoSegCommand:
    """``autoseg rank_cases -i IN -o OUT -m MODEL_FOLDER ...``: unlabelled cases, most uncertain first.

    ``output_folder`` must be new (rank_cases never writes into a folder holding a ranking); with ``save_maps`` each
    case's uncertainty map is written when the case is done (see ``rankings.RankingMonitor``).
    """
    model = Path(model_folder)
    args = ["rank_cases", "-i", str(input_folder), "-o", str(output_folder), "-m", str(model), "-device", device,
            "-chk", checkpoint]
    fold_texts = [_fold_text(f) for f in folds] if folds else []
    if fold_texts:
        args += ["-f", *fold_texts]
    if not tta:
        args.append("--disable_tta")
    if save_maps:
        args.append("--save_maps")
    args.append("--no_pbar")
    which = f"folds {', '.join(fold_texts)}" if fold_texts else "all folds"
    description = f"Ranking the cases of {input_folder} with {model.parent.name} {model.name.split('__')[-1]} ({which})"
    return _command(ws_or_none, args, description)


def apply_postprocessing_command(input_folder: PathLike, output_folder: PathLike, pp_file: PathLike,
                                 plans_json: PathLike | None, dataset_json: PathLike | None) -> AutoSegCommand:
    """``autoseg apply_postprocessing -i IN -o OUT -pp_pkl_file FILE [-plans_json] [-dataset_json]``."""
    args = ["apply_postprocessing", "-i", str(input_folder), "-o", str(output_folder), "-pp_pkl_file", str(pp_file)]
    if plans_json is not None:
        args += ["-plans_json", str(plans_json)]
    if dataset_json is not None:
        args += ["-dataset_json", str(dataset_json)]
    return _command(None, args, f"Postprocessing {input_folder} with {Path(pp_file).name}")


def export_segmentations_command(ws: Workspace, inputs: PathLike | Sequence[PathLike], dataset: str | int,
                                 name: str | None = None,
                                 channel_names: Mapping[str, str] | Sequence[str] | None = None,
                                 file_ending: str | None = None, overwrite: bool = False,
                                 dry_run: bool = False) -> AutoSegCommand:
    """``autoseg export_segmentations -i PATH... -d DATASET [-n NAME] [-channel_names ...] [-file_ending E]``.

    ``inputs``: a folder, or several folders and ``.seg.nrrd`` files (see :func:`export_inputs`); the child
    prints ``[done/total] case`` after each case (read with :func:`export_progress`).
    """
    paths = [str(inputs)] if isinstance(inputs, (str, os.PathLike)) else [str(p) for p in inputs]
    if not paths:
        raise AutoSegError("There are no cases to export.")
    args = ["export_segmentations", "-i", *paths, "-d", str(dataset)]
    if name:
        args += ["-n", name]
    if channel_names:
        if isinstance(channel_names, Mapping):
            names = [channel_names[k] for k in sorted(channel_names, key=lambda k: int(k) if str(k).isdigit() else 0)]
        else:
            names = list(channel_names)
        args += ["-channel_names", *names]
    if file_ending:
        args += ["-file_ending", file_ending]
    if overwrite:
        args.append("--overwrite")
    if dry_run:
        args.append("--dry_run")
    verb = "Checking the export of" if dry_run else "Exporting"
    source = paths[0] if len(paths) == 1 else f"{len(paths)} folders and files"
    return _command(ws, args, f"{verb} the segmentations in {source} to dataset {dataset}")


def export_inputs(segmentations: Sequence[PathLike]) -> list[Path]:
    """The ``-i`` paths that export exactly these ``.seg.nrrd`` files, in this order.

    A run of consecutive files that is all of its folder's ``.seg.nrrd`` files in the folder's (sorted)
    order becomes the folder (a short command line); any other file is passed itself.
    """
    from autoseg.dataset.export.cases import SEG_ENDING, split_ending

    files = [Path(s) for s in segmentations]
    inputs: list[Path] = []
    start = 0
    while start < len(files):
        folder = files[start].parent
        end = start
        while end < len(files) and files[end].parent == folder:
            end += 1
        run = files[start:end]
        in_folder = [e.name for e in sorted(folder.iterdir()) if not e.name.startswith(".") and e.is_file()
                     and split_ending(e.name, (SEG_ENDING,))] if folder.is_dir() else []  # as find_cases_in_folder
        inputs += [folder] if [p.name for p in run] == in_folder else run
        start = end
    return inputs


EXPORT_PROGRESS = re.compile(r"^\[(?P<done>\d+)/(?P<total>\d+)\] (?P<case>.+)$")


def export_progress(line: str) -> tuple[int, int, str] | None:
    """``(done, total, case id)`` from the line ``autoseg export_segmentations`` prints after each case."""
    match = EXPORT_PROGRESS.match(line.strip())
    return (int(match["done"]), int(match["total"]), match["case"]) if match else None


def install_zip_command(ws: Workspace, zip_path: PathLike) -> AutoSegCommand:
    """``autoseg install_pretrained_model_from_zip ZIP`` (into the workspace's nnUNet_results)."""
    return _command(ws, ["install_pretrained_model_from_zip", str(zip_path)],
                    f"Installing {Path(zip_path).name} into {ws.results}")
