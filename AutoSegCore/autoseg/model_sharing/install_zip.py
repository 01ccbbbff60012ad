"""Install a model zip (``nnUNetv2_export_model_to_zip`` / ``autoseg export_model_to_zip``) into ``nnUNet_results``.

nnU-Net simply extracts the archive into ``nnUNet_results``. AutoSeg installs in four steps, so that a
refused archive changes nothing, inside or outside the results folder:

1. check the archive (:mod:`autoseg.model_sharing.safe_extract`) and its layout: every entry lies in
   ``DatasetXXX_Name/<trainer>__<plans>__<configuration>/``, ``DatasetXXX_Name/ensembles/<name>/`` or is a
   file of the dataset folder (``inference_information.json``, ...); each model folder has ``plans.json``,
   ``dataset.json`` and at least one ``fold_*/*.pth`` checkpoint;
2. refuse model or ensemble folders that are already installed, unless ``overwrite`` is set;
3. extract into a staging folder inside ``nnUNet_results`` and vet it: plans/dataset.json parse, every
   ``.pth`` loads with the safe checkpoint loader, every ``.pkl`` with an allow-list unpickler
   (``postprocessing.pkl`` through :func:`autoseg.postprocessing.files.load_postprocessing`);
4. move each model/ensemble folder into place with a rename (with ``overwrite``, the old folder is
   moved aside first and restored if anything fails), then delete the staging folder.
"""

from __future__ import annotations

import filecmp
import logging
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from autoseg.errors import AutoSegError, ModelSharingError
from autoseg.model_sharing.safe_extract import (
    ExtractionLimits,
    ZipEntry,
    extract_entries,
    inspect_zip,
    refuse,
)
from autoseg.paths import DatasetName, ModelFolderName, parse_dataset_id
from autoseg.utils.files import read_json

logger = logging.getLogger(__name__)

STAGING_PREFIX = ".autoseg_install_"
ENSEMBLES_FOLDER = "ensembles"
_FREE_SPACE_MARGIN = 64 * 1024**2

Unit = tuple[str, ...]


@dataclass
class InstallResult:
    """What was installed (paths inside ``nnUNet_results``)."""

    models: list[Path] = field(default_factory=list)
    ensembles: list[Path] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    replaced: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class ZipLayout:
    """The install units of a model zip: whole model folders, ensemble folders and dataset-level files."""

    models: tuple[Unit, ...]
    ensembles: tuple[Unit, ...]
    files: tuple[Unit, ...]

    @property
    def units(self) -> tuple[Unit, ...]:
        return (*self.models, *self.ensembles, *self.files)


def is_model_folder_name(name: str) -> bool:
    """``<trainer>__<plans>__<configuration>`` with three non-empty parts."""
    return ModelFolderName.parse(name) is not None


def model_zip_layout(entries: Iterable[ZipEntry], label: str) -> ZipLayout:
    """Group the entries into install units; ModelSharingError when the zip does not hold a model."""
    entries = list(entries)
    models: dict[Unit, set[str]] = {}
    ensembles: set[Unit] = set()
    files: set[Unit] = set()
    for entry in entries:
        parts = entry.parts
        if DatasetName.parse(parts[0]) is None:
            raise _not_a_model_zip(label, parts[0])
        if len(parts) == 1:
            if not entry.is_dir:
                raise refuse(label, f"entry {entry.name!r} is a file where a dataset folder is expected")
            continue
        if is_model_folder_name(parts[1]):
            models.setdefault(parts[:2], set())
            if len(parts) > 2 and not entry.is_dir:
                models[parts[:2]].add("/".join(parts[2:]))
        elif parts[1] == ENSEMBLES_FOLDER:
            if len(parts) > 2:
                ensembles.add(parts[:3])
        elif len(parts) == 2 and not entry.is_dir:
            files.add(parts)
        else:
            raise refuse(label, f"entry {entry.name!r} is neither in a model folder (<trainer>__<plans>__"
                         f"<configuration>) nor in {ENSEMBLES_FOLDER}/ of its dataset folder")
    if not models:
        raise refuse(label, "it contains no model folder (DatasetXXX_Name/<trainer>__<plans>__<configuration>/)")
    for unit, members in models.items():
        _check_model_members("/".join(unit), members, label)
    return ZipLayout(tuple(sorted(models)), tuple(sorted(ensembles)), tuple(sorted(files)))


def _not_a_model_zip(label: str, top: str) -> ModelSharingError:
    if is_model_folder_name(top):
        hint = (f"its entries start with the model folder {top!r}, but model zips hold paths relative to "
                f"nnUNet_results that start with the dataset folder (DatasetXXX_Name/{top}/...)")
    else:
        hint = f"its top-level entry {top!r} is not a dataset folder named like Dataset004_Hippocampus"
    return ModelSharingError(
        f"Refusing {label}: {hint}. Create model zips with `autoseg export_model_to_zip` or "
        f"`nnUNetv2_export_model_to_zip`. Nothing was installed."
    )


