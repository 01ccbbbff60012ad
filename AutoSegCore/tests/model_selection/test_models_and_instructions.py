"""Model bookkeeping (names, order, skip reasons, cascade stages) and the inference instructions text."""

from __future__ import annotations

import json
import math

from selection_cases import CASES, DATASET, add_model, make_workspace

from autoseg.evaluation.summary import EvaluationSummary
from autoseg.model_selection.find_best import CandidateResult, ensemble_name, pick_best
from autoseg.model_selection.instructions import command_lines, inference_information, instructions_text
from autoseg.model_selection.models import (
    TrainedModel,
    candidate_models,
    folds_string,
    previous_stage_of,
    select_models,
)

A = TrainedModel("nnUNetTrainer", "nnUNetPlans", "2d")
B = TrainedModel("nnUNetTrainer", "nnUNetPlans", "3d_fullres")


def test_names_follow_nnunet():
    assert A.identifier == "nnUNetTrainer__nnUNetPlans__2d"
    assert TrainedModel.from_identifier("/x/nnUNetTrainer__nnUNetPlans__2d") == A
    assert folds_string([0, 1, 2, 3, 4]) == "0_1_2_3_4"
    assert (
        ensemble_name(A, B, (0, 1))
        == "ensemble___nnUNetTrainer__nnUNetPlans__2d___nnUNetTrainer__nnUNetPlans__3d_fullres___0_1"
    )
    models = candidate_models(["T1", "T2"], ["2d", "3d"], ["P1", "P2"])
    assert [m.identifier for m in models[:3]] == ["T1__P1__2d", "T1__P2__2d", "T1__P1__3d"] and len(models) == 8
    assert len(candidate_models(["T"], ["2d", "2d"], ["P"])) == 1


def _candidate(name: str, dice: float) -> CandidateResult:
    summary = EvaluationSummary([], {}, {"Dice": dice})
    return CandidateResult(name, None, summary, ())  # type: ignore[arg-type]


def test_pick_best_prefers_the_first_on_ties_and_ignores_nan():
    assert pick_best([_candidate("a", 0.5), _candidate("b", 0.7), _candidate("c", 0.7)]).identifier == "b"
    assert pick_best([_candidate("a", math.nan), _candidate("b", 0.1)]).identifier == "b"


def test_skip_reasons(tmp_path):
    workspace = make_workspace(tmp_path)
    add_model(workspace, "2d", CASES, folds=(0,))
    add_model(workspace, "3d_fullres", CASES)
    models = [
        A,
        B,
        TrainedModel("nnUNetTrainer", "nnUNetPlans", "3d_lowres"),
        TrainedModel("Other", "nnUNetPlans", "2d"),
        TrainedModel("nnUNetTrainer", "MissingPlans", "2d"),
    ]
    usable, skipped = select_models(models, workspace.results / DATASET, workspace.preprocessed / DATASET, (0, 1))
    assert usable == [B]
    reasons = {s.model.identifier: s.reason for s in skipped}
    assert reasons["nnUNetTrainer__nnUNetPlans__2d"].startswith("fold(s) 1 have no validation predictions")
    assert reasons["nnUNetTrainer__nnUNetPlans__3d_lowres"].startswith(
        "configuration 3d_lowres is not in plans nnUNetPlans"
    )
    assert reasons["Other__nnUNetPlans__2d"].startswith("not trained")
    assert reasons["nnUNetTrainer__MissingPlans__2d"].startswith("no plans MissingPlans")


def test_previous_stage_follows_inherits_from(tmp_path):
    plans = tmp_path / "plans.json"
    plans.write_text(json.dumps({"configurations": {
        "3d_lowres": {"next_stage": "3d_cascade_fullres"},
        "3d_cascade_fullres": {"inherits_from": "3d_fullres", "previous_stage": "3d_lowres"},
        "3d_cascade_custom": {"inherits_from": "3d_cascade_fullres"},
        "3d_fullres": {}}}))
    assert previous_stage_of(plans, "3d_cascade_fullres") == "3d_lowres"
    assert previous_stage_of(plans, "3d_cascade_custom") == "3d_lowres"
    assert previous_stage_of(plans, "3d_fullres") is None and previous_stage_of(plans, "3d_lowres") is None


def _information(selected, pp_file="/r/with space/postprocessing.pkl"):
    return inference_information("Dataset004_Hippocampus", [0, 1, 2, 3, 4], [A, B], True, {"x": 0.5}, selected, 0.5,
                                 0.6, pp_file, "/r/plans.json")


def test_cascade_member_predicts_its_previous_stage_first():
    cascade = TrainedModel("nnUNetTrainer", "nnUNetPlans", "3d_cascade_fullres")
    text = instructions_text(_information([A, cascade]), 8,
                             lambda m: "3d_lowres" if m.configuration == "3d_cascade_fullres" else None,
                             "/r/dataset.json")
    commands = command_lines(text)
    assert [c[1] for c in commands] == ["predict", "predict", "predict", "ensemble", "apply_postprocessing"]
    lowres, cascade_command = commands[1], commands[2]
    assert lowres[lowres.index("-c") + 1] == "3d_lowres" and "--save_probabilities" not in lowres
    assert lowres[lowres.index("-o") + 1] == "OUTPUT_FOLDER_MODEL_2_PREV_STAGE"
    assert cascade_command[cascade_command.index("-prev_stage_predictions") + 1] == "OUTPUT_FOLDER_MODEL_2_PREV_STAGE"
    assert cascade_command[-1] == "--save_probabilities"
    assert commands[3] == ["autoseg", "ensemble", "-i", "OUTPUT_FOLDER_MODEL_1", "OUTPUT_FOLDER_MODEL_2", "-o",
                           "OUTPUT_FOLDER", "-np", "8"]
    pp = commands[4]
    assert pp[pp.index("-pp_pkl_file") + 1] == "/r/with space/postprocessing.pkl"  # quoted in the text, one argument
    assert "'/r/with space/postprocessing.pkl'" in text


def test_single_model_instructions():
    text = instructions_text(_information([B]), 4, lambda m: None, "/r/dataset.json")
    assert "ensemble" not in text.split("***Once")[0]
    commands = command_lines(text)
    assert commands[0] == ["autoseg", "predict", "-d", "Dataset004_Hippocampus", "-i", "INPUT_FOLDER", "-o",
                           "OUTPUT_FOLDER", "-f", "0", "1", "2", "3", "4", "-tr", "nnUNetTrainer", "-c", "3d_fullres",
                           "-p", "nnUNetPlans"]
    assert commands[1][-2:] == ["-dataset_json", "/r/dataset.json"] and len(commands) == 2
