"""Ray benchmarks against a real local Ray cluster (the run's helper driver, never mocked):
exact counts, exact per-key counts, intact transfers, broken stores caught, the skipped reason
without Ray, and nothing left behind — after a normal stop, and after the run is SIGKILLed.

The test process plays the run: it never imports ray (workers and the driver do)."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from itertools import repeat
from pathlib import Path
from typing import Any

import pytest

from sharebench import lifecycle, proctree, rayservice
from sharebench.harness import HarnessConfig, run_benchmark
from sharebench.mechanisms import rayactor
from sharebench.mechanisms.base import StoreSpec
from sharebench.mechanisms.keyed import expected_counts
from sharebench.pools import ProcessPool
from sharebench.rayservice import NOT_INSTALLED, ray_installed

needs_ray = pytest.mark.skipif(not ray_installed(), reason=NOT_INSTALLED)

FAST = HarnessConfig(round_time=0.02, rounds=3, warmup_rounds=1)
MECHS = {f"{m.label}/{m.operation}": m for m in rayactor.MECHANISMS}
COUNTERS = [MECHS["ray-actor/atomic/increment"],
            MECHS[f"{rayactor.BATCHED}/atomic/increment"]]
DICT = MECHS["ray-actor/atomic/dict-increment"]
TRANSFER = MECHS["ray-object-store/atomic/transfer"]


def _alive(procs: dict[int, int]) -> list[int]:
    return [p for p, s in procs.items() if proctree.same_process(p, s)]


def _wait_gone(procs: dict[int, int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while _alive(procs) and time.monotonic() < deadline:
        time.sleep(0.1)
    return _alive(procs)


@pytest.fixture(scope="module")
def cluster() -> Any:
    """The run's cluster for this module, started and stopped by the suite's own code; its
    stop must leave no Ray process and no directory."""
    if not ray_installed():
        pytest.skip(NOT_INSTALLED)
    yield rayservice.shared(str(os.getpid()))
    service = rayservice.current()  # a test may have replaced it
    assert service is not None
    directory = service.directory
    assert directory is not None
    procs = rayservice.recorded(directory)
    rayservice.stop_shared()
    assert rayservice.current() is None
    assert _alive(procs) == []
    assert not directory.exists()


@pytest.fixture
def no_leaks_but_the_cluster(cluster: Any) -> Any:
    """conftest's promise for one test, the cluster's processes aside."""
    from conftest import shm_entries, suite_children

    before = shm_entries()
    yield
    assert shm_entries() - before == set()
    now = rayservice.current()
    assert now is not None
    ours = {*proctree.process_tree(now.pid), now.reaper.pid}
    assert [c for c in suite_children() if int(c.split()[0]) not in ours] == []
    assert "ray" not in sys.modules  # the run never imports ray: it must stay able to fork


def _round(mech: Any, processes: int, k: int, start_method: str = "fork", keys: int = 0
           ) -> Any:
    """Store, pool, one round of k ops per worker; returns what the store holds after it."""
    ctx = multiprocessing.get_context(start_method)
    store = mech.store(ctx, StoreSpec(processes, capacity=processes * k, keys=keys))
    pool = ProcessPool(ctx, mech, store.handles(), processes)
    try:
        if keys:
            before = list(store.read_counts())
        pool.start()
        pool.run_round(k)
        if keys:
            return [a - b for a, b in zip(store.read_counts(), before, strict=True)]
        return store.read_counter()
    finally:
        pool.close()
        store.close()


# --- without Ray ------------------------------------------------------------------------


def test_without_ray_every_row_is_skipped_with_the_install_hint(monkeypatch):
    monkeypatch.setattr(rayservice, "ray_installed", lambda: False)
    for mech in rayactor.MECHANISMS:
        payload = 1024 if mech.operation == "transfer" else 0
        keys = 10 if mech.operation == "dict-increment" else 0
        rec = run_benchmark(mech, 1, "fork", FAST, payload_bytes=payload, keys=keys)
        assert str(rec.status) == f"skipped: {NOT_INSTALLED}"
    assert str(rec.status) == "skipped: ray is not installed (pip install ray==2.60.0)"


def test_the_registry_side_stays_light():
    """Importing the mechanisms must not import ray (the run forks after it)."""
    code = ("import sys, sharebench.mechanisms.rayactor, sharebench.rayservice; "
            "assert 'ray' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- with a cluster ---------------------------------------------------------------------


@needs_ray
@pytest.mark.parametrize("processes", [1, 2])
@pytest.mark.parametrize("mech", COUNTERS, ids=lambda m: m.label)
def test_counters_end_exact(mech, processes, cluster, no_leaks_but_the_cluster):
    k = 2 * rayactor.BATCH + 7  # a partial last batch for the batched variant
    assert _round(mech, processes, k) == processes * k


@needs_ray
@pytest.mark.parametrize("processes", [1, 2])
def test_dict_increment_is_exact_per_key(processes, cluster, no_leaks_but_the_cluster):
    keys, k = 13, 300
    got = _round(DICT, processes, k, keys=keys)
    assert got == expected_counts(processes, keys, k).tolist()


@needs_ray
@pytest.mark.parametrize("mech", [*COUNTERS, DICT], ids=lambda m: f"{m.label}-{m.operation}")
def test_through_the_harness_every_round_is_exact(mech, cluster, no_leaks_but_the_cluster):
    rec = run_benchmark(mech, 2, "fork", FAST, keys=20)
    assert rec.status.is_ok, rec.status
    assert (rec.lost_updates, rec.duplicates) == (0, 0)
    assert rec.issued_ops == 3 * 2 * rec.ops_per_worker


@needs_ray
@pytest.mark.parametrize("size", [64, 1 << 20])
def test_every_transfer_arrives_intact(size, cluster, no_leaks_but_the_cluster):
    rec = run_benchmark(TRANSFER, 1, "fork", FAST, payload_bytes=size)
    assert rec.status.is_ok, rec.status
    assert rec.lost_updates == 0
    assert rec.issued_ops == 3 * rec.ops_per_worker


@pytest.mark.slow
@needs_ray
@pytest.mark.parametrize("mech", [COUNTERS[0], TRANSFER], ids=lambda m: m.operation)
def test_under_spawn(mech, cluster, no_leaks_but_the_cluster):
    rec = run_benchmark(mech, 1, "spawn", FAST, payload_bytes=4096)
    assert rec.status.is_ok, rec.status
    assert rec.lost_updates == 0


# --- broken stores are caught ----------------------------------------------------------


class ForgetfulCounter(rayactor.RayCounterStore):
    """Never zeroes the actor: every round after the first reads too much."""

    def reset(self) -> None:
        pass


def unstamped(local: Any, k: int, base: int) -> None:
    """A sender that puts the pattern but never stamps it: stale arrays."""
    get, put, take = local.get, local.put, local.call
    for i in repeat(0, k):
        get(take(put(local.payload.sources[i])))


@needs_ray
def test_a_counter_that_is_not_reset_fails_verification(cluster, no_leaks_but_the_cluster):
    rec = run_benchmark(COUNTERS[0].replace(store=ForgetfulCounter), 1, "fork", FAST)
    assert str(rec.status).startswith("error: verification failed:")
    assert "duplicated" in str(rec.status)


@needs_ray
def test_unstamped_transfers_fail_verification(cluster, no_leaks_but_the_cluster):
    rec = run_benchmark(TRANSFER.replace(loop=unstamped), 1, "fork", FAST, payload_bytes=4096)
    assert str(rec.status).startswith("error: verification failed:")
    assert "foreign values" in str(rec.status)


# --- nothing left behind -----------------------------------------------------------------

RUN = textwrap.dedent("""
    import os, sys
    from sharebench import rayservice
    from sharebench.harness import HarnessConfig, run_benchmark
    from sharebench.mechanisms import rayactor
    rec = run_benchmark(rayactor.MECHANISMS[0], 1, "fork",
                        HarnessConfig(round_time=0.02, rounds=2, warmup_rounds=0))
    assert rec.status.is_ok, rec.status
    print(rayservice.current().directory, flush=True)
    sys.stdin.read()  # until killed
