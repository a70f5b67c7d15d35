"""Reliability: each fault is handled, and none leaves a process or a shared memory block.

The matrix (tests/faultmatrix.py): a worker SIGKILLed mid-round, a worker raising, a worker
hanging (round timeout), the Manager server killed, SIGINT and SIGTERM to the run, SIGKILL to
the whole run followed by `sharebench clean`.
"""

from __future__ import annotations

import os
import stat

import pytest

import faultmatrix
from sharebench import lifecycle
from sharebench.mechanisms import get
from sharebench.mechanisms.base import StoreSpec


@pytest.mark.parametrize("scenario", faultmatrix.IN_PROCESS, ids=lambda f: f.__name__)
def test_in_process_fault(scenario):
    outcome = scenario()
    assert outcome.handled, outcome.detail
    assert outcome.leaked_segments == []
    assert outcome.orphans == []


@pytest.mark.parametrize("scenario", faultmatrix.WHOLE_RUN, ids=lambda f: f.__name__)
def test_whole_run_fault(scenario, tmp_path):
    outcome = scenario(tmp_path)
    assert outcome.handled, outcome.detail
    assert outcome.leaked_segments == []
    assert outcome.orphans == []


def test_fault_matrix_tally(tmp_path, capsys):
    """All seven kinds in one go; the tally is printed (run with -s to see it)."""
    outcomes = [f() for f in faultmatrix.IN_PROCESS]
    outcomes += [f(tmp_path / f.__name__) for f in faultmatrix.WHOLE_RUN]
    handled = sum(o.handled for o in outcomes)
    leaked = sum(len(o.leaked_segments) for o in outcomes)
    orphans = sum(len(o.orphans) for o in outcomes)
    with capsys.disabled():
        print("\nfault matrix:")
        for o in outcomes:
            print(f"  {'handled' if o.clean else 'FAILED '}  {o.fault:28s} {o.detail}")
        print(f"  tally: {len(outcomes)} faults injected, {handled} of {len(outcomes)} "
              f"handled, {leaked} segments leaked, {orphans} orphan processes")
    assert (len(outcomes), handled, leaked, orphans) == (7, 7, 0, 0)


def test_blocks_are_private_and_named_for_their_run():
    import multiprocessing

    store = get("shm", "lock", "append").store(
        multiprocessing.get_context("fork"), StoreSpec(2, 16, run_token=str(os.getpid())))
    try:
        name = store.handles()[0]
        assert name.startswith(f"sharebench-{os.getpid()}-")
        assert len(name) > len(f"sharebench-{os.getpid()}-") + 8  # a random part follows
        mode = stat.S_IMODE(os.stat(lifecycle.SHM_DIR / name).st_mode)
        assert mode == 0o600
    finally:
        store.close()
    assert not (lifecycle.SHM_DIR / name).exists()


def test_clean_leaves_live_runs_and_foreign_files_alone(tmp_path):
    dead_pid = _dead_pid()
    for name in (f"sharebench-{dead_pid}-abc123", f"sharebench-{os.getpid()}-def456",
                 "sharebench-notapid", "someone-elses-block"):
        (tmp_path / name).write_bytes(b"x")
    removed = lifecycle.clean_stale(tmp_path)
    assert [s.name for s in removed] == [f"sharebench-{dead_pid}-abc123"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"sharebench-{os.getpid()}-def456", "sharebench-notapid", "someone-elses-block"])


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid
