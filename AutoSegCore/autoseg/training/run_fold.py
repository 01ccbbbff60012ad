"""Train one fold and validate it: what ``autoseg train DATASET CONFIG FOLD`` does for each fold.

``train_fold`` runs (or continues, or updates: ``job.update``, see :mod:`autoseg.training.update`; to a time
budget: ``job.time_budget_s``) the training and then the final validation; with ``validate_only``
(``--val``) it validates a finished training again, from ``checkpoint_final.pth`` or, with ``use_best``
(``--val_best``), from ``checkpoint_best.pth``. ``train_fold_distributed`` runs it in one process per GPU
(``-num_gpus``).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import replace

import torch
import torch.distributed as dist

from autoseg.errors import AutoSegError
from autoseg.evaluation.summary import EvaluationSummary, load_summary
from autoseg.inference.model_versions import archive_current_version, set_current_version, version_folder
from autoseg.network.checkpoint import clean_state_dict, load_checkpoint
from autoseg.preprocessing.storage import list_cases
from autoseg.training.distributed import Ranks, check_distributed_request
from autoseg.training.final_validation import validate_fold
from autoseg.training.fold_split import fold_cases
from autoseg.training.job import TrainingJob, prepare_model_folder
from autoseg.training.run_log import RunLog
from autoseg.training.time_budget import TimeBudget, validation_windows
from autoseg.training.trainer import CHECKPOINT_BEST, CHECKPOINT_FINAL, Trainer
from autoseg.training.update import UpdatePlan, check_update_compatible, plan_update, update_settings
from autoseg.utils.progress_stream import STREAM_NAME, ProgressStream

logger = logging.getLogger(__name__)
#: the fold-folder subfolder with the previous version's validation on the updated split
BEFORE_UPDATE = "validation_before_update"


def train_fold(job: TrainingJob, resume: bool = False, validate_only: bool = False,
               use_best: bool = False, ranks: Ranks = Ranks()) -> EvaluationSummary | None:
    """Train (or continue, update, or only re-validate) ``job`` and return the validation summary (None on DDP
    ranks other than 0)."""
    start = time.time()
    _check_request(job, resume, validate_only, use_best)
    log = RunLog(job.fold_folder, enabled=ranks.is_main)
    update: UpdatePlan | None = None
    epochs = 0
    if validate_only:
        weights, mirror_axes = _finished_weights(job, use_best, ranks)
    else:
        if job.update:
            update = _start_update(job, log, ranks)
            job = replace(job, settings=update_settings(job.settings, update.base_epochs, job.update_epochs,
                                                        job.update_lr))
        trainer = Trainer(job, log, ranks)
        if update is not None:
            trainer.update_marker = update.marker()
            trainer.initial_checkpoint = None if update.resume else update.base_checkpoint
            resume = update.resume
        if job.time_budget_s is not None:
            trainer.budget = _time_budget(job, trainer, start)
        trainer.run(resume=resume)
        mirror_axes = trainer.augmentation.mirror_axes
        epochs = trainer.current_epoch
        if use_best:
            weights = clean_state_dict(load_checkpoint(job.fold_folder / CHECKPOINT_BEST)["network_weights"])
        else:
            weights = {k: v.detach().to("cpu") for k, v in trainer.network.state_dict().items()}
        del trainer
    summary = _validate(job, weights, mirror_axes, log, use_best, ranks)
    if update is not None and summary is not None:
        _finish_update(job, update, summary, log)
    if job.time_budget_s is not None and not validate_only:
        log(f"Time budget {job.time_budget_s:.0f} s: training ({epochs} epochs) and validation took "
            f"{time.time() - start:.0f} s.")
    return summary


def _check_request(job: TrainingJob, resume: bool, validate_only: bool, use_best: bool) -> None:
    if use_best and job.disable_checkpointing:
        raise AutoSegError("--val_best needs checkpoint_best.pth, which --disable_checkpointing never writes.")
    if validate_only and resume:
        raise AutoSegError("--val and --c cannot be combined: --val validates a finished training, --c continues one.")
    if resume and job.pretrained_weights is not None:
        raise AutoSegError(
            "-pretrained_weights and --c cannot be combined: a continued training keeps its own weights."
        )
    if job.update and (resume or validate_only or job.pretrained_weights is not None):
        raise AutoSegError(
            "--update cannot be combined with --c, --val or -pretrained_weights: it starts from the fold's current "
            "checkpoint_final.pth, and continues an interrupted update by itself."
        )


def _finished_weights(job: TrainingJob, use_best: bool, ranks: Ranks
                      ) -> tuple[dict[str, torch.Tensor], tuple[int, ...] | None]:
    """The weights and mirror axes of a finished training (``--val``)."""
    name = CHECKPOINT_BEST if use_best else CHECKPOINT_FINAL
    path = job.fold_folder / name
    if not path.is_file():
        raise AutoSegError(
            f"--val needs a finished training, but {path} does not exist. Train the fold first"
            f"{' (or continue it with --c)' if (job.fold_folder / 'checkpoint_latest.pth').is_file() else ''}."
        )
    if ranks.is_main:
        prepare_model_folder(job)
    checkpoint = load_checkpoint(path)
    axes = checkpoint.get("inference_allowed_mirroring_axes")
    return clean_state_dict(checkpoint["network_weights"]), (tuple(int(a) for a in axes) if axes is not None else None)


def _start_update(job: TrainingJob, log: RunLog, ranks: Ranks) -> UpdatePlan:
    """Check the update is possible, archive the current version, and validate it on today's split."""
    check_update_compatible(job.model_folder, job.plans, job.configuration_name, job.dataset_json)
    update = plan_update(job.fold_folder)
    if ranks.is_main:
        archive_current_version(job.fold_folder, {"archived_for_update_to": update.to_version})
    action = "Continuing the update" if update.resume else "Updating"
    log(f"{action} of fold {job.fold}: version {update.from_version} -> {update.to_version} (version "
        f"{update.from_version} is kept in {version_folder(job.fold_folder, update.from_version)}).")
    before = job.fold_folder / BEFORE_UPDATE / "summary.json"
    if not before.is_file():
        weights, mirror_axes = _finished_weights(replace(job, update=False), False, ranks)
        log(f"Validating version {update.from_version} on the fold's current validation cases first.")
        validate_fold(job, weights, mirror_axes, ranks=ranks, output_name=BEFORE_UPDATE)
    return update


