import os
import pickle
from collections import OrderedDict

import numpy as np
import pytest

from autoseg.errors import UnsafeFileError
from autoseg.utils.safe_pickle import PROPERTIES_GLOBALS, load_properties_pickle, load_restricted


def test_properties_with_arrays_round_trip(tmp_path):
    properties = {
        "spacing": [3.0, 1.0, 1.0],
        "sitk_stuff": {"origin": (1.0, 2.0, 3.0), "direction": (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0)},
        "shape_before_cropping": (36, 50, 35),
        "bbox_used_for_cropping": [[0, 36], [1, 50], [0, 35]],
        "class_locations": {1: np.arange(12, dtype=np.int64).reshape(3, 4)},
        "scalar": np.float32(2.5),
        "ordered": OrderedDict(a=1),
    }
    path = tmp_path / "case.pkl"
    path.write_bytes(pickle.dumps(properties))
    loaded = load_properties_pickle(path)
    assert loaded["sitk_stuff"]["origin"] == (1.0, 2.0, 3.0)
    np.testing.assert_array_equal(loaded["class_locations"][1], properties["class_locations"][1])
    assert loaded["scalar"] == np.float32(2.5)


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_code_execution_refused(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"spacing": _RunsCode()}))
    with pytest.raises(UnsafeFileError, match=r"evil.pkl refers to (posix|os|nt)\.system"):
        load_properties_pickle(path)


def test_truncated_and_wrong_type(tmp_path):
    path = tmp_path / "cut.pkl"
    path.write_bytes(pickle.dumps({"a": 1})[:-3])
    with pytest.raises(UnsafeFileError, match="cut.pkl is not a readable pickle"):
        load_restricted(path, PROPERTIES_GLOBALS)
    path.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(UnsafeFileError, match="should hold a dict"):
        load_properties_pickle(path)
