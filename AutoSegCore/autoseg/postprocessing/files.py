"""Postprocessing files: ``postprocessing.pkl`` (nnU-Net's) and ``postprocessing.json`` (readable).

``postprocessing.json`` holds what nnU-Net writes there (``input_folder`` and ``postprocessed``: the
``foreground_mean`` and per-label ``mean`` metrics before and after; ``postprocessing_fns``; and
``postprocessing_kwargs``) plus AutoSeg's ``steps`` (unambiguous: a region is written as its summary.json
key, ``"(1, 2)"``) and ``candidates`` (every step tried, with its Dice before/after and the decision).
Either file, written by either tool, can be loaded with :func:`load_postprocessing`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from autoseg import __version__
from autoseg.errors import PostprocessingError
from autoseg.evaluation.metrics import label_or_region_key, parse_label_or_region_key
from autoseg.postprocessing.nnunet_pickle import (
    NNUNET_FUNCTION,
    read_pickle,
    step_from_kwargs,
    step_kwargs,
    steps_to_pickle_bytes,
)
from autoseg.postprocessing.steps import PostprocessingStep, StepTarget
from autoseg.utils.files import atomic_path, read_json, save_json

PICKLE_NAME = "postprocessing.pkl"
JSON_NAME = "postprocessing.json"


# ------------------------------------------------------------------------------------------ loading
def load_postprocessing(path: str | Path) -> list[PostprocessingStep]:
    """The steps stored in ``postprocessing.json`` or ``postprocessing.pkl`` (AutoSeg's or nnU-Net's).

    A folder may be given: its ``postprocessing.json`` is read, else its ``postprocessing.pkl``. A pickle
    referring to anything but nnU-Net's connected-component function raises UnsafeFileError.
    """
    path = Path(path)
    if path.is_dir():
        candidates = [path / JSON_NAME, path / PICKLE_NAME]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise PostprocessingError(
                f"{path} contains neither {JSON_NAME} nor {PICKLE_NAME}. Run `autoseg determine_postprocessing` "
                f"on the cross-validation predictions first."
            )
        path = found
    if not path.is_file():
        raise PostprocessingError(
            f"Postprocessing file {path} does not exist (expected a {PICKLE_NAME} or {JSON_NAME} written by "
            f"`autoseg determine_postprocessing` or nnU-Net)."
        )
    if path.suffix.lower() == ".json":
        return _read_json(path)
    return read_pickle(path)


def _read_json(path: Path) -> list[PostprocessingStep]:
    document = read_json(path, PostprocessingError, f"Postprocessing file {path}")
    if not isinstance(document, dict):
        raise PostprocessingError(f"Postprocessing file {path} should hold a JSON object.")
    if "steps" in document:
        entries = document["steps"]
        if not isinstance(entries, list):
            raise PostprocessingError(f"{path}: 'steps' must be a list, found {type(entries).__name__}.")
        return [step_from_json(entry, f"{path}, step {i}") for i, entry in enumerate(entries)]
    if "postprocessing_fns" in document and "postprocessing_kwargs" in document:  # nnU-Net's file
        return _nnunet_json_steps(document, path)
    raise PostprocessingError(
        f"{path} holds no postprocessing steps (neither AutoSeg's 'steps' nor nnU-Net's "
        f"'postprocessing_fns'/'postprocessing_kwargs')."
    )


def _nnunet_json_steps(document: Mapping[str, Any], path: Path) -> list[PostprocessingStep]:
    names, kwargs_list = document["postprocessing_fns"], document["postprocessing_kwargs"]
    if not isinstance(names, list) or not isinstance(kwargs_list, list) or len(names) != len(kwargs_list):
        raise PostprocessingError(
            f"{path}: 'postprocessing_fns' and 'postprocessing_kwargs' must be lists of the same length."
        )
    unknown = sorted({str(n) for n in names if n != NNUNET_FUNCTION})
    if unknown:
        raise PostprocessingError(
            f"{path} uses postprocessing function(s) {', '.join(unknown)}; only {NNUNET_FUNCTION} is known."
        )
    return [step_from_kwargs(kwargs, f"{path}, step {i}") for i, kwargs in enumerate(kwargs_list)]


# ------------------------------------------------------------------------------------------ JSON form
def target_to_json(target: StepTarget) -> Any:
    """A label stays an int, a region becomes its summary.json key ``"(1, 2)"``, lists map element-wise."""
    if isinstance(target, list):
        return [target_to_json(item) for item in target]
    return label_or_region_key(target) if isinstance(target, tuple) else int(target)


def target_from_json(value: Any, where: str) -> StepTarget:
    """Inverse of :func:`target_to_json` (a nested list is read as a region too)."""
    if isinstance(value, list):
        return [_item_from_json(item, where) for item in value]
    return _item_from_json(value, where)


def _item_from_json(value: Any, where: str) -> Any:
    if isinstance(value, str):
        try:
            return parse_label_or_region_key(value)
        except ValueError:
            raise PostprocessingError(
                f"{where}: {value!r} is neither a label value nor a region such as \"(1, 2)\"."
            ) from None
    return tuple(value) if isinstance(value, list) else value


def step_to_json(step: PostprocessingStep) -> dict[str, Any]:
    entry: dict[str, Any] = {"function": NNUNET_FUNCTION, "labels_or_regions": target_to_json(step.labels_or_regions)}
    if step.background_label != 0:
        entry["background_label"] = step.background_label
    return entry


def step_from_json(entry: Any, where: str) -> PostprocessingStep:
    if not isinstance(entry, dict) or "labels_or_regions" not in entry:
        raise PostprocessingError(f"{where}: expected an object with 'labels_or_regions', found {entry!r}.")
    function = entry.get("function", NNUNET_FUNCTION)
    if function != NNUNET_FUNCTION:
        raise PostprocessingError(f"{where}: unknown postprocessing function {function!r} (only {NNUNET_FUNCTION}).")
    try:
        return PostprocessingStep(target_from_json(entry["labels_or_regions"], where), entry.get("background_label", 0))
    except PostprocessingError as err:
        raise PostprocessingError(f"{where}: {err}") from None


# ------------------------------------------------------------------------------------------ saving
def save_postprocessing(
    steps: Sequence[PostprocessingStep],
    folder: str | Path,
    evaluation: Mapping[str, Any] | None = None,
    write_pickle: bool = True,
) -> tuple[Path, Path | None]:
    """Write ``folder/postprocessing.json`` (and ``postprocessing.pkl``); returns their paths.

    ``evaluation`` adds entries to the JSON document (``input_folder``, ``postprocessed``, ``candidates``,
    as :func:`autoseg.postprocessing.determine.determine_postprocessing` produces them).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pickle_path = None
    if write_pickle:
        pickle_path = folder / PICKLE_NAME
        with atomic_path(pickle_path) as tmp:
            tmp.write_bytes(steps_to_pickle_bytes(steps))
    document: dict[str, Any] = dict(evaluation or {})
    document.update({
        "postprocessing_fns": [NNUNET_FUNCTION for _ in steps],
        "postprocessing_kwargs": [_json_kwargs(step) for step in steps],
        "steps": [step_to_json(step) for step in steps],
        "written_by": f"autoseg {__version__}",
    })
    json_path = folder / JSON_NAME
    save_json(document, json_path)
    return json_path, pickle_path


def _json_kwargs(step: PostprocessingStep) -> dict[str, Any]:
    """nnU-Net's JSON form of the kwargs (tuples become lists, as its json export does)."""
    kwargs = step_kwargs(step)
    target = kwargs["labels_or_regions"]
    kwargs["labels_or_regions"] = (
        [list(t) if isinstance(t, tuple) else t for t in target] if isinstance(target, list)
        else list(target) if isinstance(target, tuple) else target
    )
    return kwargs
