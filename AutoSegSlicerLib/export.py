"""The Planner's export as a background command: ``autoseg export_segmentations`` followed through its output.

The command prints ``[done/total] case`` after each case it writes and, when it fails, one
``autoseg export_segmentations: error: ...`` message (possibly of several lines) on stderr; the
``ProcessRunner`` hands both to :meth:`PlannerExport.readLine`.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from slicer.i18n import tr as _

ERROR_PREFIX = "autoseg export_segmentations: error: "


@dataclass
class PlannerExport:
    """An export running (or run) in a background process: its command, target, progress and outcome."""

    command: Any  # autoseg.slicer_support.commands.AutoSegCommand
    datasetFolder: Path
    total: int
    done: int = 0
    lastCase: str = ""
    returncode: Optional[int] = None  # set when the command has ended; -1: cancelled
    error: str = ""  # why it failed, or "cancelled"; empty while running and after a success

    @property
    def cancelled(self) -> bool:
        return self.returncode == -1

    def readLine(self, line: str) -> bool:
        """Follow one output line of the command; True when it reported a case written (``done`` changed)."""
        from autoseg.slicer_support.commands import export_progress

        progress = export_progress(line)
        if progress:
            self.done, self.total, self.lastCase = progress
        elif line.startswith(ERROR_PREFIX):
            self.error = line[len(ERROR_PREFIX):]
        elif self.error:  # a message of several lines
            self.error += "\n" + line
        return progress is not None

    def finish(self, returncode: int) -> None:
        """Record the end of the command (``ProcessRunner``'s return code)."""
        self.returncode = returncode
        if returncode == -1:
            self.error = _("cancelled")
        elif returncode != 0 and not self.error:
            self.error = _("exit code {code}; see the log").format(code=returncode)
