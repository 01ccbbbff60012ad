"""The demo's steps, each reusing what a previous run finished (and saying so through ``say``).

Every step works through the library APIs on the demo's own :class:`~autoseg.paths.Workspace`, exactly
as the equivalent ``autoseg`` command would (the command is named in what the step says).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from autoseg.demo.dataset import FILE_ENDING, write_demo_dataset
from autoseg.demo.layout import DemoPaths, shown
from autoseg.demo.settings import CONFIGURATION, DATASET_ID, DATASET_NAME, FOLD, PLANS_NAME, DemoSettings
from autoseg.errors import AutoSegError
from autoseg.utils.files import load_json

Say = Callable[[str], None]
#: The overlay PNG is enlarged to at least about this many pixels across.
OVERLAY_PIXELS = 384


# ------------------------------------------------------------------------------------------------- dataset
def ensure_dataset(paths: DemoPaths, settings: DemoSettings, say: Say, progress_factory=None) -> bool:
    """Generate the raw dataset unless it is there; True when an existing one was reused."""
    dataset_json = paths.raw_dataset / "dataset.json"
    if dataset_json.is_file():
        recorded = load_json(dataset_json).get("demo_generator")
        if recorded is None:
            raise AutoSegError(
                f"{shown(paths.raw_dataset)} exists but was not made by `autoseg demo` (its dataset.json has no "
                f"'demo_generator'); the demo never touches it. Choose another --workspace."
            )
        say(f"Reusing the generated dataset {shown(paths.raw_dataset)} ({settings.dataset.num_training} training, "
            f"{settings.dataset.num_test} held-out cases).")
        return True
    spec = settings.dataset
    say(f"Generating {spec.num_training} training and {spec.num_test} held-out phantom cases (seed {spec.seed}) "
        f"in {shown(paths.raw_dataset)}")
    if progress_factory is None:
        write_demo_dataset(paths.raw_dataset, spec)
    else:
        with progress_factory("Generating") as progress:
            write_demo_dataset(paths.raw_dataset, spec, progress)
    return False


# ------------------------------------------------------------------------------------------------- planning
def preprocessing_complete(paths: DemoPaths, settings: DemoSettings) -> bool:
    """Plans, every training case preprocessed for 3d_fullres, and the ground truth copied."""
    from autoseg.plans.model import Plans
    from autoseg.preprocessing.storage import list_cases

    if not paths.plans_file.is_file():
        return False
    plans = Plans.load(paths.plans_file)
    if CONFIGURATION not in plans.configuration_names:
        return False
    training, _ = settings.dataset.case_names()
    data = paths.preprocessed_dataset / plans.configuration(CONFIGURATION).data_identifier
    gt = paths.preprocessed_dataset / "gt_segmentations"
    return (data.is_dir() and set(list_cases(data)) >= set(training)
            and all((gt / f"{case}{FILE_ENDING}").is_file() for case in training))


def ensure_preprocessed(paths: DemoPaths, settings: DemoSettings, say: Say, num_processes: int | None,
                        progress_factory=None) -> bool:
    """Fingerprint, plan (for a small memory target) and preprocess 3d_fullres; True when reused."""
    from autoseg.plan_and_preprocess import (
        fingerprint_dataset,
        plan_dataset,
        preprocess_dataset_configurations,
    )
    from autoseg.planning.summary import format_plans_summary

    if preprocessing_complete(paths, settings):
        say(f"Reusing the plans and preprocessed data in {shown(paths.preprocessed_dataset)}.")
        return True
    target = settings.gpu_memory_target_gb
    say(f"Planning and preprocessing (as `autoseg plan_and_preprocess -d {DATASET_ID} -c {CONFIGURATION} "
        f"-gpu_memory_target {target:g}`). The demo plans for a {target:g} GB memory target instead of nnU-Net's "
        f"8 GB reference so that the patch, and so every training step, is small enough for a CPU.")
    if progress_factory is None:
        fingerprint_dataset(paths.workspace, DATASET_NAME, num_processes)
    else:
        with progress_factory("Fingerprint") as progress:
            fingerprint_dataset(paths.workspace, DATASET_NAME, num_processes, progress=progress)
    plans = plan_dataset(paths.workspace, DATASET_NAME, gpu_memory_target_gb=target)
    preprocess_dataset_configurations(paths.workspace, DATASET_NAME, PLANS_NAME, [CONFIGURATION], [num_processes],
                                      progress_factory)
    say(format_plans_summary(plans))
    return False


# ------------------------------------------------------------------------------------------------- training
def training_job(paths: DemoPaths, settings: DemoSettings, device: str, progress_bar: bool):
    """The :class:`~autoseg.training.job.TrainingJob` of fold 0 with the demo's budget."""
    import torch

    from autoseg.training.job import TrainingJob
    from autoseg.training.settings import settings_for_trainer

    budget = settings.budget
    training_settings = replace(
        settings_for_trainer(settings.trainer), num_epochs=budget.epochs,
        iterations_per_epoch=budget.iterations_per_epoch, val_iterations=budget.val_iterations, seed=budget.seed,
    )
    return TrainingJob.from_workspace(
        paths.workspace, DATASET_NAME, CONFIGURATION, FOLD, settings.trainer, PLANS_NAME,
        settings=training_settings, device=torch.device(device), progress_bar=progress_bar,
    )


