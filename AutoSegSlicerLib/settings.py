"""The AutoSeg workspace folder (holding nnUNet_raw, nnUNet_preprocessed, nnUNet_results), kept in
Slicer's application settings so every module and session uses the same one."""

import os
from pathlib import Path

import qt

WORKSPACE_KEY = "AutoSeg/WorkspaceFolder"


def defaultWorkspaceFolder():
    """``$AUTOSEG_HOME`` or ``~/AutoSeg`` (the CLI's default)."""
    return Path(os.environ.get("AUTOSEG_HOME") or Path.home() / "AutoSeg")


def workspaceFolder():
    value = qt.QSettings().value(WORKSPACE_KEY)
    return Path(value) if value else defaultWorkspaceFolder()


def setWorkspaceFolder(folder):
    """Remember ``folder`` (absolute); an empty or relative path (a widget's default ".") is never saved."""
    if not str(folder) or not Path(folder).is_absolute():
        return
    qt.QSettings().setValue(WORKSPACE_KEY, str(folder))
