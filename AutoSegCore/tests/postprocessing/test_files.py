"""postprocessing.json / postprocessing.pkl: round trips, nnU-Net's forms, and refusal of foreign code."""

from __future__ import annotations

import io
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from autoseg.errors import PostprocessingError, UnsafeFileError
from autoseg.postprocessing.files import load_postprocessing, save_postprocessing
from autoseg.postprocessing.nnunet_pickle import (
    NNUNET_FUNCTION,
    NNUNET_MODULE,
    _GlobalReference,
    _ReferencePickler,
    steps_to_pickle_bytes,
)
from autoseg.postprocessing.steps import PostprocessingStep

STEPS = [PostprocessingStep([1, 2, 3]), PostprocessingStep(2), PostprocessingStep((1, 2)),
         PostprocessingStep([(2, 3), 1]), PostprocessingStep(1, background_label=4)]


def _nnunet_style_pickle(functions: list, kwargs: list) -> bytes:
    stream = io.BytesIO()
    _ReferencePickler(stream, protocol=4).dump((functions, kwargs))
    return stream.getvalue()


def test_json_and_pickle_round_trip(tmp_path: Path) -> None:
    json_file, pickle_file = save_postprocessing(STEPS, tmp_path, {"input_folder": {"foreground_mean": {"Dice": 0.5}}})
    assert load_postprocessing(json_file) == STEPS
    assert load_postprocessing(pickle_file) == STEPS
    assert load_postprocessing(tmp_path) == STEPS  # a folder: its postprocessing.json
    document = json.loads(json_file.read_text())
    assert document["input_folder"]["foreground_mean"]["Dice"] == 0.5
    assert document["postprocessing_fns"] == [NNUNET_FUNCTION] * len(STEPS)
    # nnU-Net's JSON form of the kwargs: tuples become lists
    assert document["postprocessing_kwargs"][:4] == [
        {"labels_or_regions": [1, 2, 3]}, {"labels_or_regions": 2}, {"labels_or_regions": [1, 2]},
        {"labels_or_regions": [[2, 3], 1]}]
    assert document["postprocessing_kwargs"][4] == {"labels_or_regions": 1, "background_label": 4}
    assert document["steps"][2]["labels_or_regions"] == "(1, 2)"


def test_pickle_has_nnunets_structure_and_function_reference() -> None:
    data = steps_to_pickle_bytes(STEPS[:3])
    assert NNUNET_MODULE.encode() in data and NNUNET_FUNCTION.encode() in data
    assert b"autoseg" not in data  # nothing of ours: nnU-Net can load it without AutoSeg installed

    class Finder(pickle.Unpickler):
        def find_class(self, module: str, name: str):  # what plain pickle.load would import
            assert (module, name) == (NNUNET_MODULE, NNUNET_FUNCTION)
            return "nnunet-function"

    functions, kwargs = Finder(io.BytesIO(data)).load()
    assert functions == ["nnunet-function"] * 3
    assert kwargs == [{"labels_or_regions": [1, 2, 3]}, {"labels_or_regions": 2}, {"labels_or_regions": (1, 2)}]


def test_reads_nnunets_pickle_with_numpy_integers(tmp_path: Path) -> None:
    reference = _GlobalReference(NNUNET_MODULE, NNUNET_FUNCTION)
    data = _nnunet_style_pickle(
        [reference, reference],
        [{"labels_or_regions": [np.int64(1), np.int64(2)]}, {"labels_or_regions": np.int64(2)}],
    )
    path = tmp_path / "postprocessing.pkl"
    path.write_bytes(data)
    assert load_postprocessing(path) == [PostprocessingStep([1, 2]), PostprocessingStep(2)]
    path.write_bytes(_nnunet_style_pickle([], []))
    assert load_postprocessing(path) == []


def test_reads_nnunets_postprocessing_json(tmp_path: Path) -> None:
    path = tmp_path / "postprocessing.json"
    path.write_text(json.dumps({
        "input_folder": {}, "postprocessed": {},
        "postprocessing_fns": [NNUNET_FUNCTION, NNUNET_FUNCTION],
        "postprocessing_kwargs": [{"labels_or_regions": [1, 2]}, {"labels_or_regions": 1}],
    }))
    assert load_postprocessing(path) == [PostprocessingStep([1, 2]), PostprocessingStep(1)]


class _SystemCall:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_pickle_calling_os_system_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "postprocessing.pkl"
    path.write_bytes(pickle.dumps(([_SystemCall(f"touch {marker}")], [{}])))
    with pytest.raises(UnsafeFileError, match=r"posix\.system|os\.system"):
        load_postprocessing(path)
    assert not marker.exists()


def test_unknown_nnunet_function_is_refused(tmp_path: Path) -> None:
    other = _GlobalReference(NNUNET_MODULE, "apply_postprocessing")
    path = tmp_path / "postprocessing.pkl"
    path.write_bytes(_nnunet_style_pickle([other], [{"labels_or_regions": 1}]))
    with pytest.raises(UnsafeFileError, match="apply_postprocessing"):
        load_postprocessing(path)


def test_malformed_files_give_clear_errors(tmp_path: Path) -> None:
    reference = _GlobalReference(NNUNET_MODULE, NNUNET_FUNCTION)
    path = tmp_path / "postprocessing.pkl"
    path.write_bytes(_nnunet_style_pickle([reference], [{"labels_or_regions": 1, "verbose": True}]))
    with pytest.raises(PostprocessingError, match="verbose"):
        load_postprocessing(path)
    path.write_bytes(_nnunet_style_pickle([reference, reference], [{"labels_or_regions": 1}]))
    with pytest.raises(PostprocessingError, match="2 function"):
        load_postprocessing(path)
    path.write_bytes(pickle.dumps({"not": "a pair"}))
    with pytest.raises(PostprocessingError, match="pair"):
        load_postprocessing(path)
    path.write_bytes(b"garbage")
    with pytest.raises(UnsafeFileError, match="not a readable pickle"):
        load_postprocessing(path)
    bad_json = tmp_path / "postprocessing.json"
    bad_json.write_text(json.dumps({"steps": [{"labels_or_regions": "(1, x)"}]}))
    with pytest.raises(PostprocessingError, match="step 0"):
        load_postprocessing(bad_json)
    bad_json.write_text(json.dumps({"postprocessing_fns": ["my_fn"], "postprocessing_kwargs": [{}]}))
    with pytest.raises(PostprocessingError, match="my_fn"):
        load_postprocessing(bad_json)
    with pytest.raises(PostprocessingError, match="does not exist"):
        load_postprocessing(tmp_path / "missing.pkl")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PostprocessingError, match="neither"):
        load_postprocessing(tmp_path / "empty")
