"""Shared fixtures, and the session-wide promise: no shared memory block and no process of
the suite outlives the tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy  # noqa: F401  (pytester restores sys.modules after each test; numpy
import pandas  # noqa: F401  and pandas cannot be imported twice, so import them first)
import pytest

from leaks import children as suite_children
from leaks import segments_of


def shm_entries() -> set[str]:
    """Shared memory blocks made by runs of this test process (their names carry our pid, so
    a benchmark running beside the tests cannot make them fail)."""
    return set(segments_of(os.getpid()))


@pytest.fixture(scope="session", autouse=True)
def no_leaks_after_session() -> Iterator[None]:
    """Fail the session if a test left a block in /dev/shm or a child process behind."""
    before = shm_entries()
    yield
    leaked = shm_entries() - before
    children = suite_children()
    assert not leaked, f"shared memory blocks left behind: {sorted(leaked)}"
    assert not children, f"processes left behind: {children}"


@pytest.fixture
def no_leaks() -> Iterator[None]:
    """The same promise for one test."""
    before = shm_entries()
    yield
    assert shm_entries() - before == set()
    assert suite_children() == []

