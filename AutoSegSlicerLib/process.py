"""Run ``autoseg`` commands in a background ``PythonSlicer`` process, polled from a Qt timer.

The GUI never waits on the child: a timer polls its output (``BackgroundProcess``) and the JSON-lines
progress file the command writes (a training or prediction monitor), and hands both to callbacks.
Commands queue: ``start`` while one runs appends to the queue. ``processFactory`` is injectable, so
self-tests can run commands in any Python or replace the process entirely.
"""

import logging
import os
import shutil
import sys

import qt
import slicer


def pythonSlicerExecutable():
    """The ``PythonSlicer`` launcher of this Slicer (sets up Slicer's Python environment)."""
    name = "PythonSlicer.exe" if sys.platform == "win32" else "PythonSlicer"
    candidates = [shutil.which("PythonSlicer"), os.path.join(slicer.app.slicerHome, "bin", name)]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate):
            return candidate
    raise RuntimeError(f"Cannot find PythonSlicer (looked in {candidates[1]}). Reinstall Slicer or report this.")


class ProcessRunner:
    """Runs AutoSegCommands one after another; calls back with output lines, progress and the end."""

    def __init__(self, onOutput=None, onProgress=None, onFinished=None, processFactory=None, pollIntervalMs=500):
        self.onOutput = onOutput or (lambda line: logging.info(line))
        self.onProgress = onProgress or (lambda status: None)
        self.onFinished = onFinished or (lambda command, returncode: None)
        self.processFactory = processFactory or self._slicerProcess
        self.queue = []  # (command, monitor) waiting to start
        self.current = None  # (command, monitor, process)
        self.timer = qt.QTimer()
        self.timer.setInterval(pollIntervalMs)
        self.timer.timeout.connect(self._poll)

    @staticmethod
    def _slicerProcess(command):
        from autoseg.slicer_support.background_process import BackgroundProcess

        return BackgroundProcess(command.command_line(pythonSlicerExecutable()), environment=command.environment,
                                 base_environment=slicer.util.startupEnvironment())

    @property
    def isRunning(self):
        return self.current is not None

    def start(self, command, monitor=None):
        """Run ``command`` now, or after the commands already queued."""
        self.queue.append((command, monitor))
        if not self.isRunning:
            self._startNext()

    def _startNext(self):
        if not self.queue:
            return
        command, monitor = self.queue.pop(0)
        self.onOutput(f"$ {command.display()}")
        process = self.processFactory(command)
        self.current = (command, monitor, process)
        try:
            process.start()
        except Exception:
            self.current = None
            self.queue.clear()
            raise
        self.timer.start()

    def cancel(self):
        """Stop the running command (and its child processes) and drop the queue."""
        self.queue.clear()
        if self.current:
            self.onOutput("Cancelling...")
            self.current[2].cancel()

    def _poll(self):
        if not self.current:
            self.timer.stop()
            return
        command, monitor, process = self.current
        update = process.poll()
        for line in update.lines:
            self.onOutput(line)
        if monitor is not None:
            monitor.poll()
            self.onProgress(monitor.status)
        if update.finished:
            self.timer.stop()
            self.current = None
            cancelled = getattr(process, "cancelled", False)
            returncode = update.returncode if not cancelled else -1
            if returncode != 0:
                self.queue.clear()
            self.onFinished(command, returncode)
            if returncode == 0:
                self._startNext()

    def waitForCompletion(self, timeoutSeconds=3600):
        """Block (processing Qt events) until the queue is empty; for scripts and self-tests."""
        import time

        deadline = time.monotonic() + timeoutSeconds
        while self.isRunning or self.queue:
            if time.monotonic() > deadline:
                self.cancel()
                raise TimeoutError(f"AutoSeg command did not finish within {timeoutSeconds} s")
            slicer.app.processEvents()
            self._poll()
            time.sleep(0.05)
