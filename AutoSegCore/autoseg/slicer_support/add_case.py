"""The annotation loop's "Correct and add to dataset": where a corrected prediction goes, and whether it can.

A model folder ``nnUNet_results/DatasetXXX_Name/<trainer>__<plans>__<configuration>`` was trained on
``nnUNet_raw/DatasetXXX_Name``; a corrected prediction of that model is added there as a new case, with
the model's label values and channels. :func:`plan_add_case` checks everything at once and writes
nothing: the segment names against the model's labels (an unknown name is an error naming it), the raw
dataset's labels and channels against the model's, the annotated slices of a partially corrected case; it
picks a new case id from the volume's name that no file in ``imagesTr``/``labelsTr`` uses. When the raw
dataset does not exist (an installed zip model), :meth:`AddCasePlan.create_dataset` creates it from the
model's ``dataset.json`` (same labels, channels and file ending, ``numTraining`` 0). The case itself is
then written by ``autoseg export_segmentations`` like any other exported case.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoseg.dataset.cases import files_by_case, is_hidden, strip_ending
from autoseg.dataset.export.annotated_slices import (
    ARRAY_AXIS,
    AnnotatedSlicesError,
    SliceRequest,
    format_slices,
    parse_request,
)
from autoseg.dataset.export.cases import case_id_problem
from autoseg.dataset.export.target import WRITABLE_ENDINGS
from autoseg.errors import AutoSegError
from autoseg.imageio.segmentation_file import name_key
from autoseg.paths import DatasetName
from autoseg.utils.files import save_json

BACKGROUND = "background"
IGNORE = "ignore"
DEFAULT_CASE_ID = "case"


class AddCaseError(AutoSegError):
    """A corrected case that cannot be added (every problem listed in the message); nothing was written."""


@dataclass(frozen=True)
class AddCasePlan:
    """What adding one corrected case will do."""

    dataset_folder: Path  # <workspace>/nnUNet_raw/DatasetXXX_Name
    case_id: str  # new in the dataset
    labels: dict[str, int]  # the model's labels (the values the case's label image gets)
    channel_names: dict[str, str]
    file_ending: str
    new_dataset_json: dict[str, Any] | None  # the dataset.json to create (None: the dataset exists)
    annotated_slices: SliceRequest | None = None  # a partially corrected case: its slices on channel 0

    def create_dataset(self) -> bool:
        """Create the raw dataset from the model's dataset.json when it does not exist; True when created."""
        if self.new_dataset_json is None or (self.dataset_folder / "dataset.json").is_file():
            return False
        self.dataset_folder.mkdir(parents=True, exist_ok=True)
        save_json(self.new_dataset_json, self.dataset_folder / "dataset.json")
        return True

    def sidecar_slices(self) -> str | list[int]:
        """The ``slices`` for ``annotated_slices.write_sidecar`` (``"auto"`` or the slice numbers)."""
        request = self.annotated_slices
        if request is None:
            raise ValueError("this case is not partially annotated")
        return "auto" if request.slices is None else list(request.slices)


