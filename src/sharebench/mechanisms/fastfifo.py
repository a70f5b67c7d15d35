"""faster-fifo: a ``multiprocessing.Queue`` look-alike over a circular buffer in shared memory.

``faster_fifo.Queue`` keeps its messages in a ``RawArray`` (a circular buffer of
``max_size_bytes``) guarded by a process-shared mutex and condition variables; ``put`` pickles
the object and copies it in before returning (no feeder thread, unlike
``multiprocessing.Queue``), ``get_many`` takes everything that is there (up to a limit) under
one lock. It travels to workers as a ``Process`` argument under fork, spawn and forkserver
(pickling it by hand outside a process start fails: the ``RawArray`` only pickles then).

* ``faster-fifo/atomic`` append — workers ``q.put(item)``, one message per append; the parent
  receives with ``get_many`` during the round (:class:`FastFifoStore`), verified like
  ``queue/atomic``.
* ``faster-fifo/atomic`` ping-pong — two queues (request, reply) between the pinger and the
  parent (:class:`FastFifoPing`).
* ``faster-fifo/atomic`` transfer — ``q.put((stamp, array))``, the parent ``get``\\ s each one
  (:class:`FastFifoTransferStore`: the ``queue/atomic`` transfer with this queue). ``put``
  pickles before it returns, so the sender could even reuse the array at once.

A full queue makes ``put`` wait (10 s by default, then ``queue.Full``): the buffers are sized
so that this does not happen while the parent keeps receiving. The buffer's memory goes back
when the last process drops the queue (``close()`` only sets a flag nobody here reads).
"""

from __future__ import annotations

import queue
import time
from functools import partial
from multiprocessing.reduction import ForkingPickler
from typing import Any

from sharebench.mechanisms.base import Mechanism, StoreSpec, Unavailable
from sharebench.mechanisms.message import _ReceivedItems, queue_append
from sharebench.mechanisms.pingpong import PingStore, ping_loop
from sharebench.mechanisms.transfer import QueueTransferStore, TransferStore, queue_transfer
from sharebench.verify import worker_tag

#: Header faster-fifo writes before each message (its length, a ``size_t``).
_HEADER = 8
#: The append buffer holds a round's items, but no more than this: the parent receives while
#: the workers send, so the buffer only ever holds the backlog (and ``put`` waits when full).
_MAX_APPEND_BYTES = 256 << 20
#: Room beside the payload for the pickle's own bytes (and the stamp of a transfer).
_MARGIN = 64 << 10


def new_queue(max_size_bytes: int) -> Any:
    """A ``faster_fifo.Queue`` with a buffer of ``max_size_bytes``; :class:`Unavailable` when
    the library is missing."""
    try:
        from faster_fifo import Queue
    except ImportError:
        raise Unavailable("faster-fifo is not installed (pip install faster-fifo)") from None
    return Queue(max_size_bytes=max_size_bytes)


def append_buffer_bytes(spec: StoreSpec) -> int:
    """Bytes for ``spec.capacity`` items of the largest tag (header + pickle each)."""
    largest = worker_tag(spec.workers) + spec.capacity
    per_item = _HEADER + len(ForkingPickler.dumps(largest))
    return min(_MAX_APPEND_BYTES, max(1 << 20, 2 * per_item * spec.capacity))


def message_buffer_bytes(payload_bytes: int) -> int:
    """Bytes for a few messages of ``payload_bytes`` (a 1 MiB message must fit whole)."""
    return 4 * payload_bytes + _MARGIN


class FastFifoStore(_ReceivedItems):
    """One queue every worker puts into; the parent takes what is there with ``get_many``."""

    def __init__(self, ctx: Any, spec: StoreSpec) -> None:
        super().__init__(ctx, spec)
        self.queue: Any = new_queue(append_buffer_bytes(spec))

    def handles(self) -> tuple[Any, ...]:
        return (self.queue,)

    @staticmethod
    def detach(local: tuple[Any, ...]) -> None:
        # Nothing to release: no feeder thread, and close() would only set the shared
        # "closed" flag for every process.
        pass

    def during_round(self, ops_per_worker: int) -> float | None:
        """Receive every item of the round in batches; the last arrival ends the round."""
        get_many = self.queue.get_many
        items = self.items
        extend = items.extend
        expected = ops_per_worker * self.spec.workers
        wait = self.patience()
        while len(items) < expected:
            try:
                extend(get_many(True, wait.slice, expected - len(items)))
            except queue.Empty:
                wait.nothing_came(len(items),
                                  f"faster-fifo: {len(items)} of {expected} items arrived")
        return time.perf_counter()

    def close(self) -> None:
        q, self.queue = self.queue, None
        if q is None:
            return
        try:
            while True:  # what a failed round left: read, so no writer stays blocked on it
                q.get_many_nowait()
        except queue.Empty:
            pass
        q.close()


class FastFifoPing(PingStore):
    """Two queues: requests to the parent, replies back; each message is pickled."""

    def __init__(self, ctx: Any, spec: StoreSpec) -> None:
        super().__init__(ctx, spec)
        size = message_buffer_bytes(spec.payload_bytes)
        self.requests: Any = new_queue(size)
        self.replies: Any = new_queue(size)

    def handles(self) -> tuple[Any, ...]:
        return (self.requests, self.replies, self.spec.payload_bytes, self.spec.round_timeout)

    def echo(self) -> None:
        try:
            self.replies.put(self.requests.get(True, self.spec.round_timeout))
        except queue.Empty:
            raise TimeoutError(
                f"faster-fifo: no message for {self.spec.round_timeout:g} s") from None

    def close(self) -> None:
        for q in (self.requests, self.replies):
            q.close()
        self.requests = self.replies = None


def fastfifo_ping(local: Any, k: int, base: int) -> Any:
    """``put`` the message, ``get`` the reply (waiting at most the round timeout: ``get``'s
    own default is 10 s)."""
    requests, replies, size, timeout = local
    return ping_loop(requests.put, partial(replies.get, True, timeout), size, k)


class FastFifoTransferStore(QueueTransferStore):
    """The ``queue/atomic`` transfer with a faster-fifo queue: ``put((stamp, array))``,
    ``get`` and check each; drained on close."""

    def __init__(self, ctx: Any, spec: StoreSpec) -> None:
        # QueueTransferStore.__init__ would make a multiprocessing.Queue: skip to its base.
        TransferStore.__init__(self, ctx, spec)
        self.queue = new_queue(message_buffer_bytes(spec.payload_bytes))

    @staticmethod
    def detach(local: Any) -> None:
        pass  # see FastFifoStore.detach


MECHANISMS = (
    Mechanism("faster-fifo", "atomic", "append", "message", FastFifoStore, queue_append,
              "faster_fifo.Queue: workers put items, the parent takes them with get_many"),
    Mechanism("faster-fifo", "atomic", "ping-pong", "message", FastFifoPing, fastfifo_ping,
              "round trip over two faster_fifo queues (put/get, pickled)", max_processes=1),
    Mechanism("faster-fifo", "atomic", "transfer", "message", FastFifoTransferStore,
              queue_transfer, "faster_fifo.Queue.put((stamp, array)): pickled into a shared "
              "circular buffer, unpickled by get()", max_processes=1),
)
