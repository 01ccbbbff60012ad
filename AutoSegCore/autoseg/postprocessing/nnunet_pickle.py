"""nnU-Net's ``postprocessing.pkl``: a pickled ``(functions, kwargs)`` pair of equal-length lists.

nnU-Net writes ``([remove_all_but_largest_component_from_segmentation, ...], [{"labels_or_regions": ...},
...])`` with ``pickle`` and applies it with ``fn(segmentation, **kwargs)``. AutoSeg writes the same
structure without importing nnunetv2: the function is stored as a reference to nnU-Net's module and name
(the ``STACK_GLOBAL`` opcode nnU-Net's own pickle holds), so ``nnUNetv2_apply_postprocessing`` loads it
unchanged. Reading goes through an allow-list unpickler that maps that one nnU-Net function to AutoSeg's
implementation and refuses every other global.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from autoseg.errors import PostprocessingError, UnsafeFileError
from autoseg.postprocessing.steps import (
    PostprocessingStep,
    remove_all_but_largest_component_from_segmentation,
)
from autoseg.utils.safe_pickle import PROPERTIES_GLOBALS, load_restricted

NNUNET_MODULE = "nnunetv2.postprocessing.remove_connected_components"
NNUNET_FUNCTION = "remove_all_but_largest_component_from_segmentation"
#: Keyword arguments nnU-Net's function takes besides the segmentation.
STEP_KWARGS = ("labels_or_regions", "background_label")
#: Protocol 4: what nnU-Net's ``save_pickle`` produces on Python 3.8-3.13, readable by Python >= 3.4.
PROTOCOL = 4


@dataclass(frozen=True)
class _GlobalReference:
    """Stands for ``module.name`` in a pickle without importing the module."""

    module: str
    name: str


_NNUNET_FUNCTION_REFERENCE = _GlobalReference(NNUNET_MODULE, NNUNET_FUNCTION)


class _ReferencePickler(pickle._Pickler):  # the pure-Python pickler lets a type write its own opcodes
    dispatch: ClassVar[dict[type, Callable[..., None]]] = dict(pickle._Pickler.dispatch)
    if TYPE_CHECKING:  # undocumented members of the pure-Python pickler, missing from typeshed
        write: Callable[[bytes], Any]

        def save(self, obj: Any) -> None: ...

        def memoize(self, obj: Any) -> None: ...

    def _save_reference(self, obj: _GlobalReference) -> None:
        self.save(obj.module)
        self.save(obj.name)
        self.write(pickle.STACK_GLOBAL)
        self.memoize(obj)

    dispatch[_GlobalReference] = _save_reference


def steps_to_pickle_bytes(steps: Sequence[PostprocessingStep]) -> bytes:
    """The bytes of a ``postprocessing.pkl`` holding ``steps``, as nnU-Net writes it."""
    functions = [_NNUNET_FUNCTION_REFERENCE for _ in steps]
    kwargs = [step_kwargs(step) for step in steps]
    stream = io.BytesIO()
    _ReferencePickler(stream, protocol=PROTOCOL).dump((functions, kwargs))
    return stream.getvalue()


def step_kwargs(step: PostprocessingStep) -> dict[str, Any]:
    """The keyword arguments nnU-Net stores for a step (``background_label`` only when not 0)."""
    target = step.labels_or_regions
    kwargs: dict[str, Any] = {"labels_or_regions": list(target) if isinstance(target, list) else target}
    if step.background_label != 0:
        kwargs["background_label"] = step.background_label
    return kwargs


#: What a postprocessing.pkl may refer to: nnU-Net's function (mapped to ours) and numpy scalars
#: (nnU-Net stores its label values as numpy int64).
PICKLE_GLOBALS = {
    **{key: value for key, value in PROPERTIES_GLOBALS.items() if key[0].startswith("numpy")},
    (NNUNET_MODULE, NNUNET_FUNCTION): remove_all_but_largest_component_from_segmentation,
}


def read_pickle(path: Path) -> list[PostprocessingStep]:
    """The steps of a ``postprocessing.pkl`` (nnU-Net's or AutoSeg's); refuses any other code."""
    content = load_restricted(path, PICKLE_GLOBALS, what=f"Postprocessing file {path}")
    return steps_from_functions_and_kwargs(content, str(path))


def steps_from_functions_and_kwargs(content: Any, source: str) -> list[PostprocessingStep]:
    """Validate nnU-Net's ``(functions, kwargs)`` pair and turn it into steps."""
    if not (isinstance(content, (tuple, list)) and len(content) == 2
            and all(isinstance(part, (tuple, list)) for part in content)):
        raise PostprocessingError(
            f"{source} should hold nnU-Net's (functions, kwargs) pair of lists, found "
            f"{type(content).__name__}. Re-create it with `autoseg determine_postprocessing`."
        )
    functions, kwargs_list = content
    if len(functions) != len(kwargs_list):
        raise PostprocessingError(
            f"{source} lists {len(functions)} function(s) but {len(kwargs_list)} set(s) of arguments; "
            f"re-create it with `autoseg determine_postprocessing`."
        )
    steps = []
    for index, (function, kwargs) in enumerate(zip(functions, kwargs_list)):
        if function is not remove_all_but_largest_component_from_segmentation:
            raise UnsafeFileError(
                f"{source}: step {index} is {function!r}, not nnU-Net's {NNUNET_FUNCTION}; it was not used."
            )
        steps.append(step_from_kwargs(kwargs, f"{source}, step {index}"))
    return steps


def step_from_kwargs(kwargs: Any, where: str) -> PostprocessingStep:
    """A step from nnU-Net's keyword arguments ``{"labels_or_regions": ..., ["background_label": ...]}``."""
    if not isinstance(kwargs, dict) or "labels_or_regions" not in kwargs:
        raise PostprocessingError(f"{where}: expected a dict with 'labels_or_regions', found {kwargs!r}.")
    unknown = sorted(str(k) for k in kwargs if k not in STEP_KWARGS)
    if unknown:
        raise PostprocessingError(
            f"{where}: unknown argument(s) {', '.join(unknown)} for {NNUNET_FUNCTION} "
            f"(it takes {', '.join(STEP_KWARGS)})."
        )
    try:
        return PostprocessingStep(kwargs["labels_or_regions"], kwargs.get("background_label", 0))
    except PostprocessingError as err:
        raise PostprocessingError(f"{where}: {err}") from None
