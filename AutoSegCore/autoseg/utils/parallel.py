"""Process pools that size themselves to the machine and survive dead workers.

``choose_num_workers`` caps the requested worker count by the cores and by the free RAM divided by an
estimate of one task's peak memory. ``run_tasks`` runs tasks in a spawn-safe pool; when the OS kills a
worker (typically out of memory) the unfinished tasks are retried with half the workers, down to one,
instead of the whole run dying.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

import psutil

from autoseg.errors import AutoSegError
from autoseg.typing import ProgressCallback

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: Fraction of the currently available RAM that worker estimates may use together.
RAM_SAFETY_FRACTION = 0.7


def available_cpus() -> int:
    """CPUs this process may use (affinity-aware on Linux)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def choose_num_workers(
    requested: int | None, peak_bytes_per_task: float | None = None, num_tasks: int | None = None
) -> int:
    """Workers to start: ``requested`` (or all CPUs) capped by CPUs, free RAM and the number of tasks."""
    cpus = available_cpus()
    workers = cpus if requested is None else max(1, int(requested))
    limits = {"CPUs": cpus}
    if peak_bytes_per_task:
        free = psutil.virtual_memory().available * RAM_SAFETY_FRACTION
        limits["free RAM"] = max(1, int(free // max(peak_bytes_per_task, 1)))
    if num_tasks is not None:
        limits["tasks"] = max(1, num_tasks)
    capped = min(workers, *limits.values())
    if requested is not None and capped < requested:
        reason = min(limits, key=limits.__getitem__)
        logger.info("Using %d worker(s) instead of %d (limited by %s).", capped, requested, reason)
    return capped


def run_tasks(
    function: Callable[..., T],
    arguments: Sequence[tuple[Any, ...]],
    num_workers: int,
    progress: ProgressCallback | None = None,
    task_names: Sequence[str] | None = None,
) -> list[T]:
    """Run ``function(*args)`` for every entry of ``arguments``; results in input order.

    ``num_workers <= 1`` runs in this process. Exceptions raised by a task propagate (AutoSegErrors
    unchanged); a worker killed by the OS makes the remaining tasks run again with fewer workers.
    """
    results: dict[int, T] = {}
    total = len(arguments)
    if num_workers <= 1 or total <= 1:
        for i, args in enumerate(arguments):
            results[i] = function(*args)
            if progress:
                progress(i + 1, total)
        return [results[i] for i in range(total)]
    pending = list(range(total))
    workers = num_workers
    while pending:
        try:
            _run_pool(function, arguments, pending, workers, results, progress, total)
        except BrokenProcessPool:
            pending = [i for i in pending if i not in results]
            if workers == 1:
                name = task_names[pending[0]] if task_names else f"task {pending[0]}"
                raise AutoSegError(
                    f"A worker process died while working on {name} even when running alone. The operating "
                    f"system most likely killed it for lack of memory. Free memory or use a machine with more RAM."
                ) from None
            workers = max(1, workers // 2)
            logger.warning(
                "A worker process died (probably out of memory); retrying %d remaining task(s) with %d worker(s).",
                len(pending), workers,
            )
            continue
        pending = []
    return [results[i] for i in range(total)]


def _run_pool(
    function: Callable[..., T],
    arguments: Sequence[tuple[Any, ...]],
    indices: Iterable[int],
    workers: int,
    results: dict[int, T],
    progress: ProgressCallback | None,
    total: int,
) -> None:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures: dict[Future, int] = {pool.submit(function, *arguments[i]): i for i in indices}
        not_done = set(futures)
        try:
            while not_done:
                done, not_done = wait(not_done, return_when=FIRST_COMPLETED)
                for future in done:
                    results[futures[future]] = future.result()
                    if progress:
                        progress(len(results), total)
        except BaseException:
            for future in not_done:
                future.cancel()
            raise
