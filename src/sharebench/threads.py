"""A pool of worker *threads* with the process pool's interface: what processes cost, compared.

Mechanisms with ``workers_kind = "thread"`` run here: N threads of the parent process share
the store's plain Python objects directly. Everything else is the process pool's protocol
(:class:`sharebench.harness.ProcessPool`): every worker attaches and says it is ready; a round
sends "run k" to each, they meet at a barrier, each times its own loop with
``time.perf_counter()``, and the round is ``max(end) - min(start)``; the parent waits for the
replies with a deadline, so a thread that raises or hangs becomes a :class:`WorkerError`.

Unlike a process, a hung thread cannot be killed: after a timeout it is abandoned (threads are
daemons, so it does not keep the interpreter alive) and the benchmark fails.

Registered on import as ``POOLS["thread"]``; the thread family module imports this module, so
looking a thread mechanism up is enough to make its pool available.
"""

from __future__ import annotations

import queue
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.context import BaseContext
from typing import Any

from sharebench.harness import POOLS, HarnessConfig, RoundTiming, WorkerError
from sharebench.mechanisms.base import Mechanism, worker_tag


class ThreadPool:
    """N persistent worker threads bound to one store (``processes`` counts threads)."""

    def __init__(
        self,
        ctx: BaseContext,
        mech: Mechanism,
        handles: tuple[Any, ...],
        processes: int,
        config: HarnessConfig,
    ) -> None:
        self.ctx = ctx  # unused: threads need no start method; kept for the pool interface
        self.mech = mech
        self.n = processes
        self.config = config
        self.handles = handles
        self.threads: list[threading.Thread] = []
        self.inboxes: list[queue.SimpleQueue[tuple[int, int] | None]] = []
        self.outbox: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self.barrier = threading.Barrier(processes)
        #: Native thread ids, the counterpart of the process pool's pids.
        self.pids: list[int] = []
        self._round = 0

    def start(self) -> None:
        """Start the threads and wait until every one has attached (not timed)."""
        for wid in range(self.n):
            inbox: queue.SimpleQueue[tuple[int, int] | None] = queue.SimpleQueue()
            thread = threading.Thread(target=self._worker, args=(wid, inbox),
                                      name=f"sharebench-thread-{wid}", daemon=True)
            self.inboxes.append(inbox)
            self.threads.append(thread)
            thread.start()
        replies = self._collect("ready", 0, self.config.start_timeout, "start")
        self.pids = [int(r[3]) for r in replies]

    def _worker(self, wid: int, inbox: queue.SimpleQueue[tuple[int, int] | None]) -> None:
        """Body of one worker thread: the same protocol as a worker process."""
        out = self.outbox
        mech = self.mech
        attached = False
        local: Any = None
        try:
            local = mech.store.attach(self.handles)
            attached = True
            out.put((wid, "ready", 0, threading.get_native_id()))
            loop = mech.loop
            base = worker_tag(wid)
            perf_counter = time.perf_counter
            while True:
                msg = inbox.get()
                if msg is None:
                    break
                round_no, k = msg
                self.barrier.wait(self.config.round_timeout)
                t0 = perf_counter()
                report = loop(local, k, base)
                t1 = perf_counter()
                out.put((wid, "done", round_no, t0, t1, report))
        except BaseException as exc:
            tb = traceback.extract_tb(exc.__traceback__)
            where = f" at {tb[-1].name}:{tb[-1].lineno}" if tb else ""
            out.put((wid, "error", -1, f"thread {wid} raised {type(exc).__name__}: {exc}{where}"))
        finally:
            if attached:
                try:
                    mech.store.detach(local)
                except Exception:
                    pass

    def _collect(self, kind: str, round_no: int, timeout: float,
                 what: str) -> list[tuple[Any, ...]]:
        """One ``kind`` message of round ``round_no`` from every thread, or WorkerError."""
        replies: list[tuple[Any, ...] | None] = [None] * self.n
        pending = set(range(self.n))
        deadline = time.monotonic() + timeout
        while pending:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise queue.Empty
                msg = self.outbox.get(timeout=remaining)
            except queue.Empty:
                raise WorkerError(
                    f"{what} timed out after {timeout:g} s "
                    f"(thread {', '.join(map(str, sorted(pending)))} did not finish)"
                ) from None
            wid, got = int(msg[0]), str(msg[1])
            if got == "error":
                raise WorkerError(str(msg[3]))
            if got != kind or msg[2] != round_no or wid not in pending:
                continue  # a late reply of an abandoned round
            replies[wid] = msg
            pending.discard(wid)
        return [r for r in replies if r is not None]

    def run_round(
        self, k: int, during: Callable[[int], float | None] | None = None
    ) -> RoundTiming:
        """Release all threads for k operations each; their own clocks time it.

        ``during(k)`` runs in the calling thread meanwhile, as in the process pool.
        """
        self._round += 1
        for inbox in self.inboxes:
            inbox.put((self._round, k))
        parent_end = during(k) if during is not None else None
        replies = self._collect("done", self._round, self.config.round_timeout, "round")
        return RoundTiming.of(
            starts=tuple(float(r[3]) for r in replies),
            ends=tuple(float(r[4]) for r in replies),
            reports=tuple(r[5] for r in replies),
            parent_end=parent_end,
        )

    def close(self, timeout: float = 5.0) -> None:
        """Ask every thread to stop and join it; a hung one is abandoned (it is a daemon)."""
        for inbox in self.inboxes:
            inbox.put(None)
        self.barrier.abort()  # frees threads waiting for a partner that will never come
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self.threads.clear()
        self.inboxes.clear()


POOLS["thread"] = ThreadPool
