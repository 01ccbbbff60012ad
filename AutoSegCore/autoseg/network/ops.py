"""Layer classes a plans file may name, looked up in an allow-list (plans never cause an import).

nnU-Net stores layers as dotted names (``"torch.nn.modules.conv.Conv3d"``, ``"torch.nn.LeakyReLU"``) and
imports whatever they say. We accept the same spellings (and the bare class name), but only for the
classes below.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from autoseg.errors import PlanError

#: The plan keys that name a layer class, with the classes each may be.
ALLOWED_OPS: dict[str, tuple[type[nn.Module], ...]] = {
    "conv_op": (nn.Conv2d, nn.Conv3d),
    "norm_op": (nn.InstanceNorm2d, nn.InstanceNorm3d, nn.BatchNorm2d, nn.BatchNorm3d),
    "dropout_op": (nn.Dropout, nn.Dropout2d, nn.Dropout3d),
    "nonlin": (nn.LeakyReLU, nn.ReLU, nn.PReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid),
}
#: Keys that may be None (layer left out).
OPTIONAL_OPS = frozenset({"norm_op", "dropout_op", "nonlin"})


def _spellings(cls: type[nn.Module]) -> tuple[str, ...]:
    return (f"{cls.__module__}.{cls.__name__}", f"torch.nn.{cls.__name__}", cls.__name__)


_BY_NAME: dict[str, dict[str, type[nn.Module]]] = {
    key: {name: cls for cls in classes for name in _spellings(cls)} for key, classes in ALLOWED_OPS.items()
}


def resolve_op(key: str, value: Any) -> type[nn.Module] | None:
    """The class for ``arch_kwargs[key]``: a dotted or bare name, an allowed class, or None."""
    if value is None:
        if key in OPTIONAL_OPS:
            return None
        raise PlanError(f"arch_kwargs[{key!r}] must name a layer class, got None.")
    if isinstance(value, type) and value in ALLOWED_OPS[key]:
        return value
    if isinstance(value, str) and value in _BY_NAME[key]:
        return _BY_NAME[key][value]
    supported = ", ".join(f"{cls.__module__}.{cls.__name__}" for cls in ALLOWED_OPS[key])
    none_note = " or null" if key in OPTIONAL_OPS else ""
    raise PlanError(
        f"arch_kwargs[{key!r}] = {value!r} is not a supported layer class. "
        f"Supported: {supported}{none_note}. AutoSeg does not import classes named in plans files; "
        "change the plans file to one of these."
    )
