"""``autoseg COMMAND ...``: the entry point that dispatches to one module per subcommand.

Each command module exposes ``register(subparsers)`` (adds its parser and sets ``func``). Command
modules import heavy libraries inside their ``run`` function so ``autoseg -h`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from autoseg import __version__
from autoseg.errors import AutoSegError

#: Subcommand modules under ``autoseg.cli``, in the order ``-h`` lists them.
COMMAND_MODULES = (
    "plan_and_preprocess",
    "verify_dataset",
    "convert_datasets",
    "export_segmentations",
    "train",
    "predict",
    "rank_cases",
    "evaluate",
    "postprocessing",
    "ensemble",
    "find_best_configuration",
    "model_sharing",
    "move_plans",
    "plot_overlay_pngs",
    "demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autoseg",
        description="Self-configuring medical image segmentation, compatible with nnU-Net v2 "
        "(same folders, files and flags: `autoseg X` is `nnUNetv2_X`).",
    )
    parser.add_argument("--version", action="version", version=f"autoseg {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"autoseg.cli.{name}").register(subparsers)
    return parser


#: Libraries of the training install (``autoseg[torch]``) that a prediction-only install lacks.
TRAINING_LIBRARIES = ("torch", "batchgeneratorsv2", "matplotlib", "torchvision")


def missing_dependency_message(err: ModuleNotFoundError) -> str | None:
    """What to install when a command needs a library of the training install; None for anything else."""
    missing = (err.name or "").split(".")[0]
    if missing not in TRAINING_LIBRARIES:
        return None
    from autoseg.inference.engine_choice import TORCH_INSTALL_HINT

    return (
        f"this command needs {missing}, which is not installed (a prediction-only install with OpenVINO has no "
        f"PyTorch). {TORCH_INSTALL_HINT}; `autoseg predict` works without it."
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
        format="%(message)s",
    )
    try:
        result = args.func(args)
    except AutoSegError as err:
        print(f"autoseg {args.command}: error: {err}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as err:
        message = missing_dependency_message(err)
        if message is None:
            raise
        print(f"autoseg {args.command}: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"autoseg {args.command}: interrupted; run the same command again to resume.", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
