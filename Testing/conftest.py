import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


def pytest_configure(config):
    # also declared in AutoSegCore/pyproject.toml, which pytest does not read when given ../Testing paths
    config.addinivalue_line("markers", "oracle: compares against an installed nnunetv2 (the reference implementation)")


def pytest_sessionstart(session):
    # before collection: one message naming the data missing outside the repository and how to get it
    from external_test_data import stop_run_if_missing

    stop_run_if_missing()


@pytest.fixture(scope="session")
def nnunet_model_factory(tmp_path_factory):
    """``factory(kind, configurations, folds, planner="ExperimentPlanner", **options) -> dict``.

    Builds a real nnU-Net v2 model folder (see ``nnunet_models.build_nnunet_model``) once per pytest
    session for each distinct argument set. Set ``AUTOSEG_NNUNET_MODEL_CACHE=<folder>`` to keep the
    models across sessions (reused when complete).
    """
    from nnunet_models import NnUNetModelFactory

    persistent = os.environ.get("AUTOSEG_NNUNET_MODEL_CACHE")
    if persistent:
        return NnUNetModelFactory(persistent, persistent=True)
    return NnUNetModelFactory(tmp_path_factory.mktemp("nnunet_models"))


@pytest.fixture(params=["5.10", "main"])
def real_slicer(request, tmp_path):
    """Slicer's real MRML (slicer-core) + Slicer ``<version>``'s own Python library, Qt stood in for.

    Parametrised over the oldest supported Slicer (5.10) and Slicer main; see ``slicer_env``.
    """
    import slicer_env

    environment = slicer_env.install(request.param, tmp_path / "slicer-temp")
    yield environment
    slicer_env.uninstall()


@pytest.fixture()
def real_slicer_oldest(tmp_path):
    """As ``real_slicer``, Slicer 5.10 only (for the slower tests that run real AutoSeg commands)."""
    import slicer_env

    environment = slicer_env.install("5.10", tmp_path / "slicer-temp")
    yield environment
    slicer_env.uninstall()
