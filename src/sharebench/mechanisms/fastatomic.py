"""Lock-free counters that are fast from Python: one C call per atomic ``fetch_add``.

``shm/atomic`` (PyPI ``atomics``, :mod:`sharebench.mechanisms.lockfree`) costs microseconds
per ``fetch_add`` because its wrapper converts every operand in Python. Here the same
operation is one call into C:

* ``shm-fetchadd/atomic`` — the suite's own extension :mod:`sharebench._fastatomic`:
  ``fetch_add(buf, 0, 1)`` on the block's memoryview (``METH_FASTCALL``; it takes the buffer,
  checks the slot's bounds and alignment, and does one ``lock xadd``). Increment and append
  (append claims the index with ``fetch_add``, then writes the slot, as ``shm/atomic`` does).
* ``shm-atomicshm/atomic`` — PyPI ``atomicshm`` 0.1.0: ``AtomicView(block.buf)``, entered
  once per worker, then ``view.fetch_add_u64(0, 1)`` per operation. It is a few ns faster
  than ours: the view holds the buffer for its lifetime, where ``fetch_add`` takes and
  releases it on every call (the price of a stateless function that accepts any buffer).
* ``fetchadd-c/none`` (family ``harness``: drawn as a reference line) — the same ``fetch_add``
  ``k`` times in a C loop with the GIL released (``add_n``): what the hardware costs, without
  the interpreter. At 2 processes both hammer one cache line: the limit of the contended case.

The extension is built when sharebench is installed with a C compiler; without one the install
still succeeds (the extension is optional) and these benchmarks are ``skipped`` with the reason.
Blocks follow :mod:`sharebench.mechanisms.shm`'s ownership rules.
"""

from __future__ import annotations

from itertools import repeat
from types import ModuleType
from typing import Any, ClassVar

from sharebench.mechanisms.base import Mechanism, Unavailable
from sharebench.mechanisms.shm import (
    ShmCounterStore,
    ShmItemStore,
    ShmLocal,
    _buf,
    attach_block,
)

NOT_BUILT = ("the C extension sharebench._fastatomic was not built (sharebench was installed "
             "without a C compiler?); install a compiler and reinstall: pip install -e .")
ATOMICSHM_MISSING = "atomicshm is not installed (pip install atomicshm==0.1.0)"


def fastatomic() -> ModuleType:
    """The built extension :mod:`sharebench._fastatomic`, or :class:`Unavailable`."""
    try:
        from sharebench import _fastatomic
    except ImportError:
        raise Unavailable(NOT_BUILT) from None
    return _fastatomic


def _atomicshm() -> Any:
    try:
        import atomicshm  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise Unavailable(ATOMICSHM_MISSING) from None
    return atomicshm


class FastLocal(ShmLocal):
    """A worker's view: the block, its byte memoryview (``view``), the function object the
    loop calls (``op``) and, for appends, a ``'q'`` view of the block (``ints``)."""

    __slots__ = ("ints", "op")

    def __init__(self, block: Any, view: Any, op: Any, ints: memoryview | None = None) -> None:
        super().__init__(block, view, None)
        self.op = op
        self.ints = ints


def _release(local: ShmLocal) -> None:
    """Release every view of the block, then close it (close() refuses exported buffers)."""
    assert isinstance(local, FastLocal)
    view, local.view = local.view, None
    ints, local.ints = local.ints, None
    local.op = None
    if ints is not None:
        ints.release()
    if isinstance(view, memoryview):
        view.release()
    elif view is not None:
        view.close()  # an atomicshm.AtomicView: it holds an export of the block's buffer
    del view
    local.block.close()


class FetchAddCounterStore(ShmCounterStore):
    """One int64 slot of a block, incremented with ``_fastatomic.fetch_add``."""

    def __init__(self, ctx: Any, spec: Any) -> None:
        fastatomic()  # before any block exists: a missing extension leaves nothing behind
        super().__init__(ctx, spec)

    @staticmethod
    def attach(handles: tuple[Any, ...]) -> FastLocal:
        name, _lock = handles
        block = attach_block(name)
        return FastLocal(block, _buf(block), fastatomic())

    @staticmethod
    def detach(local: ShmLocal) -> None:
        _release(local)


