"""The Trainer module's run queue."""

from __future__ import annotations

import pytest

from autoseg.errors import AutoSegError
from autoseg.slicer_support.run_queue import QueuedRun, RunQueue


def test_queue_runs_in_order_and_skips_duplicates():
    queue = RunQueue()
    added = queue.add("3d_fullres", [0, "1", "all"])
    assert [(r.configuration, r.fold, r.state) for r in added] == [
        ("3d_fullres", "0", "pending"), ("3d_fullres", "1", "pending"), ("3d_fullres", "all", "pending")]
    assert queue.add("3d_fullres", ["01", 2]) == queue.runs[-1:]  # "01" is fold 1, already pending
    queue.add("2d", [0])
    assert [r.fold for r in queue.runs] == ["0", "1", "all", "2", "0"] and len(queue) == 5
    assert queue.next_pending() is queue.runs[0]
    assert not queue.all_done()


def test_mark_next_and_clear():
    queue = RunQueue()
    first, second = queue.add("3d_fullres", [0, 1])
    queue.mark(first, "running", "Training 3d_fullres fold 0")
    assert queue.running() is first and queue.next_pending() is second
    queue.mark(first, "done", "Dice 0.87")
    queue.mark(second, "running")
    queue.mark(second, "failed", "CUDA out of memory")
    assert queue.next_pending() is None and queue.all_done()
    assert queue.as_rows() == [
        ("3d_fullres", "0", "done", "Dice 0.87"),
        ("3d_fullres", "1", "failed", "CUDA out of memory"),
    ]
    again = queue.add("3d_fullres", [0])  # a finished run can be queued again
    assert len(again) == 1 and again[0] is not first
    queue.clear_finished()
    assert queue.runs == again and not queue.all_done()


def test_cancel_pending_and_errors():
    queue = RunQueue()
    runs = queue.add("2d", [0, 1, 2])
    queue.mark(runs[0], "running")
    queue.cancel_pending()
    assert [r.state for r in queue.runs] == ["running", "cancelled", "cancelled"]
    assert not queue.all_done()
    with pytest.raises(AutoSegError, match="Unknown run state 'paused'"):
        queue.mark(runs[0], "paused")
    with pytest.raises(AutoSegError, match="not in the queue"):
        queue.mark(QueuedRun("2d", "0"), "done")
    with pytest.raises(AutoSegError, match="Invalid fold 'x'"):
        queue.add("2d", ["x"])
    assert RunQueue().all_done() and RunQueue().next_pending() is None