def model_dataset_name(model_folder: str | Path) -> str:
    """``DatasetXXX_Name`` of a model folder: its parent folder, else the ``dataset_name`` of its plans.json."""
    folder = Path(model_folder)
    if DatasetName.parse(folder.parent.name) is not None:
        return folder.parent.name
    try:
        plans = json.loads((folder / "plans.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        plans = {}
    name = str(plans.get("dataset_name") or "") if isinstance(plans, dict) else ""
    if DatasetName.parse(name) is None:
        raise AddCaseError(
            f"Cannot tell which dataset the model {folder} was trained on: its folder is not inside a "
            f"DatasetXXX_Name folder and its plans.json names none. Put the model in "
            f"nnUNet_results/DatasetXXX_Name/ (or install it from its zip)."
        )
    return name


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise AddCaseError(f"Cannot read {what}, {path} ({err}).") from None
    if not isinstance(content, dict):
        raise AddCaseError(f"{what} {path} is not a JSON object.")
    return content


def case_id_from_name(name: str) -> str:
    """A case id made from a volume's name: letters, digits, ``-`` and ``_`` (``"CT chest (2)"`` -> ``CT_chest_2``).

    A trailing ``_0001`` (which nnU-Net would read as a channel number) becomes ``-0001``.
    """
    text = re.sub(r"[^A-Za-z0-9_-]+", "_", name.strip()).strip("_-")
    text = re.sub(r"_+", "_", text) or DEFAULT_CASE_ID
    if case_id_problem(text):  # only the channel suffix is left to avoid
        text = text[:-5] + "-" + text[-4:]
    return text


def existing_case_ids(dataset_folder: Path, file_ending: str) -> set[str]:
    """Case ids with a file in ``imagesTr`` or ``labelsTr`` (case-folded: case-insensitive file systems)."""
    present = {case.casefold() for case in files_by_case(dataset_folder / "imagesTr", file_ending)}
    labels = dataset_folder / "labelsTr"
    if labels.is_dir():
        for entry in labels.iterdir():
            stem = strip_ending(entry.name, file_ending)
            if stem is not None and not is_hidden(entry.name):
                present.add(stem.casefold())
    return present


def new_case_id(base: str, taken: Collection[str]) -> str:
    """``base``, else ``base_2``, ``base_3``, ... : the first that is a valid case id not in ``taken``."""
    taken = {t.casefold() for t in taken}
    number = 1
    while True:
        candidate = base if number == 1 else f"{base}_{number}"
        if candidate.casefold() not in taken and case_id_problem(candidate) is None:
            return candidate
        number += 1


def segment_name_problems(segment_names: Sequence[str], labels: Mapping[str, Any]) -> list[str]:
    """Why these segments cannot become the model's labels (matched by name ignoring case and spaces)."""
    known = {name_key(n): n for n in labels if name_key(n) not in (BACKGROUND, IGNORE)}
    problems: list[str] = []
    seen: dict[str, str] = {}
    unknown = [n for n in segment_names if name_key(n) not in known and name_key(n) not in (BACKGROUND, IGNORE)]
    if unknown:
        problems.append(
            f"segment(s) {', '.join(map(repr, unknown))} match no label of the model; its labels are "
            f"{', '.join(map(repr, known.values()))}. Rename these segments after the model's labels (or delete "
            f"them), so that the case gets the values the model predicts."
        )
    for name in segment_names:
        key = name_key(name)
        if key in (BACKGROUND, IGNORE):
            problems.append(
                f"segment {name!r}: '{key}' is not a segment (background is label 0; to leave voxels "
                f"unannotated, choose 'Only some slices are corrected'). Delete or rename it."
            )
        elif key in seen and key in known:
            problems.append(f"segments {seen[key]!r} and {name!r} both match the label {known[key]!r}; merge them.")
        seen.setdefault(key, name)
    if not segment_names:
        problems.append("the segmentation has no segments.")
    return problems


def _label_problems(labels: Mapping[str, Any]) -> list[str]:
    if any(isinstance(v, (list, tuple)) for v in labels.values()):
        return ["the model is region-based (its labels are lists of values); corrected cases can be added only to "
                "datasets with one value per label."]
    return []


def _raw_dataset_problems(raw_json: Mapping[str, Any], model_json: Mapping[str, Any], folder: Path) -> list[str]:
    """The raw dataset must give the model's labels the model's values and have its channels."""
    raw_labels = {name_key(n): v for n, v in (raw_json.get("labels") or {}).items()}
    different = [
        f"{name!r} is {raw_labels.get(name_key(name), 'missing')} (model: {value})"
        for name, value in (model_json.get("labels") or {}).items()
        if name_key(name) != IGNORE and raw_labels.get(name_key(name)) != value
    ]
    problems = []
    if different:
        problems.append(
            f"{folder / 'dataset.json'} has other labels than the model: {'; '.join(different)}. The corrected case "
            f"would not get the values the model predicts; fix that dataset.json or move the dataset away."
        )
    raw_channels = raw_json.get("channel_names", raw_json.get("modality"))
    if raw_channels != model_json.get("channel_names"):
        problems.append(
            f"{folder / 'dataset.json'} has channels {raw_channels}, the model {model_json.get('channel_names')}; "
            f"the corrected case's volumes are the model's channels."
        )
    return problems


def slice_problems(request: SliceRequest, shape_ijk: Sequence[int] | None) -> list[str]:
    """Slices beyond channel 0's volume (``shape_ijk``: its size along I, J, K)."""
    if request.slices is None or shape_ijk is None:
        return []
    count = int(shape_ijk[2 - ARRAY_AXIS[request.axis]])
    beyond = [s for s in request.slices if s >= count]
    if beyond:
        return [f"slice(s) {format_slices(beyond)} along {request.axis} are out of range: the volume has {count} "
                f"slices along {request.axis} (0-{count - 1})."]
    return []


def _annotated_slices(text: str | None, shape_ijk: Sequence[int] | None, problems: list[str]) -> SliceRequest | None:
    if not text:
        return None
    try:
        request = parse_request(text, "annotated slices")
    except AnnotatedSlicesError as err:
        problems.append(str(err))
        return None
    problems.extend(slice_problems(request, shape_ijk))
    return request


def _other_dataset_with_id(raw_folder: Path, dataset_name: str) -> str | None:
    parsed = DatasetName.parse(dataset_name)
    prefix = DatasetName.prefix(parsed.dataset_id) if parsed else dataset_name
    if not raw_folder.is_dir():
        return None
    return next((p.name for p in sorted(raw_folder.iterdir()) if p.is_dir() and p.name.startswith(prefix)
                 and p.name != dataset_name), None)


def plan_add_case(
    model_folder: str | Path,
    raw_folder: str | Path,
    segment_names: Sequence[str],
    volume_name: str,
    num_volumes: int,
    annotated_slices: str | None = None,
    shape_ijk: Sequence[int] | None = None,
    reserved: Collection[str] = (),
) -> AddCasePlan:
    """Check a corrected case against the model and its raw dataset; AddCaseError lists every problem.

    ``segment_names``: the segmentation's segments; ``volume_name``: channel 0's name (the case id is made
    from it); ``annotated_slices``: ``"K:10-20,35"`` or ``"K:auto"`` for a partially corrected case, with
    ``shape_ijk`` the channel-0 volume's size along I, J, K; ``reserved``: case ids being added already.
    """
    model_folder, raw_folder = Path(model_folder), Path(raw_folder)
    model_json = _read_json(model_folder / "dataset.json", "the model's dataset.json")
    dataset_name = model_dataset_name(model_folder)
    folder = raw_folder / dataset_name
    labels = model_json.get("labels") or {}
    channels = model_json.get("channel_names") or {}
    problems = _label_problems(labels) + segment_name_problems(segment_names, labels)
    if num_volumes != len(channels):
        problems.append(f"the model has {len(channels)} channel(s) ({', '.join(map(str, channels.values()))}); "
                        f"{num_volumes} volume(s) were given.")
    request = _annotated_slices(annotated_slices, shape_ijk, problems)
    has_json = (folder / "dataset.json").is_file()
    raw_json = _read_json(folder / "dataset.json", "the raw dataset's dataset.json") if has_json else None
    if raw_json is not None:
        problems += _raw_dataset_problems(raw_json, model_json, folder)
    else:
        other = _other_dataset_with_id(raw_folder, dataset_name)
        if other:
            problems.append(f"the model's dataset {dataset_name} is not in {raw_folder}, and {other} has its id; "
                            f"rename one of them so that the corrected cases go to the model's dataset.")
    ending = str((raw_json or model_json).get("file_ending", ""))
    if ending not in WRITABLE_ENDINGS:
        problems.append(f"the dataset's file ending {ending!r} cannot be written (only 3D volumes: "
                        f"{', '.join(WRITABLE_ENDINGS)}).")
    if problems:
        raise AddCaseError(f"Cannot add the case to {folder}; nothing was written:\n  - " + "\n  - ".join(problems))
    new_json = None if raw_json is not None else _new_dataset_json(model_json)
    case_id = new_case_id(case_id_from_name(volume_name), existing_case_ids(folder, ending) | set(reserved))
    return AddCasePlan(folder, case_id, dict(labels), dict(channels), ending, new_json, request)


def _new_dataset_json(model_json: Mapping[str, Any]) -> dict[str, Any]:
    """The model's dataset.json for a new raw dataset: same labels, channels and file ending, no cases yet."""
    content = {key: value for key, value in model_json.items() if key != "dataset"}
    content["numTraining"] = 0
    return content
