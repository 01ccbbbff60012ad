"""The human-readable training log: ``training_log_YYYY_M_D_HH_MM_SS.txt`` in the fold folder.

Every line is time-stamped, appended and flushed at once (a killed run keeps everything logged so far)
and also goes to the ``autoseg.training`` logger, so the terminal shows it.
"""

from __future__ import annotations

import datetime
import logging
from pathlib import Path

logger = logging.getLogger("autoseg.training")


class RunLog:
    """Appends time-stamped lines to one log file per start of a run (nnU-Net's naming)."""

    def __init__(self, fold_folder: Path, echo: bool = True, enabled: bool = True) -> None:
        now = datetime.datetime.now()
        name = f"training_log_{now.year}_{now.month}_{now.day}_{now.hour:02d}_{now.minute:02d}_{now.second:02d}.txt"
        if enabled:
            fold_folder.mkdir(parents=True, exist_ok=True)
        self.path = fold_folder / name
        self.echo = echo
        self.enabled = enabled  # False on DDP ranks other than 0

    def __call__(self, *parts: object) -> None:
        if not self.enabled:
            return
        message = " ".join(str(p) for p in parts)
        with self.path.open("a", encoding="utf-8") as stream:
            stream.write(f"{datetime.datetime.now()}: {message}\n")
        if self.echo:
            logger.info(message)
