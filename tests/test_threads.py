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


def test_the_slowdown_learns_the_round_time_without_its_own_wait() -> None:
    from sharebench.pools import Slower

    slower = Slower(1.5)
    assert slower.wait_per_op() == 0.0  # no round seen yet: no wait
    slower.learn(0.020, 1000)  # 20 us per op
    assert slower.wait_per_op() == pytest.approx(10e-6)
    slower.learn(0.030 * 2, 2000)  # twice the k, slowed by 1.5: still 20 us per op unslowed
    assert slower.per_op == pytest.approx(20e-6)
    assert Slower(1.0).wait_per_op() == 0.0


def test_a_slowdown_stretches_a_round_the_parent_bounds() -> None:
    """The parent is the bottleneck (it takes 20 ms over what the worker hands it in an
    instant): waiting the worker's own loop time would add nothing; the round's time is what
    must grow by the factor."""
    handed = threading.Event()

    def hand_over(local: Any, k: int, base: int) -> None:
        local.set()

    def parent(k: int) -> float:
        handed.wait(5)
        handed.clear()
        time.sleep(0.020)
        return time.perf_counter()

    mech = LOCKED.replace(loop=hand_over, store=_EventStore)
    times = {}
    for factor in (1.0, 2.0):
        ctx = multiprocessing.get_context("fork")
        pool = ThreadPool(ctx, mech, (handed,), 1, round_timeout=5.0, slowdown=factor)
        pool.start()
        try:
            rounds = [pool.run_round(10, parent).seconds for _ in range(4)]
        finally:
            pool.close()
        times[factor] = sorted(rounds[1:])[1]  # round 1 is never slowed: nothing learned yet
    assert 1.7 < times[2.0] / times[1.0] < 2.5


class _EventStore:
    """The worker's local object is the event in the handles."""

    @staticmethod
    def attach(handles: tuple[Any, ...]) -> Any:
        return handles[0]

    @staticmethod
    def for_worker(local: Any, worker: int) -> Any:
        return local

    @staticmethod
    def detach(local: Any) -> None:
        pass
