"""``autoseg demo``: the whole pipeline on a generated dataset, in one command (``make demo``).

Generates MR-like abdomen phantoms (two organs), plans and preprocesses them, trains 3d_fullres fold 0 with
a short fixed budget (about 10 minutes on 2 CPU cores), predicts held-out cases, evaluates and postprocesses
them, saves an overlay PNG and prints the Dice table; the last line is ``Demo foreground mean Dice: 0.xxx``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from autoseg.cli.common import add_device, add_flag, add_num_processes

DEFAULT_WORKSPACE = ".autoseg_demo"
QUICK_WORKSPACE = ".autoseg_demo/quick"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo", help="run the whole pipeline on a generated dataset (about 10 minutes on a CPU)",
        description="Generate a synthetic 3D dataset (MR-like abdomen phantoms with a liver and a kidney; "
        "anisotropic, oblique volumes), plan and preprocess it, train 3d_fullres fold 0 with a short fixed budget, "
        "predict the held-out cases, evaluate and postprocess them, save an overlay PNG and print the Dice per label. "
        "Running it again in the same folder reuses what is finished (an interrupted training continues); --fresh "
        "starts over.",
    )
    p.add_argument("--workspace", type=Path, default=None,
                   help="folder for the demo's nnUNet_raw/preprocessed/results and predictions "
                   f"(default ./{DEFAULT_WORKSPACE}, with --quick ./{QUICK_WORKSPACE})")
    p.add_argument("--fresh", action="store_true",
                   help="delete the demo's earlier files in the workspace (nothing else) and start over")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the generated dataset (default 0: the reference demo)")
    p.add_argument("--quick", action="store_true",
                   help="a one-minute smoke run of every step (tiny volumes, 2 training iterations; the Dice "
                   "means nothing)")
    add_flag(p, "--epochs", type=int, default=None, metavar="N", help="override the demo's number of epochs")
    add_flag(p, "--iterations_per_epoch", type=int, default=None, metavar="N",
             help="override the demo's training iterations per epoch")
    add_device(p)
    add_num_processes(p, "for preprocessing and evaluation")
    p.add_argument("--disable_progress_bar", "--no_pbar", action="store_true", dest="no_pbar",
                   help="hide progress bars")
    p.add_argument("--verbose", action="store_true", help="print details")
    p.set_defaults(func=run)


def _settings(args: argparse.Namespace):
    from dataclasses import replace

    from autoseg.demo.settings import default_settings, quick_settings
    from autoseg.errors import AutoSegError

    settings = quick_settings(args.seed) if args.quick else default_settings(args.seed)
    changes = {"epochs": args.epochs, "iterations_per_epoch": args.iterations_per_epoch}
    for name, value in changes.items():
        if value is not None and value < 1:
            raise AutoSegError(f"--{name} must be at least 1, got {value}.")
    changes = {k: v for k, v in changes.items() if v is not None}
    return replace(settings, budget=replace(settings.budget, **changes)) if changes else settings


def run(args: argparse.Namespace) -> int:
    import sys
    from functools import partial

    from autoseg.demo.pipeline import run_demo
    from autoseg.demo.report import format_report
    from autoseg.utils.devices import resolve_device
    from autoseg.utils.progress import progress_bar

    device = str(resolve_device(args.device))  # a clear error now for a device that is not there

    def say(message: str) -> None:
        print(message, flush=True)

    workspace = args.workspace or Path(QUICK_WORKSPACE if args.quick else DEFAULT_WORKSPACE)
    result = run_demo(
        workspace, _settings(args), device=device, num_processes=args.num_processes, fresh=args.fresh, say=say,
        progress_factory=None if args.no_pbar else partial(progress_bar, enabled=True),
        progress_bar=not args.no_pbar,
    )
    sys.stderr.flush()
    print(format_report(result), flush=True)
    return 0
