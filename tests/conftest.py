"""Shared fixtures, and the session-wide promise: no shared memory block and no process of
the suite outlives the tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy  # noqa: F401  (pytester restores sys.modules after each test; numpy
import pandas  # noqa: F401  and pandas cannot be imported twice, so import them first)
import pytest

SHM_DIR = Path("/dev/shm")
PREFIX = "sharebench-"

# multiprocessing's own helpers live until the interpreter exits; they are not ours to stop.
_STDLIB_HELPERS = ("resource_tracker", "forkserver")


def shm_entries() -> set[str]:
    """Shared memory blocks made by runs of this test process (their names carry our pid, so
    a benchmark running beside the tests cannot make them fail)."""
    if not SHM_DIR.exists():
        return set()
    mine = f"{PREFIX}{os.getpid()}-"
    return {p.name for p in SHM_DIR.iterdir() if p.name.startswith(mine)}


def suite_children() -> list[str]:
    """Live child processes of this test process, other than multiprocessing's helpers."""
    import psutil

    out = []
    for child in psutil.Process().children(recursive=True):
        try:
            cmdline = " ".join(child.cmdline())
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
        except psutil.NoSuchProcess:
            continue
        if any(h in cmdline for h in _STDLIB_HELPERS):
            continue
        out.append(f"{child.pid} {cmdline[:120]}")
    return out


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

