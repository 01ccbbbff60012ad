"""DatasetJson: loading, validation (every problem at once) and the label properties."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from autoseg.dataset.dataset_json import DatasetJson
from autoseg.dataset.json_rules import structure_problems
from autoseg.errors import DatasetError


def valid(**overrides: Any) -> dict[str, Any]:
    content: dict[str, Any] = {
        "channel_names": {"0": "T2", "1": "ADC"},
        "labels": {"background": 0, "PZ": 1, "TZ": 2},
        "numTraining": 32,
        "file_ending": ".nii.gz",
    }
    content.update(overrides)
    return {k: v for k, v in content.items() if v is not None}


def test_valid_plain_labels() -> None:
    dj = DatasetJson.from_dict(valid(description="kept"))
    assert dj.num_channels == 2 and dj.num_training == 32 and dj.file_ending == ".nii.gz"
    assert dj.all_labels == [0, 1, 2] and dj.foreground_labels == [1, 2]
    assert dj.declared_values == {0, 1, 2}
    assert dj.ignore_label is None and not dj.has_regions
    assert dj.to_dict()["description"] == "kept"


def test_legacy_modality_key_is_accepted() -> None:
    raw = valid(channel_names=None, modality={"0": "CT"})
    assert structure_problems(raw) == []
    assert DatasetJson.from_dict(raw).channel_names == {"0": "CT"}


def test_regions_and_ignore() -> None:
    raw = valid(
        labels={"background": 0, "whole": [1, 2, 3], "core": [2, 3], "enh": [3], "ignore": 4},
        regions_class_order=[1, 2, 3],
    )
    dj = DatasetJson.from_dict(raw)
    assert dj.has_regions and dj.regions_class_order == (1, 2, 3)
    assert dj.labels["enh"] == 3  # a one-value region is a plain label
    assert dj.foreground_regions == [(1, 2, 3), (2, 3), 3]
    assert dj.all_labels == [0, 1, 2, 3] and dj.ignore_label == 4 and dj.declared_values == {0, 1, 2, 3, 4}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ([1, 2], "top level must be a JSON object"),
        (valid(labels=None, numTraining=None), "missing required key(s): labels, numTraining"),
        (valid(channel_names=None), "missing required key(s): channel_names"),
        (valid(channel_names={}), '"channel_names" must be a non-empty object'),
        (valid(channel_names={"0": "T2", "2": "ADC"}), '"channel_names" keys must be "0", "1"'),
        (valid(channel_names={"0": 5}), '"channel_names" values must be strings'),
        (valid(numTraining="32"), '"numTraining" must be an integer'),
        (valid(numTraining=True), '"numTraining" must be an integer'),
        (valid(file_ending="nii.gz"), '"file_ending" must be a string starting with a dot'),
        (valid(labels={}), '"labels" must be a non-empty object'),
        (valid(labels={"background": 0, "a": 1.5}), 'label "a" must be an integer or a list'),
        (valid(labels={"a": 1, "b": 0}), '"labels" must contain "background": 0'),
        (valid(labels={"background": 1, "a": 0}), '"background" must be 0'),
        (valid(labels={"background": 0, "a": 2}), "consecutive integers starting at 0, found [0, 2]"),
        (
            valid(labels={"background": 0, "a": 1, "ignore": [2]}),
            'the "ignore" label must be a single integer',
        ),
        (valid(labels={"background": 0, "ignore": 1, "a": 2}), '"ignore" label must be the highest value, 3'),
        (valid(labels={"background": 0, "a": [1, 2], "b": 2}), 'need "regions_class_order"'),
        (
            valid(labels={"background": 0, "a": [1, 2], "b": 2}, regions_class_order=[1]),
            "has 1 entries but there are 2",
        ),
        (valid(dataset=[1]), '"dataset" must map case ids'),
        (valid(dataset={"c1": {"images": ["a_0000.nii.gz"]}}), "malformed entries: c1"),
    ],
)
def test_each_problem_is_described(raw: Any, expected: str) -> None:
    problems = structure_problems(raw)
    assert any(expected in p for p in problems), problems
    with pytest.raises(DatasetError, match="malformed"):
        DatasetJson.from_dict(raw)


def test_all_problems_are_listed_at_once() -> None:
    raw = valid(numTraining="x", file_ending="nii", labels={"background": 0, "a": 3})
    problems = structure_problems(raw)
    assert len(problems) == 3, problems
    with pytest.raises(DatasetError) as raised:
        DatasetJson.from_dict(raw, source=Path("/x/dataset.json"))
    assert "/x/dataset.json is malformed" in str(raised.value)
    assert all(p in str(raised.value) for p in problems)


def test_load_file(tmp_path: Path) -> None:
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps(valid()), encoding="utf-8")
    dj = DatasetJson.load(path)
    assert dj.source == path and dj.labels == {"background": 0, "PZ": 1, "TZ": 2}


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        DatasetJson.load(tmp_path / "dataset.json")


def test_load_invalid_json(tmp_path: Path) -> None:
    path = tmp_path / "dataset.json"
    path.write_text('{"labels": {"background": 0,}}', encoding="utf-8")
    with pytest.raises(DatasetError, match="not valid JSON: .* line 1"):
        DatasetJson.load(path)
