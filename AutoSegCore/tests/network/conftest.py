"""Fixtures for the network tests."""

import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread(single_torch_thread: None) -> None:
    """Every network test runs with one torch thread (the shared ``single_torch_thread`` of tests/conftest.py)."""
