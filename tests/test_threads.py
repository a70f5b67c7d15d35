"""The thread pool: same protocol as the process pool — barrier rounds timed by the workers,
errors and hangs become WorkerError within the round timeout, close() returns."""

from __future__ import annotations

import multiprocessing
import threading
import time
from typing import Any

import pytest

from sharebench import mechanisms
from sharebench.harness import BenchmarkRun, HarnessConfig, run_benchmark
from sharebench.mechanisms.base import StoreSpec
from sharebench.pools import POOLS, ThreadPool, WorkerError

FAST = HarnessConfig(round_time=0.01, rounds=3, warmup_rounds=1)


def _sleepy(local: Any, k: int, base: int) -> int:
    time.sleep(0.02)
    return k


def _raising(local: Any, k: int, base: int) -> None:
    raise ZeroDivisionError("boom in a thread")


def _hanging(local: Any, k: int, base: int) -> None:
    time.sleep(1.5)


LOCKED = mechanisms.get("thread", "lock", "increment")


def _pool(mech: Any, n: int, config: HarnessConfig) -> tuple[ThreadPool, Any]:
    ctx = multiprocessing.get_context("fork")
    store = mech.store(ctx, StoreSpec(n, capacity=1024))
    return ThreadPool(ctx, mech, store.handles(), n, round_timeout=config.round_timeout,
                      start_timeout=config.start_timeout), store


def test_registered_as_the_thread_pool() -> None:
    assert POOLS["thread"] is ThreadPool
    assert LOCKED.workers_kind == "thread"


def test_round_is_max_end_minus_min_start_of_the_threads() -> None:
    pool, store = _pool(LOCKED.replace(loop=_sleepy), 3, HarnessConfig())
    try:
        pool.start()
        assert len({t.ident for t in pool.threads}) == 3
        assert threading.get_ident() not in {t.ident for t in pool.threads}
        timing = pool.run_round(10)
    finally:
        pool.close()
        store.close()
    assert len(timing.starts) == len(timing.ends) == 3
    assert timing.seconds == pytest.approx(max(timing.ends) - min(timing.starts))
    assert 0.02 <= timing.seconds < 0.5
    assert timing.reports == (10, 10, 10)
    assert pool.threads == []


def test_parents_part_of_the_round_extends_it() -> None:
    pool, store = _pool(LOCKED, 2, HarnessConfig())

    def during(k: int) -> float:
        time.sleep(0.05)
        return time.perf_counter()

    try:
        pool.start()
        timing = pool.run_round(100, during)
    finally:
        pool.close()
        store.close()
    assert timing.seconds >= 0.05
    assert timing.seconds > max(timing.ends) - min(timing.starts)


def test_a_raising_thread_is_a_worker_error() -> None:
    pool, store = _pool(LOCKED.replace(loop=_raising), 2, HarnessConfig())
    try:
        pool.start()
        with pytest.raises(WorkerError, match="ZeroDivisionError: boom in a thread"):
            pool.run_round(10)
    finally:
        pool.close(timeout=1.0)
        store.close()


def test_a_hung_thread_times_out_and_close_returns() -> None:
    pool, store = _pool(LOCKED.replace(loop=_hanging), 2, HarnessConfig(round_timeout=0.3))
    t0 = time.monotonic()
    try:
        pool.start()
        with pytest.raises(WorkerError, match=r"round timed out after 0.3 s \(thread 0, 1"):
            pool.run_round(10)
    finally:
        pool.close(timeout=0.2)
        store.close()
    assert time.monotonic() - t0 < 1.4  # did not wait for the 1.5 s sleep


def test_harness_runs_thread_mechanisms_and_says_so_in_the_record() -> None:
    rec = run_benchmark(LOCKED, 2, "fork", FAST)
    assert rec.status.is_ok
    assert rec.workers_kind == "thread"
    assert (rec.lost_updates, rec.duplicates) == (0, 0)
    assert rec.issued_ops == 3 * 2 * rec.ops_per_worker


def test_benchmark_run_uses_the_thread_pool() -> None:
    with BenchmarkRun(LOCKED, 2, "fork", FAST) as run:
        assert isinstance(run.pool, ThreadPool)


def test_a_slowdown_stretches_the_timed_window_by_its_factor() -> None:
    """Round 1 waits after the loop (no estimate yet); later rounds wait before it, for the
    factor times the loop time per op of the round before, times this round's k."""
    from sharebench.pools import Slower, _timed

    def loop(local: Any, k: int, base: int) -> int:
        time.sleep(0.001 * k)
        return k

    slower = Slower(3.0)
    t0, t1, report = _timed(loop, None, 10, 0, slower)
    assert report == 10
    assert t1 - t0 >= 3 * 0.010
    assert slower.per_op >= 0.001
    t0, t1, _ = _timed(loop, None, 20, 0, slower)  # twice the work: twice the wait
    assert t1 - t0 >= 0.020 + 2 * 0.020
