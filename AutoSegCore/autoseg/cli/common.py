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
