"""Before collection: stop the run with one message when data the tests read from outside the repository is missing.

``external_test_data`` (in ../Testing, on ``sys.path`` through ``pythonpath`` in pyproject.toml) defines where
that data is (``AUTOSEG_TEST_DATA``, ``AUTOSEG_SLICER_PYTHON``); Testing/conftest.py runs the same check, so that
it runs whichever of the two trees is selected (once: the result is cached). Also the fixtures several test
packages share.
"""

from collections.abc import Iterator

import pytest
from external_test_data import stop_run_if_missing


def pytest_sessionstart(session):
    stop_run_if_missing()


@pytest.fixture()
def single_torch_thread() -> Iterator[None]:
    """Tiny test networks: more intra-op threads only add synchronisation, and stall on busy cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
