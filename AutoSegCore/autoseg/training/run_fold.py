"""Train one fold and validate it: what ``autoseg train DATASET CONFIG FOLD`` does for each fold.

``train_fold`` runs (or continues) the training and then the final validation; with ``validate_only``
(``--val``) it validates a finished training again, from ``checkpoint_final.pth`` or, with ``use_best``
(``--val_best``), from ``checkpoint_best.pth``. ``train_fold_distributed`` runs it in one process per GPU
(``-num_gpus``).
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import replace

import torch
import torch.distributed as dist

from autoseg.errors import AutoSegError
from autoseg.evaluation.summary import EvaluationSummary, load_summary
from autoseg.network.checkpoint import clean_state_dict, load_checkpoint
from autoseg.training.distributed import Ranks, check_distributed_request
from autoseg.training.final_validation import validate_fold
from autoseg.training.job import TrainingJob, prepare_model_folder
from autoseg.training.run_log import RunLog
from autoseg.training.trainer import CHECKPOINT_BEST, CHECKPOINT_FINAL, Trainer
from autoseg.utils.progress_stream import STREAM_NAME, ProgressStream

logger = logging.getLogger(__name__)


def train_fold(job: TrainingJob, resume: bool = False, validate_only: bool = False,
               use_best: bool = False, ranks: Ranks = Ranks()) -> EvaluationSummary | None:
    """Train (or continue, or only re-validate) ``job`` and return the validation summary (None on DDP ranks
    other than 0)."""
    if use_best and job.disable_checkpointing:
        raise AutoSegError("--val_best needs checkpoint_best.pth, which --disable_checkpointing never writes.")
    if validate_only and resume:
        raise AutoSegError("--val and --c cannot be combined: --val validates a finished training, --c continues one.")
    if resume and job.pretrained_weights is not None:
        raise AutoSegError(
            "-pretrained_weights and --c cannot be combined: a continued training keeps its own weights."
        )
    log = RunLog(job.fold_folder, enabled=ranks.is_main)
    if validate_only:
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
        weights = clean_state_dict(checkpoint["network_weights"])
        axes = checkpoint.get("inference_allowed_mirroring_axes")
        mirror_axes = tuple(int(a) for a in axes) if axes is not None else None
    else:
        trainer = Trainer(job, log, ranks)
        trainer.run(resume=resume)
        mirror_axes = trainer.augmentation.mirror_axes
        if use_best:
            weights = clean_state_dict(load_checkpoint(job.fold_folder / CHECKPOINT_BEST)["network_weights"])
        else:
            weights = {k: v.detach().to("cpu") for k, v in trainer.network.state_dict().items()}
        del trainer
    return _validate(job, weights, mirror_axes, log, use_best, ranks)


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
