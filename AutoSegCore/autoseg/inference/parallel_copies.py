"""Evaluate the mirrored copies of a window in parallel CPU threads, one torch thread each.

On a CPU, two single-threaded forward passes side by side get more done than one pass split over two
threads (small feature maps, normalisation and concatenation scale poorly). The outputs come back in
input order, so the test-time-augmentation sum is the same as sequentially. Parallel copies cost one
set of activations per worker, so they are only used when that fits comfortably into free memory.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import psutil
import torch

Forward = Callable[[torch.Tensor], torch.Tensor]


class ParallelCopies:
    """A pool of ``workers`` threads, each running torch with ``threads_per_worker`` threads."""

    def __init__(self, workers: int, threads_per_worker: int) -> None:
        self.workers = workers
        self.threads_per_worker = threads_per_worker
        self._pool = ThreadPoolExecutor(max_workers=workers, initializer=torch.set_num_threads,
                                        initargs=(threads_per_worker,), thread_name_prefix="autoseg-window")

    def mapper(self, forward: Forward) -> Callable[[list[torch.Tensor]], list[torch.Tensor]]:
        def run(copies: list[torch.Tensor]) -> list[torch.Tensor]:
            def one(x: torch.Tensor) -> torch.Tensor:
                with torch.inference_mode():
                    return forward(x)

            return list(self._pool.map(one, copies))

        return run

    def close(self) -> None:
        self._pool.shutdown(wait=False)

    def __del__(self) -> None:  # a Predictor dropped in a long-lived process (Slicer) frees its threads
        self._pool.shutdown(wait=False)


def plan_parallel_copies(cores: int, num_copies: int, activation_bytes: int) -> ParallelCopies | None:
    """A pool when there are several cores and copies and the extra activations fit into a quarter of the
    free RAM; None means: run the copies one after another with all cores."""
    workers = min(cores, num_copies)
    if workers < 2 or workers * activation_bytes > psutil.virtual_memory().available / 4:
        return None
    return ParallelCopies(workers, max(1, cores // workers))
