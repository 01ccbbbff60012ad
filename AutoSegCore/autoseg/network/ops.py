"""Layer classes a plans file may name, resolved to torch classes (plans never cause an import).

The allow-list and the accepted spellings are :mod:`autoseg.plans.layer_names` (shared with the torch-free
OpenVINO engine); this module maps the names it returns to the ``torch.nn`` classes.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from autoseg.plans.layer_names import ALLOWED_LAYERS, OPTIONAL_LAYERS, layer_name, unsupported_layer_error

#: The plan keys that name a layer class, with the classes each may be.
ALLOWED_OPS: dict[str, tuple[type[nn.Module], ...]] = {
    key: tuple(getattr(nn, name) for name in names) for key, names in ALLOWED_LAYERS.items()
}
#: Keys that may be None (layer left out).
OPTIONAL_OPS = OPTIONAL_LAYERS


def resolve_op(key: str, value: Any) -> type[nn.Module] | None:
    """The class for ``arch_kwargs[key]``: a dotted or bare name, an allowed class, or None."""
    name = layer_name(key, value)
    if name is None:
        return None
    cls: type[nn.Module] = getattr(nn, name)
    if isinstance(value, type) and value is not cls:
        raise unsupported_layer_error(key, value)
    return cls