def _finish_update(job: TrainingJob, update: UpdatePlan, summary: EvaluationSummary, log: RunLog) -> None:
    after = float(summary.foreground_mean.get("Dice", float("nan")))
    previous = load_summary(job.fold_folder / BEFORE_UPDATE / "summary.json")
    before = float(previous.foreground_mean.get("Dice", float("nan")))
    set_current_version(job.fold_folder, update.to_version, {
        "updated_from": update.from_version, "epochs": job.settings.num_epochs, "initial_lr": job.settings.initial_lr,
        "validation_dice_before": before, "validation_dice_after": after,
    })
    log(f"Update to version {update.to_version} done: mean validation Dice {before:.4f} (version "
        f"{update.from_version}) -> {after:.4f} on the same {len(summary.metric_per_case)} case(s).")
    ProgressStream(job.fold_folder / STREAM_NAME).emit(
        "update", from_version=update.from_version, to_version=update.to_version, dice_before=before, dice_after=after)


def _time_budget(job: TrainingJob, trainer: Trainer, start: float) -> TimeBudget:
    """The budget of this run: its validation forwards are the fold's validation windows x mirrored copies."""
    _, val_ids = fold_cases(job.preprocessed_dataset, list_cases(job.data_folder), job.fold)
    windows = validation_windows(job.data_folder, val_ids, job.configuration.patch_size)
    copies = 2 ** len(trainer.augmentation.mirror_axes or ())
    return TimeBudget(job.time_budget_s or 0.0, start, windows * copies)


def _validate(job: TrainingJob, weights: dict[str, torch.Tensor], mirror_axes: tuple[int, ...] | None, log: RunLog,
              use_best: bool, ranks: Ranks) -> EvaluationSummary | None:
    from tqdm import tqdm

    stream = ProgressStream(job.fold_folder / STREAM_NAME, enabled=ranks.is_main)
    log(f"Final validation with {'checkpoint_best' if use_best else 'the final weights'} into "
        f"{job.fold_folder / 'validation'}.")
    bar = tqdm(total=0, unit="case", desc="Validation", disable=not (job.progress_bar and ranks.is_main),
               dynamic_ncols=True)

    def progress(done: int, total: int, identifier: str) -> None:
        bar.total = total
        bar.n = done
        bar.set_postfix_str(identifier, refresh=True)
        stream.emit("validation", case=identifier, done=done, total=total)

    try:
        summary = validate_fold(job, weights, mirror_axes, progress, ranks=ranks)
    finally:
        bar.close()
    if summary is None:
        return None
    mean = float(summary.foreground_mean.get("Dice", float("nan")))
    log(f"Mean validation Dice: {mean:.4f} (summary: {job.fold_folder / 'validation' / 'summary.json'})")
    stream.emit("end", mean_validation_dice=mean)
    return summary


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def train_fold_distributed(job: TrainingJob, world_size: int, resume: bool, validate_only: bool,
                           use_best: bool) -> EvaluationSummary:
    """Run :func:`train_fold` in ``world_size`` processes (DDP, ``-num_gpus``); returns rank 0's summary."""
    import torch.multiprocessing as mp

    check_distributed_request(world_size, job.device)
    port = _free_port()
    try:
        mp.spawn(_worker, args=(world_size, port, job, resume, validate_only, use_best), nprocs=world_size, join=True)
    except mp.ProcessRaisedException as err:  # the failing rank's error, without the spawn machinery around it
        lines = [line for line in str(err).strip().splitlines() if line.strip()]
        raise AutoSegError(f"Distributed training failed: {lines[-1] if lines else err}") from None
    return load_summary(job.fold_folder / "validation" / "summary.json")


def _worker(rank: int, world_size: int, port: int, job: TrainingJob, resume: bool, validate_only: bool,
            use_best: bool) -> None:
    if rank == 0:  # a spawned process starts without the CLI's logging set-up
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    cuda = torch.device(job.device).type == "cuda"
    dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world_size)
    try:
        if cuda:
            torch.cuda.set_device(rank)
            job = replace(job, device=torch.device("cuda", rank))
        else:
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // world_size))
        train_fold(job, resume, validate_only, use_best, ranks=Ranks(rank, world_size))
    finally:
        dist.destroy_process_group()
