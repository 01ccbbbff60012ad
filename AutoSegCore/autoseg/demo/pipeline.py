"""``run_demo``: the whole pipeline on the generated phantom dataset, timed step by step.

generate -> plan and preprocess -> train fold 0 (and validate) -> predict the held-out cases -> evaluate ->
postprocess (determined on the validation cases) -> evaluate -> overlay PNG. Each step reuses what an earlier
run in the same folder finished; ``fresh`` removes the demo's own files first (nothing else in the folder).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from autoseg.demo import stages
from autoseg.demo.layout import DemoPaths, shown
from autoseg.demo.settings import DATASET_NAME, STATE_FILE, DemoSettings, check_workspace_settings
from autoseg.evaluation.summary import EvaluationSummary


@dataclass
class DemoResult:
    """What the demo produced and how long each step took (seconds)."""

    paths: DemoPaths
    settings: DemoSettings
    model_folder: Path
    predictions: Path
    final_predictions: Path
    overlay: Path
    summary: EvaluationSummary  # held-out cases, after postprocessing
    summary_before_postprocessing: EvaluationSummary
    label_names: dict
    timings: dict[str, float] = field(default_factory=dict)
    reused: list[str] = field(default_factory=list)

    @property
    def foreground_mean_dice(self) -> float:
        return float(self.summary.foreground_mean["Dice"])


def remove_demo_files(root: Path) -> None:
    """Delete what ``autoseg demo`` made under ``root`` (its dataset in the three folders, predictions, PNGs)."""
    paths = DemoPaths(Path(root))
    workspace = paths.workspace
    for folder in (workspace.raw / DATASET_NAME, workspace.raw / f".{DATASET_NAME}.partial",
                   workspace.preprocessed / DATASET_NAME, workspace.results / DATASET_NAME,
                   paths.predictions, paths.postprocessed):
        shutil.rmtree(folder, ignore_errors=True)
    for png in paths.root.glob("overlay_*.png"):
        png.unlink()
    (paths.root / STATE_FILE).unlink(missing_ok=True)


def run_demo(
    root: Path,
    settings: DemoSettings,
    device: str = "cpu",
    num_processes: int | None = None,
    fresh: bool = False,
    say: Callable[[str], None] = print,
    progress_factory=None,
    progress_bar: bool = True,
) -> DemoResult:
    """Run (or finish) the demo in ``root``; ``progress_factory(description)`` gives progress-bar contexts."""
    root = Path(root).resolve()
    if fresh:
        say(f"--fresh: removing the demo's earlier files in {root}.")
        remove_demo_files(root)
    root.mkdir(parents=True, exist_ok=True)
    check_workspace_settings(root, settings)
    paths = DemoPaths(root)
    say(f"AutoSeg demo in {shown(root)} (the commands quoted below are what each step equals, with "
        f"nnUNet_raw, nnUNet_preprocessed and nnUNet_results set to the folders there).")
    timings: dict[str, float] = {}
    reused: list[str] = []

    @contextmanager
    def step(name: str) -> Iterator[None]:
        say(f"\n== {name}")
        start = time.perf_counter()
        yield
        timings[name] = time.perf_counter() - start

    with step("dataset"):
        if stages.ensure_dataset(paths, settings, say, progress_factory):
            reused.append("dataset")
    with step("plan and preprocess"):
        if stages.ensure_preprocessed(paths, settings, say, num_processes, progress_factory):
            reused.append("preprocessed data")
    with step("training"):
        model_is_new = not stages.ensure_trained(paths, settings, say, device, progress_bar)
        if not model_is_new:
            reused.append("trained model")
    with step("prediction"):
        stages.predict_test_cases(paths, settings, say, device, progress_factory, model_is_new)
    with step("evaluation and postprocessing"):
        before, names = stages.evaluate_predictions(paths, paths.predictions, num_processes)
        final_folder = stages.postprocess(paths, settings, say, num_processes, model_is_new)
        after, _ = stages.evaluate_predictions(paths, final_folder, num_processes)
    with step("overlay"):
        _, test_cases = settings.dataset.case_names()
        overlay = stages.save_overlay(paths, final_folder, test_cases[0])
        say(f"Saved {shown(overlay)}: held-out case {test_cases[0]}, its final segmentation over the image.")
    return DemoResult(
        paths=paths, settings=settings, model_folder=paths.model_folder(settings.trainer),
        predictions=paths.predictions, final_predictions=final_folder, overlay=overlay, summary=after,
        summary_before_postprocessing=before, label_names=names, timings=timings, reused=reused,
    )

