"""The training loop: nnU-Net v2's default trainer as a small stateful class over the pure pieces.

One :class:`Trainer` trains one fold of one configuration (``TrainingJob``): poly-LR SGD over
``iterations_per_epoch`` augmented batches, ``val_iterations`` validation batches for the pseudo Dice and
its moving average, checkpoints (``checkpoint_latest.pth`` after every epoch, ``checkpoint_best.pth`` when
the moving average improves, ``checkpoint_final.pth`` at the end; all atomic), ``progress.png``, the text
log and the JSON-lines progress stream. ``run()`` resumes from a checkpoint with ``resume=True``.
The final validation of whole cases is :func:`autoseg.training.final_validation.validate_fold`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from autoseg.errors import AutoSegError
from autoseg.network import checkpoint as checkpoints
from autoseg.network.build import build_network
from autoseg.preprocessing.storage import list_cases
from autoseg.training.augmentation import build_training_transforms, build_validation_transforms
from autoseg.training.augmentation_params import configure_spatial_augmentation
from autoseg.training.background_loader import BackgroundLoader, default_num_workers
from autoseg.training.data_loader import TrainingBatchLoader
from autoseg.training.debug_info import write_debug_json
from autoseg.training.distributed import Ranks, all_reduce_sum, gather_with_grad, split_batch
from autoseg.training.fold_split import fold_cases
from autoseg.training.job import TrainingJob, prepare_model_folder
from autoseg.training.losses import build_loss, deep_supervision_scales
from autoseg.training.patch_metrics import patch_confusion_counts
from autoseg.training.patch_sampling import SamplingLabels
from autoseg.training.precision import choose_precision
from autoseg.training.preprocessed_dataset import PreprocessedDataset
from autoseg.training.pretrained import load_pretrained_weights
from autoseg.training.progress_plot import plot_progress
from autoseg.training.run_control import finish_requested
from autoseg.training.run_log import RunLog
from autoseg.training.schedule import build_optimizer, poly_lr, set_learning_rate
from autoseg.training.settings import mirror_axes_for
from autoseg.training.time_budget import TimeBudget
from autoseg.training.training_log import TrainingLog, pseudo_dice
from autoseg.training.update import UPDATE_KEY
from autoseg.utils.parallel import available_cpus
from autoseg.utils.progress_stream import STREAM_NAME, ProgressStream, eta_seconds

logger = logging.getLogger(__name__)

CHECKPOINT_FINAL, CHECKPOINT_LATEST, CHECKPOINT_BEST = (
    "checkpoint_final.pth",
    "checkpoint_latest.pth",
    "checkpoint_best.pth",
)
#: ``--c`` continues from the first of these that exists (nnU-Net's order).
RESUME_ORDER = (CHECKPOINT_FINAL, CHECKPOINT_LATEST, CHECKPOINT_BEST)
#: The progress stream gets at most one iteration event per this many seconds.
ITERATION_EVENT_INTERVAL = 1.0


class TrainingInterrupted(AutoSegError):
    """The run was stopped (Ctrl+C / cancel); the last checkpoint is intact and ``--c`` continues."""


class Trainer:
    """Trains ``job`` (one configuration, one fold). Call :meth:`run`."""

    def __init__(self, job: TrainingJob, log: RunLog | None = None, ranks: Ranks = Ranks()) -> None:
        self.job = job
        self.ranks = ranks
        self.settings = job.settings
        self.configuration = job.configuration
        self.device = torch.device(job.device)
        self.precision = choose_precision(self.device, job.precision)
        self.log = log or RunLog(job.fold_folder, enabled=ranks.is_main)
        self.stream = ProgressStream(job.fold_folder / STREAM_NAME, enabled=ranks.is_main)
        self.training_log = TrainingLog()
        self.best_ema: float | None = None
        self.current_epoch = 0
        #: sizes the epochs to a wall-time budget (``--time_budget``), set by the caller before :meth:`run`
        self.budget: TimeBudget | None = None
        #: an update's start weights and the marker its checkpoints carry (see autoseg.training.update)
        self.initial_checkpoint: Path | None = None
        self.update_marker: dict[str, Any] | None = None
        self.is_2d = len(self.configuration.patch_size) == 2
        mirror = mirror_axes_for(self.settings, len(self.configuration.patch_size))
        self.augmentation = configure_spatial_augmentation(self.configuration.patch_size, mirror)
        self._seed_everything()
        strides = self.configuration.architecture.arch_kwargs["strides"]
        self.ds_scales = deep_supervision_scales(strides) if self.settings.deep_supervision else None
        self.network = self.precision.prepare(build_network(
            self.configuration.architecture, job.num_input_channels, job.num_output_channels,
            deep_supervision=self.settings.deep_supervision).to(self.device))
        self.optimizer = build_optimizer(self.network.parameters(), self.settings.initial_lr,
                                         self.settings.weight_decay, self.settings.momentum)
        self.grad_scaler = torch.amp.GradScaler("cuda") if self.precision.needs_grad_scaler else None
        dataset_json = job.dataset_json
        self._forward = self._choose_forward()
        compiled = self._compiled = self._forward is not self.network
        self._forward = self._distributed(self._forward)
        gather = gather_with_grad if ranks.distributed and self.configuration.batch_dice else None
        self.loss = build_loss(dataset_json.has_regions, self.configuration.batch_dice, dataset_json.ignore_label,
                               len(self.ds_scales) if self.ds_scales else None, gather=gather,
                               ddp_without_compile=ranks.distributed and not compiled)

    # ------------------------------------------------------------------ set-up
    def _seed_everything(self) -> None:
        seed = self.settings.seed
        if seed is None:
            return
        seed += 7919 * self.ranks.rank
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)

    def _choose_forward(self) -> torch.nn.Module:
        """The module the training step calls: ``torch.compile``d when enabled (checked on first use)."""
        wanted = self.job.compile
        if wanted is None:
            # SIM112 wants environment variables in upper case: this is nnU-Net's name
            flag = os.environ.get("nnUNet_compile", "true").lower() in ("1", "true", "t", "yes")  # noqa: SIM112
            wanted = flag and self.device.type == "cuda" and sys.platform != "win32"
        if not wanted:
            return self.network
        try:
            return cast(torch.nn.Module, torch.compile(self.network))  # an OptimizedModule
        except Exception as err:
            self.log(f"torch.compile is not available ({type(err).__name__}: {err}); training eagerly.")
            return self.network

    def _distributed(self, module: torch.nn.Module) -> torch.nn.Module:
        """``module`` wrapped for DDP when training on several ranks."""
        if not self.ranks.distributed:
            return module
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=device_ids)

    def _loaders(self) -> tuple[BackgroundLoader, BackgroundLoader]:
        job, config = self.job, self.configuration
        identifiers = list_cases(job.data_folder)
        train_ids, val_ids = fold_cases(job.preprocessed_dataset, identifiers, job.fold)
        self.log(f"Fold {job.fold}: {len(train_ids)} training and {len(val_ids)} validation cases.")
        labels = SamplingLabels.from_dataset_json(job.dataset_json)
        dataset_json = job.dataset_json
        regions = dataset_json.foreground_regions if dataset_json.has_regions else None
        cascade = bool(config.previous_stage)
        train_transforms = build_training_transforms(
            config.patch_size, self.augmentation, self.ds_scales, config.use_mask_for_norm, cascade,
            dataset_json.foreground_labels, regions, dataset_json.ignore_label,
        )
        val_transforms = build_validation_transforms(self.ds_scales, cascade, dataset_json.foreground_labels, regions,
                                                     dataset_json.ignore_label)
        seed = self.settings.seed
        seed = None if seed is None else seed + 1000 * self.current_epoch + 7919 * self.ranks.rank
        batch_size, oversample = split_batch(config.batch_size, self.settings.oversample_foreground_percent, self.ranks)
        train = TrainingBatchLoader(
            PreprocessedDataset(job.data_folder, train_ids, job.previous_stage_folder), batch_size,
            config.patch_size, self.augmentation.initial_patch_size, oversample,
            labels, train_transforms, seed=seed,
        )
        val = TrainingBatchLoader(
            PreprocessedDataset(job.data_folder, val_ids, job.previous_stage_folder), batch_size,
            config.patch_size, None, oversample, labels, val_transforms,
            seed=None if seed is None else seed + 1,
        )
        workers = job.num_workers if job.num_workers is not None else default_num_workers(self.device.type)
        self.num_workers = workers
        if self.ranks.is_main:
            write_debug_json(
                job.fold_folder / "debug.json",
                trainer_name=job.trainer_name,
                plans=job.plans.plans_name,
                configuration=job.configuration_name,
                fold=job.fold,
                settings=self.settings,
                device=self.device,
                precision=self.precision.name,
                precision_scheme=self.precision.description,
                compile=self._compiled,
                num_workers=workers,
                batch_size=config.batch_size,
                patch_size=config.patch_size,
                augmentation=self.augmentation,
                deep_supervision_scales=self.ds_scales,
                training_cases=train_ids,
                validation_cases=val_ids,
                preprocessed_data=job.data_folder,
                previous_stage_folder=job.previous_stage_folder,
                world_size=self.ranks.world_size,
                batch_size_per_rank=batch_size,
            )
        pin = self.device.type == "cuda"
        return (BackgroundLoader(train, workers, pin_memory=pin),
                BackgroundLoader(val, max(1, workers // 2) if workers else 0, pin_memory=pin))

    # ------------------------------------------------------------------ checkpoints
    def checkpoint(self) -> dict[str, Any]:
        checkpoint = checkpoints.build_checkpoint(
            self.network, self.optimizer, self.grad_scaler, self.training_log, self.best_ema, self.current_epoch,
            checkpoints.init_args(self.job.plans, self.job.configuration_name, self.job.fold, self.job.dataset_json,
                                  self.device),
            self.job.trainer_name, self.augmentation.mirror_axes,
        )
        if self.update_marker is not None:
            checkpoint[UPDATE_KEY] = {**self.update_marker, "num_epochs": self.settings.num_epochs}
        return checkpoint

    def save(self, name: str) -> None:
        if self.job.disable_checkpointing or not self.ranks.is_main:
            return
        checkpoints.save_checkpoint(self.checkpoint(), self.job.fold_folder / name)

    def load(self, path: Path) -> None:
        """Restore weights, optimizer, grad scaler, log, best EMA and the next epoch from a checkpoint."""
        raw = checkpoints.load_checkpoint(path)
        try:
            self.network.load_state_dict(checkpoints.clean_state_dict(raw["network_weights"]))
            self.optimizer.load_state_dict(raw["optimizer_state"])
        except (KeyError, RuntimeError, ValueError) as err:
            raise AutoSegError(
                f"{path} does not fit this configuration's network or optimizer ({str(err).splitlines()[0]}). "
                f"Was it trained with other plans? Start a new training without --c."
            ) from err
        if self.grad_scaler is not None and raw.get("grad_scaler_state"):
            self.grad_scaler.load_state_dict(raw["grad_scaler_state"])
        self.training_log = TrainingLog.from_checkpoint(raw.get("logging") or {})
        self.best_ema = raw.get("_best_ema")
        self.current_epoch = int(raw["current_epoch"])
        marker = raw.get(UPDATE_KEY)
        if isinstance(marker, dict) and isinstance(marker.get("num_epochs"), int):  # a budget-sized update
            self.settings = replace(self.settings, num_epochs=max(marker["num_epochs"], self.current_epoch))
        # a log cut by a killed epoch must not be longer than the epochs the weights have seen
        for name in vars(self.training_log):
            setattr(self.training_log, name, getattr(self.training_log, name)[: self.current_epoch])

    def load_weights(self, path: Path) -> None:
        """Start from the network weights of ``path`` (all of them: an update of the same model)."""
        raw = checkpoints.load_checkpoint(path)
        try:
            self.network.load_state_dict(checkpoints.clean_state_dict(raw["network_weights"]))
        except (KeyError, RuntimeError) as err:
            raise AutoSegError(
                f"{path} does not fit this configuration's network ({str(err).splitlines()[0]}): the plans changed "
                f"since it was trained, so it cannot be updated."
            ) from err

    def resume_checkpoint(self) -> Path:
        """The checkpoint ``--c`` continues from; a clear error when there is none."""
        for name in RESUME_ORDER:
            path = self.job.fold_folder / name
            if path.is_file():
                return path
        raise AutoSegError(
            f"--c: there is no checkpoint to continue from in {self.job.fold_folder} (looked for "
            f"{', '.join(RESUME_ORDER)}). Start the training without --c."
        )

    # ------------------------------------------------------------------ steps
    def train_step(self, batch: dict[str, Any]) -> float:
        data, target = self._to_device(batch)
        self.optimizer.zero_grad(set_to_none=True)
        with self.precision.autocast():
            output = self._call_network(data)
            loss = self.loss(output, target)
        if self.grad_scaler is not None:
            self.grad_scaler.scale(loss).backward()
            self.grad_scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), self.settings.grad_clip_norm)
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), self.settings.grad_clip_norm)
            self.optimizer.step()
        return float(loss.detach())

    @torch.no_grad()
    def validation_step(self, batch: dict[str, Any]) -> tuple[float, torch.Tensor, torch.Tensor, torch.Tensor]:
        data, target = self._to_device(batch)
        with self.precision.autocast():
            output = self._call_network(data)
            loss = self.loss(output, target)
        highest = output[0] if isinstance(output, (list, tuple)) else output
        reference = target[0] if isinstance(target, (list, tuple)) else target
        tp, fp, fn = patch_confusion_counts(highest, reference, self.job.dataset_json.has_regions,
                                            self.job.dataset_json.ignore_label)
        return float(loss), tp, fp, fn

    def _call_network(self, data: torch.Tensor) -> Any:
        if not self._compiled:
            return self._forward(data)
        try:
            return self._forward(data)
        except (KeyboardInterrupt, torch.OutOfMemoryError):
            raise
        except Exception as err:
            self.log(f"torch.compile failed ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
                     f"continuing without compilation.")
            self._compiled = False
            self._forward = self._distributed(self.network)
            return self._forward(data)

    def _to_device(self, batch: dict[str, Any]) -> tuple[torch.Tensor, Any]:
        non_blocking = self.device.type == "cuda"
        data = batch["data"].to(self.device, non_blocking=non_blocking)
        target = batch["target"]
        if isinstance(target, (list, tuple)):
            target = [t.to(self.device, non_blocking=non_blocking) for t in target]
        else:
            target = target.to(self.device, non_blocking=non_blocking)
        return data, target

    # ------------------------------------------------------------------ the run
    def run(self, resume: bool = False) -> None:
        """Train from scratch (or from ``-pretrained_weights``), or continue with ``resume``."""
        job = self.job
        if self.ranks.is_main:
            prepare_model_folder(job)
        if resume:
            path = self.resume_checkpoint()
            self.load(path)
            self.log(f"Continuing from {path.name}: epoch {self.current_epoch} of {self.settings.num_epochs}.")
        elif self.initial_checkpoint is not None:
            self.load_weights(self.initial_checkpoint)
            self.log(f"Updating the model of {self.initial_checkpoint}: {self.settings.num_epochs} epochs from "
                     f"learning rate {self.settings.initial_lr}.")
        else:
            existing = [n for n in RESUME_ORDER if (job.fold_folder / n).is_file()]
            if existing:
                raise AutoSegError(
                    f"{job.fold_folder} already holds a training ({', '.join(existing)}). Continue it with --c, "
                    f"or move that folder away to start over (nothing is overwritten)."
                )
            if job.pretrained_weights is not None:
                load_pretrained_weights(self.network, job.pretrained_weights)
                self.log(f"Initialised from pretrained weights {job.pretrained_weights} (segmentation heads excluded).")
        if self.device.type == "cpu":
            torch.set_num_threads(max(1, available_cpus() // self.ranks.world_size))
        self._log_start()
        if self.current_epoch >= self.settings.num_epochs:
            return
        train_batches, val_batches = self._loaders()
        try:
            with train_batches, val_batches:
                while self.current_epoch < self.settings.num_epochs:
                    self._epoch(iter(train_batches), iter(val_batches))
        except KeyboardInterrupt:
            self.stream.emit("error", message="interrupted", epoch=self.current_epoch)
            raise TrainingInterrupted(
                f"Training stopped at epoch {self.current_epoch}. Continue with the same command and --c "
                f"(from {CHECKPOINT_LATEST})."
            ) from None
        except Exception as err:
            self.stream.emit("error", message=f"{type(err).__name__}: {err}", epoch=self.current_epoch)
            raise
        self.save(CHECKPOINT_FINAL)
        latest = job.fold_folder / CHECKPOINT_LATEST
        if latest.is_file() and not job.disable_checkpointing and self.ranks.is_main:
            latest.unlink()
        self.log("Training done.")

    def _log_start(self) -> None:
        job, config, s = self.job, self.configuration, self.settings
        self.log(f"Training {job.trainer_name} {job.plans.plans_name} {job.configuration_name} fold {job.fold} on "
                 f"{self.device} ({self.precision.name}); patch {list(config.patch_size)}, batch {config.batch_size}, "
                 f"{s.num_epochs} epochs x {s.iterations_per_epoch} iterations. Precision {self.precision.name}: "
                 f"{self.precision.description}.")
        self.stream.emit("start", epoch=self.current_epoch, num_epochs=s.num_epochs,
                         iterations_per_epoch=s.iterations_per_epoch, val_iterations=s.val_iterations,
                         fold=str(job.fold), configuration=job.configuration_name, trainer=job.trainer_name,
                         plans=job.plans.plans_name, device=str(self.device), precision=self.precision.name,
                         time_budget_s=self.budget.seconds if self.budget else None,
                         update=self.update_marker)

    def _epoch(self, train_batches, val_batches) -> None:
        s, epoch = self.settings, self.current_epoch
        self.training_log.epoch_start_timestamps.append(time.time())
        lr = poly_lr(s.initial_lr, epoch, s.num_epochs)
        set_learning_rate(self.optimizer, lr)
        self.training_log.lrs.append(lr)
        self.network.train()
        losses: list[float] = []
        last_event = 0.0
        train_start = time.perf_counter()
        step_seconds: list[float] = []
        with _iteration_bar(s.iterations_per_epoch, f"epoch {epoch + 1}/{s.num_epochs}", self.job.progress_bar) as bar:
            for iteration in range(s.iterations_per_epoch):
                step_start = time.perf_counter()
                losses.append(self.train_step(next(train_batches)))
                step_seconds.append(time.perf_counter() - step_start)
                bar(iteration + 1, losses[-1])
                now = time.time()
                if now - last_event >= ITERATION_EVENT_INTERVAL or iteration + 1 == s.iterations_per_epoch:
                    self.stream.emit("iteration", epoch=epoch, iteration=iteration + 1,
                                     iterations_per_epoch=s.iterations_per_epoch, loss=losses[-1])
                    last_event = now
        train_seconds = time.perf_counter() - train_start
        train_loss = self._mean_over_ranks(float(np.mean(losses)))
        self.training_log.train_losses.append(train_loss)

        self.network.eval()
        val_start = time.perf_counter()
        val_losses: list[float] = []
        tp: np.ndarray | int = 0  # confusion counts per class, summed over the validation patches
        fp: np.ndarray | int = 0
        fn: np.ndarray | int = 0
        for _ in range(s.val_iterations):
            loss, batch_tp, batch_fp, batch_fn = self.validation_step(next(val_batches))
            val_losses.append(loss)
            tp, fp, fn = tp + batch_tp.numpy(), fp + batch_fp.numpy(), fn + batch_fn.numpy()
        if self.ranks.distributed and s.val_iterations:
            tp, fp, fn = (all_reduce_sum(torch.as_tensor(a, dtype=torch.float64)).numpy() for a in (tp, fp, fn))
        val_loss = self._mean_over_ranks(float(np.mean(val_losses))) if val_losses else float("nan")
        self.training_log.val_losses.append(val_loss)
        dice = pseudo_dice(tp, fp, fn) if s.val_iterations else [float("nan")] * self._num_evaluated_classes()
        ema = self.training_log.log_validation(dice)
        self.training_log.epoch_end_timestamps.append(time.time())
        if self.budget is not None:
            batch = self.configuration.batch_size
            self.budget.record_epoch(time.time(), step_seconds, time.perf_counter() - val_start,
                                     s.val_iterations * batch, train_seconds, s.iterations_per_epoch * batch)
        self._resize_schedule()
        self._end_epoch(train_loss, val_loss, dice, ema, lr)

    def _resize_schedule(self) -> None:
        """After an epoch: end after it when asked to (finish-now file), or re-size the epochs to the budget.
        Rank 0 decides for all ranks (they must run the same number of epochs)."""
        epochs_done = self.current_epoch + 1
        total = self.settings.num_epochs
        request = finish_requested(self.job.fold_folder) if self.ranks.is_main else None
        if request is not None:
            self.log(f"Finish requested ({request}): ending after epoch {self.current_epoch}, then the final "
                     f"validation.")
            request.unlink(missing_ok=True)
            total = epochs_done
        elif self.budget is not None and self.ranks.is_main:
            total = max(epochs_done, self.budget.total_epochs(epochs_done, time.time()))
            if total != self.settings.num_epochs and (epochs_done == 1 or abs(total - self.settings.num_epochs) > 1):
                self.log(f"Time budget: {total} epochs in all (epoch {self.budget.epoch_estimate():.1f} s, final "
                         f"validation ~{self.budget.validation_estimate():.0f} s).")
        if self.ranks.distributed:
            total = int(all_reduce_sum(torch.tensor([total if self.ranks.is_main else 0], dtype=torch.int64))[0])
        if total != self.settings.num_epochs:
            self.settings = replace(self.settings, num_epochs=total)

    def _mean_over_ranks(self, value: float) -> float:
        if not self.ranks.distributed:
            return value
        return float(all_reduce_sum(torch.tensor([value], dtype=torch.float64))[0]) / self.ranks.world_size

    def _num_evaluated_classes(self) -> int:
        dataset_json = self.job.dataset_json
        return len(dataset_json.foreground_regions) if dataset_json.has_regions else len(dataset_json.foreground_labels)

    def _end_epoch(self, train_loss: float, val_loss: float, dice: list[float], ema: float, lr: float) -> None:
        log, epoch, s = self.training_log, self.current_epoch, self.settings
        duration = log.epoch_end_timestamps[-1] - log.epoch_start_timestamps[-1]
        self.log(f"Epoch {epoch}: train_loss {train_loss:.4f}, val_loss {val_loss:.4f}, pseudo Dice "
                 f"{[round(d, 4) for d in dice]}, lr {lr:.5f}, {duration:.1f} s")
        self.current_epoch = epoch + 1
        improved = not math.isnan(ema) and (self.best_ema is None or ema > self.best_ema)
        if improved:
            self.best_ema = ema
            self.log(f"New best EMA pseudo Dice: {ema:.4f}")
            self.save(CHECKPOINT_BEST)
        if self.current_epoch < s.num_epochs and self.current_epoch % s.save_every == 0:
            self.save(CHECKPOINT_LATEST)
        plot_progress(log, self.job.fold_folder / "progress.png")
        durations = [b - a for a, b in zip(log.epoch_start_timestamps, log.epoch_end_timestamps)]
        self.stream.emit("epoch", epoch=epoch, num_epochs=s.num_epochs, train_loss=train_loss, val_loss=val_loss,
                         pseudo_dice=dice, mean_fg_dice=log.mean_fg_dice[-1], ema_fg_dice=ema, lr=lr,
                         epoch_time=duration, best_ema=self.best_ema,
                         eta_seconds=eta_seconds(durations, self.current_epoch, s.num_epochs))


@contextlib.contextmanager
def _iteration_bar(total: int, description: str, enabled: bool):
    """A terminal bar over one epoch's iterations (loss in the postfix); yields ``update(done, loss)``."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=description, disable=not enabled, unit="it", dynamic_ncols=True, leave=False)

    def update(done: int, loss: float) -> None:
        bar.update(done - bar.n)
        bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    try:
        yield update
    finally:
        bar.close()
