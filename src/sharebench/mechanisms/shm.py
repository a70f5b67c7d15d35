"""``multiprocessing.shared_memory``: a named block every worker maps.

Ownership rules (CPython's ``close()``/``unlink()`` docstrings state them; we follow them):
the parent creates each block and unlinks it exactly once in ``close()``; workers only attach
and ``close()``. Every view (memoryview cast, numpy array) must be released before ``close()``,
or it raises ``BufferError: cannot close exported pointers exist``.

Before Python 3.13 an attaching process registers the block with *its* resource tracker. Our
workers are children of the parent and share its tracker (fork, spawn and forkserver all hand
the tracker's fd down), so the extra registration is an idempotent set insert in that one
tracker, which the parent's ``unlink()`` clears. On 3.13+ workers pass ``track=False``.
"""

from __future__ import annotations

import secrets
import sys
from itertools import repeat
from multiprocessing import shared_memory
from typing import Any, ClassVar

from sharebench.lifecycle import PREFIX  # every block's name starts with it: see lifecycle
from sharebench.mechanisms.base import Mechanism
from sharebench.mechanisms.counters import CounterStore, ItemStore

_WORD = 8  # int64 slots


def block_name(run_token: str) -> str:
    """``sharebench-<run>-<random>``: unguessable, and tells which run made it."""
    return f"{PREFIX}{run_token}-{secrets.token_hex(6)}"


def attach_block(name: str) -> shared_memory.SharedMemory:
    """Attach to an existing block without making this process its owner."""
    if sys.version_info >= (3, 13):
        return shared_memory.SharedMemory(name=name, track=False)  # type: ignore[call-arg,unused-ignore]
    return shared_memory.SharedMemory(name=name)


def destroy_block(block: shared_memory.SharedMemory | None) -> None:
    """The owner's last word on a block: close its mapping, then unlink its name (once)."""
    if block is None:
        return
    try:
        block.close()
    finally:
        block.unlink()


def _buf(block: shared_memory.SharedMemory) -> memoryview:
    buf = block.buf
    if buf is None:
        raise ValueError(f"shared memory block {block.name} is closed")
    return buf


class ShmLocal:
    """A worker's view of a block: the block, an int64 view of it, and the lock."""

    __slots__ = ("block", "lock", "view")

    def __init__(self, block: Any, view: Any, lock: Any) -> None:
        self.block = block
        self.view = view
        self.lock = lock


