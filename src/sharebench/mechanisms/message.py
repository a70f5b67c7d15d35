"""Message passing instead of shared state: workers send items, the parent receives them.

``queue/atomic`` — one ``multiprocessing.Queue``; ``pipe/atomic`` — one ``Pipe`` per worker.
Nothing is shared, so nothing can be lost to a race: each item is one message, and the
parent, the only reader, appends what arrives to its own list. That is what "append" means
here, one ``put``/``send`` per operation (batching many items per message would be faster
and would measure something else).

The parent's receiving is part of the round (:meth:`Store.during_round`): a round ends when
the last item has *arrived*, not when the last one was handed to the queue. ``Queue.put``
returns at once (a feeder thread pickles and writes later), so the workers' own clocks would
otherwise credit the queue with work it has not done yet.

Queues are drained: every round reads every item, and ``close()`` reads whatever a failed
round left. Workers call ``cancel_join_thread()`` on detach, deliberately: by then the parent
has read everything, and after a failure unread items must not block a worker's exit.
"""

from __future__ import annotations

import queue
import time
from multiprocessing import connection
from typing import Any, ClassVar

from sharebench.mechanisms.base import Mechanism
from sharebench.mechanisms.counters import ItemStore
from sharebench.verify import worker_of

# The parent waits for the next item at most ``spec.round_timeout`` (the user's
# --sharebench-round-timeout): a dead worker must not hang the parent in during_round.


class _ReceivedItems(ItemStore):
    """The items the parent received, in arrival order; emptied between rounds."""

    # A message costs microseconds; 1e6/s bounds any worker count here.
    max_rate: ClassVar[float] = 1e6

    def __init__(self, ctx: Any, spec: Any) -> None:
        super().__init__(ctx, spec)
        self.items: list[int] = []

    def read_items(self) -> Any:
        return self.items

    def reset(self) -> None:
        self.items = []


class QueueStore(_ReceivedItems):
    """One ``multiprocessing.Queue`` that every worker puts into."""

    def __init__(self, ctx: Any, spec: Any) -> None:
        super().__init__(ctx, spec)
        self.queue: Any = ctx.Queue()

    def handles(self) -> tuple[Any, ...]:
        return (self.queue,)

    @staticmethod
    def detach(local: tuple[Any, ...]) -> None:
        (q,) = local
        q.cancel_join_thread()
        q.close()

    def during_round(self, ops_per_worker: int) -> float | None:
        """Receive every item of the round; the time the last one arrived ends the round."""
        get = self.queue.get
        items = self.items
        append = items.append
        expected = ops_per_worker * self.spec.workers
        wait = self.patience()
        while len(items) < expected:
            try:
                for _ in range(expected - len(items)):
                    append(get(True, wait.slice))
            except queue.Empty:
                wait.nothing_came(len(items), f"queue: {len(items)} of {expected} items arrived")
        return time.perf_counter()

    def close(self) -> None:
        q, self.queue = self.queue, None
        if q is None:
            return
        try:
            while True:  # a failed round may have left items: never leave them unread
                q.get_nowait()
        except (queue.Empty, OSError, EOFError):
            pass
        q.close()
        q.join_thread()


class PipeStore(_ReceivedItems):
    """One one-way ``Pipe`` per worker; the parent waits on all receiving ends."""

    def __init__(self, ctx: Any, spec: Any) -> None:
        super().__init__(ctx, spec)
        pairs = [ctx.Pipe(duplex=False) for _ in range(spec.workers)]
        self.receivers: list[connection.Connection] = [r for r, _ in pairs]
        self.senders: list[connection.Connection] = [s for _, s in pairs]

    def handles(self) -> tuple[Any, ...]:
        # Every worker gets every sending end and picks its own by worker id in the loop.
        return (tuple(self.senders),)

    def during_round(self, ops_per_worker: int) -> float | None:
        """Receive ``ops_per_worker`` items from every pipe, as they become readable."""
        append = self.items.append
        remaining = dict.fromkeys(self.receivers, ops_per_worker)
        live = [r for r in self.receivers if ops_per_worker > 0]
        wait = connection.wait
        patience = self.patience()
        while live:
            ready = wait(live, patience.slice)
            if not ready:
                patience.nothing_came(len(self.items), f"pipe: {len(self.items)} items arrived")
                continue
            for r in ready:
                conn: Any = r
                append(conn.recv())
                remaining[conn] -= 1
                if remaining[conn] == 0:
                    live.remove(conn)
        return time.perf_counter()

    def close(self) -> None:
        for conn in (*self.receivers, *self.senders):
            conn.close()
        self.receivers, self.senders = [], []


def queue_append(local: tuple[Any, ...], k: int, base: int) -> None:
    """``q.put(item)``: one message per append."""
    (q,) = local
    put = q.put
    for i in range(k):
        put(base + i)


def pipe_append(local: tuple[Any, ...], k: int, base: int) -> None:
    """``conn.send(item)`` on this worker's own pipe: one message per append."""
    (senders,) = local
    send = senders[worker_of(base)].send
    for i in range(k):
        send(base + i)


MECHANISMS = (
    Mechanism("queue", "atomic", "append", "message", QueueStore, queue_append,
              "multiprocessing.Queue: workers put items, the parent gets and keeps them"),
    Mechanism("pipe", "atomic", "append", "message", PipeStore, pipe_append,
              "one Pipe per worker: workers send items, the parent receives them"),
)