def _check_model_members(model: str, members: set[str], label: str) -> None:
    for required in ("plans.json", "dataset.json"):
        if required not in members:
            raise refuse(label, f"model folder {model} has no {required}")
    checkpoints = [m for m in members if m.startswith("fold_") and m.count("/") == 1 and m.endswith(".pth")]
    if not checkpoints:
        raise refuse(label, f"model folder {model} has no checkpoint (fold_X/checkpoint_final.pth)")


def install_model_zip(
    zip_file: str | os.PathLike[str],
    results_folder: str | os.PathLike[str],
    overwrite: bool = False,
    limits: ExtractionLimits = ExtractionLimits(),
    log: Callable[[str], None] = logger.info,
) -> InstallResult:
    """Install ``zip_file`` into ``results_folder`` (nnUNet_results); see the module docstring."""
    zip_path = Path(zip_file)
    results = Path(results_folder)
    label = f"model zip {zip_path}"
    if not zip_path.is_file():
        raise ModelSharingError(f"Model zip {zip_path} does not exist (or is not a file).")
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as err:
        raise ModelSharingError(f"{zip_path} is not a readable zip archive ({err}). Nothing was installed.") from err
    with archive:
        entries = inspect_zip(archive, label, limits)
        layout = model_zip_layout(entries, label)
        conflicts = [results.joinpath(*u) for u in (*layout.models, *layout.ensembles) if _exists(results.joinpath(*u))]
        if conflicts and not overwrite:
            raise _conflict_error(label, conflicts, results)
        _check_paths_are_folders(results, layout, label)
        _check_free_space(results, sum(e.size for e in entries), label)
        _warn_ambiguous_ids(results, layout)
        created = _make_folder(results)
        try:
            staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=results))
        except OSError as err:
            _remove_created(created)
            raise ModelSharingError(
                f"Cannot create a staging folder in {results}: {err}. Nothing was installed."
            ) from err
        try:
            log(f"Extracting {zip_path.name} ({len(entries)} entries) ...")
            extract_entries(archive, entries, staging, label, limits)
            _vet_staged(staging, layout, label, zip_path.name)
            unchanged = _unchanged_files(staging, results, layout.files)
            file_conflicts = [results.joinpath(*u) for u in layout.files
                              if _exists(results.joinpath(*u)) and results.joinpath(*u) not in unchanged]
            if file_conflicts and not overwrite:
                raise _conflict_error(label, file_conflicts, results)
            result = _move_into_place(staging, results, layout, unchanged, label)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            _remove_created(created)
            raise
        shutil.rmtree(staging, ignore_errors=True)
    for path in result.models:
        log(f"Installed model {path}")
    for path in result.ensembles:
        log(f"Installed ensemble {path}")
    for path in result.replaced:
        log(f"Replaced the previously installed {path}")
    return result


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _conflict_error(label: str, paths: list[Path], results: Path) -> ModelSharingError:
    listed = ", ".join(str(p.relative_to(results)) for p in paths)
    return ModelSharingError(
        f"Refusing {label}: {listed} already exist{'s' if len(paths) == 1 else ''} in nnUNet_results ({results}). "
        f"Remove or rename {'it' if len(paths) == 1 else 'them'} first, or pass --overwrite to replace "
        f"{'it' if len(paths) == 1 else 'them'} with the zip's content. Nothing was installed."
    )


def _check_paths_are_folders(results: Path, layout: ZipLayout, label: str) -> None:
    """Every folder on the way to an install unit must be a real folder (not a file or a link)."""
    for unit in layout.units:
        for depth in range(1, len(unit)):
            path = results.joinpath(*unit[:depth])
            if path.is_symlink() or (path.exists() and not path.is_dir()):
                raise refuse(
                    label, f"{path} is {'a link' if path.is_symlink() else 'a file'} where the zip needs a folder"
                )


def _check_free_space(results: Path, needed: int, label: str) -> None:
    probe = results
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < needed + _FREE_SPACE_MARGIN:
        raise ModelSharingError(
            f"Not enough disk space to install {label}: it needs {needed / 1024**3:.2f} GiB, {probe} has "
            f"{free / 1024**3:.2f} GiB free. Nothing was installed."
        )


