"""Transfer a plans file from one dataset to another (``nnUNetv2_move_plans_between_datasets``).

Used for pretraining/fine-tuning: the target dataset is preprocessed with the source's plans so that the
network topology matches. As in nnU-Net the copy gets the target's ``dataset_name``, the target plans
identifier as ``plans_name``, ``data_identifier`` s renamed to the target identifier (when it differs)
and the ``image_reader_writer`` the target's raw dataset needs (its ``overwrite_image_reader_writer``, or
the first reader for its file ending that reads one of its images). Everything else (configurations,
spacings, normalization, intensity properties) is the source's. Unlike nnU-Net an existing target plans
file is never overwritten unless asked.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from autoseg.errors import DatasetError, PlanError
from autoseg.paths import Workspace
from autoseg.plans.model import ConfigurationPlan, InheritingConfiguration, Plans


def renamed_data_identifier(identifier: str, source_plans: str, target_plans: str) -> str:
    """``nnUNetPlans_3d_fullres`` -> ``<target>_3d_fullres``; other names get ``<target>_`` prepended."""
    if identifier.startswith(source_plans):
        return target_plans + identifier[len(source_plans):]
    return f"{target_plans}_{identifier}"


def _rename_configuration(
    configuration: ConfigurationPlan | InheritingConfiguration, source_plans: str, target_plans: str
) -> ConfigurationPlan | InheritingConfiguration:
    if isinstance(configuration, ConfigurationPlan):
        return replace(configuration, data_identifier=renamed_data_identifier(
            configuration.data_identifier, source_plans, target_plans))
    if "data_identifier" not in configuration.overrides:
        return configuration
    overrides = dict(configuration.overrides)
    overrides["data_identifier"] = renamed_data_identifier(
        str(overrides["data_identifier"]), source_plans, target_plans
    )
    return replace(configuration, overrides=overrides)


def raw_dataset_reader_writer_name(raw_dataset_folder: Path) -> str:
    """The reader/writer class name nnU-Net records in plans for this raw dataset (first case, first channel)."""
    from autoseg.dataset.cases import training_cases
    from autoseg.dataset.dataset_json import DatasetJson
    from autoseg.imageio.registry import READER_WRITERS, reader_writer_for_dataset_folder

    dataset_json = DatasetJson.load(raw_dataset_folder / "dataset.json")
    cases = training_cases(raw_dataset_folder, dataset_json)
    if not cases:
        raise DatasetError(
            f"{raw_dataset_folder} has no training cases (imagesTr/CASE_0000{dataset_json.file_ending}); the target "
            f"dataset's images decide the plans' image reader."
        )
    example = next(iter(cases.values())).images[0]
    reader = reader_writer_for_dataset_folder(dataset_json.raw, example)
    names = [name for name, cls in READER_WRITERS.items() if cls is type(reader)]
    return names[0] if names else type(reader).__name__


def transfer_plans(
    plans: Plans, target_dataset: str, source_plans: str, target_plans: str, reader_writer: str
) -> Plans:
    """The source ``plans`` rewritten for ``target_dataset`` / ``target_plans`` (pure function)."""
    configurations = plans.configurations
    if target_plans != source_plans:
        configurations = {
            name: _rename_configuration(c, source_plans, target_plans) for name, c in configurations.items()
        }
    return replace(plans, dataset_name=target_dataset, plans_name=target_plans,
                   image_reader_writer=reader_writer, configurations=configurations)


def move_plans_between_datasets(
    workspace: Workspace,
    source_dataset: str | int,
    target_dataset: str | int,
    source_plans: str = "nnUNetPlans",
    target_plans: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``nnUNet_preprocessed/<target>/<target_plans>.json`` from the source's plans; returns its path."""
    source_name = workspace.dataset_name(source_dataset)
    target_name = workspace.dataset_name(target_dataset)
    target_plans = target_plans or source_plans
    source_folder = workspace.preprocessed / source_name
    if not source_folder.is_dir():
        raise PlanError(
            f"Cannot move plans: {source_folder} does not exist. Run `autoseg plan_and_preprocess -d {source_dataset}` "
            f"(or plan_experiment) for the source dataset first."
        )
    source_file = source_folder / f"{source_plans}.json"
    if not source_file.is_file():
        present = sorted(p.stem for p in source_folder.glob("*Plans*.json"))
        raise PlanError(
            f"Source plans {source_file} do not exist"
            + (f" (plans identifiers there: {', '.join(present)})" if present else "")
            + ". Check -sp or run the experiment planning for the source dataset first."
        )
    target_file = workspace.preprocessed / target_name / f"{target_plans}.json"
    if target_file.resolve() == source_file.resolve():
        raise PlanError(f"Source and target plans are the same file ({source_file}); give a different -t or -tp.")
    if target_file.exists() and not overwrite:
        raise PlanError(
            f"{target_file} already exists. Choose another target plans identifier with -tp (e.g. "
            f"{source_plans}From{source_name.split('_')[0].removeprefix('Dataset')}), or pass --overwrite to "
            f"replace it."
        )
    raw_folder = workspace.raw / target_name
    if not (raw_folder / "dataset.json").is_file():
        raise DatasetError(
            f"{raw_folder / 'dataset.json'} does not exist: the target dataset's raw folder is needed to choose the "
            f"image reader of its plans."
        )
    plans = Plans.load(source_file)
    moved = transfer_plans(plans, target_name, source_plans, target_plans, raw_dataset_reader_writer_name(raw_folder))
    moved.save(target_file)
    return target_file
