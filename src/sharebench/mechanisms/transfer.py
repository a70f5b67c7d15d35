"""Bulk transfer: one process hands a numpy array of S bytes to another (operation ``transfer``).

The worker is the sender, the parent the receiver (:meth:`Store.during_round`); a round ends
when the last array has arrived and been looked at. One operation moves ``payload_bytes``, so
bandwidth is ``throughput_ops_s × payload_bytes`` (the CSV keeps both; charts compute MB/s).

* ``shm-numpy/atomic`` — the sender copies into a ``SharedMemory`` block (``np.copyto``) and
  signals; the receiver reads a numpy view of the block in place, then hands it back (two
  semaphores: one slot, so the sender never overwrites what is being read).
* ``queue/atomic`` — ``Queue.put(array)``: pickled by the feeder thread, unpickled by ``get``.
* ``pipe/atomic`` — ``send_bytes(array)`` / ``recv_bytes_into(buffer)``: no pickling, the
  receiver reuses one preallocated buffer.
* ``manager-list/atomic`` — a one-item ``Manager().list()``: ``lst[0] = array`` in the sender,
  ``lst[0]`` in the receiver; the array travels to the server and back out (semaphores as
  for shm). ``atomic``: the receiver sees one whole array or none.
* ``memcpy/none`` (family ``harness``) — ``np.copyto`` between two arrays of one process: the
  machine's memory bandwidth for the same sizes, the physical limit the others are drawn
  against.

Verification. The sender alternates between two fixed random patterns (by sequence number,
so a stale or repeated array is told from a fresh one) and stamps each transfer with
``worker tag + sequence number`` (in word 0 of the array; beside it for the queue, whose
feeder thread pickles *after* ``put`` returns, so the array must not change after ``put`` —
the pitfall any sender that reuses a buffer hits). Per transfer the receiver checks the stamp
and three probe words (first, middle, last): cheap enough not to be what is measured. After
the round, the last transfer is compared byte for byte. A transfer that fails either check
counts as lost (and as a foreign value); for an ``atomic`` variant that fails the benchmark.
"""

from __future__ import annotations

import select
import time
from dataclasses import dataclass
from itertools import repeat
from multiprocessing import shared_memory
from typing import Any, ClassVar

from sharebench.mechanisms.base import Mechanism, Store, StoreSpec
from sharebench.mechanisms.counters import LocalStore
from sharebench.mechanisms.manager import _ManagerMixin
from sharebench.mechanisms.shm import attach_block, block_name, destroy_block
from sharebench.verify import RoundCheck, worker_tag

# The receiver waits for the next array at most ``spec.round_timeout``: a dead sender must not
# hang the parent (the pool reports the dead worker once the parent returns).
#: Smallest payload: word 0 (stamp) and the three probes must be distinct words.
MIN_PAYLOAD = 64
_SEED = 0x5EB


def check_payload_size(size: int) -> None:
    """Refuse sizes the stamp and probes cannot work with (a programming error)."""
    if isinstance(size, bool) or not isinstance(size, int) or size < MIN_PAYLOAD or size % 8:
        raise ValueError(f"transfer payload must be a multiple of 8 bytes >= {MIN_PAYLOAD}, "
                         f"not {size!r}")


