"""Checking a corrected case before it is added to its model's dataset (the annotation loop), without Slicer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoseg.dataset.export.annotated_slices import read_sidecar, write_sidecar
from autoseg.slicer_support.add_case import (
    AddCaseError,
    case_id_from_name,
    existing_case_ids,
    model_dataset_name,
    new_case_id,
    plan_add_case,
)

MODEL_JSON = {"channel_names": {"0": "T2", "1": "ADC"}, "labels": {"background": 0, "Liver": 1, "left kidney": 2},
              "numTraining": 12, "file_ending": ".nii.gz", "name": "Organs", "licence": "CC-BY"}


def _workspace(tmp_path: Path, model_json: dict | None = None, raw_json: dict | None = None,
               dataset: str = "Dataset042_Organs") -> tuple[Path, Path]:
    """(model folder, nnUNet_raw) of a workspace; the raw dataset exists when ``raw_json`` is given."""
    model = tmp_path / "nnUNet_results" / dataset / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    model.mkdir(parents=True)
    (model / "dataset.json").write_text(json.dumps(model_json or MODEL_JSON))
    raw = tmp_path / "nnUNet_raw"
    raw.mkdir()
    if raw_json is not None:
        (raw / dataset).mkdir()
        (raw / dataset / "dataset.json").write_text(json.dumps(raw_json))
    return model, raw


def _plan(model: Path, raw: Path, names=("liver", "Left  Kidney"), volume="case T2", volumes=2, **options):
    return plan_add_case(model, raw, list(names), volume, volumes, **options)


def test_a_missing_raw_dataset_is_created_from_the_model_s_dataset_json(tmp_path):
    model, raw = _workspace(tmp_path)
    plan = _plan(model, raw)
    assert plan.dataset_folder == raw / "Dataset042_Organs" and not plan.dataset_folder.exists()  # nothing written
    assert (plan.case_id, plan.labels, plan.file_ending) == ("case_T2", MODEL_JSON["labels"], ".nii.gz")
    assert plan.create_dataset() is True
    written = json.loads((plan.dataset_folder / "dataset.json").read_text())
    assert written == {**MODEL_JSON, "numTraining": 0}  # same labels, values, channels, ending; other keys kept
    assert plan.create_dataset() is False  # never rewritten
    assert _plan(model, raw).new_dataset_json is None


def test_segments_are_matched_by_name_and_unknown_names_are_all_listed(tmp_path):
    model, raw = _workspace(tmp_path)
    with pytest.raises(AddCaseError) as error:
        _plan(model, raw, names=["LIVER", "Kidney", "tumour", "background", "ignore"])
    message = str(error.value)
    assert "'Kidney', 'tumour' match no label of the model" in message
    assert "'Liver', 'left kidney'" in message  # the labels it has
    assert "'background'" in message and "'ignore'" in message and "nothing was written" in message
    assert not (raw / "Dataset042_Organs").exists()
    with pytest.raises(AddCaseError, match="both match the label 'Liver'"):
        _plan(model, raw, names=["liver", "Liver "])
    with pytest.raises(AddCaseError, match="no segments"):
        _plan(model, raw, names=[])
    _plan(model, raw, names=["liver"])  # a label without a segment is fine: background in this case


def test_the_raw_dataset_must_have_the_model_s_labels_and_channels(tmp_path):
    raw_json = {**MODEL_JSON, "labels": {"background": 0, "left kidney": 1, "Liver": 2, "spleen": 3},
                "channel_names": {"0": "T2"}}
    model, raw = _workspace(tmp_path, raw_json=raw_json)
    with pytest.raises(AddCaseError) as error:
        _plan(model, raw)
    message = str(error.value)
    assert "'Liver' is 2 (model: 1); 'left kidney' is 1 (model: 2)" in message
    assert "channels {'0': 'T2'}" in message
    # extra labels in the dataset (and an ignore label) are fine as long as the model's keep their values
    (raw / "Dataset042_Organs" / "dataset.json").write_text(json.dumps(
        {**MODEL_JSON, "labels": {**MODEL_JSON["labels"], "spleen": 3, "ignore": 4}}))
    assert _plan(model, raw).new_dataset_json is None


def test_another_dataset_with_the_model_s_id_is_refused(tmp_path):
    model, raw = _workspace(tmp_path)
    (raw / "Dataset042_Other").mkdir()
    with pytest.raises(AddCaseError, match="Dataset042_Other has its id"):
        _plan(model, raw)


def test_channels_regions_and_file_endings_are_checked(tmp_path):
    regions = {**MODEL_JSON, "labels": {"background": 0, "whole": [1, 2], "core": 2}, "regions_class_order": [1, 2]}
    model, raw = _workspace(tmp_path, regions)
    with pytest.raises(AddCaseError) as error:
        _plan(model, raw, names=["whole"], volumes=1)
    assert "region-based" in str(error.value) and "1 volume(s) were given" in str(error.value)
    png, raw2 = _workspace(tmp_path / "png", {**MODEL_JSON, "file_ending": ".png"})
    with pytest.raises(AddCaseError, match="'.png' cannot be written"):
        _plan(png, raw2)


def test_case_ids_are_made_from_the_volume_name_and_never_reused(tmp_path):
    assert case_id_from_name("CT chest (2)") == "CT_chest_2"
    assert case_id_from_name("  ../x:y ") == "x_y"
    assert case_id_from_name("***") == "case"
    assert case_id_from_name("patient_0001") == "patient-0001"  # not read as channel 1 of "patient"
    assert new_case_id("liver", ["liver", "LIVER_2"]) == "liver_3"
    assert new_case_id("a", [f"a_{n}" for n in range(2, 1000)] + ["a"]) == "a_10000"  # a_1000..a_9999: channels

    model, raw = _workspace(tmp_path, raw_json=MODEL_JSON)
    dataset = raw / "Dataset042_Organs"
    (dataset / "imagesTr").mkdir()
    (dataset / "labelsTr").mkdir()
    (dataset / "imagesTr" / "case_T2_0000.nii.gz").write_bytes(b"")
    (dataset / "imagesTr" / "case_T2_0001.nii.gz").write_bytes(b"")
    (dataset / "labelsTr" / "Case_T2_2.nii.gz").write_bytes(b"")  # another spelling: the same file on macOS
    (dataset / "labelsTr" / ".case_T2_3.nii.gz").write_bytes(b"")  # hidden: not a case
    assert existing_case_ids(dataset, ".nii.gz") == {"case_t2", "case_t2_2"}
    assert _plan(model, raw).case_id == "case_T2_3"
    assert _plan(model, raw, reserved=["case_T2_3"]).case_id == "case_T2_4"


def test_annotated_slices_are_checked_against_the_channel_0_volume(tmp_path):
    model, raw = _workspace(tmp_path)
    plan = _plan(model, raw, annotated_slices="k:10-20,35", shape_ijk=(64, 48, 40))
    assert (plan.annotated_slices.axis, plan.annotated_slices.slices) == ("K", (*range(10, 21), 35))
    sidecar = write_sidecar(tmp_path / "case.seg.nrrd", plan.annotated_slices.axis, plan.sidecar_slices())
    assert read_sidecar(sidecar).slices == plan.annotated_slices.slices
    assert _plan(model, raw, annotated_slices="J:auto", shape_ijk=(64, 48, 40)).sidecar_slices() == "auto"
    with pytest.raises(AddCaseError, match=r"slice\(s\) 40-45 along K are out of range: the volume has 40"):
        _plan(model, raw, annotated_slices="K:3,40-45", shape_ijk=(64, 48, 40))
    _plan(model, raw, annotated_slices="I:63", shape_ijk=(64, 48, 40))  # I is the first size
    with pytest.raises(AddCaseError, match="not one of I, J, K"):
        _plan(model, raw, annotated_slices="Z:3")
    with pytest.raises(AddCaseError, match="ends before it starts"):
        _plan(model, raw, annotated_slices="K:9-3")
    with pytest.raises(ValueError, match="not partially annotated"):
        _plan(model, raw).sidecar_slices()


def test_the_dataset_comes_from_the_model_folder_or_its_plans(tmp_path):
    folder = tmp_path / "installed" / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    folder.mkdir(parents=True)
    with pytest.raises(AddCaseError, match="Cannot tell which dataset"):
        model_dataset_name(folder)
    (folder / "plans.json").write_text(json.dumps({"dataset_name": "Dataset007_Prostate"}))
    assert model_dataset_name(folder) == "Dataset007_Prostate"
    assert model_dataset_name(tmp_path / "Dataset003_Liver" / "m__p__c") == "Dataset003_Liver"
    (folder / "dataset.json").write_text("{not json")
    with pytest.raises(AddCaseError, match="Cannot read the model's dataset.json"):
        plan_add_case(folder, tmp_path / "raw", ["a"], "v", 1)