def ensure_trained(paths: DemoPaths, settings: DemoSettings, say: Say, device: str,
                   progress_bar: bool = True) -> bool:
    """Train fold 0 and validate it; continue an interrupted training; True when a finished one was reused."""
    from autoseg.training.run_fold import train_fold
    from autoseg.training.trainer import CHECKPOINT_FINAL, RESUME_ORDER, TrainingInterrupted

    job = training_job(paths, settings, device, progress_bar)
    fold = job.fold_folder
    summary = fold / "validation" / "summary.json"
    budget = settings.budget
    command = (f"`autoseg train {DATASET_ID} {CONFIGURATION} {FOLD} -tr {settings.trainer} --epochs {budget.epochs} "
               f"--iterations_per_epoch {budget.iterations_per_epoch} --val_iterations {budget.val_iterations} "
               f"--seed {budget.seed}`")
    if (fold / CHECKPOINT_FINAL).is_file():
        if summary.is_file():
            say(f"Reusing the trained model {shown(job.model_folder)} (fold {FOLD} is finished and validated).")
            return True
        say(f"Fold {FOLD} is trained; running its final validation (as {command[:-1]} --val`).")
        train_fold(job, validate_only=True)
        return True
    resume = any((fold / name).is_file() for name in RESUME_ORDER)
    if resume:
        say(f"Continuing the interrupted training in {shown(fold)} (as {command[:-1]} --c`).")
    else:
        say(f"Training fold {FOLD} on {device}: {budget.epochs} epochs x {budget.iterations_per_epoch} iterations "
            f"(as {command}).")
    try:
        train_fold(job, resume=resume)
    except TrainingInterrupted:
        raise TrainingInterrupted(
            f"Training stopped; its last epoch is saved in {shown(fold)}. Run `autoseg demo` again (same options) "
            f"to continue where it stopped."
        ) from None
    return False


# ------------------------------------------------------------------------------------------------- inference
def predict_test_cases(paths: DemoPaths, settings: DemoSettings, say: Say, device: str, progress_factory=None,
                       model_is_new: bool = False) -> int:
    """Predict the held-out images into ``predictions/``; returns how many were predicted now.

    Cases an earlier run predicted with the same model are kept, unless ``model_is_new`` (trained in this run).
    """
    from autoseg.inference.model_folder import open_model_folder
    from autoseg.inference.predict_folder import predict_folder
    from autoseg.inference.predictor import PredictionSettings, Predictor

    model = open_model_folder(paths.model_folder(settings.trainer), [FOLD])
    precision = "bf16" if device == "cpu" and _cpu_bf16() else "fp32"
    predictor = Predictor(model, PredictionSettings(device=device, precision=precision))
    images, output = shown(paths.test_images), shown(paths.predictions)
    say(f"Predicting the {settings.dataset.num_test} held-out cases of {images} into {output} (as `autoseg predict "
        f"-i {images} -o {output} -d {DATASET_ID} -c {CONFIGURATION} -tr {settings.trainer} -f {FOLD} "
        f"-precision {precision}{'' if model_is_new else ' --continue_prediction'}`).")
    keep = not model_is_new
    if progress_factory is None:
        done = predict_folder(predictor, paths.test_images, paths.predictions, continue_prediction=keep)
    else:
        with progress_factory("Predicting") as progress:
            def windows_done(case: int, cases: int, _: str, window: int, windows: int) -> None:
                progress(case + (window == windows), cases)

            done = predict_folder(predictor, paths.test_images, paths.predictions, continue_prediction=keep,
                                  progress=windows_done)
    if len(done) < settings.dataset.num_test:
        say(f"({settings.dataset.num_test - len(done)} case(s) were already predicted by an earlier run.)")
    return len(done)


