"""Check a raw dataset before fingerprinting/planning and list *every* problem at once.

:func:`verify_dataset_integrity` checks dataset.json (structure, labels, regions, ignore label), the
names and completeness of the files, and then reads every case in a pool of worker processes: readable
files, shapes and spacings (errors), origins and directions (warnings), NaN/Inf intensities, label
values against dataset.json, and 2D/3D consistency. A worker that dies (a reader crashing on a corrupt
file, the OOM killer) costs that case a reported problem, never the run.

The per-check logic lives in :mod:`layout_checks` (no image data) and :mod:`image_checks`
(image data); this module orchestrates and runs the pool.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from autoseg.dataset.dataset_json import DatasetJson
from autoseg.dataset.integrity.image_checks import (
    CaseResult,
    CheckContext,
    dimensionality_problems,
    label_usage_problems,
    reader_for,
    run_case,
)
from autoseg.dataset.integrity.layout_checks import (
    CaseFiles,
    case_count_problems,
    explicit_layout,
    folder_layout,
    images_ts_problems,
    label_definition_problems,
    load_dataset_json,
)
from autoseg.dataset.integrity.report import IntegrityReport, Problem, error
from autoseg.errors import AutoSegError
from autoseg.typing import ProgressCallback

__all__ = [
    "IntegrityReport",
    "Problem",
    "check_dataset_or_raise",
    "default_num_processes",
    "verify_dataset_integrity",
]

logger = logging.getLogger(__name__)

Worker = Callable[..., CaseResult]
#: Parallel rounds tried after a worker died before the remaining cases are checked one by one.
MAX_POOL_ROUNDS = 3


def default_num_processes() -> int:
    """Worker processes for reading cases when none is asked for: the usable CPUs, at most 8."""
    from autoseg.utils.parallel import available_cpus

    return max(1, min(8, available_cpus()))


def _num_workers(requested: int | None, cases: Sequence[CaseFiles]) -> int:
    """Workers to start: the request (or the default), capped by CPUs, free RAM and the number of cases."""
    if requested is not None and requested <= 0:
        return 0
    from autoseg.utils.parallel import choose_num_workers

    sizes = [sum(_file_size(p) for _, p in c.images) + (_file_size(c.label) if c.label else 0) for c in cases]
    # a gzip'ed case expands ~3-5x and becomes float32 (x2-4), plus temporaries; ~300 MB per process baseline
    peak = 300e6 + 16 * max(sizes, default=0)
    return choose_num_workers(requested or default_num_processes(), peak, len(cases))


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def check_dataset_or_raise(
    raw_folder: str | os.PathLike[str], num_processes: int | None = None, progress: ProgressCallback | None = None
) -> IntegrityReport:
    """For ``--verify_dataset_integrity``: verify, log the warnings, raise DatasetError listing every problem
    when there is an error. Returns the report when the dataset is usable."""
    report = verify_dataset_integrity(raw_folder, num_processes, progress)
    report.raise_if_errors()
    if report.warnings:
        logger.warning("%s", report.format())
    else:
        logger.info("%s", report.summary())
    return report


def verify_dataset_integrity(
    raw_folder: str | os.PathLike[str],
    num_processes: int | None = None,
    progress: ProgressCallback | None = None,
) -> IntegrityReport:
    """Check a raw dataset folder (``nnUNet_raw/DatasetXXX_Name``) and return every problem found.

    ``num_processes`` worker processes read the cases (default :func:`default_num_processes`; capped by
    the CPUs, the free RAM and the number of cases; 0 reads them in this process, without protection
    against a reader crashing the interpreter).
    ``progress(done, total)`` is called after each case. Never raises for bad data: see
    :meth:`IntegrityReport.raise_if_errors`.
    """
    raw_folder = Path(raw_folder)
    report = IntegrityReport(raw_folder)
    dataset_json, problems = load_dataset_json(raw_folder)
    report.extend(problems)
    if dataset_json is None:
        return report
    report.extend(label_definition_problems(dataset_json))
    layout = (explicit_layout if dataset_json.dataset is not None else folder_layout)(
        raw_folder, dataset_json
    )
    report.num_cases = layout.num_cases
    report.extend(layout.problems)
    report.extend(case_count_problems(layout, dataset_json, raw_folder))
    report.extend(images_ts_problems(raw_folder, dataset_json))
    context = _check_context(dataset_json, report)
    if context is not None and layout.cases:
        cases = list(layout.cases.values())
        results = check_cases(cases, context, _num_workers(num_processes, cases), progress)
        for result in results:
            report.extend(result.problems)
        report.extend(dimensionality_problems(results))
        report.extend(
            label_usage_problems(results, dataset_json.labels, dataset_json.ignore_label, dataset_json.source)
        )
    report.problems.sort(key=lambda p: (p.case is not None, p.case or ""))
    return report


def _check_context(dataset_json: DatasetJson, report: IntegrityReport) -> CheckContext | None:
    """What the workers need; None (with a reported problem) when no reader fits the dataset."""
    spec = {"file_ending": dataset_json.file_ending}
    if dataset_json.overwrite_image_reader_writer:
        spec["overwrite_image_reader_writer"] = dataset_json.overwrite_image_reader_writer
    try:
        reader_for(spec)
    except AutoSegError as err:
        report.extend(
            [
                error(
                    f"no image reader for this dataset: {err}",
                    "Fix 'file_ending' / 'overwrite_image_reader_writer' in dataset.json; the "
                    "images were not read.",
                    file=dataset_json.source,
                )
            ]
        )
        return None
    declared = frozenset(dataset_json.declared_values) if dataset_json.labels else None
    return CheckContext(spec, declared, dataset_json.ignore_label)


# ------------------------------------------------------------------------------------ running cases
def check_cases(
    cases: Sequence[CaseFiles],
    context: CheckContext,
    num_processes: int,
    progress: ProgressCallback | None = None,
    worker: Worker = run_case,
) -> list[CaseResult]:
    """Check every case, in ``num_processes`` spawned workers (0: in this process); results in case order.

    ``worker`` is the module-level function run per case (``run_case``; tests substitute one that crashes).
    """
    done = [0]

    def tick() -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0], len(cases))

    results: dict[int, CaseResult] = {}
    if num_processes > 0:
        try:
            _run_in_pool(cases, context, min(num_processes, len(cases)), results, tick, worker)
        except (OSError, NotImplementedError, ImportError) as err:
            logger.warning("Cannot start worker processes (%s); checking the cases in this process.", err)
    for index in range(len(cases)):
        if index not in results:
            results[index] = worker(index, cases[index], context)
            tick()
    return [results[i] for i in range(len(cases))]


def _run_in_pool(
    cases: Sequence[CaseFiles],
    context: CheckContext,
    workers: int,
    results: dict[int, CaseResult],
    tick: Callable[[], None],
    worker: Worker,
) -> None:
    """Fill ``results``; after a worker dies, the cases it may have been reading are rechecked alone."""
    pending = list(range(len(cases)))
    with tempfile.TemporaryDirectory(prefix="autoseg-verify-") as markers:
        for round_number in range(1, MAX_POOL_ROUNDS + 1):
            if not _pool_round(cases, pending, context, workers, markers, results, tick, worker):
                return
            unfinished = [i for i in pending if i not in results]
            started = {int(p.name) for p in Path(markers).iterdir()}
            suspects = [i for i in unfinished if i in started] or unfinished
            if round_number == MAX_POOL_ROUNDS:
                suspects = unfinished
            logger.warning("A worker process died; rechecking %d case(s) one at a time.", len(suspects))
            _run_isolated(cases, suspects, context, results, tick, worker)
            for marker in Path(markers).iterdir():
                marker.unlink()
            pending = [i for i in unfinished if i not in results]
            if not pending:
                return


def _executor(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


def _pool_round(
    cases: Sequence[CaseFiles],
    pending: list[int],
    context: CheckContext,
    workers: int,
    markers: str,
    results: dict[int, CaseResult],
    tick: Callable[[], None],
    worker: Worker,
) -> bool:
    """Run ``pending`` cases in one pool; True when the pool broke (a worker died)."""
    broken = False
    with _executor(workers) as pool:
        futures = {pool.submit(worker, i, cases[i], context, markers): i for i in pending}
        try:
            for future in as_completed(futures):
                index = futures[future]
                try:
                    results[index] = future.result()
                except BrokenProcessPool:
                    broken = True
                    continue
                except Exception as err:
                    results[index] = _failed(cases[index], f"{type(err).__name__}: {err}")
                tick()
        except BaseException:  # Ctrl-C, a failing progress callback: do not wait for the queued cases
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return broken


def _run_isolated(
    cases: Sequence[CaseFiles],
    indices: list[int],
    context: CheckContext,
    results: dict[int, CaseResult],
    tick: Callable[[], None],
    worker: Worker,
) -> None:
    """Check cases one at a time in a single worker, so a crash is pinned on the case that caused it."""
    pool: ProcessPoolExecutor | None = None
    try:
        for index in indices:
            pool = pool or _executor(1)
            try:
                results[index] = pool.submit(worker, index, cases[index], context).result()
            except BrokenProcessPool:
                pool.shutdown(wait=True)
                pool = None
                results[index] = _failed(
                    cases[index],
                    "the worker process reading it died (crashed or was killed for using too much memory)",
                )
            tick()
    finally:
        if pool is not None:
            pool.shutdown(wait=True)


def _failed(case: CaseFiles, reason: str) -> CaseResult:
    files = [p.name for _, p in case.images] + ([case.label.name] if case.label else [])
    return CaseResult(
        case.identifier,
        [
            error(
                f"checking this case failed: {reason}; files: {', '.join(files)}",
                "One of these files is probably corrupt: open each in a viewer and re-export the broken one. "
                "If the "
                "process ran out of memory, use fewer processes (-np).",
                case.identifier,
                case.images[0][1] if case.images else case.label,
            )
        ],
    )
