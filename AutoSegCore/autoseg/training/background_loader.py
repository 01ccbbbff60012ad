"""Build training batches in background worker processes.

Worker ``w`` of ``n`` builds batches ``start + w``, ``start + w + n``, ... of a
:class:`~autoseg.training.data_loader.TrainingBatchLoader` and the main process takes them in order,
so a seeded run yields exactly the batches the loader yields on its own (for any worker count).
Workers are spawned (never forked): the loader, its dataset and its transforms are pickled to them.
A failing worker's traceback is re-raised in the main process; ``close()`` (also on leaving a
``with`` block, on garbage collection and at exit) stops and joins every worker. Workers ignore
Ctrl-C, so an interrupt reaches the main process alone and the ``with`` block shuts them down, and
they exit by themselves when the main process dies.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import queue
import signal
import time
import traceback
import weakref
from collections.abc import Iterator, Mapping
from multiprocessing.reduction import ForkingPickler
from typing import Any

import torch

from autoseg.errors import AutoSegError
from autoseg.training.data_loader import Batch, TrainingBatchLoader
from autoseg.utils.parallel import available_cpus

#: nnU-Net's environment variable for the number of data augmentation workers.
WORKERS_VARIABLE = "nnUNet_n_proc_DA"
_POLL_S = 0.2
SHARED_MEMORY_HINT = (
    "\nBatches travel between processes through shared memory (/dev/shm), which is full. In Docker, start the "
    f"container with --shm-size=8g or --ipc=host; otherwise use fewer workers ({WORKERS_VARIABLE})."
)


def default_num_workers(device_type: str, environ: Mapping[str, str] | None = None) -> int:
    """Background workers for training on ``device_type`` ("cuda", "mps" or "cpu").

    ``nnUNet_n_proc_DA`` wins when set. Otherwise an accelerator gets up to 12 workers (nnU-Net's
    default), capped by the CPUs, while CPU training keeps the cores for the network: the loader runs
    in the main process below 8 CPUs and uses one worker per 8 CPUs (at most 4) above.
    """
    environ = os.environ if environ is None else environ
    cpus = available_cpus()
    value = environ.get(WORKERS_VARIABLE)
    if value is not None and value.strip() != "":
        try:
            requested = int(value.strip())
        except ValueError:
            raise AutoSegError(
                f"The environment variable {WORKERS_VARIABLE}={value!r} is not a whole number: set it to the number "
                f"of data augmentation workers (0 builds batches in the training process) or unset it."
            ) from None
        return max(0, min(requested, cpus))
    if device_type in ("cuda", "mps"):
        return min(12, cpus)
    return 0 if cpus < 8 else min(4, cpus // 8)


class BackgroundLoader(Iterator[Batch]):
    """Iterate over ``loader``'s batches, built ahead by ``num_workers`` spawned processes.

    ``prefetch`` batches are kept ready per worker. ``num_workers=0`` builds each batch in the
    calling thread. With ``pin_memory`` (use it when training on CUDA) tensors come in page-locked
    memory, ready for asynchronous copies to the GPU.
    """

    def __init__(
        self, loader: TrainingBatchLoader, num_workers: int, prefetch: int = 2, pin_memory: bool = False
    ) -> None:
        self.loader = loader
        self.num_workers = max(0, int(num_workers))
        self.pin_memory = pin_memory and torch.cuda.is_available()
        self._next = loader.batches_generated
        self._closed = False
        self._workers: list[Any] = []
        self._queues: list[Any] = []
        if self.num_workers == 0:
            self._finalizer = None
            return
        try:
            payload = pickle.dumps(loader)
        except Exception as e:
            raise AutoSegError(
                f"The training data loader cannot be sent to worker processes ({type(e).__name__}: {e}); its "
                f"transforms must be picklable (module-level classes or functions, no lambdas), or use 0 workers."
            ) from e
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        self._finalizer = weakref.finalize(self, _shutdown, self._workers, self._queues, self._stop)
        for w in range(self.num_workers):
            q = context.Queue(maxsize=max(1, int(prefetch)))
            self._queues.append(q)
            args = (payload, w, self.num_workers, self._next, q, self._stop)
            process = context.Process(target=_worker_main, args=args, name=f"autoseg-loader-{w}", daemon=True)
            process.start()
            self._workers.append(process)

    def __iter__(self) -> BackgroundLoader:
        return self

    def __next__(self) -> Batch:
        if self._closed:
            raise AutoSegError("This background loader was closed; create a new one to load more batches.")
        if self.num_workers == 0:
            batch = self.loader.next_batch()
        else:
            batch = self._receive(self._next % self.num_workers)
            self.loader.batches_generated = self._next + 1
        self._next += 1
        return _pinned(batch) if self.pin_memory else batch

    def _receive(self, w: int) -> Batch:
        while True:
            try:
                kind, index, payload = pickle.loads(self._queues[w].get(timeout=_POLL_S))
                break
            except queue.Empty:
                if not self._workers[w].is_alive():
                    self._worker_died(w, None)
            except (OSError, EOFError) as e:  # a batch whose worker died before handing over its tensors
                self._worker_died(w, e)
        if kind == "error":
            self.close()
            summary = payload.strip().splitlines()[-1] if payload.strip() else "unknown error"
            raise AutoSegError(
                f"Data loading worker {w} failed while building batch {index}: {summary}\n\n"
                f"Worker traceback:\n{payload}"
            )
        if index != self._next:
            raise RuntimeError(f"worker {w} delivered batch {index}, expected {self._next}")
        return payload

    def _worker_died(self, w: int, error: BaseException | None) -> None:
        self._workers[w].join(timeout=1)
        code = self._workers[w].exitcode
        self.close()
        detail = f" ({type(error).__name__}: {error})" if error is not None else ""
        raise AutoSegError(
            f"Data loading worker {w} stopped unexpectedly (exit code {code}){detail}; the operating system may have "
            f"killed it for lack of memory. Use fewer workers ({WORKERS_VARIABLE}) or free RAM."
        ) from None

    def close(self) -> None:
        """Stop the workers and wait for them (idempotent)."""
        self._closed = True
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self) -> BackgroundLoader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _pinned(batch: Batch) -> Batch:
    target = batch["target"]
    target = [t.pin_memory() for t in target] if isinstance(target, list) else target.pin_memory()
    return {**batch, "data": batch["data"].pin_memory(), "target": target}


def _worker_main(payload: bytes, worker: int, num_workers: int, start: int, out: Any, stop: Any) -> None:
    """Build batches ``start + worker + k * num_workers`` until told to stop or orphaned."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)
    parent = multiprocessing.parent_process()
    index = start + worker
    try:
        loader: TrainingBatchLoader = pickle.loads(payload)
        while not stop.is_set():
            # Pickled here rather than in the queue's feeder thread, so that a failure (such as a full
            # /dev/shm while tensors move to shared memory) is reported instead of silently dropped.
            item = bytes(ForkingPickler.dumps(("batch", index, loader.batch(index))))
            if not _put(out, item, stop, parent):
                return
            index += num_workers
    except BaseException as e:
        text = "".join(traceback.format_exception(type(e), e, e.__traceback__))
        if "No space left on device" in text:
            text += SHARED_MEMORY_HINT
        _put(out, pickle.dumps(("error", index, text)), stop, parent)


def _put(out: Any, item: bytes, stop: Any, parent: Any) -> bool:
    while not stop.is_set():
        if parent is not None and not parent.is_alive():
            return False
        try:
            out.put(item, timeout=_POLL_S)
            return True
        except queue.Full:
            continue
    return False


def _shutdown(workers: list[Any], queues: list[Any], stop: Any, grace_s: float = 5.0) -> None:
    """Ask the workers to stop, keep their queues drained so they can exit, terminate stragglers."""
    stop.set()
    deadline = time.monotonic() + grace_s
    while any(p.is_alive() for p in workers) and time.monotonic() < deadline:
        for q in queues:
            _drain(q)
        for p in workers:
            p.join(timeout=0.02)
    for p in workers:
        if p.is_alive():
            p.terminate()
        p.join(timeout=grace_s)
    for q in queues:
        _drain(q)
        q.close()
        q.cancel_join_thread()


def _drain(q: Any) -> None:
    try:
        while True:
            q.get_nowait()
    except (queue.Empty, OSError, ValueError):
        pass
