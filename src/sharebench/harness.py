"""The harness: persistent workers, barrier-released rounds, calibration, verification.

For one benchmark the parent

1. creates the shared object (the mechanism's store),
2. starts N worker processes from ``multiprocessing.get_context(start_method)``; each attaches
   to the store and says it is ready,
3. runs rounds: it sends "run k" to every worker; the workers meet at a barrier, then each
   timestamps its own loop of k inlined operations with ``time.perf_counter()`` (the same
   system-wide monotonic clock in every process on Linux). The round time is
   ``max(end) - min(start)``. After each round the parent verifies and resets the store,
4. stops the workers and destroys the store.

Only step 3's loops are timed: process start, attach, verification and ``join()`` never are
(``setup_s`` reports the cost of steps 1–2 separately). The parent waits on every worker's
pipe *and* process sentinel with a deadline, so a worker that dies, raises or hangs turns into
an error of that benchmark, not a stuck run.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from multiprocessing import connection
from multiprocessing.context import BaseContext
from typing import Any

from sharebench.lifecycle import die_with_parent
from sharebench.mechanisms.base import Mechanism, Store, StoreSpec, Unavailable, worker_tag
from sharebench.results import BenchmarkRecord
from sharebench.verify import RoundCheck


class ConfigError(ValueError):
    """Bad benchmark parameters; the message names the valid choices."""


class WorkerError(RuntimeError):
    """A worker died, raised, or did not finish a round in time."""


#: Pools by ``Mechanism.workers_kind``; each has ``start()``, ``run_round(k, during)`` and
#: ``close()``. Filled in below the pool classes.
POOLS: dict[str, Any] = {}


#: A longer target round makes no measurement better, only append stores huge.
MAX_ROUND_TIME = 60.0


@dataclass(frozen=True)
class HarnessConfig:
    """How to measure; the defaults are the quick profile's."""

    #: Calibrate k so that one round lasts about this long (seconds, wall time).
    round_time: float = 0.05
    #: Measured rounds per benchmark (the median of these is reported).
    rounds: int = 15
    #: Rounds run at the calibrated k and discarded before measuring.
    warmup_rounds: int = 2
    #: A round that takes longer than this is a hung worker (seconds).
    round_timeout: float = 30.0
    #: Time allowed for all workers to start and attach (spawn imports numpy: slow-ish).
    start_timeout: float = 60.0
    #: Calibration stops after this many rounds even if the target is not reached.
    max_calibration_rounds: int = 30
    #: Token that names OS objects (shared memory blocks) of this run; starts with the pid of
    #: the run so `sharebench clean` can tell blocks of dead runs from those of live ones.
    run_token: str = field(default_factory=lambda: f"{os.getpid()}")
    #: Services the run provides to stores, e.g. ``{"redis_url": "redis://127.0.0.1:6379"}``.
    resources: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (isinstance(self.round_time, int | float) and self.round_time > 0):
            raise ConfigError(f"round time must be a positive number of seconds, not "
                              f"{self.round_time!r}")
        if not math.isfinite(self.round_time):
            raise ConfigError("round time must be finite")
        if not (isinstance(self.rounds, int) and self.rounds >= 1):
            raise ConfigError(f"rounds must be an integer >= 1, not {self.rounds!r}")
        if not (isinstance(self.warmup_rounds, int) and self.warmup_rounds >= 0):
            raise ConfigError(f"warmup rounds must be an integer >= 0, not "
                              f"{self.warmup_rounds!r}")
        if self.round_time > MAX_ROUND_TIME:
            raise ConfigError(f"round time must be at most {MAX_ROUND_TIME:g} s, not "
                              f"{self.round_time!r}")
        if not (math.isfinite(self.round_timeout) and 0 < self.round_timeout <= 86400):
            raise ConfigError(f"round timeout must be a positive number of seconds (at most "
                              f"a day), not {self.round_timeout!r}")


def available_start_methods() -> list[str]:
    """Start methods this platform offers (fork, spawn, forkserver on Linux)."""
    return list(multiprocessing.get_all_start_methods())


