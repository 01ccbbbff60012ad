"""Which cases of a raw dataset are new since the last training: the Planner's "new" marker.

A case of ``nnUNet_raw/DatasetX`` (``imagesTr`` or the ``dataset`` map of ``dataset.json``) is *new* when no
trained fold of any model of the dataset used it: no ``nnUNet_results/DatasetX/<trainer>__<plans>__<config>/
fold_K`` holding a ``checkpoint_final.pth`` lists it in its ``debug.json`` (``training_cases`` or
``validation_cases``: the cases the run actually had, written when it started). New cases are what an update
(``autoseg train ... --update``) or a new training would add.

While an update of a fold runs (or after one was interrupted), the fold's ``checkpoint_final.pth`` is still
version N, archived with its ``debug.json`` in ``versions/vN`` (see :mod:`autoseg.inference.model_versions`),
and the fold's own ``debug.json`` is already the update's: the archived one counts then, so cases stay new
until an update that used them has finished.

A dataset without any trained fold has no "last training": no case is marked new (:attr:`DatasetStatus.trained`
is False and the Planner says that the first training will use every case).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from autoseg.dataset.cases import training_cases
from autoseg.dataset.dataset_json import DatasetJson
from autoseg.errors import AutoSegError
from autoseg.inference.model_versions import CHECKPOINT, current_version, version_folder
from autoseg.paths import ModelFolderName, Workspace
from autoseg.plans.model import Plans

DEBUG_JSON = "debug.json"


@dataclass(frozen=True)
class CaseStatus:
    """One training case of the raw dataset."""

    case: str
    new: bool  # no trained fold used it (always False while nothing was trained)
    labelled: bool  # its label file exists


@dataclass
class DatasetStatus:
    """The cases of a raw dataset and the trained folds they were compared with."""

    cases: list[CaseStatus]
    #: the ``debug.json`` files read: one per trained fold (an archived version's during an update)
    trained_folds: list[Path] = field(default_factory=list)

    @property
    def trained(self) -> bool:
        return bool(self.trained_folds)

    @property
    def new_cases(self) -> list[str]:
        return [c.case for c in self.cases if c.new]

    def rows(self, new_text: str = "new", labelled_text: str = "yes", unlabelled_text: str = "no"
             ) -> list[tuple[str, str, str]]:
        """(case, "new" or "", labelled) per case, for the Planner's table."""
        return [(c.case, new_text if c.new else "", labelled_text if c.labelled else unlabelled_text)
                for c in self.cases]

    def summary(self) -> str:
        """One line for the module, e.g. ``12 case(s), 2 new since the last training (4 trained fold(s))``."""
        if not self.trained:
            return f"{len(self.cases)} case(s); no trained model yet: the first training uses them all."
        return (f"{len(self.cases)} case(s), {len(self.new_cases)} new since the last training "
                f"({len(self.trained_folds)} trained fold(s)).")


def _fold_debug_json(fold_folder: Path) -> Path | None:
    """The ``debug.json`` of the model in ``fold_folder``'s ``checkpoint_final.pth`` (None: no finished model)."""
    if not (fold_folder / CHECKPOINT).is_file():
        return None
    archived = version_folder(fold_folder, current_version(fold_folder)) / DEBUG_JSON
    if archived.is_file():  # an update from this version is running or was interrupted
        return archived
    own = fold_folder / DEBUG_JSON
    return own if own.is_file() else None


def trained_fold_files(results_dataset_folder: Path) -> list[Path]:
    """The ``debug.json`` of every trained fold of every model folder of one ``nnUNet_results`` dataset folder."""
    if not results_dataset_folder.is_dir():
        return []
    found = []
    for model in sorted(p for p in results_dataset_folder.iterdir() if p.is_dir()):
        if ModelFolderName.parse(model.name) is None:
            continue
        for fold in sorted(p for p in model.glob("fold_*") if p.is_dir()):
            debug = _fold_debug_json(fold)
            if debug is not None:
                found.append(debug)
    return found


def _cases_in(debug_json: Path) -> set[str]:
    try:
        content = json.loads(debug_json.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise AutoSegError(f"Cannot read {debug_json}: {err}. Which cases that fold was trained on is unknown; "
                           f"move the broken file away or repair it.") from err
    cases: set[str] = set()
    for key in ("training_cases", "validation_cases"):
        values = content.get(key) if isinstance(content, dict) else None
        cases.update(str(v) for v in values or [])
    return cases


def dataset_status(raw_dataset_folder: str | Path, results_dataset_folder: str | Path) -> DatasetStatus:
    """The cases of ``raw_dataset_folder``, each marked new or not against the trained folds under
    ``results_dataset_folder`` (``nnUNet_results/DatasetX``; it need not exist)."""
    raw = Path(raw_dataset_folder)
    if not (raw / "dataset.json").is_file():
        raise AutoSegError(f"{raw / 'dataset.json'} does not exist: {raw} is not an nnUNet_raw dataset folder.")
    cases = training_cases(raw, DatasetJson.load(raw / "dataset.json"))
    folds = trained_fold_files(Path(results_dataset_folder))
    used: set[str] = set()
    for debug in folds:
        used |= _cases_in(debug)
    return DatasetStatus(
        cases=[CaseStatus(case, bool(folds) and case not in used, case_files.label.is_file())
               for case, case_files in cases.items()],
        trained_folds=folds,
    )


def workspace_dataset_status(workspace: Workspace, dataset: str | int) -> DatasetStatus:
    """:func:`dataset_status` of a dataset (id or name) of the workspace."""
    name = workspace.dataset_name(dataset)
    return dataset_status(workspace.raw / name, workspace.results / name)


def preprocessed_configurations(preprocessed_dataset_folder: str | Path, plans_name: str = "nnUNetPlans") -> list[str]:
    """The configurations of ``<plans_name>.json`` whose preprocessed data exists (what preprocessing the new cases
    should extend), in the plans' order; none when the dataset was not planned."""
    folder = Path(preprocessed_dataset_folder)
    plans_file = folder / f"{plans_name}.json"
    if not plans_file.is_file():
        return []
    plans = Plans.load(plans_file)
    found: dict[str, str] = {}  # data identifier -> first configuration with it (a cascade shares 3d_fullres's)
    for name in plans.configuration_names:
        identifier = plans.configuration(name).data_identifier
        if identifier not in found and (folder / identifier).is_dir():
            found[identifier] = name
    return list(found.values())