def _warn_ambiguous_ids(results: Path, layout: ZipLayout) -> None:
    if not results.is_dir():
        return
    for name in sorted({u[0] for u in layout.units}):
        dataset_id = parse_dataset_id(name)
        assert dataset_id is not None  # model_zip_layout accepts dataset folder names only
        prefix = DatasetName.prefix(dataset_id)
        others = sorted(p.name for p in results.iterdir() if p.name.startswith(prefix) and p.name != name)
        if others:
            logger.warning("nnUNet_results already has %s with the same id as %s: address the dataset by its full "
                           "name (-d %s), the id alone is ambiguous.", ", ".join(others), name, name)


def _make_folder(folder: Path) -> list[Path]:
    """Create ``folder`` and missing parents; return the folders created (outermost first)."""
    missing = []
    probe = folder
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    folder.mkdir(parents=True, exist_ok=True)
    return list(reversed(missing))


def _remove_created(created: list[Path]) -> None:
    for folder in reversed(created):
        try:
            folder.rmdir()
        except OSError:
            return


# ------------------------------------------------------------------------------------------ vetting
def _vet_staged(staging: Path, layout: ZipLayout, label: str, zip_name: str) -> None:
    """Read what would be dangerous or broken to install, without running code from it.

    Errors name the file as ``<zip name>:<entry>`` (not the staging path, which is gone by then).
    """
    from autoseg.dataset.dataset_json import DatasetJson
    from autoseg.network.checkpoint import load_checkpoint
    from autoseg.plans.model import Plans

    try:
        for unit in layout.models:
            folder = staging.joinpath(*unit)
            Plans.load(folder / "plans.json")
            DatasetJson.load(folder / "dataset.json")
        for path in sorted(staging.rglob("*")):
            if path.is_dir():
                continue
            suffix = path.suffix.lower()
            if suffix == ".pkl":
                _vet_pickle(path)
            elif suffix == ".pth":
                load_checkpoint(path)
            elif suffix == ".json":
                _vet_json(path)
    except AutoSegError as err:
        message = str(err).replace(f"{staging}{os.sep}", f"{zip_name}:").replace(str(staging), zip_name)
        raise ModelSharingError(f"Refusing {label}: {message} Nothing was installed.") from None


def _vet_json(path: Path) -> None:
    read_json(path, ModelSharingError)


def _vet_pickle(path: Path) -> None:
    """postprocessing.pkl must hold only nnU-Net's connected-component steps; other pickles plain data."""
    from autoseg.utils.safe_pickle import PROPERTIES_GLOBALS, load_restricted

    if path.name == "postprocessing.pkl":
        from autoseg.postprocessing.files import load_postprocessing

        load_postprocessing(path)
    else:
        load_restricted(path, PROPERTIES_GLOBALS)


def _unchanged_files(staging: Path, results: Path, files: Iterable[Unit]) -> list[Path]:
    """Dataset-level files that are already installed with the same content."""
    return [
        results.joinpath(*u)
        for u in files
        if results.joinpath(*u).is_file() and filecmp.cmp(staging.joinpath(*u), results.joinpath(*u), shallow=False)
    ]


# ------------------------------------------------------------------------------------------ moving
def _move_into_place(
    staging: Path, results: Path, layout: ZipLayout, unchanged: list[Path], label: str
) -> InstallResult:
    result = InstallResult(unchanged=list(unchanged))
    backups_root = staging / ".replaced"
    placed: list[tuple[Path, Path]] = []  # (installed path, its staging path)
    backups: list[tuple[Path, Path]] = []  # (backup path, original path)
    created: list[Path] = []
    try:
        for unit in layout.units:
            target = results.joinpath(*unit)
            if target in unchanged:
                continue
            source = staging.joinpath(*unit)
            created += _make_folder(target.parent)
            if _exists(target):
                backup = backups_root.joinpath(*unit)
                backup.parent.mkdir(parents=True, exist_ok=True)
                os.replace(target, backup)
                backups.append((backup, target))
                result.replaced.append(target)
            os.replace(source, target)
            placed.append((target, source))
            kind = (
                result.models
                if unit in layout.models
                else result.ensembles
                if unit in layout.ensembles
                else result.files
            )
            kind.append(target)
    except BaseException as err:  # also Ctrl+C: put everything back as it was
        _roll_back([*reversed(placed), *((b, t) for b, t in reversed(backups))])
        _remove_created(created)
        if isinstance(err, OSError):
            raise ModelSharingError(f"Could not move the content of {label} into {results}: {err}. "
                                    f"Nothing was installed.") from err
        raise
    return result


def _roll_back(moves: list[tuple[Path, Path]]) -> None:
    """Undo renames (``current -> original``), best effort: a failure must not hide the original error."""
    for current, original in moves:
        try:
            os.replace(current, original)
        except OSError as err:
            logger.error("Could not move %s back to %s (%s); move it by hand.", current, original, err)
