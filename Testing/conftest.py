import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


def pytest_configure(config):
    # also declared in AutoSegCore/pyproject.toml, which pytest does not read when given ../Testing paths
    config.addinivalue_line("markers", "oracle: compares against an installed nnunetv2 (the reference implementation)")


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
