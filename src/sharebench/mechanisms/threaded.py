"""Threads of one process sharing plain Python objects: the baseline processes are paid against.

``processes`` means *threads* for this family (the CSV says so: ``workers_kind = thread``).
Nothing crosses a process boundary, so these show what sharing costs without it — and what
the GIL does to N workers (they take turns).

``thread/none`` is ``obj.n += 1`` without a lock. Since CPython 3.10 a thread switch happens
only at a loop's back edge or a call, never inside the ``+=``, so it usually loses nothing:
a property of the interpreter, not a guarantee (free-threaded builds lose updates).
``thread/atomic`` append is ``list.append``, one bytecode-level call, atomic under the GIL.
"""

from __future__ import annotations

import threading
from itertools import repeat
from typing import Any, ClassVar

from sharebench.mechanisms.base import Mechanism
from sharebench.mechanisms.counters import Counter, CounterStore, ItemStore
from sharebench.mechanisms.keyed import (
    KeyedStore,
    key_sequence,
    mapping_increment,
    mapping_increment_locked,
)


class ThreadCounterStore(CounterStore):
    """A plain object with an ``n`` attribute and a ``threading.Lock``."""

    def __init__(self, ctx: Any, spec: Any) -> None:
        super().__init__(ctx, spec)
        self.counter = Counter()
        self.lock = threading.Lock()

    def handles(self) -> tuple[Any, ...]:
        return (self.counter, self.lock)

    def read_counter(self) -> int:
        return self.counter.n

    def reset(self) -> None:
        self.counter.n = 0


class ThreadListStore(ItemStore):
    """A plain ``list`` every thread appends to."""

    # list.append in a loop: ~40 ns; threads take turns, so one thread's rate bounds them.
    max_rate: ClassVar[float] = 4e7

    def __init__(self, ctx: Any, spec: Any) -> None:
        super().__init__(ctx, spec)
        self.items: list[int] = []

    def handles(self) -> tuple[Any, ...]:
        return (self.items,)

    def read_items(self) -> Any:
        return self.items

    def reset(self) -> None:
        self.items.clear()


def thread_none(local: Any, k: int, base: int) -> None:
    """``obj.n += 1`` on the shared object, no lock."""
    obj, _lock = local
    for _ in repeat(None, k >> 2):  # unrolled x4: the loop costs ~1 ns/op
        obj.n += 1
        obj.n += 1
        obj.n += 1
        obj.n += 1
    for _ in repeat(None, k & 3):
        obj.n += 1


def thread_lock(local: Any, k: int, base: int) -> None:
    """The same under a ``threading.Lock``."""
    obj, lock = local
    for _ in repeat(None, k >> 2):  # unrolled x4: the loop costs ~1 ns/op
        with lock:
            obj.n += 1
        with lock:
            obj.n += 1
        with lock:
            obj.n += 1
        with lock:
            obj.n += 1
    for _ in repeat(None, k & 3):
        with lock:
            obj.n += 1


def thread_append(local: Any, k: int, base: int) -> None:
    """``items.append(x)`` on the shared list."""
    (items,) = local
    append = items.append
    for i in range(k):
        append(base + i)


class ThreadDictStore(KeyedStore):
    """A plain dict of K counters and a ``threading.Lock``, shared by the threads."""

    def __init__(self, ctx: Any, spec: Any) -> None:
        super().__init__(ctx, spec)
        self.dict: dict[int, int] = dict.fromkeys(range(spec.keys), 0)
        self.lock = threading.Lock()
        self.start_counts()

    def handles(self) -> tuple[Any, ...]:
        return (self.dict, self.lock, self.spec.keys)

    @staticmethod
    def for_worker(local: Any, worker: int) -> Any:
        d, lock, keys = local
        return (d, lock, key_sequence(worker, keys))

    def read_counts(self) -> list[int]:
        return [self.dict[k] for k in range(self.spec.keys)]


MECHANISMS = (
    Mechanism("thread", "none", "increment", "thread", ThreadCounterStore, thread_none,
              "N threads, one process: obj.n += 1 on a plain object, no lock",
              workers_kind="thread"),
    Mechanism("thread", "lock", "increment", "thread", ThreadCounterStore, thread_lock,
              "N threads, one process: obj.n += 1 under a threading.Lock",
              workers_kind="thread"),
    Mechanism("thread", "atomic", "append", "thread", ThreadListStore, thread_append,
              "N threads, one process: list.append (atomic under the GIL)",
              workers_kind="thread"),
    Mechanism("thread", "none", "dict-increment", "thread", ThreadDictStore, mapping_increment,
              "N threads, one process: d[key] += 1 on a plain dict, no lock",
              workers_kind="thread"),
    Mechanism("thread", "lock", "dict-increment", "thread", ThreadDictStore,
              mapping_increment_locked,
              "N threads, one process: d[key] += 1 under a threading.Lock",
              workers_kind="thread"),
)
