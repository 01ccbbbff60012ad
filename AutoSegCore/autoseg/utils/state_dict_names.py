"""State-dict key names as written by wrapped networks (works on torch tensors and numpy arrays alike)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

Value = TypeVar("Value")


def clean_state_dict(state_dict: Mapping[str, Value]) -> dict[str, Value]:
    """Strip the prefixes ``torch.compile`` (``_orig_mod.``) and DDP (``module.``) add to key names."""
    out = {}
    for key, value in state_dict.items():
        for prefix in ("_orig_mod.", "module."):
            if key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value
    return out
