"""A POSIX named semaphore (PyPI ``posix_ipc``) as the lock of the shared-memory benchmarks.

The same blocks, slots and loops as :mod:`sharebench.mechanisms.shm` (``shm/lock``) and
:mod:`sharebench.mechanisms.shm_keyed` (``shm-numpy/lock``), with one thing changed: the lock
is a named ``posix_ipc.Semaphore`` (initial value 1) instead of a ``multiprocessing.Lock``. Both
are POSIX semaphores underneath (``multiprocessing.Lock`` is a ``sem_open``'ed one whose name
is unlinked at once, reached through fork or pickling), so the comparison shows what each
Python wrapper costs around ``sem_wait`` / ``sem_post`` on identical work.

The loops take the semaphore with ``acquire()`` / ``release()`` (a ``try``/``finally``, free
on CPython 3.11+), not ``with sem:``: measured on this machine, the pair costs ~140 ns per
locked increment and ``with`` ~210 ns (posix_ipc's ``__enter__``/``__exit__`` are slower
paths to the same ``sem_wait``/``sem_post``). Otherwise each loop is the one it is compared
with, operation for operation.

Naming and cleanup: the semaphore is ``/sharebench-<run_token>-<random>`` (Linux keeps it as
``/dev/shm/sem.sharebench-...``, which ``sharebench clean`` removes once its run is dead). The
parent creates it exclusively (``O_CREX``) and is its only owner: workers open it by name and
only ``close()`` it; the parent ``unlink()``\\ s it, then ``close()``\\ s it — in that order,
because ``unlink()`` on a closed ``Semaphore`` object raises.
"""

from __future__ import annotations

from itertools import cycle, islice, repeat
from multiprocessing import shared_memory
from typing import Any

from sharebench.mechanisms.base import Mechanism, StoreSpec, Unavailable
from sharebench.mechanisms.keyed import KeyedStore, key_sequence
from sharebench.mechanisms.shm import (
    ShmCounterStore,
    ShmItemStore,
    ShmLocal,
    _BlockStore,
    _buf,
    attach_block,
    block_name,
    destroy_block,
)

_WORD = 8
POSIX_IPC_MISSING = "posix_ipc is not installed (pip install 'posix-ipc>=1.3')"


def posix_ipc_module() -> Any:
    """The ``posix_ipc`` module, or :class:`Unavailable` saying how to get it."""
    try:
        import posix_ipc  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise Unavailable(POSIX_IPC_MISSING) from None
    return posix_ipc


def ipc_name(run_token: str) -> str:
    """``/sharebench-<run>-<random>``, the name of a named semaphore (seen as
    ``/dev/shm/sem.sharebench-...`` on Linux) or message queue: the suite's prefix, and a
    leading slash."""
    return "/" + block_name(run_token)


class NamedSemaphore:
    """The parent's semaphore: created exclusively with value 1, unlinked once on close."""

    def __init__(self, run_token: str) -> None:
        posix_ipc = posix_ipc_module()
        self.name = ipc_name(run_token)
        self.sem: Any = posix_ipc.Semaphore(self.name, posix_ipc.O_CREX, initial_value=1)

    def close(self) -> None:
        """Unlink the name, then close the parent's handle (the reverse order raises)."""
        sem, self.sem = self.sem, None
        if sem is None:
            return
        try:
            sem.unlink()
        finally:
            sem.close()


def open_semaphore(name: str) -> Any:
    """Worker side: open the parent's semaphore by name (never creates one)."""
    return posix_ipc_module().Semaphore(name)


class _SemBlockStore(_BlockStore):
    """A :class:`_BlockStore` whose lock is a named semaphore; handles are two names."""

    semaphore: NamedSemaphore | None = None

    def _create(self, ctx: Any, run_token: str, slots: int) -> None:
        # The semaphore first: a missing library must not leave a block behind.
        self.semaphore = NamedSemaphore(run_token)
        try:
            self.block = shared_memory.SharedMemory(
                name=block_name(run_token), create=True, size=slots * _WORD
            )
        except BaseException:
            self.semaphore.close()
            raise
        self.lock = None

    def handles(self) -> tuple[Any, ...]:
        assert self.block is not None
        assert self.semaphore is not None
        return (self.block.name, self.semaphore.name)

    def close(self) -> None:
        semaphore, self.semaphore = self.semaphore, None
        try:
            super().close()
        finally:
            if semaphore is not None:
                semaphore.close()

    @staticmethod
    def detach(local: ShmLocal) -> None:
        sem, local.lock = local.lock, None
        try:
            _BlockStore.detach(local)
        finally:
            if sem is not None:
                sem.close()


class SemCounterStore(_SemBlockStore, ShmCounterStore):
    """``shm/lock``'s int64 slot (a ``'q'`` memoryview); the lock is a named semaphore."""

    @staticmethod
    def attach(handles: tuple[Any, ...]) -> ShmLocal:
        name, sem_name = handles
        block = attach_block(name)
        return ShmLocal(block, _buf(block).cast("q"), open_semaphore(sem_name))


