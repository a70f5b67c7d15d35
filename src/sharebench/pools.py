"""Worker pools: N persistent workers bound to one store, released together for each round.

The parent's side of a benchmark talks to a pool through one small protocol (:class:`Pool`):
``start()`` (every worker attaches and says it is ready; not timed), ``run_round(k, during)``
(release all workers for ``k`` operations each; returns what *their* clocks measured) and
``close()`` (stop, always join; never timed). Two pools implement it:

* :class:`ProcessPool` — worker processes from ``multiprocessing.get_context(start_method)``.
  Each worker waits for "run k", meets the others at a barrier, then timestamps its own loop
  with ``time.perf_counter()`` (one system-wide monotonic clock on Linux). The round time is
  ``max(end) - min(start)`` (:meth:`RoundTiming.of`). The parent waits on every worker's pipe
  *and* process sentinel with a deadline, so a worker that dies, raises or hangs becomes a
  :class:`WorkerError`, not a stuck run.
* :class:`ThreadPool` — threads of the parent process, the same protocol, for the
  ``workers_kind = "thread"`` baseline. A hung thread cannot be killed: after a timeout it is
  abandoned (threads are daemons) and the benchmark fails.

:data:`POOLS` maps ``Mechanism.workers_kind`` to the pool class. The worker bodies live here
too (pyperf keeps its worker side in ``_worker.py``; ours is two functions, so one module).
The module is long for that reason: one protocol, its two implementations and their worker
bodies, read side by side, since a change to one must be made to the other.

A pool may be made slower on purpose (``slowdown``, for validating regression detection):
each worker then busy-waits, inside its timed window and before its loop, ``(slowdown - 1)``
times the time per operation of the round before — the *round's* time, loops and the parent's
part together, less the wait itself, which the pool sends with each round (:class:`Slower`) —
so the round lasts ``slowdown`` times as long, the added time carries the machine's real
noise, and the workers' loops still overlap as they would. A worker's own loop time would not
do: where the parent is the bottleneck (it drains a queue the workers fill faster than it
empties) the workers' loops are a small part of the round, and a wait of that size barely
shows. The parent's part of the round starts later with the workers. The first round of a
pool (calibration or warm-up, never measured) has no round before it and waits nothing.
"""

from __future__ import annotations

import os
import queue
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import connection
from multiprocessing.context import BaseContext
from typing import Any, Protocol

from sharebench.lifecycle import die_with_parent
from sharebench.mechanisms.base import Loop, Mechanism
from sharebench.verify import worker_tag

#: ``during(k)``: the parent's own part of a round; returns when that part ended, or None.
During = Callable[[int], "float | None"]


class WorkerError(RuntimeError):
    """A worker died, raised, or did not finish a round in time."""


@dataclass(frozen=True)
class RoundTiming:
    """One round as the workers timed it."""

    seconds: float
    starts: tuple[float, ...]
    ends: tuple[float, ...]
    reports: tuple[Any, ...]

    @classmethod
    def of(
        cls,
        starts: tuple[float, ...],
        ends: tuple[float, ...],
        reports: tuple[Any, ...],
        parent_end: float | None = None,
    ) -> RoundTiming:
        """The round's time: from the first worker's start to the last end, of the workers or
        of the parent's own part of the round (``parent_end``), whichever is later."""
        end = max(ends) if parent_end is None else max(*ends, parent_end)
        return cls(end - min(starts), starts, ends, reports)

    @classmethod
    def from_replies(cls, replies: list[tuple[Any, ...]], at: int,
                     parent_end: float | None) -> RoundTiming:
        """From the workers' "done" messages, whose ``(start, end, report)`` begin at index
        ``at``."""
        return cls.of(
            starts=tuple(float(r[at]) for r in replies),
            ends=tuple(float(r[at + 1]) for r in replies),
            reports=tuple(r[at + 2] for r in replies),
            parent_end=parent_end,
        )


class Pool(Protocol):
    """What the harness needs of a pool (see the module docstring)."""

    def start(self) -> None:
        """Start the workers; return once every one has attached."""

    def run_round(self, k: int, during: During | None = None) -> RoundTiming:
        """Release every worker for ``k`` operations; their clocks time it."""

    def close(self, timeout: float = 5.0) -> None:
        """Stop every worker; safe after a failure."""

    def pids(self) -> list[int]:
        """The worker processes' pids (none for threads: they are the parent process)."""

    def check_alive(self) -> None:
        """Raise WorkerError if a worker has died (a parent waiting for items calls it)."""


def spin_until(deadline: float) -> float:
    """Busy-wait (no sleep: the CPU stays as busy as the loop was) until ``perf_counter()``
    reaches ``deadline``; return the time it stopped."""
    now = time.perf_counter()
    while now < deadline:
        now = time.perf_counter()
    return now


