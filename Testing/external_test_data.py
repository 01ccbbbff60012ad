"""Where the tests find what is not in the repository, and the check that it is there before a run.

Two settings (environment variables; an absolute path, or one relative to the repository root):

- ``AUTOSEG_TEST_DATA`` (default ``../shared/data``): the real nnU-Net v2 raw datasets ``Hippocampus``,
  ``BraTS2015Subset`` and ``CT_TotalSegExamples``. What each must hold is pinned in the repository:
  ``Testing/test_data_manifests/<dataset>/{dataset.json,SHA256SUMS}`` (the sha256 of every file).
- ``AUTOSEG_SLICER_PYTHON`` (default ``../shared/slicer-python``): Slicer's pure-Python library
  (``Base/Python/slicer`` of the Slicer repository) as ``<version>/slicer/`` for Slicer 5.10 and main,
  read by :mod:`slicer_env`.

:func:`missing_message` compares both with what the tests need (every dataset file against its checksum:
about 60 MB, well under a second) and :func:`stop_run_if_missing` (the ``pytest_sessionstart`` hook of
both test trees) ends the run with that message instead of failures at collection. Provenance, licences
and step-by-step instructions: README.md, section "Test data".
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = ROOT / "Testing" / "test_data_manifests"


def _setting(variable: str, default: str) -> Path:
    value = os.environ.get(variable) or default
    return (ROOT / Path(value).expanduser()).resolve()


TEST_DATA = _setting("AUTOSEG_TEST_DATA", "../shared/data")
SLICER_PYTHON = _setting("AUTOSEG_SLICER_PYTHON", "../shared/slicer-python")

HIPPOCAMPUS = TEST_DATA / "Hippocampus"
BRATS = TEST_DATA / "BraTS2015Subset"
CT_TOTALSEG = TEST_DATA / "CT_TotalSegExamples"


@dataclass(frozen=True)
class Requirement:
    """One folder the tests need: its name, what it is (one line) and how to get it (``{folder}``: its path)."""

    name: str
    what: str
    get: str
    alternative: str = ""


DATASETS = (
    Requirement(
        "Hippocampus",
        "208 training cases of MSD Task04_Hippocampus (MRI, cropped around the hippocampus by MSD itself), "
        "byte copies of the Udacity nd320 redistribution, renamed only; CC-BY-SA 4.0",
        "git clone https://github.com/MinervaRose/nd320-c3-3d-imaging-starter (commit 393f9e1480d5); for each "
        "case in the manifest's SHA256SUMS copy data/TrainingSet/images/<case>.nii.gz to "
        "{folder}/imagesTr/<case>_0000.nii.gz and data/TrainingSet/labels/<case>.nii.gz to "
        "{folder}/labelsTr/<case>.nii.gz",
        "Task04_Hippocampus.tar from http://medicaldecathlon.com, `autoseg convert_MSD_dataset -i "
        "Task04_Hippocampus`, move nnUNet_raw/Dataset004_Hippocampus to {folder}, delete the cases not in "
        "SHA256SUMS, use the manifest's dataset.json (MSD's bytes = these: likely, not verified)",
    ),
    Requirement(
        "BraTS2015Subset",
        "6 BRATS 2015 cases (from BRATS 2013), FLAIR + T1c z-scored by DeepMedic, labels 0-4; CC BY-NC-SA 3.0 CH",
        "git clone https://github.com/deepmedic/deepmedic (commit e10ba7c3570d); from "
        "examples/dataForExamples/brats2015TrainingData/{{train,validation,test}}/<case>/ copy "
        "Flair_subtrMeanDivStd.nii.gz to {folder}/imagesTr/<case>_0000.nii.gz, T1c_subtrMeanDivStd.nii.gz to "
        "imagesTr/<case>_0001.nii.gz, OTMultiClass.nii.gz to labelsTr/<case>.nii.gz, and one "
        "LICENSE_DATA_CC_BY_NC_SA_3.0.txt to {folder}",
    ),
    Requirement(
        "CT_TotalSegExamples",
        "2 CT volumes with TotalSegmentator's predicted 117-class label maps (not manual labels); fixtures of an "
        "Apache-2.0 repository, scan provenance unverified",
        "git clone https://github.com/wasserth/TotalSegmentator (commit 0e65a448d557); from tests/reference_files/ "
        "copy example_ct_sm.nii.gz to {folder}/imagesTr/ts_example_sm_0000.nii.gz and example_seg.nii.gz to "
        "labelsTr/ts_example_sm.nii.gz; ts_example_dicom is derived (DICOM series example_ct_dicom/ to NIfTI, "
        "example_seg_dicom.nii.gz flipped in y): README.md, \"Test data\"",
    ),
)

SLICER_VERSIONS = (
    Requirement(
        "5.10",
        "Slicer v5.10.0's Python library Base/Python/slicer (the oldest Slicer supported); 3D Slicer License",
        "git clone https://github.com/Slicer/Slicer && mkdir -p {folder} && git -C Slicer archive "
        "a2b6d082be04274a849884fbb1e85634a9df90fb Base/Python/slicer | tar -x --strip-components=2 -C {folder}",
    ),
    Requirement(
        "main",
        "Slicer main's Base/Python/slicer (the source of the slicer-core 5.13 wheels); 3D Slicer License",
        "as for 5.10, with commit 583e9b37d50ead7daf7b783dce465ccaecec8809 and -C {folder}",
    ),
)
#: What ``slicer_env.install`` loads from ``<version>/slicer`` (parameterNodeWrapper imports its siblings).
SLICER_FILES = ("util.py", "i18n.py", "ScriptedLoadableModule.py", "parameterNodeWrapper/__init__.py")


def expected_checksums(dataset: str) -> dict[str, str]:
    """``{relative path: sha256}`` from ``Testing/test_data_manifests/<dataset>/SHA256SUMS``."""
    lines = (MANIFESTS / dataset / "SHA256SUMS").read_text().splitlines()
    return {name.lstrip("*"): digest for digest, name in (line.split(None, 1) for line in lines if line.strip())}


def _first(names: list[str]) -> str:
    return f"{len(names)} (first: {names[0]})" if len(names) > 1 else names[0]


def dataset_problem(folder: Path, dataset: str) -> str | None:
    """Why ``folder`` is not the dataset the tests expect (missing, missing/unexpected/different files), or None."""
    if not folder.is_dir():
        return "missing"
    expected = expected_checksums(dataset)
    absent = [name for name in expected if not (folder / name).is_file()]
    if absent:
        return f"incomplete, missing file(s): {_first(absent)}"
    unexpected = sorted(
        str(path.relative_to(folder)) for sub in ("imagesTr", "labelsTr") for path in (folder / sub).iterdir()
        if str(path.relative_to(folder)) not in expected
    )
    if unexpected:
        return f"file(s) the tests do not expect: {_first(unexpected)}"
    different = [name for name, digest in expected.items()
                 if hashlib.sha256((folder / name).read_bytes()).hexdigest() != digest]
    if different:
        return f"file(s) differ from the expected checksums: {_first(different)}"
    return None


def slicer_problem(folder: Path) -> str | None:
    """Why ``<folder>/slicer`` is not Slicer's Python library as ``slicer_env`` needs it, or None."""
    if not (folder / "slicer").is_dir():
        return "missing"
    absent = [name for name in SLICER_FILES if not (folder / "slicer" / name).is_file()]
    return f"incomplete, missing slicer/{_first(absent)}" if absent else None


