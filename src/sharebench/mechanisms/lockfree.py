"""Lock-free atomics on a ``SharedMemory`` block (PyPI ``atomics``: ``atomicview``).

``atomics.atomicview(buffer=..., atype=atomics.INT)`` maps an aligned 8-byte slice of the
block to a C11 atomic; ``fetch_add`` is one ``lock xadd`` on x86. No lock, no lost update.

What the numbers show: the hardware operation takes nanoseconds, but the library's Python
wrapper converts every operand and result through ``int.to_bytes``/``int.from_bytes`` and a
cffi buffer, so one ``fetch_add`` costs microseconds from Python — more than a
``multiprocessing.Lock`` round. Lock-free is not free in CPython.

The block follows :mod:`sharebench.mechanisms.shm`'s ownership rules (the parent creates and
unlinks it; workers attach, and release every view before ``close()``). The atomic view is
entered once in ``attach`` and left in ``detach``: entering it per operation would measure the
context manager, not the atomic.
"""

from __future__ import annotations

from itertools import repeat
from typing import Any, ClassVar

from sharebench.mechanisms.base import Mechanism
from sharebench.mechanisms.shm import (
    ShmCounterStore,
    ShmItemStore,
    ShmLocal,
    _buf,
    attach_block,
)


class AtomicLocal(ShmLocal):
    """A worker's view: the block, the atomic view of slot 0 (``view``), the memoryview it
    was made from, and for appends a ``'q'`` view of the whole block."""

    __slots__ = ("context", "ints", "slot")

    def __init__(self, block: Any, slot: memoryview, context: Any, view: Any,
                 ints: memoryview | None) -> None:
        super().__init__(block, view, None)
        self.slot = slot
        self.context = context
        self.ints = ints


def _attach_atomic(name: str, with_ints: bool) -> AtomicLocal:
    import atomics

    block = attach_block(name)
    buf = _buf(block)
    slot = buf[0:8]
    context = atomics.atomicview(buffer=slot, atype=atomics.INT)
    view = context.__enter__()
    return AtomicLocal(block, slot, context, view, buf.cast("q") if with_ints else None)


def _detach_atomic(local: ShmLocal) -> None:
    assert isinstance(local, AtomicLocal)
    # Release order matters: the atomic's cffi buffer, then our memoryviews, then the block.
    local.view = None
    context, local.context = local.context, None
    if context is not None:
        context.__exit__(None, None, None)
    local.slot.release()
    if local.ints is not None:
        local.ints.release()
    local.block.close()


class AtomicCounterStore(ShmCounterStore):
    """One int64 slot of a block, incremented with an atomic ``fetch_add``."""

    @staticmethod
    def attach(handles: tuple[Any, ...]) -> AtomicLocal:
        name, _lock = handles
        return _attach_atomic(name, with_ints=False)

    @staticmethod
    def detach(local: ShmLocal) -> None:
        _detach_atomic(local)


class AtomicItemStore(ShmItemStore):
    """Slot 0 is the index, claimed with ``fetch_add``; items go to slots 1..capacity."""

    # ~5 µs per append from Python: 2e6/s bounds two cores with a wide margin.
    max_rate: ClassVar[float] = 2e6

    @staticmethod
    def attach(handles: tuple[Any, ...]) -> AtomicLocal:
        name, _lock = handles
        return _attach_atomic(name, with_ints=True)

    @staticmethod
    def detach(local: ShmLocal) -> None:
        _detach_atomic(local)


def atomic_increment(local: AtomicLocal, k: int, base: int) -> None:
    """``fetch_add(1)`` on the shared slot: lock-free and exact."""
    fetch_add = local.view.fetch_add
    for _ in repeat(None, k >> 2):  # unrolled x4: the loop costs ~1 ns/op
        fetch_add(1)
        fetch_add(1)
        fetch_add(1)
        fetch_add(1)
    for _ in repeat(None, k & 3):
        fetch_add(1)


def atomic_append(local: AtomicLocal, k: int, base: int) -> None:
    """Claim a slot with ``fetch_add`` on the index, then write it: no two writers share one.

    The index is claimed before the slot is written, so a reader could see a claimed but not
    yet written slot; the parent reads only between rounds, when every write has finished.
    """
    fetch_add = local.view.fetch_add
    ints = local.ints
    assert ints is not None
    for i in range(k):
        ints[fetch_add(1) + 1] = base + i


MECHANISMS = (
    Mechanism("shm", "atomic", "increment", "atomics", AtomicCounterStore, atomic_increment,
              "SharedMemory int64 slot: atomics.atomicview fetch_add(1), no lock"),
    Mechanism("shm", "atomic", "append", "atomics", AtomicItemStore, atomic_append,
              "SharedMemory slots: fetch_add on the index claims a slot, then write it"),
)
