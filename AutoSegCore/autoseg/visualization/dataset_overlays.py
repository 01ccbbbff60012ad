"""One overlay PNG per training case of a dataset, from the raw or the preprocessed data.

``nnUNetv2_plot_overlay_pngs`` semantics: ``OUTPUT/{case}.png`` shows one channel (``channel_index``)
with the labels on the slice with the most foreground; voxel spacing is ignored. Raw data is read with
the dataset's image reader; preprocessed data (AutoSeg's ``.npy`` case files) from the configuration's
``data_identifier`` folder.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from autoseg.errors import VisualizationError
from autoseg.paths import Workspace
from autoseg.typing import ProgressCallback
from autoseg.visualization.overlay import DEFAULT_ALPHA, save_overlay_png


def _raw_case_overlay(image_file: str, seg_file: str, reader_name: str, output_file: str, alpha: float) -> str:
    from autoseg.imageio.registry import reader_writer_class_by_name

    reader = reader_writer_class_by_name(reader_name)()
    image, _ = reader.read_images([image_file])
    segmentation, _ = reader.read_seg(seg_file)
    if image.shape[1:] != segmentation.shape[1:]:
        raise VisualizationError(
            f"{image_file} ({image.shape[1:]}) and {seg_file} ({segmentation.shape[1:]}) do not have the same shape."
        )
    return str(save_overlay_png(image[0], segmentation[0], output_file, alpha=alpha))


def _preprocessed_case_overlay(folder: str, identifier: str, channel_index: int, output_file: str, alpha: float) -> str:
    from autoseg.preprocessing.storage import load_case

    data, seg, _ = load_case(Path(folder), identifier)
    if channel_index >= data.shape[0]:
        raise VisualizationError(
            f"Channel index {channel_index} does not exist: {folder}/{identifier} has {data.shape[0]} channel(s)."
        )
    return str(save_overlay_png(data[channel_index], seg[0], output_file, alpha=alpha))


def overlays_from_raw(
    workspace: Workspace,
    dataset: str | int,
    output_folder: str | Path,
    num_processes: int | None = None,
    channel_index: int = 0,
    alpha: float = DEFAULT_ALPHA,
    progress: ProgressCallback | None = None,
) -> list[Path]:
    """Overlay PNGs of every training case of the raw dataset; returns the files written."""
    _check_alpha(alpha)
    from autoseg.dataset.cases import training_cases
    from autoseg.dataset.dataset_json import DatasetJson
    from autoseg.planning.move_plans import raw_dataset_reader_writer_name

    folder = workspace.raw_dataset(dataset)
    dataset_json = DatasetJson.load(folder / "dataset.json")
    if not 0 <= channel_index < dataset_json.num_channels:
        raise VisualizationError(
            f"Channel index {channel_index} does not exist: {folder.name} has {dataset_json.num_channels} channel(s) "
            f"({', '.join(dataset_json.channel_names.values())})."
        )
    cases = training_cases(folder, dataset_json)
    if not cases:
        raise VisualizationError(f"{folder} has no training cases to plot.")
    missing = [str(p) for c in cases.values() for p in (c.images[channel_index], c.label) if not p.is_file()]
    if missing:
        raise VisualizationError(f"{len(missing)} file(s) of {folder.name} are missing, e.g. {missing[0]}.")
    output = Path(output_folder)
    output.mkdir(parents=True, exist_ok=True)
    reader_name = raw_dataset_reader_writer_name(folder)
    tasks = [(str(c.images[channel_index]), str(c.label), reader_name, str(output / f"{k}.png"), alpha)
             for k, c in cases.items()]
    return _run(_raw_case_overlay, tasks, num_processes, progress)


def overlays_from_preprocessed(
    workspace: Workspace,
    dataset: str | int,
    output_folder: str | Path,
    num_processes: int | None = None,
    channel_index: int = 0,
    configuration: str | None = None,
    plans_identifier: str = "nnUNetPlans",
    alpha: float = DEFAULT_ALPHA,
    progress: ProgressCallback | None = None,
) -> list[Path]:
    """Overlay PNGs of every preprocessed case of a configuration (default 3d_fullres, else 2d)."""
    _check_alpha(alpha)
    from autoseg.plans.model import Plans
    from autoseg.preprocessing.storage import list_cases

    dataset_folder = workspace.preprocessed_dataset(dataset)
    plans = Plans.load(dataset_folder / f"{plans_identifier}.json")
    if configuration is None:
        configuration = "3d_fullres" if "3d_fullres" in plans.configurations else "2d"
    folder = dataset_folder / plans.configuration(configuration).data_identifier
    cases = list_cases(folder) if folder.is_dir() else []
    if not cases:
        nnunet_files = folder.is_dir() and (any(folder.glob("*.b2nd")) or any(folder.glob("*.npz")))
        hint = (
            " It holds nnU-Net's preprocessed format; re-run `autoseg preprocess` or plot the raw data with --use_raw."
            if nnunet_files
            else f" Run `autoseg preprocess -d {dataset} -c {configuration}` first, or plot the raw data with "
            f"--use_raw."
        )
        raise VisualizationError(f"No preprocessed {configuration} cases in {folder}.{hint}")
    output = Path(output_folder)
    output.mkdir(parents=True, exist_ok=True)
    tasks = [(str(folder), k, channel_index, str(output / f"{k}.png"), alpha) for k in cases]
    return _run(_preprocessed_case_overlay, tasks, num_processes, progress)


def _check_alpha(alpha: float) -> None:
    if not 0.0 <= alpha <= 1.0:
        raise VisualizationError(f"The overlay intensity (opacity) must be between 0 and 1, got {alpha}.")


def _run(
    function: Callable[..., str], tasks: list[tuple], num_processes: int | None, progress: ProgressCallback | None
) -> list[Path]:
    from autoseg.utils.parallel import choose_num_workers, run_tasks

    workers = choose_num_workers(num_processes, num_tasks=len(tasks))
    names = [Path(t[3]).stem for t in tasks]
    return [Path(p) for p in run_tasks(function, tasks, workers, progress, task_names=names)]
