"""``autoseg train DATASET CONFIG FOLD [FOLD ...]`` (nnUNetv2_train, several folds in turn).

nnU-Net's flags (``-tr``, ``-p``, ``-pretrained_weights``, ``-num_gpus``, ``--npz``, ``--c``, ``--val``,
``--val_best``, ``--disable_checkpointing``, ``-device``) plus plain training options (``--epochs``,
``--iterations_per_epoch``, ``--val_iterations``, ``--seed``) instead of trainer subclasses; nnU-Net
trainer names such as ``nnUNetTrainer_100epochs`` are read as those options. AutoSeg's own: ``--update``
(fine-tune a trained fold with new cases, keeping numbered versions) and ``--time_budget``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from autoseg.cli.common import add_dataset, add_device, add_engine, add_flag, workspace_from_environment

if TYPE_CHECKING:
    from autoseg.evaluation.summary import EvaluationSummary

logger = logging.getLogger(__name__)
#: autoseg.training.precision.PRECISIONS, repeated so that `autoseg -h` does not import torch (a test compares them)
PRECISIONS = ("auto", "fp32", "bf16-backward", "bf16", "fp16")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a configuration's folds (nnUNetv2_train)",
        description="Train one or more folds of a configuration on a preprocessed dataset, then predict each fold's "
        "validation cases into fold_K/validation with a summary.json. Results go to nnUNet_results/DatasetXXX/"
        "<trainer>__<plans>__<config>/fold_K, in nnU-Net's format (nnUNetv2_predict runs them). Progress: a bar in "
        "the terminal, training_log_*.txt, progress.png and progress.jsonl in the fold folder.",
    )
    add_dataset(parser)
    parser.add_argument("configuration", metavar="CONFIG", help="2d, 3d_fullres, 3d_lowres or 3d_cascade_fullres")
    parser.add_argument("folds", nargs="+", metavar="FOLD", help="fold(s): 0-4 (or more with custom splits), or all")
    add_flag(parser, "-tr", dest="trainer", default="nnUNetTrainer", metavar="TRAINER",
             help="trainer name (default nnUNetTrainer); nnUNetTrainer_<N>epochs, nnUNetTrainerNoMirroring, "
             "nnUNetTrainer_onlyMirror01 and nnUNetTrainerNoDeepSupervision are understood as settings")
    add_flag(parser, "-p", dest="plans", default="nnUNetPlans", metavar="PLANS",
             help="plans identifier (default nnUNetPlans)")
    add_flag(parser, "-pretrained_weights", default=None, metavar="CHECKPOINT",
             help="start from these weights (a .pth of the same network topology; segmentation heads are not copied)")
    parser.add_argument("--npz", action="store_true", help="also save validation probabilities (.npz) for ensembling")
    parser.add_argument("--c", "--continue", action="store_true", dest="resume",
                        help="continue from the last checkpoint (final, latest, then best)")
    parser.add_argument("--val", action="store_true", dest="validate_only",
                        help="only run the final validation of a finished training")
    parser.add_argument("--val_best", action="store_true",
                        help="validate with checkpoint_best.pth instead of the final weights")
    parser.add_argument("--disable_checkpointing", action="store_true", help="write no checkpoint files (testing)")
    _add_budget_flags(parser)
    _add_hardware_flags(parser)
    parser.add_argument("--disable_progress_bar", "--no_pbar", action="store_true", dest="no_pbar",
                        help="hide the progress bar")
    parser.add_argument("--verbose", action="store_true", help="print details")
    parser.set_defaults(func=run)


def _add_budget_flags(parser: argparse.ArgumentParser) -> None:
    """How long and how reproducibly to train (AutoSeg's plain options for nnU-Net's trainer subclasses)."""
    add_flag(parser, "--epochs", type=int, default=None, metavar="N",
             help="number of epochs (default 1000, or from -tr)")
    add_flag(parser, "--iterations_per_epoch", type=int, default=None, metavar="N",
             help="training iterations per epoch (default 250)")
    add_flag(parser, "--val_iterations", type=int, default=None, metavar="N",
             help="validation iterations per epoch (default 50)")
    add_flag(parser, "--seed", type=int, default=None, metavar="N", help="random seed for reproducible runs")
    add_flag(parser, "--time_budget", default=None, metavar="DURATION",
             help="end each fold's training and final validation within this wall time, e.g. 45m, 1h30m, 600s: "
                  "the number of epochs is sized from the measured epoch time, with a complete learning-rate schedule "
                  "(overrides --epochs). `touch fold_K/finish_now` ends a running training after its current epoch, "
                  "validated")
    parser.add_argument("--update", action="store_true",
                        help="update the fold's trained model with the cases added since (fine-tuning from its "
                             "checkpoint_final.pth: a quarter of its epochs unless --epochs, from --update_lr); the "
                             "previous model is kept as fold_K/versions/vN (predict it with -model_version N)")
    add_flag(parser, "--update_lr", type=float, default=None, metavar="LR",
             help="initial learning rate of an --update (default 0.003)")


def _add_hardware_flags(parser: argparse.ArgumentParser) -> None:
    """Where and how the computation runs."""
    add_device(parser)
    add_engine(parser, "of the final validation")
    add_flag(parser, "-num_gpus", type=int, default=1, metavar="N",
             help="GPUs for distributed data-parallel training (default 1)")
    add_flag(parser, "-precision", choices=PRECISIONS, default="auto",
             help="auto (fp16 AMP on CUDA as nnU-Net; on the CPU bf16-backward where it has native bfloat16, else "
                  "fp32), fp32, bf16-backward (fp32 forward, bfloat16 convolution gradients: same Dice as fp32, "
                  "faster), bf16 (bfloat16 autocast: fastest, lower Dice) or fp16 (CUDA)")
    add_flag(parser, "-num_workers", type=int, default=None, metavar="N",
             help="background data-augmentation workers (default: from the device and cores; env nnUNet_n_proc_DA)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="torch.compile the network (default: on CUDA, unless nnUNet_compile=f)")


def _settings(args: argparse.Namespace):
    from autoseg.training.settings import settings_for_trainer

    return settings_for_trainer(args.trainer).with_options(args.epochs, args.iterations_per_epoch,
                                                            args.val_iterations, args.seed)


def _update_and_budget(args: argparse.Namespace) -> dict:
    """The TrainingJob fields of --update, --update_lr and --time_budget."""
    from autoseg.errors import AutoSegError
    from autoseg.training.run_control import parse_duration

    if args.update_lr is not None and not args.update:
        raise AutoSegError("--update_lr only applies with --update.")
    if args.update_lr is not None and not args.update_lr > 0:
        raise AutoSegError(f"--update_lr must be positive, got {args.update_lr}.")
    budget = parse_duration(args.time_budget) if args.time_budget else None
    if budget is not None and args.epochs is not None:
        logger.warning("--time_budget sizes the epochs; --epochs %d is ignored.", args.epochs)
    return {"update": args.update, "update_epochs": args.epochs if args.update else None,
            "update_lr": args.update_lr, "time_budget_s": budget}


def run(args: argparse.Namespace) -> int:

    from autoseg.inference.model_folder import parse_fold
    from autoseg.training.job import TrainingJob
    from autoseg.training.run_fold import train_fold
    from autoseg.utils.devices import resolve_device

    folds = [parse_fold(f) for f in args.folds]
    settings = _settings(args)
    device = resolve_device(args.device)
    if args.num_gpus > 1:
        from autoseg.training.distributed import check_distributed_request

        check_distributed_request(args.num_gpus, device)
    workspace = workspace_from_environment()
    for fold in folds:
        job = TrainingJob.from_workspace(
            workspace,
            args.dataset,
            args.configuration,
            fold,
            args.trainer,
            args.plans,
            settings=settings,
            device=device,
            precision=args.precision,
            num_workers=args.num_workers,
            compile=args.compile,
            pretrained_weights=Path(args.pretrained_weights) if args.pretrained_weights else None,
            save_probabilities=args.npz,
            validation_engine=args.engine,
            disable_checkpointing=args.disable_checkpointing,
            progress_bar=not args.no_pbar,
            **_update_and_budget(args),
        )
        summary: EvaluationSummary | None
        if args.num_gpus > 1:
            from autoseg.training.run_fold import train_fold_distributed

            summary = train_fold_distributed(job, args.num_gpus, args.resume, args.validate_only, args.val_best)
        else:
            summary = train_fold(job, args.resume, args.validate_only, args.val_best)
        assert summary is not None  # a single process is rank 0, which gets the summary
        dice = summary.foreground_mean.get("Dice", float("nan"))
        print(f"Fold {fold}: mean validation Dice {dice:.4f}  ({job.fold_folder})")
    if len(folds) > 1:
        logger.info("All %d folds done.", len(folds))
    return 0
