"""Load ``.pth`` checkpoints without executing code from them.

nnU-Net saves checkpoints with plain ``torch.save`` of a dict that, besides tensors, holds numpy
scalars and arrays (``_best_ema``, the logging lists) and a ``torch.device``. ``torch.load`` with
``weights_only=True`` refuses any other global, so a checkpoint crafted to run code fails to load;
the numpy types nnU-Net needs are allow-listed here and nothing else.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autoseg.errors import ModelFolderError


def _numpy_globals() -> list[Any]:
    """The numpy callables and classes nnU-Net checkpoints reference (scalar and array reconstruction)."""
    names = [
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ]
    allowed: list[Any] = [np.dtype, np.ndarray]
    for module_name, attribute in names:
        try:
            module = __import__(module_name, fromlist=[attribute])
        except ImportError:
            continue
        target = getattr(module, attribute, None)
        if target is not None:
            allowed.append((target, f"{module_name}.{attribute}"))
    for dtype_class in vars(np.dtypes).values():  # np.dtypes.Float64DType etc. (numpy >= 1.25)
        if isinstance(dtype_class, type):
            allowed.append(dtype_class)
    return allowed


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint safely; a clear :class:`ModelFolderError` for missing, corrupt or unsafe files."""
    path = Path(path)
    if not path.is_file():
        raise ModelFolderError(f"Checkpoint {path} does not exist.")
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        unsafe = [line.strip() for line in str(err).splitlines() if re.search(r"(?i)\bglobal\b", line)]
        if not unsafe:
            raise ModelFolderError(
                f"Checkpoint {path} is not a valid PyTorch checkpoint; it is unreadable or truncated. Copy it "
                f"again from the training machine, or re-run training with --c to rewrite it."
            ) from err
        raise ModelFolderError(
            f"Checkpoint {path} refers to code or objects that a model checkpoint never needs, so it was not "
            f"loaded (loading it could run arbitrary code). Found: {unsafe[0]}"
        ) from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as err:
        raise ModelFolderError(
            f"Checkpoint {path} is unreadable or truncated ({type(err).__name__}: {_first_line(err)}). "
            f"Copy it again from the training machine, or re-run training with --c to rewrite it."
        ) from err
    if not isinstance(checkpoint, dict) or "network_weights" not in checkpoint:
        raise ModelFolderError(
            f"{path} is not an nnU-Net/AutoSeg checkpoint: expected a dict with 'network_weights', "
            f"'init_args', 'trainer_name', found {type(checkpoint).__name__}"
            + (f" with keys {sorted(checkpoint)[:8]}" if isinstance(checkpoint, dict) else "") + "."
        )
    return checkpoint


def clean_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip the prefixes ``torch.compile`` (``_orig_mod.``) and DDP (``module.``) add to key names."""
    out = {}
    for key, value in state_dict.items():
        for prefix in ("_orig_mod.", "module."):
            if key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value
    return out


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