class _BlockStore:
    """Creates an int64 block of ``slots`` words; unlinks it exactly once on close."""

    block: shared_memory.SharedMemory | None
    lock: Any

    def _create(self, ctx: Any, run_token: str, slots: int) -> None:
        self.block = shared_memory.SharedMemory(
            name=block_name(run_token), create=True, size=slots * _WORD
        )
        self.lock = ctx.Lock()

    def handles(self) -> tuple[Any, ...]:
        assert self.block is not None
        return (self.block.name, self.lock)

    def _ints(self) -> Any:
        import numpy as np

        assert self.block is not None
        return np.ndarray((self.block.size // _WORD,), dtype=np.int64, buffer=self.block.buf)

    def close(self) -> None:
        block, self.block = self.block, None
        destroy_block(block)

    @staticmethod
    def detach(local: ShmLocal) -> None:
        view, local.view = local.view, None
        if isinstance(view, memoryview):
            view.release()
        del view  # numpy views: drop the last reference before close()
        local.block.close()


class ShmCounterStore(_BlockStore, CounterStore):
    """One int64 slot, read and written through a ``memoryview`` cast to ``'q'``."""

    def __init__(self, ctx: Any, spec: Any) -> None:
        super().__init__(ctx, spec)
        self._create(ctx, spec.run_token, 1)

    @staticmethod
    def attach(handles: tuple[Any, ...]) -> ShmLocal:
        name, lock = handles
        block = attach_block(name)
        return ShmLocal(block, _buf(block).cast("q"), lock)

    def read_counter(self) -> int:
        return int(self._ints()[0])

    def reset(self) -> None:
        self._ints()[0] = 0


class ShmNumpyCounterStore(ShmCounterStore):
    """The same slot through a numpy int64 view of the block."""

    @staticmethod
    def attach(handles: tuple[Any, ...]) -> ShmLocal:
        import numpy as np

        name, lock = handles
        block = attach_block(name)
        return ShmLocal(block, np.ndarray((1,), dtype=np.int64, buffer=block.buf), lock)


class ShmItemStore(_BlockStore, ItemStore):
    """Slot 0 holds the index; items go to slots 1..capacity."""

    def __init__(self, ctx: Any, spec: Any) -> None:
        super().__init__(ctx, spec)
        self._create(ctx, spec.run_token, spec.capacity + 1)

    @staticmethod
    def attach(handles: tuple[Any, ...]) -> ShmLocal:
        name, lock = handles
        block = attach_block(name)
        return ShmLocal(block, _buf(block).cast("q"), lock)

    def read_items(self) -> Any:
        ints = self._ints()
        n = min(int(ints[0]), self.spec.capacity)
        return ints[1 : n + 1].copy()

    def reset(self) -> None:
        self._ints()[:] = 0


class ShareableListStore(ItemStore):
    """A pre-sized ``ShareableList`` of ints: element 0 is the index, items follow."""

    max_rate: ClassVar[float] = 2e6

    def __init__(self, ctx: Any, spec: Any) -> None:
        super().__init__(ctx, spec)
        self.items: shared_memory.ShareableList[int] | None = shared_memory.ShareableList(
            [0] * (spec.capacity + 1), name=block_name(spec.run_token)
        )
        self.lock = ctx.Lock()

    def handles(self) -> tuple[Any, ...]:
        assert self.items is not None
        return (self.items.shm.name, self.lock)

    @staticmethod
    def attach(handles: tuple[Any, ...]) -> ShmLocal:
        name, lock = handles
        # ShareableList has no track flag; the shared tracker makes that harmless (see top).
        items: shared_memory.ShareableList[int] = shared_memory.ShareableList(name=name)
        return ShmLocal(items.shm, items, lock)

    @staticmethod
    def detach(local: ShmLocal) -> None:
        local.view = None
        local.block.close()

    def read_items(self) -> Any:
        assert self.items is not None
        n = min(int(self.items[0] or 0), self.spec.capacity)
        return [self.items[i] for i in range(1, n + 1)]

    def reset(self) -> None:
        assert self.items is not None
        n = min(int(self.items[0] or 0), self.spec.capacity)
        for i in range(1, n + 1):
            self.items[i] = 0
        self.items[0] = 0

    def close(self) -> None:
        items, self.items = self.items, None
        if items is not None:
            destroy_block(items.shm)


def shm_none(local: ShmLocal, k: int, base: int) -> None:
    """``buf[0] += 1`` on a memoryview of the block: no lock, racy."""
    buf = local.view
    for _ in repeat(None, k >> 2):  # unrolled x4: the loop costs ~1 ns/op
        buf[0] += 1
        buf[0] += 1
        buf[0] += 1
        buf[0] += 1
    for _ in repeat(None, k & 3):
        buf[0] += 1


def shm_lock(local: ShmLocal, k: int, base: int) -> None:
    """The same under a ``multiprocessing.Lock``."""
    buf = local.view
    lock = local.lock
    for _ in repeat(None, k >> 2):  # unrolled x4: the loop costs ~1 ns/op
        with lock:
            buf[0] += 1
        with lock:
            buf[0] += 1
        with lock:
            buf[0] += 1
        with lock:
            buf[0] += 1
    for _ in repeat(None, k & 3):
        with lock:
            buf[0] += 1


def shm_numpy_lock(local: ShmLocal, k: int, base: int) -> None:
    """``a[0] += 1`` on a numpy int64 view, under a lock."""
    a = local.view
    lock = local.lock
    for _ in repeat(None, k >> 2):  # unrolled x4: the loop costs ~1 ns/op
        with lock:
            a[0] += 1
        with lock:
            a[0] += 1
        with lock:
            a[0] += 1
        with lock:
            a[0] += 1
    for _ in repeat(None, k & 3):
        with lock:
            a[0] += 1


def shm_lock_append(local: ShmLocal, k: int, base: int) -> None:
    """Read the index in slot 0, write the item after it, bump the index; all under a lock."""
    buf = local.view
    lock = local.lock
    for i in range(k):
        with lock:
            idx = buf[0] + 1
            buf[idx] = base + i
            buf[0] = idx


def shareable_list_lock_append(local: ShmLocal, k: int, base: int) -> None:
    """The same on a ShareableList (struct packing on every access)."""
    items = local.view
    lock = local.lock
    for i in range(k):
        with lock:
            idx = items[0] + 1
            items[idx] = base + i
            items[0] = idx


MECHANISMS = (
    Mechanism("shm", "none", "increment", "shm", ShmCounterStore, shm_none,
              "SharedMemory int64 slot via memoryview: buf[0] += 1, no lock"),
    Mechanism("shm", "lock", "increment", "shm", ShmCounterStore, shm_lock,
              "SharedMemory int64 slot via memoryview under a Lock"),
    Mechanism("shm-numpy", "lock", "increment", "shm", ShmNumpyCounterStore, shm_numpy_lock,
              "SharedMemory int64 slot via a numpy view under a Lock"),
    Mechanism("shm", "lock", "append", "shm", ShmItemStore, shm_lock_append,
              "SharedMemory int64 slots with an index in slot 0, under a Lock"),
    Mechanism("shareable-list", "lock", "append", "shm", ShareableListStore,
              shareable_list_lock_append, "Pre-sized ShareableList with an index, under a Lock"),
)