def _item(folder: Path, problem: str, requirement: Requirement, manifest: Path | None) -> str:
    lines = [f"  - {requirement.name} ({folder}): {problem}", f"      what: {requirement.what}",
             f"      get:  {requirement.get.format(folder=folder)}"]
    if requirement.alternative:
        lines.append(f"      or:   {requirement.alternative.format(folder=folder)}")
    if manifest is not None:
        lines.append(f"      and:  copy dataset.json and SHA256SUMS from {manifest.relative_to(ROOT)}/ in the "
                     f"repository; check: cd {folder} && sha256sum -c SHA256SUMS")
    return "\n".join(lines) + "\n"


@functools.cache
def missing_message(test_data: Path = TEST_DATA, slicer_python: Path = SLICER_PYTHON) -> str | None:
    """One readable message naming each missing (or different) folder and how to get it; None if all is there."""
    datasets = "".join(
        _item(test_data / r.name, problem, r, MANIFESTS / r.name)
        for r in DATASETS if (problem := dataset_problem(test_data / r.name, r.name)))
    slicer = "".join(
        _item(slicer_python / r.name, problem, r, None)
        for r in SLICER_VERSIONS if (problem := slicer_problem(slicer_python / r.name)))
    if not datasets and not slicer:
        return None
    return (
        "AutoSeg's tests need files that are not in the repository; missing or not as expected:\n"
        + (f"\nAUTOSEG_TEST_DATA={test_data}\n{datasets}" if datasets else "")
        + (f"\nAUTOSEG_SLICER_PYTHON={slicer_python}\n{slicer}" if slicer else "")
        + "\nGet them as above, or set AUTOSEG_TEST_DATA / AUTOSEG_SLICER_PYTHON (absolute, or relative to the "
        "repository; defaults ../shared/data and ../shared/slicer-python) to where you keep them, e.g. "
        "`make test AUTOSEG_TEST_DATA=/data/autoseg-test-data`. Provenance, licences, step by step: README.md, "
        "\"Test data\"."
    )


def stop_run_if_missing() -> None:
    """The ``pytest_sessionstart`` hook of both test trees: stop before collection when something is missing.

    A usage error, not ``pytest.exit``: pytest prints it once (``ERROR: <message>``) and exits with 4.
    """
    message = missing_message()
    if message:
        import pytest

        raise pytest.UsageError(message)
