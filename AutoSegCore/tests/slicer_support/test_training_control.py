"""The Trainer's "Finish now": the file the trainer looks for, written into and taken back from the fold folder."""

from __future__ import annotations

import subprocess
import sys

from autoseg.slicer_support.training_control import (
    FINISH_FILE,
    progress_fold_folder,
    request_finish,
    withdraw_finish_request,
)
from autoseg.training.run_control import finish_requested


def test_the_slicer_side_of_the_loop_never_loads_torch():
    """Checking a budget, asking a run to finish and reading a ranking must not import PyTorch into Slicer."""
    code = (
        "import sys\n"
        "from autoseg.slicer_support import commands, rankings, training_control\n"
        "assert commands.parse_time_budget('1h30m') == 5400\n"
        "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))[:3]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_request_and_withdraw(tmp_path):
    fold = progress_fold_folder(tmp_path / "results" / "Dataset001_X" / "m" / "fold_3" / "progress.jsonl")
    assert fold.name == "fold_3" and not fold.exists()
    path = request_finish(fold)  # before the run made its folder: created
    assert path == fold / FINISH_FILE and finish_requested(fold) == path
    assert request_finish(fold) == path  # asking twice is harmless
    assert withdraw_finish_request(path) and not path.exists() and finish_requested(fold) is None
    assert not withdraw_finish_request(path)  # the trainer consumed it: nothing to take back
