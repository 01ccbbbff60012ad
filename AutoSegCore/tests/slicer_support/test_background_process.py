"""BackgroundProcess: non-blocking output, return codes, environment, and cancelling a whole process tree."""

from __future__ import annotations

import os
import sys
import time

import pytest

from autoseg.slicer_support.background_process import BackgroundProcess


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_output_lines_and_return_code(tmp_path):
    log = tmp_path / "run.log"
    process = BackgroundProcess(_python("import sys\nprint('one')\nprint('two', file=sys.stderr)\nsys.exit(3)"),
                                log_file=log)
    process.start()
    update = process.wait(timeout=30)
    assert update.returncode == 3
    assert sorted(update.lines) == ["one", "two"]
    assert sorted(log.read_text().splitlines()) == ["one", "two"]
    assert not process.running


def test_poll_does_not_block_and_streams(tmp_path):
    code = "import time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.3)"
    process = BackgroundProcess(_python(code))
    process.start()
    started = time.monotonic()
    first = process.poll()
    assert time.monotonic() - started < 0.1  # poll returns at once
    assert first.returncode is None
    lines = list(first.lines)
    while True:
        update = process.poll()
        lines += update.lines
        if update.finished:
            break
        time.sleep(0.05)
    assert lines == ["0", "1", "2"] and update.returncode == 0


def test_environment_is_added_to_the_base(tmp_path):
    process = BackgroundProcess(
        _python("import os; print(os.environ['nnUNet_raw'], os.environ.get('ONLY_BASE'))"),
        environment={"nnUNet_raw": str(tmp_path)},
        base_environment={**os.environ, "ONLY_BASE": "b"},
    )
    process.start()
    assert process.wait(timeout=30).lines == [f"{tmp_path} b"]


def test_cancel_kills_the_child_and_its_children(tmp_path):
    marker = tmp_path / "grandchild.pid"
    code = (
        "import subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open(r'{marker}', 'w').write(str(child.pid))\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    process = BackgroundProcess(_python(code))
    process.start()
    deadline = time.monotonic() + 30
    while not marker.exists() or not marker.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    grandchild = int(marker.read_text())
    started = time.monotonic()
    process.cancel(grace_seconds=5)
    update = process.wait(timeout=10)
    assert time.monotonic() - started < 10
    assert update.returncode != 0 and process.cancelled
    deadline = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild), "the grandchild survived cancel"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (ended, not yet reaped by init) counts as dead
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_missing_program_is_named():
    process = BackgroundProcess(["/no/such/PythonSlicer", "-m", "autoseg.cli.main"])
    with pytest.raises(FileNotFoundError, match="PythonSlicer"):
        process.start()


def test_cannot_start_twice():
    process = BackgroundProcess(_python("pass"))
    process.start()
    process.wait(timeout=30)
    with pytest.raises(RuntimeError, match="already started"):
        process.start()
