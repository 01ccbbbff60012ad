"""Read pickles written by nnU-Net without executing code from them.

nnU-Net stores case properties (``{case}.pkl`` next to ``.npz`` probabilities) and postprocessing
(``postprocessing.pkl``) as pickles. ``pickle.load`` would run whatever a crafted file asks for, so
these files are read by an unpickler that resolves only an explicit allow-list of globals; anything
else raises :class:`UnsafeFileError` naming the file and the refused global.
"""

from __future__ import annotations

import io
import pickle
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from autoseg.errors import UnsafeFileError

GlobalKey = tuple[str, str]


def _numpy_globals() -> dict[GlobalKey, Any]:
    """numpy's array/scalar reconstruction functions and dtype classes, under every module name
    numpy 1.x and 2.x pickle them with (scalars in nnU-Net's ``_best_ema`` and logging lists, arrays in
    case properties)."""
    allowed: dict[GlobalKey, Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for module_name in ("numpy.core.multiarray", "numpy._core.multiarray"):
        for attribute in ("_reconstruct", "scalar"):
            try:
                module = __import__(module_name, fromlist=[attribute])
            except ImportError:  # numpy 1.x has no numpy._core
                continue
            target = getattr(module, attribute, None)
            if target is not None:
                allowed[(module_name, attribute)] = target
    for name, dtype_class in vars(np.dtypes).items():  # numpy >= 1.25 pickles dtypes by class
        if isinstance(dtype_class, type):
            allowed[("numpy.dtypes", name)] = dtype_class
    return allowed


#: The one allow-list of numpy globals: the restricted unpickler below and ``torch.load`` of checkpoints
#: (:func:`autoseg.network.checkpoint.load_checkpoint`) accept these and nothing else from numpy.
NUMPY_GLOBALS: dict[GlobalKey, Any] = _numpy_globals()

#: What nnU-Net's case-properties pickles need: numpy arrays/scalars and plain containers.
PROPERTIES_GLOBALS: dict[GlobalKey, Any] = {
    **NUMPY_GLOBALS,
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "tuple"): tuple,
    ("builtins", "list"): list,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
}


class _AllowListUnpickler(pickle.Unpickler):
    def __init__(self, stream: io.BufferedIOBase, allowed: Mapping[GlobalKey, Any], source: str):
        super().__init__(stream)
        self._allowed = allowed
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UnsafeFileError(
                f"{self._source} refers to {module}.{name}, which a file of this kind never needs, so it was "
                f"not loaded (unpickling it could run arbitrary code). If you trust its origin, re-create it "
                f"with the tool that wrote it; otherwise delete it."
            ) from None


def load_restricted(source: str | Path | bytes, allowed: Mapping[GlobalKey, Any], what: str | None = None) -> Any:
    """Unpickle ``source`` (a path or the bytes) resolving only the globals in ``allowed``."""
    if isinstance(source, bytes):
        data, label = source, what or "the pickle"
    else:
        path = Path(source)
        label = what or str(path)
        try:
            data = path.read_bytes()
        except OSError as err:
            raise UnsafeFileError(f"Cannot read {label}: {err}") from err
    try:
        return _AllowListUnpickler(io.BytesIO(data), allowed, label).load()
    except UnsafeFileError:
        raise
    except Exception as err:  # truncated or not a pickle at all
        raise UnsafeFileError(f"{label} is not a readable pickle ({type(err).__name__}: {err}).") from err


def load_properties_pickle(path: str | Path) -> dict[str, Any]:
    """Case properties written by nnU-Net (``{case}.pkl``): a dict of numbers, lists and arrays."""
    value = load_restricted(path, PROPERTIES_GLOBALS)
    if not isinstance(value, dict):
        raise UnsafeFileError(f"{path} should hold a dict of case properties, found {type(value).__name__}.")
    return value
