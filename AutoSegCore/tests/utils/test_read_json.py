import pytest

from autoseg.errors import PlanError
from autoseg.utils.files import read_json


def test_read_json_returns_the_document(tmp_path):
    path = tmp_path / "plans.json"
    path.write_text('{"a": [1, 2]}', encoding="utf-8")
    assert read_json(path, PlanError) == {"a": [1, 2]}


def test_read_json_names_the_file_and_the_problem(tmp_path):
    path = tmp_path / "plans.json"
    path.write_text('{"a": ', encoding="utf-8")
    with pytest.raises(PlanError, match=r"^Plans file .*plans.json is not valid JSON \(.*\); re-run planning\.$"):
        read_json(path, PlanError, f"Plans file {path}", tail="; re-run planning.")
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(PlanError, match=r"plans.json is not valid JSON \(.*\)\.$"):
        read_json(path, PlanError)
