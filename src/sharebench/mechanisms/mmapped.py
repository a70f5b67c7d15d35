"""A shared anonymous ``mmap``: the oldest way for related processes to share memory.

``mmap.mmap(-1, n)`` is ``MAP_SHARED | MAP_ANONYMOUS``: it has no name, so it reaches a
worker only by ``fork()`` inheritance. Under spawn and forkserver the workers would get a
pickled copy (mmap objects do not even pickle), so those start methods are *skipped*
(``Unavailable``) rather than emulated with a file: a named file in /dev/shm is just what
``SharedMemory`` already measures.
"""

from __future__ import annotations

import mmap
import struct
from typing import Any, ClassVar

from sharebench.mechanisms.base import Mechanism, StoreSpec, Unavailable
from sharebench.mechanisms.counters import CounterStore, ItemStore
from sharebench.mechanisms.shm import shm_lock, shm_lock_append

_WORD = 8


class MmapLocal:
    """A worker's view: an int64 ``memoryview`` of the map, and the lock (``shm``'s loops
    take the same shape)."""

    __slots__ = ("lock", "view")

    def __init__(self, view: memoryview, lock: Any) -> None:
        self.view = view
        self.lock = lock


class _MmapStore:
    """An anonymous shared map of ``slots`` int64 words and a ``multiprocessing.Lock``."""

    map: mmap.mmap | None
    lock: Any

    def _create(self, ctx: Any, slots: int) -> None:
        method = ctx.get_start_method()
        if method != "fork":
            raise Unavailable(
                f"mmap needs the fork start method (an anonymous map is inherited, not "
                f"passed), not {method}"
            )
        self.map = mmap.mmap(-1, slots * _WORD)
        self.lock = ctx.Lock()

    def handles(self) -> tuple[Any, ...]:
        return (self.map, self.lock)

    @staticmethod
    def attach(handles: tuple[Any, ...]) -> MmapLocal:
        m, lock = handles
        return MmapLocal(memoryview(m).cast("q"), lock)

    @staticmethod
    def detach(local: MmapLocal) -> None:
        local.view.release()

    def _word(self, i: int) -> int:
        assert self.map is not None
        return int(struct.unpack_from("q", self.map, i * _WORD)[0])

    def close(self) -> None:
        m, self.map = self.map, None
        if m is not None:
            m.close()


class MmapCounterStore(_MmapStore, CounterStore):
    """One int64 word."""

    def __init__(self, ctx: Any, spec: StoreSpec) -> None:
        super().__init__(ctx, spec)
        self._create(ctx, 1)

    def read_counter(self) -> int:
        return self._word(0)

    def reset(self) -> None:
        assert self.map is not None
        struct.pack_into("q", self.map, 0, 0)


class MmapItemStore(_MmapStore, ItemStore):
    """Word 0 holds the index; items go to words 1..capacity."""

    max_rate: ClassVar[float] = 5e6

    def __init__(self, ctx: Any, spec: StoreSpec) -> None:
        super().__init__(ctx, spec)
        self._create(ctx, spec.capacity + 1)

    def read_items(self) -> Any:
        import numpy as np

        assert self.map is not None
        n = min(self._word(0), self.spec.capacity)
        ints = np.frombuffer(self.map, dtype=np.int64, count=n + 1)
        items = ints[1:].copy()
        del ints  # the map cannot close while a numpy view exports it
        return items

    def reset(self) -> None:
        assert self.map is not None
        n = min(self._word(0), self.spec.capacity)
        self.map[: (n + 1) * _WORD] = bytes((n + 1) * _WORD)


MECHANISMS = (
    # The loops are shm's: the same int64 memoryview, under a Lock.
    Mechanism("mmap", "lock", "increment", "mmap", MmapCounterStore, shm_lock,
              "anonymous shared mmap (fork only), int64 word via memoryview under a Lock"),
    Mechanism("mmap", "lock", "append", "mmap", MmapItemStore, shm_lock_append,
              "anonymous shared mmap (fork only), index in word 0, under a Lock"),
)