def validate(mech: Mechanism, processes: int, start_method: str) -> None:
    """Refuse impossible parameters with one line naming the valid choices."""
    methods = available_start_methods()
    if start_method not in methods:
        raise ConfigError(
            f"start method {start_method!r} is not available here; valid: {', '.join(methods)}"
        )
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        raise ConfigError(f"processes must be an integer >= 1, not {processes!r}")
    if mech.max_processes is not None and processes > mech.max_processes:
        raise ConfigError(
            f"{mech.label} {mech.operation} runs with at most {mech.max_processes} process(es)"
        )


# --------------------------------------------------------------------------------------
# Worker side


def _worker_main(
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
        conn.send(("ready", os.getpid()))
        loop = mech.loop
        base = worker_tag(wid)
        perf_counter = time.perf_counter
        while True:
            try:
                msg = conn.recv()
            except EOFError:
                break  # the parent went away: nothing to report to
            if msg[0] == "stop":
                break
            k = msg[1]
            barrier.wait(barrier_timeout)
            t0 = perf_counter()
            report = loop(local, k, base)
            t1 = perf_counter()
            conn.send(("done", t0, t1, report))
    except BaseException as exc:
        tb = traceback.extract_tb(exc.__traceback__)
        where = f" at {tb[-1].name}:{tb[-1].lineno}" if tb else ""
        try:
            conn.send(("error", f"worker {wid} raised {type(exc).__name__}: {exc}{where}"))
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


# --------------------------------------------------------------------------------------
# Parent side


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


class ProcessPool:
    """N persistent worker processes bound to one store; see the module docstring."""

    def __init__(
        self,
        ctx: BaseContext,
        mech: Mechanism,
        handles: tuple[Any, ...],
        processes: int,
        config: HarnessConfig,
    ) -> None:
        self.ctx = ctx
        self.mech = mech
        self.n = processes
        self.config = config
        self.handles = handles
        self.procs: list[Any] = []
        self.conns: list[connection.Connection] = []
        self.pids: list[int] = []
        self.barrier: Any = None

    def start(self) -> None:
        """Start the workers and wait until every one has attached (not timed)."""
        ctx = self.ctx
        self.barrier = ctx.Barrier(self.n)
        for wid in range(self.n):
            parent_end, child_end = ctx.Pipe()
            proc = ctx.Process(  # type: ignore[attr-defined]
                target=_worker_main,
                args=(wid, self.mech, self.handles, child_end, self.barrier,
                      self.config.round_timeout),
                name=f"sharebench-worker-{wid}",
                daemon=True,
            )
            self.procs.append(proc)
            self.conns.append(parent_end)
            proc.start()
            child_end.close()
        replies = self._collect("ready", self.config.start_timeout, "start")
        self.pids = [int(r[1]) for r in replies]

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
                    self.procs[wid].join(1)
                    raise WorkerError(
                        f"worker {wid} died during {what} "
                        f"(exit code {self.procs[wid].exitcode})"
                    )
                try:
                    msg = conn.recv()
                except (EOFError, OSError):
                    self.procs[wid].join(1)
                    raise WorkerError(
                        f"worker {wid} died during {what} "
                        f"(exit code {self.procs[wid].exitcode})"
                    ) from None
                if msg[0] == "error":
                    raise WorkerError(str(msg[1]))
                if msg[0] != kind:
                    raise WorkerError(f"worker {wid} sent {msg[0]!r}, expected {kind!r}")
                replies[wid] = msg
                pending.discard(wid)
        return [r for r in replies if r is not None]

    def run_round(
        self, k: int, during: Callable[[int], float | None] | None = None
    ) -> RoundTiming:
        """Release all workers for k operations each; the workers' own clocks time it.

        ``during(k)``, if given, runs in the parent while the workers run (a receiver that
        drains a queue, say) and returns the ``perf_counter()`` at which the parent's part of
        the round ended, or None; the round then ends at the later of that and the workers.
        """
        for conn in self.conns:
            conn.send(("run", k))
        parent_end = during(k) if during is not None else None
        replies = self._collect("done", self.config.round_timeout, "round")
        return RoundTiming.of(
            starts=tuple(float(r[1]) for r in replies),
            ends=tuple(float(r[2]) for r in replies),
            reports=tuple(r[3] for r in replies),
            parent_end=parent_end,
        )

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
            if hasattr(proc, "close") and not proc.is_alive():
                proc.close()
        self.procs.clear()
        self.conns.clear()


POOLS["process"] = ProcessPool


def calibrate(
    run_round: Callable[[int], float],
    target: float,
    cap: int,
    max_rounds: int,
    refine_rounds: int = 3,
) -> int:
    """Ops per worker so that one round lasts about ``target`` seconds.

    ``run_round(k) -> seconds``. Starts at k = 1 and grows geometrically (never overshooting
    the target by much) until a round lasts at least a quarter of the target, scales k
    linearly, then checks that estimate on ``refine_rounds`` rounds and rescales by their
    median, so one descheduled round cannot skew it. Never exceeds ``cap`` (the capacity of
    append stores).
    """
    k = 1
    seconds = run_round(k)
    for _ in range(max_rounds - 1):
        if seconds >= target / 4 or k >= cap:
            break
        grow = target / 2 / seconds if seconds > 0 else 100.0
        k = min(cap, max(2 * k, int(k * min(grow, 100.0))))
        seconds = run_round(k)

    def scaled(k: int, seconds: float) -> int:
        return max(1, min(cap, round(k * target / seconds))) if seconds > 0 else min(cap, k)

    k = scaled(k, seconds)
    if refine_rounds > 0 and k < cap:
        times = sorted(run_round(k) for _ in range(refine_rounds))
        k = scaled(k, times[len(times) // 2])
    return k


def store_capacity(store_cls: type[Store], round_time: float) -> int:
    """Items an append store needs for one round at the fastest rate it could ever reach."""
    return max(1024, math.ceil(store_cls.max_rate * round_time * 2))


class BenchmarkRun:
    """One benchmark from setup to teardown; use as a context manager.

    ``calibrate()``, ``warmup()`` and ``measure_round()`` drive it (the pytest plugin hands
    ``measure_round`` to pytest-benchmark); ``record`` holds everything measured so far.
    """

    def __init__(
        self,
        mech: Mechanism,
        processes: int,
        start_method: str,
        config: HarnessConfig | None = None,
        payload_bytes: int = 0,
    ) -> None:
        validate(mech, processes, start_method)
        if mech.workers_kind not in POOLS:
            raise ConfigError(
                f"{mech.label}: unknown workers kind {mech.workers_kind!r}; "
                f"valid: {', '.join(POOLS)}"
            )
        self.mech = mech
        self.payload_bytes = payload_bytes
        self.processes = processes
        self.start_method = start_method
        self.config = config or HarnessConfig()
        self.ctx = multiprocessing.get_context(start_method)
        self.capacity = store_capacity(mech.store, self.config.round_time)
        self.k = 1
        self.store: Store | None = None
        self.pool: ProcessPool | None = None
        self.record = BenchmarkRecord(
            family=mech.family,
            mechanism=mech.name,
            sync=mech.sync,
            operation=mech.operation,
            processes=processes,
            start_method=start_method,
            workers_kind=mech.workers_kind,
            payload_bytes=payload_bytes,
            round_target_s=self.config.round_time,
        )
        self._errors: list[str] = []

    # -- lifecycle (not timed) ---------------------------------------------------------

    def __enter__(self) -> BenchmarkRun:
        t0 = time.perf_counter()
        try:
            spec = StoreSpec(
                self.processes, self.capacity, self.config.run_token,
                payload_bytes=self.payload_bytes, resources=self.config.resources,
                round_timeout=self.config.round_timeout,
            )
            self.store = self.mech.store(self.ctx, spec)
            self.pool = POOLS[self.mech.workers_kind](
                self.ctx, self.mech, self.store.handles(), self.processes, self.config
            )
            self.pool.start()
        except BaseException:
            self.close(grace=0.5)
            raise
        self.record.setup_s = time.perf_counter() - t0
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        # After a failure or an interrupt the workers may be stuck mid-loop: don't wait long
        # for them to take a polite "stop".
        self.close(grace=5.0 if exc_type is None else 0.5)

    def close(self, grace: float = 5.0) -> None:
        """Stop the workers, then destroy the store; safe to call twice."""
        pool, self.pool = self.pool, None
        store, self.store = self.store, None
        try:
            if pool is not None:
                pool.close(timeout=grace)
        finally:
            if store is not None:
                store.close()

    # -- rounds ----------------------------------------------------------------------

    def _round(self, k: int, measured: bool) -> float:
        assert self.pool is not None
        assert self.store is not None
        timing = self.pool.run_round(k, self.store.during_round)
        check = self.store.collect(k, timing.reports)
        if not (math.isfinite(timing.seconds) and timing.seconds > 0):
            raise WorkerError(f"impossible round time {timing.seconds!r} s")
        self._account(check, timing.seconds, measured)
        return timing.seconds

    def _account(self, check: RoundCheck, seconds: float, measured: bool) -> None:
        if self.mech.sync != "none" and not check.clean:
            # A lock or atomic variant that loses data is broken; say how, once.
            self._errors.append(check.describe())
        if measured:  # all of a round's numbers at once: the lists never disagree in length
            rec = self.record
            rec.issued_ops += check.issued
            rec.lost_updates += check.lost
            rec.duplicates += check.duplicates
            rec.round_lost.append(check.lost)
            rec.round_seconds.append(seconds)

    def calibrate(self) -> int:
        """Find k (ops per worker per round) for the target round time."""
        cap = self.capacity // self.processes if self.mech.operation == "append" else 10**12
        self.k = calibrate(
            lambda k: self._round(k, measured=False),
            self.config.round_time,
            max(1, cap),
            self.config.max_calibration_rounds,
        )
        self.record.ops_per_worker = self.k
        return self.k

    def use_k(self, k: int) -> None:
        """Skip calibration: measure with ``k`` ops per worker (found by an earlier pass)."""
        if k < 1:
            raise ConfigError(f"ops per worker must be >= 1, not {k}")
        self.k = k
        self.record.ops_per_worker = k

    def warmup(self, rounds: int | None = None) -> None:
        """Discarded rounds at the calibrated k (``config.warmup_rounds`` by default)."""
        n = self.config.warmup_rounds if rounds is None else rounds
        for _ in range(n):
            self._round(self.k, measured=False)
        self.record.warmup_rounds = n

    def measure_round(self) -> float:
        """One measured round: its time is recorded and returned."""
        return self._round(self.k, measured=True)

    def verification_error(self) -> str | None:
        """Why a lock/atomic variant failed verification, or None."""
        if not self._errors:
            return None
        extra = f" (in {len(self._errors)} rounds)" if len(self._errors) > 1 else ""
        return f"verification failed: {self._errors[0]}{extra}"


def run_benchmark(
    mech: Mechanism,
    processes: int,
    start_method: str,
    config: HarnessConfig | None = None,
    payload_bytes: int = 0,
) -> BenchmarkRecord:
    """Measure one benchmark end to end. Failures become ``status = 'error: ...'``; a
    mechanism whose service is missing (no redis-server, say) becomes ``'skipped: ...'``.

    Bad parameters (:class:`ConfigError`) still raise: they are the caller's mistake.
    """
    run = BenchmarkRun(mech, processes, start_method, config, payload_bytes)
    try:
        with run:
            run.calibrate()
            run.warmup()
            for _ in range(run.config.rounds):
                run.measure_round()
    except Unavailable as exc:
        run.record.status = f"skipped: {one_line(exc)}"
        return run.record
    except ConfigError:
        raise
    except Exception as exc:  # whatever broke, this benchmark failed and the run goes on
        run.record.status = f"error: {describe_error(exc)}"
        return run.record
    error = run.verification_error()
    if error:
        run.record.status = f"error: {error}"
    return run.record


def one_line(exc: BaseException) -> str:
    """An exception as one line for a status column."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def describe_error(exc: BaseException) -> str:
    """One line for a status column; the type is named unless it is one of ours (whose
    messages already say what happened)."""
    if isinstance(exc, WorkerError | Unavailable | ConfigError):
        return one_line(exc)
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


__all__ = [
    "POOLS",
    "BenchmarkRun",
    "ConfigError",
    "HarnessConfig",
    "ProcessPool",
    "RoundTiming",
    "Unavailable",
    "WorkerError",
    "available_start_methods",
    "calibrate",
    "describe_error",
    "run_benchmark",
    "validate",
]

