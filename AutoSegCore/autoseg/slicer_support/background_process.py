"""A child process whose output is collected in the background and which can be cancelled as a tree.

The Slicer modules run ``PythonSlicer -m autoseg.cli.main ...`` through this class and poll it from a
``qt.QTimer``: :meth:`BackgroundProcess.poll` never blocks, so the GUI never freezes. Output lines
(stdout and stderr merged) are read by a daemon thread into a queue. :meth:`cancel` stops the child
and everything it started (data-augmentation workers included): a new session/process group on
POSIX, ``taskkill /T`` on Windows.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ProcessUpdate:
    """What happened since the last poll."""

    lines: list[str] = field(default_factory=list)
    returncode: int | None = None  # set once the process has ended and all its output was read

    @property
    def finished(self) -> bool:
        return self.returncode is not None


class BackgroundProcess:
    """Run ``command_line`` in the background; poll for output; cancel the whole process tree."""

    def __init__(
        self,
        command_line: Sequence[str],
        environment: Mapping[str, str] | None = None,
        base_environment: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        log_file: str | Path | None = None,
    ) -> None:
        """``environment`` is added to ``base_environment`` (default: this process's environment).

        In Slicer pass ``slicer.util.startupEnvironment()`` as the base so that ``PythonSlicer`` sets
        up its own paths. ``log_file``, when given, receives every output line as well.
        """
        self.command_line = [str(part) for part in command_line]
        self.environment = {**(os.environ if base_environment is None else base_environment), **(environment or {})}
        self.environment.setdefault("PYTHONUNBUFFERED", "1")
        self.cwd = str(cwd) if cwd else None
        self.log_file = Path(log_file) if log_file else None
        self.cancelled = False
        self._process: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader: threading.Thread | None = None
        self._reader_done = False

    def start(self) -> None:
        """Start the child; an executable that does not exist raises ``FileNotFoundError`` naming it."""
        if self._process is not None:
            raise RuntimeError("This process was already started; create a new BackgroundProcess to run again.")
        options: dict = {}
        if sys.platform == "win32":
            options["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | getattr(subprocess, "CREATE_NO_WINDOW", 0)
        else:
            options["start_new_session"] = True
        try:
            self._process = subprocess.Popen(
                self.command_line, env=self.environment, cwd=self.cwd, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, encoding="utf-8",
                errors="replace", bufsize=1, **options,
            )
        except FileNotFoundError as err:
            raise FileNotFoundError(f"Cannot start {self.command_line[0]!r}: the program was not found.") from err
        self._reader = threading.Thread(target=self._read_output, name="autoseg-output-reader", daemon=True)
        self._reader.start()

    def _read_output(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        log = self.log_file.open("a", encoding="utf-8") if self.log_file else None
        try:
            for line in self._process.stdout:
                self._lines.put(line.rstrip("\r\n"))
                if log:
                    log.write(line)
                    log.flush()
        finally:
            if log:
                log.close()
            self._lines.put(None)  # end of output

    @property
    def started(self) -> bool:
        return self._process is not None

    @property
    def running(self) -> bool:
        return self._process is not None and not self._reader_done

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def poll(self) -> ProcessUpdate:
        """New output lines; ``returncode`` once the child ended and its output was fully read."""
        update = ProcessUpdate()
        if self._process is None:
            return update
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                break
            if line is None:
                self._reader_done = True
                break
            update.lines.append(line)
        if self._reader_done:
            update.returncode = self._process.wait()
        return update

    def wait(self, timeout: float | None = None, poll_interval: float = 0.05) -> ProcessUpdate:
        """Block until the child ends (tests and scripts); returns all output not yet polled."""
        deadline = None if timeout is None else time.monotonic() + timeout
        collected = ProcessUpdate()
        while True:
            update = self.poll()
            collected.lines.extend(update.lines)
            if update.finished:
                collected.returncode = update.returncode
                return collected
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"{self.command_line[0]} did not finish within {timeout} s")
            time.sleep(poll_interval)

    def cancel(self, grace_seconds: float = 5.0) -> None:
        """Stop the child and its children: politely first, then by force after ``grace_seconds``."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        self.cancelled = True
        if sys.platform == "win32":
            subprocess.run(["taskkill", "/T", "/F", "/PID", str(process.pid)], capture_output=True, check=False)
        else:
            _signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=grace_seconds)
            except subprocess.TimeoutExpired:
                _signal_group(process.pid, signal.SIGKILL)
        try:
            process.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            process.kill()


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(os.getpgid(pid), sig)
