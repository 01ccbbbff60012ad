"""``inference_information.json`` and ``inference_instructions.txt``: how to predict with the chosen model(s).

The JSON has nnU-Net's schema (``folds``, ``dataset_name_or_id``, ``considered_models``,
``ensembling_allowed``, ``all_results``, ``best_model_or_ensemble`` with ``selected_model_or_models``,
``postprocessing_file``, ``some_plans_file`` and the Dice before/after postprocessing), so either tool
can read the other's. The instructions are the exact ``autoseg`` commands to run, with the placeholders
``INPUT_FOLDER``, ``OUTPUT_FOLDER`` (and ``OUTPUT_FOLDER_MODEL_<k>``, ``OUTPUT_FOLDER_PREV_STAGE...``,
``OUTPUT_FOLDER_PP``) for the user's folders. A cascade member is preceded by the prediction of its
previous stage.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from autoseg.model_selection.models import TrainedModel

INPUT_PLACEHOLDER = "INPUT_FOLDER"
OUTPUT_PLACEHOLDER = "OUTPUT_FOLDER"
POSTPROCESSED_PLACEHOLDER = "OUTPUT_FOLDER_PP"

#: ``previous_stage(model) -> configuration name or None`` (from the model's plans.json)
PreviousStage = Callable[[TrainedModel], "str | None"]


def inference_information(
    dataset_name: str,
    folds: Sequence[int | str],
    considered: Sequence[TrainedModel],
    ensembling_allowed: bool,
    all_results: Mapping[str, float],
    selected: Sequence[TrainedModel],
    result_pre_pp: float,
    result_post_pp: float,
    postprocessing_file: Path,
    plans_file: Path,
) -> dict[str, Any]:
    """The content of ``inference_information.json`` (nnU-Net's keys and nesting)."""
    return {
        "folds": list(folds),
        "dataset_name_or_id": dataset_name,
        "considered_models": [m.considered_json() for m in considered],
        "ensembling_allowed": bool(ensembling_allowed),
        "all_results": dict(all_results),
        "best_model_or_ensemble": {
            "result_on_crossval_pre_pp": result_pre_pp,
            "result_on_crossval_post_pp": result_post_pp,
            "postprocessing_file": str(postprocessing_file),
            "some_plans_file": str(plans_file),
            "selected_model_or_models": [m.selected_json() for m in selected],
        },
    }


def selected_models(information: Mapping[str, Any]) -> list[TrainedModel]:
    """The chosen model(s) of an ``inference_information.json`` document."""
    return [
        TrainedModel(entry["trainer"], entry["plans_identifier"], entry["configuration"])
        for entry in information["best_model_or_ensemble"]["selected_model_or_models"]
    ]


def _join(arguments: Sequence[str | Path]) -> str:
    return " ".join(shlex.quote(str(a)) for a in arguments)


def predict_commands(
    dataset: str,
    model: TrainedModel,
    folds: Sequence[int | str],
    output_folder: str,
    save_probabilities: bool,
    previous_stage: PreviousStage,
    input_folder: str = INPUT_PLACEHOLDER,
) -> list[str]:
    """``autoseg predict`` for ``model``; for a cascade, first the previous stage's prediction."""
    commands: list[str] = []
    arguments: list[str | Path] = ["autoseg", "predict", "-d", dataset, "-i", input_folder, "-o", output_folder,
                                   "-f", *[str(f) for f in folds], "-tr", model.trainer, "-c", model.configuration,
                                   "-p", model.plans]
    stage = previous_stage(model)
    if stage:
        stage_output = f"{output_folder}_PREV_STAGE"
        stage_model = TrainedModel(model.trainer, model.plans, stage)
        commands += predict_commands(dataset, stage_model, folds, stage_output, False, previous_stage, input_folder)
        arguments += ["-prev_stage_predictions", stage_output]
    if save_probabilities:
        arguments.append("--save_probabilities")
    commands.append(_join(arguments))
    return commands


def instructions_text(information: Mapping[str, Any], num_processes: int, previous_stage: PreviousStage,
                      dataset_json_file: Path) -> str:
    """The text of ``inference_instructions.txt`` for an ``inference_information.json`` document."""
    best = information["best_model_or_ensemble"]
    models = selected_models(information)
    dataset = str(information["dataset_name_or_id"])
    folds = information["folds"]
    is_ensemble = len(models) > 1
    lines = ["***Run inference like this:***", ""]
    if is_ensemble:
        lines += ["An ensemble won! Predict with each member (keeping the probabilities):", ""]
    outputs: list[str] = []
    for index, model in enumerate(models, start=1):
        output = f"{OUTPUT_PLACEHOLDER}_MODEL_{index}" if is_ensemble else OUTPUT_PLACEHOLDER
        outputs.append(output)
        lines += predict_commands(dataset, model, folds, output, is_ensemble, previous_stage)
    if is_ensemble:
        lines += ["", "Then ensemble the members' predictions with:", "",
                  _join(["autoseg", "ensemble", "-i", *outputs, "-o", OUTPUT_PLACEHOLDER, "-np", str(num_processes)])]
    lines += ["", "***Once inference is completed, run postprocessing like this:***", "",
              _join(["autoseg", "apply_postprocessing", "-i", OUTPUT_PLACEHOLDER, "-o", POSTPROCESSED_PLACEHOLDER,
                     "-pp_pkl_file", best["postprocessing_file"], "-np", str(num_processes),
                     "-plans_json", best["some_plans_file"], "-dataset_json", dataset_json_file])]
    return "\n".join(lines) + "\n"


def command_lines(text: str) -> list[list[str]]:
    """The commands of an instructions text, each split into its arguments (for scripts and tests)."""
    return [shlex.split(line) for line in text.splitlines() if line.startswith("autoseg ")]