class FetchAddItemStore(ShmItemStore):
    """Slot 0 is the index, claimed with ``_fastatomic.fetch_add``; items follow it."""

    # ~100 ns per append at one process: 2e7/s bounds two cores with a margin.
    max_rate: ClassVar[float] = 2e7

    def __init__(self, ctx: Any, spec: Any) -> None:
        fastatomic()
        super().__init__(ctx, spec)

    @staticmethod
    def attach(handles: tuple[Any, ...]) -> FastLocal:
        name, _lock = handles
        block = attach_block(name)
        buf = _buf(block)
        return FastLocal(block, buf, fastatomic(), buf.cast("q"))

    @staticmethod
    def detach(local: ShmLocal) -> None:
        _release(local)


class AtomicShmCounterStore(ShmCounterStore):
    """One int64 slot of a block, incremented through an ``atomicshm.AtomicView``."""

    def __init__(self, ctx: Any, spec: Any) -> None:
        _atomicshm()
        super().__init__(ctx, spec)

    @staticmethod
    def attach(handles: tuple[Any, ...]) -> FastLocal:
        name, _lock = handles
        block = attach_block(name)
        view = _atomicshm().AtomicView(_buf(block))
        return FastLocal(block, view, view.fetch_add_u64)

    @staticmethod
    def detach(local: ShmLocal) -> None:
        _release(local)


def fetchadd_increment(local: FastLocal, k: int, base: int) -> None:
    """``fetch_add(buf, 0, 1)``: one C call per increment, lock-free and exact."""
    fetch_add = local.op.fetch_add
    buf = local.view
    for _ in repeat(None, k >> 2):  # unrolled x4: the loop costs ~1 ns/op
        fetch_add(buf, 0, 1)
        fetch_add(buf, 0, 1)
        fetch_add(buf, 0, 1)
        fetch_add(buf, 0, 1)
    for _ in repeat(None, k & 3):
        fetch_add(buf, 0, 1)


def fetchadd_append(local: FastLocal, k: int, base: int) -> None:
    """Claim a slot with ``fetch_add`` on the index, then write it (as ``shm/atomic``).

    A claimed slot is written after the claim; the parent reads only between rounds, when
    every write has finished.
    """
    fetch_add = local.op.fetch_add
    buf = local.view
    ints = local.ints
    assert ints is not None
    for i in range(k):
        ints[fetch_add(buf, 0, 1) + 1] = base + i


def atomicshm_increment(local: FastLocal, k: int, base: int) -> None:
    """``view.fetch_add_u64(0, 1)`` (atomicshm): one C call per increment."""
    fetch_add = local.op
    for _ in repeat(None, k >> 2):  # unrolled x4: the loop costs ~1 ns/op
        fetch_add(0, 1)
        fetch_add(0, 1)
        fetch_add(0, 1)
        fetch_add(0, 1)
    for _ in repeat(None, k & 3):
        fetch_add(0, 1)


def fetchadd_c_loop(local: FastLocal, k: int, base: int) -> None:
    """``add_n(buf, 0, k)``: the ``k`` fetch-adds in C, GIL released — the hardware's cost."""
    local.op.add_n(local.view, 0, k)


MECHANISMS = (
    Mechanism("shm-fetchadd", "atomic", "increment", "atomics", FetchAddCounterStore,
              fetchadd_increment,
              "SharedMemory int64 slot: sharebench._fastatomic.fetch_add(buf, 0, 1), no lock"),
    Mechanism("shm-fetchadd", "atomic", "append", "atomics", FetchAddItemStore,
              fetchadd_append,
              "SharedMemory slots: _fastatomic.fetch_add on the index claims a slot, then write"),
    Mechanism("shm-atomicshm", "atomic", "increment", "atomics", AtomicShmCounterStore,
              atomicshm_increment,
              "SharedMemory int64 slot: atomicshm AtomicView.fetch_add_u64(0, 1), no lock"),
    Mechanism("fetchadd-c", "none", "increment", "harness", FetchAddCounterStore,
              fetchadd_c_loop,
              "atomic fetch-add on one shared slot, k times in a C loop (GIL released): the "
              "hardware's cost per operation, contended at 2 processes", max_processes=2),
)
