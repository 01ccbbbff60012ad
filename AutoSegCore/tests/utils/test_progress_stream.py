"""The JSON-lines progress stream: writing, incremental reading, partial lines, NaN, ETA."""

from __future__ import annotations

import json

import numpy as np

from autoseg.utils.progress_stream import ProgressStream, eta_seconds, read_events


def test_write_and_poll_incrementally(tmp_path):
    stream = ProgressStream(tmp_path / "fold_0" / "progress.jsonl")
    stream.emit("start", num_epochs=3)
    events, offset = read_events(stream.path)
    assert [e["type"] for e in events] == ["start"] and events[0]["num_epochs"] == 3
    stream.emit("epoch", epoch=0, train_loss=np.float32(-0.5), pseudo_dice=[0.5, float("nan")], lr=0.01, eta=12.5)
    with stream.path.open("a") as raw:
        raw.write('{"type": "epo')  # a line still being written
    events, offset = read_events(stream.path, offset)
    assert len(events) == 1 and events[0]["pseudo_dice"] == [0.5, None]
    assert events[0]["train_loss"] == -0.5
    with stream.path.open("a") as raw:
        raw.write('ch", "epoch": 1}\n')
    events, _ = read_events(stream.path, offset)
    assert events == [{"type": "epoch", "epoch": 1}]
    for line in stream.path.read_text().splitlines():
        json.loads(line)
    assert read_events(tmp_path / "missing.jsonl") == ([], 0)


def test_eta():
    assert eta_seconds([], 0, 10) is None
    assert eta_seconds([10.0, 20.0], 2, 10) == 15.0 * 8
    assert eta_seconds([5.0] * 10, 10, 10) == 0
