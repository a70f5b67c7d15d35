"""Keyed data in ``multiprocessing.shared_memory`` blocks.

* ``shm-numpy/lock`` dict-increment: K int64 counters in one block (a numpy view), one
  ``multiprocessing.Lock`` for all of them — the simplest correct shared "dict" of counters.
* ``shm-numpy/striped``: the same with :data:`STRIPES` locks, key ``k`` under lock
  ``k % STRIPES``: two workers contend only when their keys share a stripe. Does it scale with
  processes where one lock cannot?
* ``shm-flat/none`` lookup: a flat read-only table in one block — N sorted int64 keys, N + 1
  int64 offsets, then the values back to back. A lookup is a binary search (``bisect`` over a
  ``memoryview`` of the keys) and a slice of the values; nothing is written, so nothing needs
  a lock, and no page is ever copied.

Blocks follow :mod:`sharebench.mechanisms.shm`'s ownership rules (the parent creates and
unlinks; workers attach, and release every view before ``close``).
"""

from __future__ import annotations

from bisect import bisect_left
from itertools import cycle, islice
from multiprocessing import shared_memory
from typing import Any, ClassVar

from sharebench.mechanisms.base import Mechanism, StoreSpec
from sharebench.mechanisms.keyed import (
    KeyedStore,
    LookupStore,
    key_sequence,
    lookup_keys,
    lookup_order,
    value_of,
)
from sharebench.mechanisms.shm import _buf, attach_block, block_name, destroy_block

#: Locks of ``shm-numpy/striped`` (a power of two: the stripe is ``key & (STRIPES - 1)``).
STRIPES = 16
_WORD = 8


class _Block:
    """The parent's block of ``words`` int64 slots."""

    block: shared_memory.SharedMemory | None

    def _create(self, run_token: str, size: int) -> shared_memory.SharedMemory:
        self.block = shared_memory.SharedMemory(name=block_name(run_token), create=True,
                                                size=max(size, _WORD))
        return self.block

    def _ints(self, words: int) -> Any:
        import numpy as np

        assert self.block is not None
        return np.ndarray((words,), dtype=np.int64, buffer=self.block.buf)

    def close(self) -> None:
        block, self.block = self.block, None
        destroy_block(block)


class ShmCountersStore(_Block, KeyedStore):
    """K int64 counters in one block; one lock, or :data:`STRIPES` of them."""

    striped: ClassVar[bool] = False

    def __init__(self, ctx: Any, spec: StoreSpec) -> None:
        super().__init__(ctx, spec)
        self._create(spec.run_token, spec.keys * _WORD)
        self.locks = tuple(ctx.Lock() for _ in range(STRIPES if self.striped else 1))
        self.start_counts()

    def handles(self) -> tuple[Any, ...]:
        assert self.block is not None
        return (self.block.name, self.locks, self.spec.keys)

    @staticmethod
    def attach(handles: tuple[Any, ...]) -> Any:
        import numpy as np

        name, locks, keys = handles
        block = attach_block(name)
        return [block, np.ndarray((keys,), dtype=np.int64, buffer=block.buf), locks, keys]

    @staticmethod
    def for_worker(local: Any, worker: int) -> Any:
        block, counts, locks, keys = local
        seq = key_sequence(worker, keys)
        # (key, its lock) pairs, so the loop does no arithmetic to find the stripe
        pairs = [(key, locks[key % len(locks)]) for key in seq]
        return [block, counts, pairs]

    @staticmethod
    def detach(local: Any) -> None:
        block = local[0]
        local.clear()  # the numpy view goes first: close() refuses exported buffers
        block.close()

    def read_counts(self) -> Any:
        return self._ints(self.spec.keys).copy()


class ShmStripedStore(ShmCountersStore):
    """The same counters under :data:`STRIPES` locks."""

    striped: ClassVar[bool] = True


def shm_numpy_dict_lock(local: Any, k: int, base: int) -> None:
    """``with lock: counts[key] += 1`` (the lock of the key's stripe; one stripe = one lock)."""
    _block, counts, pairs = local
    for key, lock in islice(cycle(pairs), k):
        with lock:
            counts[key] += 1


class ShmFlatStore(_Block, LookupStore):
    """A read-only table in one block: sorted keys, offsets, values (see the module docs)."""

    def __init__(self, ctx: Any, spec: StoreSpec) -> None:
        super().__init__(ctx, spec)
        import numpy as np

        n = spec.keys
        keys = lookup_keys(n)
        vals = [value_of(key) for key in keys]
        values = b"".join(vals)
        offsets = np.zeros(n + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(v) for v in vals])
        block = self._create(spec.run_token, (2 * n + 1) * _WORD + len(values))
        buf = _buf(block)
        ints = np.ndarray((2 * n + 1,), dtype=np.int64, buffer=buf)
        ints[:n] = keys
        ints[n:] = offsets
        del ints
        buf[(2 * n + 1) * _WORD:(2 * n + 1) * _WORD + len(values)] = values

    def handles(self) -> tuple[Any, ...]:
        assert self.block is not None
        return (self.block.name, self.spec.keys)

    @staticmethod
    def attach(handles: tuple[Any, ...]) -> Any:
        name, n = handles
        block = attach_block(name)
        buf = _buf(block)
        words = buf[:(2 * n + 1) * _WORD].cast("q")
        return [block, words[:n], words[n:], buf[(2 * n + 1) * _WORD:], words, n]

    @staticmethod
    def for_worker(local: Any, worker: int) -> Any:
        return [*local, lookup_order(worker, local[5])]

    @staticmethod
    def detach(local: Any) -> None:
        block = local[0]
        for view in (local[1], local[2], local[3], local[4]):
            view.release()
        local.clear()
        block.close()


def shm_flat_lookup(local: Any, k: int, base: int) -> int:
    """``bisect`` the key, slice its value, check it; returns the wrong ones."""
    _block, keys, offsets, values, _words, _n, order = local
    from_bytes = int.from_bytes
    wrong = 0
    for key in islice(cycle(order), k):
        i = bisect_left(keys, key)
        if from_bytes(values[offsets[i]:offsets[i + 1]], "little") != key:
            wrong += 1
    return wrong


MECHANISMS = (
    Mechanism("shm-numpy", "lock", "dict-increment", "shm", ShmCountersStore,
              shm_numpy_dict_lock, "K int64 counters in a SharedMemory block, one Lock"),
    Mechanism("shm-numpy", "striped", "dict-increment", "shm", ShmStripedStore,
              shm_numpy_dict_lock,
              f"K int64 counters in a SharedMemory block, {STRIPES} striped Locks"),
    Mechanism("shm-flat", "none", "lookup", "shm", ShmFlatStore, shm_flat_lookup,
              "read-only table in a SharedMemory block: sorted keys, offsets, values; bisect"),
)