class SemItemStore(_SemBlockStore, ShmItemStore):
    """``shm/lock`` append's slots (index in slot 0); the lock is a named semaphore."""

    @staticmethod
    def attach(handles: tuple[Any, ...]) -> ShmLocal:
        name, sem_name = handles
        block = attach_block(name)
        return ShmLocal(block, _buf(block).cast("q"), open_semaphore(sem_name))


class SemCountersStore(KeyedStore):
    """``shm-numpy/lock`` dict-increment's K int64 counters (as in
    :class:`~sharebench.mechanisms.shm_keyed.ShmCountersStore`) under one named semaphore."""

    def __init__(self, ctx: Any, spec: StoreSpec) -> None:
        super().__init__(ctx, spec)
        self.semaphore: NamedSemaphore | None = NamedSemaphore(spec.run_token)
        self.block: shared_memory.SharedMemory | None = None
        try:
            self.block = shared_memory.SharedMemory(
                name=block_name(spec.run_token), create=True, size=max(spec.keys, 1) * _WORD
            )
            self.start_counts()
        except BaseException:
            self.close()
            raise

    def handles(self) -> tuple[Any, ...]:
        assert self.block is not None
        assert self.semaphore is not None
        return (self.block.name, self.semaphore.name, self.spec.keys)

    @staticmethod
    def attach(handles: tuple[Any, ...]) -> Any:
        import numpy as np

        name, sem_name, keys = handles
        block = attach_block(name)
        counts = np.ndarray((keys,), dtype=np.int64, buffer=block.buf)
        return [block, counts, keys, open_semaphore(sem_name)]

    @staticmethod
    def for_worker(local: Any, worker: int) -> Any:
        block, counts, keys, sem = local
        # (key, lock) pairs as shm-numpy/lock iterates (same unpacking per operation); the
        # semaphore also stays last, for detach.
        return [block, counts, [(key, sem) for key in key_sequence(worker, keys)], sem]

    @staticmethod
    def detach(local: Any) -> None:
        block, sem = local[0], local[3]
        local.clear()  # the numpy view goes first: close() refuses exported buffers
        try:
            block.close()
        finally:
            sem.close()

    def read_counts(self) -> Any:
        import numpy as np

        assert self.block is not None
        return np.ndarray((self.spec.keys,), dtype=np.int64, buffer=self.block.buf).copy()

    def close(self) -> None:
        block, self.block = self.block, None
        semaphore, self.semaphore = self.semaphore, None
        try:
            destroy_block(block)
        finally:
            if semaphore is not None:
                semaphore.close()


def sem_increment(local: ShmLocal, k: int, base: int) -> None:
    """``buf[0] += 1`` under the semaphore (``shm/lock``'s loop, acquire/release)."""
    buf = local.view
    acquire = local.lock.acquire
    release = local.lock.release
    for _ in repeat(None, k >> 2):  # unrolled x4: the loop costs ~1 ns/op
        acquire()
        try:
            buf[0] += 1
        finally:
            release()
        acquire()
        try:
            buf[0] += 1
        finally:
            release()
        acquire()
        try:
            buf[0] += 1
        finally:
            release()
        acquire()
        try:
            buf[0] += 1
        finally:
            release()
    for _ in repeat(None, k & 3):
        acquire()
        try:
            buf[0] += 1
        finally:
            release()


def sem_append(local: ShmLocal, k: int, base: int) -> None:
    """Read the index in slot 0, write the item after it, bump the index; all under the
    semaphore (``shm/lock`` append's loop)."""
    buf = local.view
    acquire = local.lock.acquire
    release = local.lock.release
    for i in range(k):
        acquire()
        try:
            idx = buf[0] + 1
            buf[idx] = base + i
            buf[0] = idx
        finally:
            release()


def shm_numpy_dict_sem(local: Any, k: int, base: int) -> None:
    """``counts[key] += 1`` under the semaphore (``shm-numpy/lock``'s loop)."""
    _block, counts, pairs, sem = local
    acquire = sem.acquire  # every pair holds this one semaphore; bound once (the fast path)
    release = sem.release
    for key, _sem in islice(cycle(pairs), k):
        acquire()
        try:
            counts[key] += 1
        finally:
            release()


MECHANISMS = (
    Mechanism("shm", "posix-sem", "increment", "shm", SemCounterStore, sem_increment,
              "SharedMemory int64 slot via memoryview under a posix_ipc named Semaphore"),
    Mechanism("shm", "posix-sem", "append", "shm", SemItemStore, sem_append,
              "SharedMemory int64 slots with an index in slot 0, under a posix_ipc Semaphore"),
    Mechanism("shm-numpy", "posix-sem", "dict-increment", "shm", SemCountersStore,
              shm_numpy_dict_sem, "K int64 counters in a SharedMemory block, one posix_ipc "
              "named Semaphore"),
)
