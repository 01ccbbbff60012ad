"""Before collection: stop the run with one message when data the tests read from outside the repository is missing.

``external_test_data`` (in ../Testing, on ``sys.path`` through ``pythonpath`` in pyproject.toml) defines where
that data is (``AUTOSEG_TEST_DATA``, ``AUTOSEG_SLICER_PYTHON``); Testing/conftest.py runs the same check, so that
it runs whichever of the two trees is selected (once: the result is cached).
"""

from external_test_data import stop_run_if_missing


def pytest_sessionstart(session):
    stop_run_if_missing()
