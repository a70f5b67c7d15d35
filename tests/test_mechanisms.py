"""Lock-free atomics, message passing, threads, mmap and value/lock-fast: exact state at two
workers through the whole harness, and their own pitfalls (fork-only mmap, undrained queues)."""

from __future__ import annotations

import multiprocessing
import threading
from typing import Any

import pytest

from sharebench import mechanisms
from sharebench.harness import HarnessConfig, run_benchmark
from sharebench.mechanisms.base import StoreSpec, Unavailable
from sharebench.mechanisms.message import PipeStore, QueueStore
from sharebench.verify import worker_tag

FAST = HarnessConfig(round_time=0.02, rounds=3, warmup_rounds=1)

EXACT = [
    ("shm", "atomic", "increment"),
    ("shm", "atomic", "append"),
    ("queue", "atomic", "append"),
    ("pipe", "atomic", "append"),
    ("thread", "lock", "increment"),
    ("thread", "atomic", "append"),
    ("mmap", "lock", "increment"),
    ("mmap", "lock", "append"),
    ("value", "lock-fast", "increment"),
]


@pytest.mark.parametrize("key", EXACT, ids="/".join)
def test_exact_state_at_two_workers(key: tuple[str, str, str], no_leaks: None) -> None:
    rec = run_benchmark(mechanisms.get(*key), 2, "fork", FAST)
    assert rec.status.is_ok
    assert (rec.lost_updates, rec.duplicates) == (0, 0)
    assert rec.round_lost == [0, 0, 0]
    assert rec.issued_ops == 3 * 2 * rec.ops_per_worker > 0


@pytest.mark.parametrize("operation", ["increment", "append"])
def test_atomic_at_four_processes_on_two_cores(operation: str, no_leaks: None) -> None:
    """More processes than cores: preempted mid-operation, still nothing lost."""
    rec = run_benchmark(mechanisms.get("shm", "atomic", operation), 4, "fork", FAST)
    assert rec.status.is_ok
    assert rec.lost_updates == 0


def test_atomic_increment_under_spawn(no_leaks: None) -> None:
    rec = run_benchmark(mechanisms.get("shm", "atomic", "increment"), 2, "spawn", FAST)
    assert rec.status.is_ok
    assert rec.lost_updates == 0


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_mmap_without_fork_is_skipped_not_faked(method: str, no_leaks: None) -> None:
    rec = run_benchmark(mechanisms.get("mmap", "lock", "increment"), 2, method, FAST)
    assert str(rec.status).startswith("skipped: mmap needs the fork start method")
    assert rec.round_seconds == []
    with pytest.raises(Unavailable):
        mechanisms.get("mmap", "lock", "append").store(
            multiprocessing.get_context(method), StoreSpec(1, capacity=16))


def test_thread_family_says_threads_in_the_record() -> None:
    rec = run_benchmark(mechanisms.get("thread", "none", "increment"), 2, "fork", FAST)
    assert rec.status.is_ok
    assert rec.workers_kind == "thread"
    assert rec.family == "thread"


class CountingLock:
    """A lock that counts its acquisitions (a Value's wrapper takes it through acquire)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.acquired = 0

    def acquire(self, *args: Any) -> bool:
        self.acquired += 1
        return self.lock.acquire(*args)

    def release(self) -> None:
        self.lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


@pytest.mark.parametrize(("sync", "per_increment"), [("lock", 3), ("lock-fast", 1)])
def test_lock_fast_takes_the_lock_once_per_increment(sync: str, per_increment: int) -> None:
    """``with v.get_lock(): v.value += 1`` takes the lock three times (the block, then the
    property's own read and write); lock-fast takes it once. Counted, not timed."""
    lock = CountingLock()
    value = multiprocessing.Value("q", 0, lock=lock)
    mechanisms.get("value", sync, "increment").loop((value,), 10, 0)
    assert value.value == 10
    assert lock.acquired - 1 == 10 * per_increment  # minus the read just above


def test_queue_items_are_all_received_and_the_queue_left_empty(no_leaks: None) -> None:
    import queue

    ctx = multiprocessing.get_context("fork")
    store = QueueStore(ctx, StoreSpec(2, capacity=100))
    try:
        for w in range(2):
            for i in range(5):
                store.queue.put(worker_tag(w) + i)
        store.during_round(5)
        check = store.collect(5, [None, None])
        assert check.clean
        assert check.counted == 10
        with pytest.raises(queue.Empty):
            store.queue.get(timeout=0.05)
        assert store.read_items() == []  # reset after collect
        store.queue.put(1)  # a failed round's leftovers: close() drains them, no hang
    finally:
        store.close()


def test_pipe_receiver_times_out_instead_of_hanging() -> None:
    """The parent's receive waits at most the round timeout the user set."""
    ctx = multiprocessing.get_context("fork")
    store = PipeStore(ctx, StoreSpec(2, capacity=100, round_timeout=0.05))
    try:
        store.senders[0].send(worker_tag(0))
        with pytest.raises(TimeoutError, match="1 items arrived"):
            store.during_round(1)
    finally:
        store.close()
