"""Which Python packages AutoSeg still needs inside 3D Slicer, and how to install them safely.

Slicer ships its own numpy and SimpleITK, and torch comes from the PyTorch extension (which picks
the CUDA build matching the GPU); running a model needs no torch (OpenVINO). A plain ``pip install`` of our
requirements could replace any of them (batchgeneratorsv2 depends on torch, scikit-image on numpy). So the
modules install only what is missing, with a constraints file that pins the installed versions of those
protected packages: pip then either keeps them or fails with a clear conflict, and never swaps them silently.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from importlib import metadata

#: What ``autoseg`` needs beyond numpy and SimpleITK (kept equal to pyproject.toml's dependencies by a test).
SLICER_REQUIREMENTS = (
    "scipy>=1.10",
    "scikit-image>=0.21",
    "tifffile>=2023.1.1",
    "Pillow>=9.0",
    "tqdm>=4.64",
    "psutil>=5.9",
    "threadpoolctl>=3.1",
    "slicerio>=1.1",
)

#: Training (and the PyTorch engine) also needs these, besides torch (pyproject's ``torch`` extra).
SLICER_TRAINING_REQUIREMENTS = (
    "batchgeneratorsv2>=0.3.6",
    "matplotlib>=3.7",
)

#: The torch-free inference engine (pyproject's ``openvino`` extra): enough to run a model in Slicer.
SLICER_OPENVINO_REQUIREMENTS = ("openvino>=2025.0",)

#: What each module needs: ``inference`` runs models (OpenVINO, no PyTorch), ``training`` trains them.
PURPOSES = ("inference", "training")


def requirements_for(purpose: str) -> tuple[str, ...]:
    """The pip requirements (torch excluded: it comes from the PyTorch extension) for ``purpose``."""
    if purpose == "inference":
        return SLICER_REQUIREMENTS + SLICER_OPENVINO_REQUIREMENTS
    if purpose == "training":
        return SLICER_REQUIREMENTS + SLICER_TRAINING_REQUIREMENTS
    raise ValueError(f"Unknown purpose {purpose!r}: use {', '.join(PURPOSES)}.")


def needs_torch(purpose: str) -> bool:
    """Training needs PyTorch; running a model does not (OpenVINO)."""
    return purpose == "training"


#: Installed by Slicer or by the PyTorch extension; never replaced by our pip runs.
PROTECTED_PACKAGES = ("numpy", "SimpleITK", "torch")

#: The torch version AutoSeg needs, passed to the PyTorch extension's installer.
TORCH_REQUIREMENT = ">=2.1.2"

_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(.*)$")


def requirement_name(requirement: str) -> str:
    """The distribution name of ``"scikit-image>=0.21"`` -> ``"scikit-image"``."""
    match = _REQUIREMENT.match(requirement)
    if not match:
        raise ValueError(f"Not a requirement: {requirement!r}")
    return match.group(1)


def missing_requirements(
    requirements: Iterable[str] = SLICER_REQUIREMENTS + SLICER_TRAINING_REQUIREMENTS,
    installed_version: Callable[[str], str] = metadata.version,
) -> list[str]:
    """The requirements that are not installed, or installed in a version that does not satisfy them."""
    from packaging.requirements import Requirement  # part of every pip-enabled Python, Slicer's too

    missing = []
    for text in requirements:
        requirement = Requirement(text)
        try:
            version = installed_version(requirement.name)
        except metadata.PackageNotFoundError:
            missing.append(text)
            continue
        if requirement.specifier and not requirement.specifier.contains(version, prereleases=True):
            missing.append(text)
    return missing


def protected_constraints(
    packages: Sequence[str] = PROTECTED_PACKAGES,
    installed_version: Callable[[str], str] = metadata.version,
) -> list[str]:
    """``name==version`` for each protected package that is installed (the pip constraints file)."""
    constraints = []
    for name in packages:
        try:
            constraints.append(f"{name}=={installed_version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return constraints


def pip_install_arguments(missing: Sequence[str], constraints_file: str) -> list[str]:
    """Arguments after ``pip install`` that add ``missing`` without touching the protected packages."""
    if not missing:
        return []
    return ["--constraint", constraints_file, *missing]


def torch_missing(installed_version: Callable[[str], str] = metadata.version) -> bool:
    """True when torch is absent or older than :data:`TORCH_REQUIREMENT`."""
    return bool(missing_requirements([f"torch{TORCH_REQUIREMENT}"], installed_version))
