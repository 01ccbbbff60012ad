"""The Slicer dependency list matches pyproject.toml, and installs never touch numpy/SimpleITK/torch."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest
import tomllib

from autoseg.slicer_support.dependencies import (
    PROTECTED_PACKAGES,
    SLICER_OPENVINO_REQUIREMENTS,
    SLICER_REQUIREMENTS,
    SLICER_TRAINING_REQUIREMENTS,
    TORCH_REQUIREMENT,
    missing_requirements,
    needs_torch,
    pip_install_arguments,
    protected_constraints,
    requirement_name,
    requirements_for,
    torch_missing,
)

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _fake_versions(versions: dict[str, str]):
    def version(name: str) -> str:
        if name not in versions:
            raise metadata.PackageNotFoundError(name)
        return versions[name]
    return version


def test_slicer_requirements_are_pyproject_minus_protected():
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    expected = {d for d in project["dependencies"] if requirement_name(d) not in PROTECTED_PACKAGES}
    assert set(SLICER_REQUIREMENTS) == expected
    extras = project["optional-dependencies"]
    assert set(SLICER_TRAINING_REQUIREMENTS) == {d for d in extras["torch"] if requirement_name(d) != "torch"}
    assert set(SLICER_OPENVINO_REQUIREMENTS) == set(extras["openvino"])
    assert [d for d in extras["torch"] if requirement_name(d) == "torch"] == [f"torch{TORCH_REQUIREMENT}"]


def test_running_a_model_needs_no_torch():
    assert not needs_torch("inference") and needs_torch("training")
    inference, training = requirements_for("inference"), requirements_for("training")
    assert "openvino>=2025.0" in inference and not any(requirement_name(r) == "torch" for r in inference)
    assert "batchgeneratorsv2>=0.3.6" in training and "batchgeneratorsv2>=0.3.6" not in inference
    with pytest.raises(ValueError, match="inference, training"):
        requirements_for("painting")


def test_missing_and_too_old_are_reported():
    versions = _fake_versions({"scipy": "1.9.0", "tqdm": "4.66.0"})
    missing = missing_requirements(["scipy>=1.10", "tqdm>=4.64", "slicerio>=1.1"], versions)
    assert missing == ["scipy>=1.10", "slicerio>=1.1"]


def test_everything_installed_here():
    assert missing_requirements() == []  # the test environment has every runtime dependency
    assert missing_requirements(requirements_for("inference")) == []


def test_constraints_pin_installed_protected_versions():
    versions = _fake_versions({"numpy": "1.26.4", "SimpleITK": "2.3.1"})
    assert protected_constraints(installed_version=versions) == ["numpy==1.26.4", "SimpleITK==2.3.1"]
    assert pip_install_arguments(["scipy>=1.10"], "/tmp/c.txt") == ["--constraint", "/tmp/c.txt", "scipy>=1.10"]
    assert pip_install_arguments([], "/tmp/c.txt") == []


def test_torch_check():
    assert torch_missing(_fake_versions({})) is True
    assert torch_missing(_fake_versions({"torch": "1.13.1"})) is True
    assert torch_missing(_fake_versions({"torch": "2.13.0+cpu"})) is False


def test_bad_requirement_text():
    with pytest.raises(ValueError):
        requirement_name(">=1")
