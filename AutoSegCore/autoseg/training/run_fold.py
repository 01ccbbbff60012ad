"""Train one fold and validate it: what ``autoseg train DATASET CONFIG FOLD`` does for each fold.

``train_fold`` runs (or continues) the training and then the final validation; with ``validate_only``
(``--val``) it validates a finished training again, from ``checkpoint_final.pth`` or, with ``use_best``
(``--val_best``), from ``checkpoint_best.pth``.
"""

from __future__ import annotations

import logging

import torch

from autoseg.errors import AutoSegError
from autoseg.evaluation.summary import EvaluationSummary
from autoseg.inference.checkpoint_loading import clean_state_dict
from autoseg.training.checkpoint import load_training_checkpoint
from autoseg.training.distributed import Ranks
from autoseg.training.final_validation import validate_fold
from autoseg.training.job import TrainingJob, prepare_model_folder
from autoseg.training.progress_stream import STREAM_NAME, ProgressStream
from autoseg.training.run_log import RunLog
from autoseg.training.trainer import CHECKPOINT_BEST, CHECKPOINT_FINAL, Trainer

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
        raise AutoSegError("-pretrained_weights and --c cannot be combined: a continued training keeps its own weights.")
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
        checkpoint = load_training_checkpoint(path)
        weights = clean_state_dict(checkpoint["network_weights"])
        axes = checkpoint.get("inference_allowed_mirroring_axes")
        mirror_axes = tuple(int(a) for a in axes) if axes is not None else None
    else:
        trainer = Trainer(job, log, ranks)
        trainer.run(resume=resume)
        mirror_axes = trainer.augmentation.mirror_axes
        if use_best:
            weights = clean_state_dict(load_training_checkpoint(job.fold_folder / CHECKPOINT_BEST)["network_weights"])
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
