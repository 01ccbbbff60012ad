"""The Trainer module's "Finish now": ask a running training to end after its current epoch.

The trainer looks for a file named :data:`FINISH_FILE` in its fold folder after every epoch; when it is there it
ends the training (final checkpoint, then the final validation, as a normal end does) and deletes the file. The
module writes the file into the fold folder of the run that is training, and takes it back when that run ended
without reading it (it failed, was cancelled or was already validating): a file left behind would end the next
training of that fold after its first epoch.
"""

from __future__ import annotations

from pathlib import Path

from autoseg.training.run_control import FINISH_FILE


def progress_fold_folder(progress_file: str | Path) -> Path:
    """The fold folder of a training command (its progress file is ``fold_K/progress.jsonl``)."""
    return Path(progress_file).parent


def request_finish(fold_folder: str | Path) -> Path:
    """Write the finish-now file into ``fold_folder`` (created if the run has not made it yet); returns its path."""
    path = Path(fold_folder) / FINISH_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("Written by the AutoSeg Trainer module's Finish now: end after the current epoch.\n",
                    encoding="utf-8")
    return path


def withdraw_finish_request(path: str | Path) -> bool:
    """Remove a finish-now file the training did not consume; True when there was one."""
    path = Path(path)
    if not path.is_file():
        return False
    path.unlink(missing_ok=True)
    return True