""")


@pytest.mark.slow
@needs_ray
def test_a_killed_run_leaves_nothing_that_clean_does_not_remove():
    """SIGKILL of the run: Ray's processes die with it (PR_SET_PDEATHSIG down the tree), and
    its directory goes with ``clean_stale_dirs`` (what ``sharebench clean`` runs)."""
    run = subprocess.Popen([sys.executable, "-c", RUN], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, text=True)
    try:
        directory = Path(run.stdout.readline().strip())  # type: ignore[union-attr]
        assert directory.name.startswith(f"sharebench-{run.pid}-ray-")
        procs = rayservice.recorded(directory)
        assert len(procs) >= 4  # driver, GCS, raylet, agents, workers
        assert _alive(procs)
    finally:
        run.kill()
        run.wait()
        run.stdin.close()  # type: ignore[union-attr]
        run.stdout.close()  # type: ignore[union-attr]
    assert _wait_gone(procs, 10.0) == []
    # A dead run cannot remove its own directory (unless a cleaner beside us already did);
    # its reaper emptied the pid file: those pids may be anybody's by the time clean runs.
    with contextlib.suppress(FileNotFoundError):
        deadline = time.monotonic() + 5.0
        while (directory / rayservice.PIDS).read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (directory / rayservice.PIDS).read_text() == ""
    lifecycle.clean_stale_dirs()
    assert not directory.exists()


@pytest.mark.slow
@needs_ray
def test_clean_kills_the_processes_a_dead_run_recorded():
    """Should anything survive its run, the pid file in the run directory names it: a cluster
    started under the token of a dead run is killed and removed by ``clean_stale_dirs``."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    service = rayservice.RayService(dead.stdout.strip())
    service.start()
    try:
        directory = service.directory
        assert directory is not None
        procs = rayservice.recorded(directory)
        assert service.pid in procs
        removed = lifecycle.clean_stale_dirs()
        assert directory.name in [seg.name for seg in removed]
        assert _wait_gone(procs, 10.0) == []
        assert not directory.exists()
    finally:
        service.stop()  # reaps the killed driver; nothing else is left to do
    assert service.proc is None


def test_stop_is_safe_before_start_and_twice():
    service = rayservice.RayService("123")
    service.stop()
    service.stop()
    assert service.pid is None
    assert not service.running


@needs_ray
def test_the_service_reports_its_costs(cluster):
    assert 0 < cluster.init_s < cluster.start_s
    assert cluster.gcs_address.startswith("127.0.0.1:")
    os.kill(cluster.pid, 0)  # alive


@needs_ray
def test_a_dead_driver_fails_one_row_and_the_next_gets_a_new_cluster(cluster):
    """(Last of the cluster's tests: it replaces the module's cluster.)"""
    old = rayservice.current()
    assert old is not None
    assert old.directory is not None
    procs = rayservice.recorded(old.directory)
    os.kill(old.pid, signal.SIGKILL)
    rec = run_benchmark(COUNTERS[0], 1, "fork", FAST)
    assert str(rec.status).startswith("error:")
    assert "Ray driver" in str(rec.status)
    assert _wait_gone(procs, 10.0) == []  # its reaper killed the rest of its session
    rec = run_benchmark(COUNTERS[0], 1, "fork", FAST)
    assert rec.status.is_ok, rec.status
    assert rayservice.current() is not old
