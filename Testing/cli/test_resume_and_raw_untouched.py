"""Killing ``autoseg plan_and_preprocess`` mid-way and starting it again completes correctly; raw data is never
modified."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
from oracle import BIN

from autoseg.demo.synthetic import write_synthetic_dataset
from autoseg.paths import Workspace
from autoseg.preprocessing import storage


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() + str(p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _env(ws: Workspace) -> dict[str, str]:
    return {**os.environ, "nnUNet_raw": str(ws.raw), "nnUNet_preprocessed": str(ws.preprocessed),
            "nnUNet_results": str(ws.results)}


def _run(ws: Workspace, extra: list[str] = ()) -> subprocess.Popen:
    command = [str(BIN / "autoseg"), "plan_and_preprocess", "-d", "77", "-c", "3d_fullres", "-np", "1", "-npfp", "1",
               "--no_pbar", *extra]
    return subprocess.Popen(command, env=_env(ws), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_kill_then_rerun_completes_and_raw_is_untouched(tmp_path):
    ws = Workspace.from_root(tmp_path)
    raw = write_synthetic_dataset(ws.raw / "Dataset077_Resume", num_cases=10)
    before = _digest(raw)
    output = ws.preprocessed / "Dataset077_Resume" / "nnUNetPlans_3d_fullres"

    process = _run(ws)
    deadline = time.time() + 120
    while time.time() < deadline and len(storage.list_cases(output)) < 3 and process.poll() is None:
        time.sleep(0.05)
    assert process.poll() is None, "preprocessing finished before it could be interrupted"
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished_before = set(storage.list_cases(output))
    assert 0 < len(finished_before) < 10
    leftovers = [p for p in output.iterdir() if ".tmp" in p.name]
    # a killed write may leave a temporary file, never a truncated case file
    for identifier in finished_before:
        data, seg, _ = storage.load_case(output, identifier, mmap=False)
        assert data.shape[1:] == seg.shape[1:]

    mtimes = {i: storage.case_files(output, i)[0].stat().st_mtime_ns for i in finished_before}
    second = _run(ws)
    log, _ = second.communicate(timeout=300)
    assert second.returncode == 0, log
    assert f"{len(finished_before)} case(s) up to date, {10 - len(finished_before)} new, 0 changed" in log
    assert len(storage.list_cases(output)) == 10
    for identifier, mtime in mtimes.items():  # finished cases were kept, not recomputed
        assert storage.case_files(output, identifier)[0].stat().st_mtime_ns == mtime
    assert _digest(raw) == before
    del leftovers


def test_resumed_output_equals_uninterrupted_output(tmp_path):
    results = {}
    for variant in ("straight", "interrupted"):
        ws = Workspace.from_root(tmp_path / variant)
        write_synthetic_dataset(ws.raw / "Dataset077_Resume", num_cases=6)
        output = ws.preprocessed / "Dataset077_Resume" / "nnUNetPlans_3d_fullres"
        if variant == "interrupted":
            process = _run(ws)
            while len(storage.list_cases(output)) < 2 and process.poll() is None:
                time.sleep(0.05)
            process.kill()
            process.wait()
        final = _run(ws)
        log, _ = final.communicate(timeout=300)
        assert final.returncode == 0, log
        results[variant] = {i: storage.load_case(output, i, mmap=False) for i in storage.list_cases(output)}
    assert results["straight"].keys() == results["interrupted"].keys()
    for identifier, (data, seg, props) in results["straight"].items():
        other = results["interrupted"][identifier]
        np.testing.assert_array_equal(data, other[0])
        np.testing.assert_array_equal(seg, other[1])
        assert props["class_locations"] == other[2]["class_locations"]


def test_changed_plans_invalidate_previous_preprocessing(tmp_path):
    ws = Workspace.from_root(tmp_path)
    write_synthetic_dataset(ws.raw / "Dataset077_Resume", num_cases=4)
    first = _run(ws)
    assert first.wait(timeout=300) == 0
    output = ws.preprocessed / "Dataset077_Resume" / "nnUNetPlans_3d_fullres"
    shape_before = storage.load_case(output, "synth_000")[0].shape
    second = _run(ws, ["-overwrite_target_spacing", "4.5", "2", "2"])
    log, _ = second.communicate(timeout=300)
    assert second.returncode == 0, log
    assert storage.load_case(output, "synth_000")[0].shape != shape_before