class Slower:
    """The parent's side of a deliberate slowdown: what each round's workers must wait.

    :meth:`wait_per_op` goes out with "run k"; :meth:`learn` takes the round's time back and
    keeps its time per operation without the wait (``0`` until a round has been seen)."""

    __slots__ = ("factor", "per_op")

    def __init__(self, factor: float) -> None:
        self.factor = factor
        self.per_op = 0.0

    def wait_per_op(self) -> float:
        return (self.factor - 1.0) * self.per_op

    def learn(self, seconds: float, k: int) -> None:
        waited = self.wait_per_op() * k
        self.per_op = max(0.0, seconds - waited) / max(k, 1)


def _timed(loop: Loop, local: Any, k: int, base: int, wait_per_op: float = 0.0
           ) -> tuple[float, float, object]:
    """Run the loop once under the worker's own clock, after busy-waiting ``wait_per_op``
    seconds per operation if the pool is slowed down on purpose."""
    perf_counter = time.perf_counter
    t0 = perf_counter()
    if wait_per_op > 0.0:
        spin_until(t0 + wait_per_op * k)
    report = loop(local, k, base)
    return t0, perf_counter(), report


def _where(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    return f" at {tb[-1].name}:{tb[-1].lineno}" if tb else ""


class _Workers:
    """What both pools are built from: N workers of one mechanism, and their limits."""

    def __init__(
        self,
        ctx: BaseContext,
        mech: Mechanism,
        handles: tuple[Any, ...],
        processes: int,
        *,
        round_timeout: float = 30.0,
        start_timeout: float = 60.0,
        slowdown: float = 1.0,
    ) -> None:
        self.ctx = ctx
        self.mech = mech
        self.n = processes
        self.handles = handles
        self.round_timeout = round_timeout
        self.start_timeout = start_timeout
        self.slower = Slower(slowdown)

    def _learned(self, timing: RoundTiming, k: int) -> RoundTiming:
        """The round's timing, after the slowdown (if any) has learned from it."""
        if self.slower.factor > 1.0:
            self.slower.learn(timing.seconds, k)
        return timing


# --------------------------------------------------------------------------------------
# Processes


def _process_worker(
    wid: int,
    mech: Mechanism,
    handles: tuple[Any, ...],
    conn: connection.Connection,
    barrier: Any,
    barrier_timeout: float,
) -> None:
    """Body of one worker process: attach, then run rounds on command until told to stop."""
    # Ctrl-C goes to the whole process group; the parent alone decides what happens then.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent()
    local: Any = None
    attached = False
    try:
        local = mech.store.attach(handles)
        attached = True
        local = mech.store.for_worker(local, wid)
        conn.send(("ready", os.getpid()))
        loop = mech.loop
        base = worker_tag(wid)
        while True:
            try:
                msg = conn.recv()
            except EOFError:
                break  # the parent went away: nothing to report to
            if msg[0] == "stop":
                break
            barrier.wait(barrier_timeout)
            conn.send(("done", *_timed(loop, local, msg[1], base, msg[2])))
    except BaseException as exc:
        try:
            conn.send(("error", f"worker {wid} raised {type(exc).__name__}: {exc}{_where(exc)}"))
        except (OSError, ValueError):
            pass
    finally:
        if attached:
            try:
                mech.store.detach(local)
            except Exception:
                pass
        local = None
        conn.close()


class ProcessPool(_Workers):
    """N persistent worker processes bound to one store; see the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.procs: list[Any] = []
        self.conns: list[connection.Connection] = []

    def start(self) -> None:
        """Start the workers and wait until every one has attached (not timed)."""
        ctx = self.ctx
        barrier = ctx.Barrier(self.n)
        for wid in range(self.n):
            parent_end, child_end = ctx.Pipe()
            proc = ctx.Process(  # type: ignore[attr-defined]
                target=_process_worker,
                args=(wid, self.mech, self.handles, child_end, barrier, self.round_timeout),
                name=f"sharebench-worker-{wid}",
                daemon=True,
            )
            self.procs.append(proc)
            self.conns.append(parent_end)
            proc.start()
            child_end.close()
        self._collect("ready", self.start_timeout, "start")

    def pids(self) -> list[int]:
        """The worker processes' pids, for reading their memory."""
        return [int(proc.pid) for proc in self.procs]

    def check_alive(self) -> None:
        """Raise WorkerError naming the first worker that has died, if any."""
        for wid, proc in enumerate(self.procs):
            if proc.exitcode is not None:
                raise self._died(wid, "round")

    def _died(self, wid: int, what: str) -> WorkerError:
        self.procs[wid].join(1)
        return WorkerError(
            f"worker {wid} died during {what} (exit code {self.procs[wid].exitcode})"
        )

    def _collect(self, kind: str, timeout: float, what: str) -> list[tuple[Any, ...]]:
        """One message of ``kind`` from every worker, or WorkerError naming who failed."""
        replies: list[tuple[Any, ...] | None] = [None] * self.n
        pending = set(range(self.n))
        deadline = time.monotonic() + timeout
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WorkerError(
                    f"{what} timed out after {timeout:g} s "
                    f"(worker {', '.join(map(str, sorted(pending)))} did not finish)"
                )
            waitables: dict[Any, int] = {}
            for wid in pending:
                waitables[self.conns[wid]] = wid
                waitables[self.procs[wid].sentinel] = wid
            for obj in connection.wait(list(waitables), timeout=remaining):
                wid = waitables[obj]
                if wid not in pending:
                    continue
                conn = self.conns[wid]
                if obj is not conn and not conn.poll():
                    raise self._died(wid, what)
                try:
                    msg = conn.recv()
                except (EOFError, OSError):
                    raise self._died(wid, what) from None
                if msg[0] == "error":
                    raise WorkerError(str(msg[1]))
                if msg[0] != kind:
                    raise WorkerError(f"worker {wid} sent {msg[0]!r}, expected {kind!r}")
                replies[wid] = msg
                pending.discard(wid)
        return [r for r in replies if r is not None]

    def run_round(self, k: int, during: During | None = None) -> RoundTiming:
        """Release all workers for k operations each; the workers' own clocks time it.

        ``during(k)``, if given, runs in the parent while the workers run (a receiver that
        drains a queue, say) and returns the ``perf_counter()`` at which the parent's part of
        the round ended, or None; the round then ends at the later of that and the workers.
        """
        wait = self.slower.wait_per_op()
        for conn in self.conns:
            conn.send(("run", k, wait))
        parent_end = during(k) if during is not None else None
        replies = self._collect("done", self.round_timeout, "round")
        return self._learned(RoundTiming.from_replies(replies, 1, parent_end), k)

    def close(self, timeout: float = 5.0) -> None:
        """Stop every worker: ask, then terminate, then kill; always join (never timed)."""
        for proc, conn in zip(self.procs, self.conns, strict=True):
            if proc.is_alive():
                try:
                    conn.send(("stop",))
                except (OSError, ValueError):
                    pass
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            proc.join(max(0.0, deadline - time.monotonic()))
        for proc in self.procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(1.0)
            if proc.is_alive():
                proc.kill()
                proc.join(1.0)
        for conn in self.conns:
            conn.close()
        for proc in self.procs:
            if not proc.is_alive():
                proc.close()
        self.procs.clear()
        self.conns.clear()


# --------------------------------------------------------------------------------------
# Threads


class ThreadPool(_Workers):
    """N persistent worker threads bound to one store (``processes`` counts threads).

    ``ctx`` is unused (threads need no start method); it is taken so both pools are built
    the same way.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.threads: list[threading.Thread] = []
        self.inboxes: list[queue.SimpleQueue[tuple[int, int, float] | None]] = []
        self.outbox: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self.barrier = threading.Barrier(self.n)
        self._round = 0

    def start(self) -> None:
        """Start the threads and wait until every one has attached (not timed)."""
        for wid in range(self.n):
            inbox: queue.SimpleQueue[tuple[int, int, float] | None] = queue.SimpleQueue()
            thread = threading.Thread(target=self._worker, args=(wid, inbox),
                                      name=f"sharebench-thread-{wid}", daemon=True)
            self.inboxes.append(inbox)
            self.threads.append(thread)
            thread.start()
        self._collect("ready", 0, self.start_timeout, "start")

    def pids(self) -> list[int]:
        """None: threads share the parent process."""
        return []

    def check_alive(self) -> None:
        """Nothing to check: a thread cannot die alone (its errors come back as messages)."""

    def _worker(self, wid: int, inbox: queue.SimpleQueue[tuple[int, int, float] | None]) -> None:
        """Body of one worker thread: the same protocol as a worker process."""
        out = self.outbox
        mech = self.mech
        attached = False
        local: Any = None
        try:
            local = mech.store.attach(self.handles)
            attached = True
            local = mech.store.for_worker(local, wid)
            out.put((wid, "ready", 0))
            loop = mech.loop
            base = worker_tag(wid)
            while True:
                msg = inbox.get()
                if msg is None:
                    break
                round_no, k, wait = msg
                self.barrier.wait(self.round_timeout)
                out.put((wid, "done", round_no, *_timed(loop, local, k, base, wait)))
        except BaseException as exc:
            out.put((wid, "error", -1,
                     f"thread {wid} raised {type(exc).__name__}: {exc}{_where(exc)}"))
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

    def run_round(self, k: int, during: During | None = None) -> RoundTiming:
        """Release all threads for k operations each; their own clocks time it.

        ``during(k)`` runs in the calling thread meanwhile, as in the process pool.
        """
        self._round += 1
        wait = self.slower.wait_per_op()
        for inbox in self.inboxes:
            inbox.put((self._round, k, wait))
        parent_end = during(k) if during is not None else None
        replies = self._collect("done", self._round, self.round_timeout, "round")
        return self._learned(RoundTiming.from_replies(replies, 3, parent_end), k)

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


#: Pools by ``Mechanism.workers_kind``.
POOLS: dict[str, type[ProcessPool] | type[ThreadPool]] = {
    "process": ProcessPool,
    "thread": ThreadPool,
}
