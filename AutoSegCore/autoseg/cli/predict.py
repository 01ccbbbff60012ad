"""``autoseg predict`` (nnUNetv2_predict) and ``autoseg predict_from_modelfolder``.

Same flags as nnU-Net: the model by ``-d/-c/-tr/-p`` (or ``-m FOLDER``), ``-f``, ``-chk``,
``-step_size``, ``--disable_tta``, ``--save_probabilities``, ``--continue_prediction``, ``-device``,
``-prev_stage_predictions``, ``-num_parts/-part_id``; ``-npp/-nps`` are accepted (AutoSeg reads and
writes in background threads of the one process instead of separate worker processes).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from autoseg.cli.common import (
    DATASET_HELP,
    add_dataset,
    add_device,
    add_engine,
    add_flag,
    workspace_from_environment,
)

if TYPE_CHECKING:
    from autoseg.inference.progress_file import PredictionProgressFile

logger = logging.getLogger(__name__)


def _add_common(parser: argparse.ArgumentParser) -> None:
    _add_input_output_flags(parser)
    _add_runtime_flags(parser)


def _add_input_output_flags(parser: argparse.ArgumentParser) -> None:
    """What to predict with which folds, and what to write."""
    add_flag(parser, "-i", required=True, dest="input", metavar="FOLDER",
             help="input folder: one file per channel, named CASE_0000<file_ending> ... (as imagesTs)")
    add_flag(parser, "-o", required=True, dest="output", metavar="FOLDER",
             help="output folder (created if needed); predictions are CASE<file_ending>")
    add_flag(parser, "-f", nargs="+", default=None, dest="folds", metavar="FOLD",
             help="folds to ensemble, e.g. 0 1 2 3 4 or all (default: every fold that has the checkpoint)")
    add_flag(parser, "-chk", default="checkpoint_final.pth", dest="checkpoint", metavar="NAME",
             help="checkpoint file in each fold folder (default checkpoint_final.pth)")
    add_flag(parser, "-model_version", type=int, default=None, metavar="N",
             help="predict with version N of a model updated with --update (default: the newest; the same as "
                  "-chk versions/vN/checkpoint_final.pth)")
    add_flag(parser, "-prev_stage_predictions", default=None, metavar="FOLDER",
             help="3d_cascade_fullres only: folder with the 3d_lowres predictions of the same cases")
    parser.add_argument("--save_probabilities", action="store_true",
                        help="also write CASE.npz (key 'probabilities') and the case properties (.json, .pkl), "
                             "for ensembling")
    parser.add_argument("--continue_prediction", "--c", action="store_true",
                        help="skip cases whose outputs already exist (resume an interrupted run)")
    add_flag(parser, "-num_parts", type=int, default=1, metavar="N",
             help="split the cases into N parts (for several GPUs/jobs)")
    add_flag(parser, "-part_id", type=int, default=0, metavar="K", help="which part this run predicts (0 ... N-1)")
    add_flag(parser, "-progress_file", default=None, metavar="FILE",
             help="also write progress as JSON lines to FILE (start, window, case, end, error events; for the "
                  "Slicer module and scripts)")


def _add_runtime_flags(parser: argparse.ArgumentParser) -> None:
    """How the prediction runs: sliding window, test-time augmentation, device, precision, output."""
    add_flag(parser, "-step_size", type=float, default=0.5, metavar="S",
             help="sliding-window step as a fraction of the patch size (default 0.5; larger is faster, less accurate)")
    parser.add_argument("--disable_tta", action="store_true",
                        help="no mirroring test-time augmentation (up to 8x faster, slightly less accurate)")
    add_flag(parser, "-npp", type=int, default=3, metavar="N",
             help="accepted for nnU-Net compatibility (reading runs in a background thread)")
    add_flag(parser, "-nps", type=int, default=3, metavar="N",
             help="accepted for nnU-Net compatibility (writing runs in a background thread)")
    add_device(parser)
    add_engine(parser)
    parser.add_argument("--not_on_device", action="store_true",
                        help="keep the aggregated logits in CPU memory, not on the GPU (for cases too large for it)")
    add_flag(parser, "-num_threads", type=int, default=None, metavar="N",
             help="CPU threads for the network (default: all cores)")
    add_flag(parser, "-precision", choices=("fp32", "bf16"), default="fp32",
             help="CPU network precision: fp32 (default, as nnU-Net) or bf16 (faster on CPUs with native bfloat16)")
    parser.add_argument("--verbose", action="store_true", help="print details")
    parser.add_argument("--disable_progress_bar", "--no_pbar", action="store_true", dest="no_pbar",
                        help="hide the progress bar")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="predict new cases with a trained model (nnU-Net v2 or AutoSeg)",
        description="Sliding-window prediction of every case in -i with a trained model, written to -o in each "
        "input's exact geometry. The model is nnUNet_results/DatasetXXX/<tr>__<p>__<c> given by -d/-c/-tr/-p, "
        "or any results folder given by -m (nnU-Net v2 models work unchanged).",
    )
    _add_common(parser)
    add_dataset(parser, "-d", required=False, help=DATASET_HELP + " (with -c)")
    add_flag(
        parser,
        "-c",
        dest="configuration",
        metavar="CONFIG",
        help="configuration: 2d, 3d_fullres, 3d_lowres, 3d_cascade_fullres",
    )
    add_flag(
        parser,
        "-p",
        dest="plans",
        default="nnUNetPlans",
        metavar="PLANS",
        help="plans identifier (default nnUNetPlans)",
    )
    add_flag(
        parser,
        "-tr",
        dest="trainer",
        default="nnUNetTrainer",
        metavar="TRAINER",
        help="trainer name (default nnUNetTrainer)",
    )
    add_flag(
        parser,
        "-m",
        dest="model_folder",
        default=None,
        metavar="FOLDER",
        help="a results folder (instead of -d/-c/-tr/-p)",
    )
    parser.set_defaults(func=run)

    alias = subparsers.add_parser(
        "predict_from_modelfolder",
        help="predict with a results folder given by -m (same as predict -m)",
        description="nnUNetv2_predict_from_modelfolder: `autoseg predict -m FOLDER` under nnU-Net's name.",
    )
    _add_common(alias)
    add_flag(alias, "-m", dest="model_folder", required=True, metavar="FOLDER", help="the model's results folder")
    alias.set_defaults(func=run, dataset=None, configuration=None, plans="nnUNetPlans", trainer="nnUNetTrainer")


def _model_path(args: argparse.Namespace) -> Path:
    from autoseg.errors import AutoSegError
    from autoseg.inference.model_folder import model_folder_path

    if args.model_folder:
        if args.dataset or args.configuration:
            raise AutoSegError("Give either -m FOLDER or -d/-c (with -tr/-p), not both.")
        return Path(args.model_folder)
    if not args.dataset or not args.configuration:
        raise AutoSegError(
            "Which model? Give -d DATASET -c CONFIGURATION (and -tr/-p if not the defaults), or -m FOLDER."
        )
    return model_folder_path(workspace_from_environment(), args.dataset, args.configuration, args.trainer, args.plans)


def run(args: argparse.Namespace) -> int:
    if not args.progress_file:
        return _run(args, None)
    from autoseg.inference.progress_file import PredictionProgressFile

    progress_file = PredictionProgressFile(args.progress_file)
    try:
        return _run(args, progress_file)
    except KeyboardInterrupt:
        progress_file.fail("interrupted")
        raise
    except Exception as err:
        progress_file.fail(str(err) or type(err).__name__)
        raise


def _run(args: argparse.Namespace, progress_file: PredictionProgressFile | None) -> int:
    from tqdm import tqdm

    from autoseg.inference.engine_choice import choose_engine
    from autoseg.inference.model_folder import open_model_folder
    from autoseg.inference.predict_folder import predict_folder
    from autoseg.inference.predictor import PredictionSettings, Predictor

    engine = choose_engine(args.engine, args.device)  # before reading the model: say early what is missing
    checkpoint = args.checkpoint
    if args.model_version is not None:
        from autoseg.inference.model_versions import checkpoint_name_for_version

        checkpoint = checkpoint_name_for_version(Path(_model_path(args)), args.model_version)
    model = open_model_folder(_model_path(args), args.folds, checkpoint)
    settings = PredictionSettings(step_size=args.step_size, use_mirroring=not args.disable_tta,
                                  device=engine.device, engine=engine.engine, num_threads=args.num_threads,
                                  perform_everything_on_device=not args.not_on_device,
                                  precision=args.precision)
    predictor = Predictor(model, settings)
    logger.info("Model %s (%s, folds %s) on %s%s.", model.path, model.configuration_name,
                ", ".join(str(f.fold) for f in model.folds), predictor.device,
                ", mirroring TTA" if predictor.mirror_axes else "")
    bar = tqdm(total=0, unit="case", disable=args.no_pbar, dynamic_ncols=True, desc="Predicting")
    state = {"case": -1}

    def progress(case_index: int, num_cases: int, identifier: str, done: int, total: int) -> None:
        bar.total = num_cases
        if case_index != state["case"]:
            state["case"] = case_index
            bar.n = case_index
        bar.set_postfix_str(f"{identifier}: window {done}/{total}", refresh=False)
        if done == total:
            bar.n = case_index + 1
        bar.refresh()
        if progress_file is not None:
            progress_file.window(case_index, num_cases, identifier, done, total)

    start = time.perf_counter()
    try:
        predicted = predict_folder(
            predictor, Path(args.input), Path(args.output), args.save_probabilities, args.continue_prediction,
            Path(args.prev_stage_predictions) if args.prev_stage_predictions else None,
            args.num_parts, args.part_id, progress,
        )
    finally:
        bar.close()
    if progress_file is not None:
        progress_file.finish(len(predicted))
    logger.info("Predicted %d case(s) into %s in %.1f s.", len(predicted), args.output, time.perf_counter() - start)
    return 0
