"""Argument helpers shared by the subcommands."""

from __future__ import annotations

import argparse

from autoseg.paths import Workspace


def add_flag(parser: argparse.ArgumentParser | argparse._ArgumentGroup, name: str, **kwargs) -> None:
    """Add an nnU-Net style flag, accepting both ``-name`` and ``--name`` (``-np`` and ``--np``)."""
    bare = name.lstrip("-")
    names = [f"-{bare}", f"--{bare}"] if len(bare) > 1 else [f"-{bare}"]
    kwargs.setdefault("dest", bare.replace("-", "_"))
    parser.add_argument(*names, **kwargs)


def workspace_from_environment() -> Workspace:
    """The workspace the CLI works in (environment variables, else ``$AUTOSEG_HOME``)."""
    return Workspace.from_environment()


DATASET_HELP = "dataset id or name, e.g. 4, 004 or Dataset004_Hippocampus"
DEFAULT_WORKERS = "as many as the CPU cores and free RAM allow"


def add_dataset(parser: argparse.ArgumentParser, flag: str | None = None, nargs: str | None = None,
                required: bool = True, help: str = DATASET_HELP) -> None:
    """The dataset argument: positional ``DATASET`` (``flag=None``), or ``-d DATASET`` (``dest="dataset"``)."""
    if flag is None:
        parser.add_argument("dataset", metavar="DATASET", nargs=nargs, help=help)
    else:
        add_flag(parser, flag, dest="dataset", metavar="DATASET", nargs=nargs, required=required, help=help)


def add_num_processes(parser: argparse.ArgumentParser, purpose: str, default: str = DEFAULT_WORKERS,
                      dest: str = "num_processes", flag: str = "-np", nargs: str | None = None) -> None:
    """``-np N``: worker processes for ``purpose`` (help: "worker processes <purpose> (default: <default>)")."""
    add_flag(parser, flag, type=int, default=None, dest=dest, metavar="N", nargs=nargs,
             help=f"worker processes {purpose} (default: {default})")


def add_device(parser: argparse.ArgumentParser) -> None:
    """``-device``: resolved by :func:`autoseg.utils.devices.resolve_device`."""
    add_flag(parser, "-device", default="auto", metavar="DEVICE",
             help="auto (CUDA if PyTorch sees a GPU, else the CPU), cpu, cuda, cuda:N or mps (default: auto)")


def add_engine(parser: argparse.ArgumentParser, what: str = "") -> None:
    """``-engine auto|torch|openvino``: resolved by :func:`autoseg.inference.engine_choice.choose_engine`."""
    from autoseg.inference.engine_choice import ENGINE_HELP, ENGINES

    prefix = f"{what}: " if what else ""
    add_flag(parser, "-engine", choices=ENGINES, default="auto", help=f"{prefix}{ENGINE_HELP} (default: auto)")