class Payload:
    """The two patterns a sender alternates between; the same in every process (fixed seed).

    ``sources[p]`` are uint8 arrays of ``size`` bytes, ``words[p]`` int64 views of them (word 0
    is the stamp). ``expected[p]`` holds the pattern's probe words, which the receiver compares.
    """

    def __init__(self, size: int) -> None:
        import numpy as np

        check_payload_size(size)
        n = size // 8
        rng = np.random.default_rng(_SEED)
        info = np.iinfo(np.int64)
        self.size = size
        self.words = [rng.integers(info.min, info.max, n, dtype=np.int64) for _ in range(2)]
        self.sources = [w.view(np.uint8) for w in self.words]
        self.probes = (1, n // 2, n - 1)
        self.expected = [tuple(int(w[i]) for i in self.probes) for w in self.words]

    def matches(self, seq: int, words: Any) -> bool:
        """Every byte after the stamp equals pattern ``seq & 1`` (after a round, not timed)."""
        import numpy as np

        return bool(np.array_equal(words[1:], self.words[seq & 1][1:]))


@dataclass
class Received:
    """What the receiver counted in one round."""

    good: int = 0
    bad: int = 0
    #: int64 view of the last array received and its sequence number, for the full check.
    last: Any = None
    last_seq: int = -1
    last_ok: bool = False


class TransferStore(Store):
    """Parent side of a transfer: the receiver. Subclasses fill :meth:`during_round` using
    :meth:`_check` on every array they receive."""

    #: Never used to size anything: transfer stores hold one payload, not items.
    max_rate: ClassVar[float] = 1e6

    def __init__(self, ctx: Any, spec: StoreSpec) -> None:
        super().__init__(ctx, spec)
        self.payload = Payload(spec.payload_bytes)
        self.received = Received()
        self._base = worker_tag(0)  # transfers run with one sender

    def _check(self, seq: int, stamp: int, words: Any) -> None:
        """Cheap per-transfer check: the stamp and the three probe words."""
        p0, p1, p2 = self.payload.probes
        e0, e1, e2 = self.payload.expected[seq & 1]
        rec = self.received
        if (stamp == self._base + seq and words.shape[0] > p2 and words[p0] == e0
                and words[p1] == e1 and words[p2] == e2):
            rec.good += 1
            rec.last_ok = True
        else:
            rec.bad += 1
            rec.last_ok = False
        rec.last = words
        rec.last_seq = seq

    def collect(self, ops_per_worker: int, reports: Any) -> RoundCheck:
        """Received vs issued; the last array of the round is compared byte for byte."""
        rec, self.received = self.received, Received()
        good, bad = rec.good, rec.bad
        if rec.last_ok and not self.payload.matches(rec.last_seq, rec.last):
            good, bad = good - 1, bad + 1  # it passed the probes, not every byte: corrupt
        issued = ops_per_worker * self.spec.workers
        return RoundCheck(issued=issued, counted=good, lost=issued - good, invalid=bad)


class TransferLocal:
    """A sender's view: its payload patterns and the mechanism's channel."""

    __slots__ = ("block", "channel", "dst", "empty", "full", "payload")

    def __init__(self, payload: Payload, channel: Any = None, full: Any = None,
                 empty: Any = None, block: Any = None, dst: Any = None) -> None:
        self.payload = payload
        self.channel = channel
        self.full = full
        self.empty = empty
        self.block = block
        self.dst = dst


def _timeout(seconds: float) -> TimeoutError:
    return TimeoutError(f"transfer: nothing arrived for {seconds:g} s")


# --------------------------------------------------------------------------------------
# shm-numpy


class ShmTransferStore(TransferStore):
    """A block of ``payload_bytes`` and two semaphores: ``full`` (sender → receiver) and
    ``empty`` (receiver → sender, starts at 1)."""

    def __init__(self, ctx: Any, spec: StoreSpec) -> None:
        import numpy as np

        super().__init__(ctx, spec)
        self.full = ctx.Semaphore(0)
        self.empty = ctx.Semaphore(1)
        self.block: shared_memory.SharedMemory | None = shared_memory.SharedMemory(
            name=block_name(spec.run_token), create=True, size=spec.payload_bytes
        )
        self.view: Any = np.ndarray((spec.payload_bytes // 8,), dtype=np.int64,
                                    buffer=self.block.buf)

    def handles(self) -> tuple[Any, ...]:
        assert self.block is not None
        return (self.block.name, self.full, self.empty, self.spec.payload_bytes)

    @staticmethod
    def attach(handles: tuple[Any, ...]) -> TransferLocal:
        import numpy as np

        name, full, empty, size = handles
        block = attach_block(name)
        dst = np.ndarray((size,), dtype=np.uint8, buffer=block.buf)
        return TransferLocal(Payload(size), full=full, empty=empty, block=block, dst=dst)

    @staticmethod
    def detach(local: TransferLocal) -> None:
        local.dst = None  # the numpy view must go before the block can close
        local.block.close()

    def during_round(self, ops_per_worker: int) -> float | None:
        """Wait for each array, read it in place, hand the block back."""
        full, empty, view = self.full, self.empty, self.view
        check = self._check
        for seq in range(ops_per_worker * self.spec.workers):
            if not full.acquire(True, self.spec.round_timeout):
                raise _timeout(self.spec.round_timeout)
            check(seq, int(view[0]), view)
            empty.release()
        return time.perf_counter()

    def close(self) -> None:
        self.view = None
        self.received = Received()  # drops the last view too
        block, self.block = self.block, None
        destroy_block(block)


def shm_transfer(local: TransferLocal, k: int, base: int) -> None:
    """Wait for the slot, ``np.copyto`` the array into the block, signal the receiver."""
    import numpy as np

    copyto = np.copyto
    dst, full, empty = local.dst, local.full, local.empty
    sources, words = local.payload.sources, local.payload.words
    for i in range(k):
        words[i & 1][0] = base + i
        empty.acquire()
        copyto(dst, sources[i & 1])
        full.release()


# --------------------------------------------------------------------------------------
# queue


class QueueTransferStore(TransferStore):
    """One ``multiprocessing.Queue``; drained every round and on close."""

    def __init__(self, ctx: Any, spec: StoreSpec) -> None:
        super().__init__(ctx, spec)
        self.queue: Any = ctx.Queue()

    def handles(self) -> tuple[Any, ...]:
        return (self.queue, self.spec.payload_bytes)

    @staticmethod
    def attach(handles: tuple[Any, ...]) -> TransferLocal:
        q, size = handles
        return TransferLocal(Payload(size), channel=q)

    @staticmethod
    def detach(local: TransferLocal) -> None:
        # Everything sent was read before the round ended; after a failure, unread arrays
        # must not block this worker's exit (the parent drains them in close()).
        local.channel.cancel_join_thread()
        local.channel.close()

    def during_round(self, ops_per_worker: int) -> float | None:
        """``get`` each (stamp, array) and check it."""
        import queue

        get = self.queue.get
        check = self._check
        for seq in range(ops_per_worker * self.spec.workers):
            try:
                stamp, array = get(True, self.spec.round_timeout)
            except queue.Empty:
                raise _timeout(self.spec.round_timeout) from None
            check(seq, stamp, array.view("int64"))
        return time.perf_counter()

    def close(self) -> None:
        import queue

        self.received = Received()
        q, self.queue = self.queue, None
        if q is None:
            return
        try:
            while True:
                q.get_nowait()
        except (queue.Empty, OSError, EOFError):
            pass
        q.close()
        q.join_thread()


def queue_transfer(local: TransferLocal, k: int, base: int) -> None:
    """``q.put((stamp, array))``: the array is pickled by the queue's feeder thread."""
    put = local.channel.put
    sources = local.payload.sources
    for i in range(k):
        put((base + i, sources[i & 1]))


# --------------------------------------------------------------------------------------
# pipe


class PipeTransferStore(TransferStore):
    """A one-way ``Pipe``; the receiver reads into one preallocated buffer."""

    def __init__(self, ctx: Any, spec: StoreSpec) -> None:
        import numpy as np

        super().__init__(ctx, spec)
        self.receiver, self.sender = ctx.Pipe(duplex=False)
        self.buffer: Any = np.empty(spec.payload_bytes // 8, dtype=np.int64)
        # A persistent poll object: one cheap syscall per wait, where connection.wait would
        # build a selector every time.
        self.poller = select.poll()
        self.poller.register(self.receiver.fileno(), select.POLLIN)

    def handles(self) -> tuple[Any, ...]:
        return (self.sender, self.spec.payload_bytes)

    @staticmethod
    def attach(handles: tuple[Any, ...]) -> TransferLocal:
        conn, size = handles
        return TransferLocal(Payload(size), channel=conn)

    def during_round(self, ops_per_worker: int) -> float | None:
        """``recv_bytes_into`` the buffer; a short message is a corrupt transfer."""
        poll, recv_into = self.poller.poll, self.receiver.recv_bytes_into
        buffer, size = self.buffer, self.spec.payload_bytes
        check = self._check
        timeout_ms = int(self.spec.round_timeout * 1000)
        for seq in range(ops_per_worker * self.spec.workers):
            if not poll(timeout_ms):
                raise _timeout(self.spec.round_timeout)
            if recv_into(buffer) == size:
                check(seq, int(buffer[0]), buffer)
            else:
                self.received.bad += 1
        return time.perf_counter()

    def close(self) -> None:
        self.receiver.close()
        self.sender.close()


def pipe_transfer(local: TransferLocal, k: int, base: int) -> None:
    """``conn.send_bytes(array)``: written straight from the array's buffer."""
    send_bytes = local.channel.send_bytes
    sources, words = local.payload.sources, local.payload.words
    for i in range(k):
        words[i & 1][0] = base + i
        send_bytes(sources[i & 1])


# --------------------------------------------------------------------------------------
# manager-list


class ManagerListTransferStore(_ManagerMixin, TransferStore):
    """A ``Manager().list([None])`` used as a one-item mailbox, with two semaphores."""

    def __init__(self, ctx: Any, spec: StoreSpec) -> None:
        super().__init__(ctx, spec)
        self.full = ctx.Semaphore(0)
        self.empty = ctx.Semaphore(1)
        self.items = self._start_manager(ctx).list([None])

    def handles(self) -> tuple[Any, ...]:
        return (self.items, self.full, self.empty, self.spec.payload_bytes)

    @staticmethod
    def attach(handles: tuple[Any, ...]) -> TransferLocal:
        items, full, empty, size = handles
        return TransferLocal(Payload(size), channel=items, full=full, empty=empty)

    def during_round(self, ops_per_worker: int) -> float | None:
        """Fetch ``lst[0]`` when signalled, check it, hand the slot back."""
        full, empty, items = self.full, self.empty, self.items
        check = self._check
        for seq in range(ops_per_worker * self.spec.workers):
            if not full.acquire(True, self.spec.round_timeout):
                raise _timeout(self.spec.round_timeout)
            words = items[0].view("int64")
            check(seq, int(words[0]), words)
            empty.release()
        return time.perf_counter()

    def close(self) -> None:
        self.received = Received()
        self.items = None  # the proxy's finalizer talks to the server: before shutdown
        self._shutdown()


def manager_list_transfer(local: TransferLocal, k: int, base: int) -> None:
    """``lst[0] = array`` (pickled to the server) once the receiver has taken the last one."""
    items, full, empty = local.channel, local.full, local.empty
    sources, words = local.payload.sources, local.payload.words
    for i in range(k):
        words[i & 1][0] = base + i
        empty.acquire()
        items[0] = sources[i & 1]
        full.release()


# --------------------------------------------------------------------------------------
# memcpy: the limit


class MemcpyStore(LocalStore):
    """Nothing shared: the worker copies between two arrays of its own."""

    def __init__(self, ctx: Any, spec: StoreSpec) -> None:
        super().__init__(ctx, spec)
        check_payload_size(spec.payload_bytes)

    def handles(self) -> tuple[Any, ...]:
        return (self.spec.payload_bytes,)

    @staticmethod
    def attach(handles: tuple[Any, ...]) -> TransferLocal:
        import numpy as np

        (size,) = handles
        payload = Payload(size)
        return TransferLocal(payload, dst=np.empty_like(payload.sources[0]))


def memcpy_loop(local: TransferLocal, k: int, base: int) -> int:
    """``np.copyto(dst, src)`` k times; reports k if the copy holds the source's probe words
    (a byte-for-byte check here would be timed with the copies)."""
    import numpy as np

    copyto = np.copyto
    dst, src = local.dst, local.payload.sources[0]
    for _ in repeat(None, k):
        copyto(dst, src)
    got, want = dst.view(np.int64), local.payload.words[0]
    return k if all(got[p] == want[p] for p in local.payload.probes) else 0


MECHANISMS = (
    Mechanism("shm-numpy", "atomic", "transfer", "shm", ShmTransferStore, shm_transfer,
              "np.copyto into a SharedMemory block; the receiver reads a numpy view in place",
              max_processes=1),
    Mechanism("queue", "atomic", "transfer", "message", QueueTransferStore, queue_transfer,
              "multiprocessing.Queue.put(array): pickled, unpickled by get()",
              max_processes=1),
    Mechanism("pipe", "atomic", "transfer", "message", PipeTransferStore, pipe_transfer,
              "Pipe send_bytes(array) / recv_bytes_into(preallocated buffer)",
              max_processes=1),
    Mechanism("manager-list", "atomic", "transfer", "manager", ManagerListTransferStore,
              manager_list_transfer, "one-item Manager list: lst[0] = array, then lst[0]",
              max_processes=1),
    Mechanism("memcpy", "none", "transfer", "harness", MemcpyStore, memcpy_loop,
              "np.copyto between two arrays of one process: the memory-bandwidth limit",
              max_processes=1),
)
