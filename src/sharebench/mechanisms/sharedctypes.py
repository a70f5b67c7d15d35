"""``multiprocessing.Value``/``Array`` (synchronized) and their ``Raw`` twins.

``Value`` wraps a ctypes object with an RLock, but ``v.value += 1`` is a locked *read* followed
by a locked *write*: another process can write in between and one increment is lost. That is
the tutorial's bug, measured by ``value/none``; ``value/lock`` holds ``get_lock()`` around it.
"""

from __future__ import annotations

import ctypes
from itertools import repeat
from typing import Any, ClassVar

from sharebench.mechanisms.base import Mechanism
from sharebench.mechanisms.counters import CounterStore, ItemStore


class ValueStore(CounterStore):
    """A synchronized ``Value('q')``; its own lock serves the lock variant."""

    def __init__(self, ctx: Any, spec: Any) -> None:
        super().__init__(ctx, spec)
        self.value = ctx.Value("q", 0)

    def handles(self) -> tuple[Any, ...]:
        return (self.value,)

    def read_counter(self) -> int:
        return int(self.value.value)

    def reset(self) -> None:
        self.value.value = 0


class RawValueStore(CounterStore):
    """A ``RawValue('q')`` (no lock of its own) and a separate ``multiprocessing.Lock``."""

    def __init__(self, ctx: Any, spec: Any) -> None:
        super().__init__(ctx, spec)
        self.value = ctx.RawValue("q", 0)
        self.lock = ctx.Lock()

    def handles(self) -> tuple[Any, ...]:
        return (self.value, self.lock)

    def read_counter(self) -> int:
        return int(self.value.value)

    def reset(self) -> None:
        self.value.value = 0


class ArrayStore(ItemStore):
    """The tutorial's pair: ``Array('q', capacity)`` and a ``Value('q')`` index."""

    max_rate: ClassVar[float] = 5e6

    def __init__(self, ctx: Any, spec: Any) -> None:
        super().__init__(ctx, spec)
        self.array = ctx.Array("q", spec.capacity)
        self.count = ctx.Value("q", 0)

    def handles(self) -> tuple[Any, ...]:
        return (self.array, self.count)

    def read_items(self) -> Any:
        import numpy as np

        n = min(int(self.count.value), self.spec.capacity)
        return np.ctypeslib.as_array(self.array.get_obj())[:n].copy()

    def reset(self) -> None:
        obj = self.array.get_obj()
        ctypes.memset(ctypes.addressof(obj), 0, ctypes.sizeof(obj))
        self.count.value = 0


# The loops. Each runs k operations with the operation inline; see base.py.


def value_none(local: Any, k: int, base: int) -> None:
    """The tutorial's ``count.value += 1``: two locked steps, not one."""
    (v,) = local
    for _ in repeat(None, k >> 2):  # unrolled x4: the loop costs ~1 ns/op
        v.value += 1
        v.value += 1
        v.value += 1
        v.value += 1
    for _ in repeat(None, k & 3):
        v.value += 1


def value_lock(local: Any, k: int, base: int) -> None:
    """``with v.get_lock(): v.value += 1`` (the property re-enters the same RLock)."""
    (v,) = local
    lock = v.get_lock()
    for _ in repeat(None, k >> 2):  # unrolled x4: the loop costs ~1 ns/op
        with lock:
            v.value += 1
        with lock:
            v.value += 1
        with lock:
            v.value += 1
        with lock:
            v.value += 1
    for _ in repeat(None, k & 3):
        with lock:
            v.value += 1


def value_lock_fast(local: Any, k: int, base: int) -> None:
    """One lock acquisition per increment: hold ``get_lock()`` and bump the raw ctypes object
    (``get_obj()``), so the wrapper's own per-access locking is not paid on top."""
    (v,) = local
    lock = v.get_lock()
    obj = v.get_obj()
    for _ in repeat(None, k >> 2):  # unrolled x4: the loop costs ~1 ns/op
        with lock:
            obj.value += 1
        with lock:
            obj.value += 1
        with lock:
            obj.value += 1
        with lock:
            obj.value += 1
    for _ in repeat(None, k & 3):
        with lock:
            obj.value += 1


def rawvalue_none(local: Any, k: int, base: int) -> None:
    """Plain read-modify-write on shared memory: fastest, and racy."""
    v, _lock = local
    for _ in repeat(None, k >> 2):  # unrolled x4: the loop costs ~1 ns/op
        v.value += 1
        v.value += 1
        v.value += 1
        v.value += 1
    for _ in repeat(None, k & 3):
        v.value += 1


def rawvalue_lock(local: Any, k: int, base: int) -> None:
    """The same under an explicit ``multiprocessing.Lock``."""
    v, lock = local
    for _ in repeat(None, k >> 2):  # unrolled x4: the loop costs ~1 ns/op
        with lock:
            v.value += 1
        with lock:
            v.value += 1
        with lock:
            v.value += 1
        with lock:
            v.value += 1
    for _ in repeat(None, k & 3):
        with lock:
            v.value += 1


def array_lock(local: Any, k: int, base: int) -> None:
    """The tutorial's append, made safe: bump the index and write the slot under one lock."""
    array, count = local
    lock = count.get_lock()
    for i in range(k):
        with lock:
            count.value += 1
            array[count.value - 1] = base + i


MECHANISMS = (
    Mechanism("value", "none", "increment", "sharedctypes", ValueStore, value_none,
              "Value('q'): v.value += 1 (the tutorial; loses updates)"),
    Mechanism("value", "lock", "increment", "sharedctypes", ValueStore, value_lock,
              "Value('q'): with v.get_lock(): v.value += 1"),
    Mechanism("value", "lock-fast", "increment", "sharedctypes", ValueStore, value_lock_fast,
              "Value('q'): with v.get_lock(): v.get_obj().value += 1 (one acquisition)"),
    Mechanism("rawvalue", "none", "increment", "sharedctypes", RawValueStore, rawvalue_none,
              "RawValue('q'): v.value += 1, no lock"),
    Mechanism("rawvalue", "lock", "increment", "sharedctypes", RawValueStore, rawvalue_lock,
              "RawValue('q') under a multiprocessing.Lock"),
    Mechanism("array", "lock", "append", "sharedctypes", ArrayStore, array_lock,
              "Array('q') + Value index, both updated under the index's lock"),
)