def _cpu_bf16() -> bool:
    from autoseg.training.precision import cpu_has_native_bf16

    return cpu_has_native_bf16()


def evaluate_predictions(paths: DemoPaths, folder: Path, num_processes: int | None):
    """Dice etc. of ``folder`` against the held-out labels; also written to ``folder/summary.json``."""
    from autoseg.evaluation.folders import evaluate_with_dataset

    return evaluate_with_dataset(paths.test_labels, folder, paths.raw_dataset / "dataset.json", paths.plans_file,
                                 output_file=folder / "summary.json", num_processes=num_processes)


# ------------------------------------------------------------------------------------------------- postprocessing
def postprocess(paths: DemoPaths, settings: DemoSettings, say: Say, num_processes: int | None,
                model_is_new: bool = False) -> Path:
    """Determine postprocessing on fold 0's validation (unless an earlier run did, for the same model), apply it
    to the held-out predictions; returns the folder of the final predictions."""
    from autoseg.postprocessing.apply import apply_postprocessing_to_folder
    from autoseg.postprocessing.determine import determine_postprocessing
    from autoseg.postprocessing.files import PICKLE_NAME, load_postprocessing

    model = paths.model_folder(settings.trainer)
    validation = paths.fold_folder(settings.trainer) / "validation"
    pkl = validation / PICKLE_NAME
    if pkl.is_file() and not model_is_new:
        say(f"Reusing the postprocessing determined earlier ({shown(pkl)}).")
    else:
        say(f"Determining postprocessing on the fold {FOLD} validation cases in {shown(validation)} (nnU-Net uses "
            f"the cross-validation of all 5 folds; the demo trains one).")
        determine_postprocessing(validation, paths.preprocessed_dataset / "gt_segmentations",
                                 plans_file=model / "plans.json", dataset_json_file=model / "dataset.json",
                                 num_processes=num_processes, keep_postprocessed_files=True)
    steps = load_postprocessing(pkl)
    chosen = "; ".join(f"keep the largest component of {step.describe()}" for step in steps)
    chosen = chosen or "no step improved the validation Dice"
    say(f"Postprocessing the held-out predictions (as `autoseg apply_postprocessing -i {shown(paths.predictions)} -o "
        f"{shown(paths.postprocessed)} -pp_pkl_file {shown(pkl)}`): {chosen}.")
    apply_postprocessing_to_folder(paths.predictions, paths.postprocessed, steps,
                                   dataset_json=model / "dataset.json", plans=model / "plans.json",
                                   num_processes=num_processes)
    return paths.postprocessed


# ------------------------------------------------------------------------------------------------- overlay
def save_overlay(paths: DemoPaths, folder: Path, case: str) -> Path:
    """A PNG of one held-out case with its predicted segmentation drawn over the image."""
    from autoseg.imageio.registry import reader_writer_class_by_name
    from autoseg.plans.model import Plans
    from autoseg.visualization.overlay import save_overlay_png

    reader = reader_writer_class_by_name(Plans.load(paths.plans_file).image_reader_writer)()
    image, _ = reader.read_images([paths.test_images / f"{case}_0000{FILE_ENDING}"])
    segmentation, _ = reader.read_seg(folder / f"{case}{FILE_ENDING}")
    image, segmentation = image[0], segmentation[0].astype("uint8")
    scale = max(1, OVERLAY_PIXELS // max(image.shape[1:]))  # enlarge small slices (nearest neighbour)
    image, segmentation = (a.repeat(scale, axis=1).repeat(scale, axis=2) for a in (image, segmentation))
    return save_overlay_png(image, segmentation, paths.root / f"overlay_{case}.png")
