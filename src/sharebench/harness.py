"""The harness: one benchmark from setup to teardown — calibration, rounds, verification.

For one benchmark the parent

1. creates the shared object (the mechanism's store),
2. starts a pool of N workers (:mod:`sharebench.pools`); each attaches and says it is ready,
3. calibrates k (operations per worker per round) to the target round time, or takes the k
   an earlier pass found, runs warm-up rounds, then the measured rounds; after every round
   it verifies and resets the store,
4. stops the workers and destroys the store.

Only the workers' loops in step 3 are timed: process start, attach, verification and
``join()`` never are (``setup_s`` reports the cost of steps 1–2 separately).

:meth:`BenchmarkRun.execute` is the one measurement path: the pytest plugin calls it (with
pytest-benchmark's timer as the ``measure`` callback), and so do the tests, ``sharebench ab``
and everything else. It turns whatever happens into the record's :class:`~schema.Status`:
``skipped`` when a service is missing, ``error`` for any failure (a dead worker, data lost under
a lock), and it re-raises only what the caller must see (bad parameters, Ctrl-C).

The module is long for that one job: the steps of the one measurement path (setup,
calibration, warm-up, rounds, verification, memory, teardown) are read, and changed, together.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sharebench.errors import ConfigError, one_line
from sharebench.mechanisms.base import Mechanism, Store, StoreSpec, Unavailable
from sharebench.memory import Memory, MemoryUnavailable, read_memory
from sharebench.pools import POOLS, Pool, WorkerError
from sharebench.schema import BenchmarkRecord
from sharebench.status import Status
from sharebench.verify import RoundCheck

#: A longer target round makes no measurement better, only append stores huge.
MAX_ROUND_TIME = 60.0

#: ``measure(round_fn, n)``: calls ``round_fn()`` (one measured round; returns its seconds)
#: up to ``n`` times — pytest-benchmark's ``pedantic``, say. The harness tops up any rounds
#: it did not run.
Measure = Callable[[Callable[[], float], int], None]


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


@dataclass(frozen=True)
class RunPlan:
    """What one call of :meth:`BenchmarkRun.execute` measures (defaults: the config's)."""

    #: Measured rounds in this call; None = ``config.rounds``.
    rounds: int | None = None
    #: Ops per worker found by an earlier pass; None = calibrate now.
    k: int | None = None
    #: Warm-up rounds; None = ``config.warmup_rounds`` after calibrating, at most 1 with a
    #: given k (the workers are fresh, the k is not).
    warmup: int | None = None
    #: Which pass through the suite this is (recorded with every round).
    pass_index: int = 0
    #: Make the benchmark this many times slower, for real (validation of regression
    #: detection; see :mod:`sharebench.pools`). 1 = as it is.
    slowdown: float = 1.0

    def __post_init__(self) -> None:
        if self.rounds is not None and self.rounds < 1:
            raise ConfigError(f"rounds must be >= 1, not {self.rounds}")
        if self.k is not None and self.k < 1:
            raise ConfigError(f"ops per worker must be >= 1, not {self.k}")
        check_slowdown(self.slowdown)


def check_slowdown(factor: float) -> None:
    """A deliberate slowdown is a factor from 1 (none) to 100, or a ConfigError."""
    if not (math.isfinite(factor) and 1.0 <= factor <= 100.0):
        raise ConfigError(f"slowdown must be a factor from 1 to 100, not {factor!r}")


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
    if mech.workers_kind not in POOLS:
        raise ConfigError(
            f"{mech.label}: unknown workers kind {mech.workers_kind!r}; valid: {', '.join(POOLS)}"
        )


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


def describe_error(exc: BaseException) -> str:
    """One line for a status column; the type is named unless it is one of ours (whose
    messages already say what happened)."""
    if isinstance(exc, WorkerError | Unavailable | ConfigError):
        return one_line(exc)
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def status_of(exc: Exception) -> Status:
    """What an exception means for a benchmark: a missing service is ``skipped``, anything
    else ``error`` (with the reason, one line)."""
    if isinstance(exc, Unavailable):
        return Status.skipped(one_line(exc))
    return Status.error(describe_error(exc))


class BenchmarkRun:
    """One benchmark from setup to teardown; use as a context manager, or :meth:`execute`.

    ``calibrate()``, ``use_k()``, ``warmup()`` and ``measure_round()`` drive it;
    ``record`` holds everything measured so far, whatever happens.
    """

    def __init__(
        self,
        mech: Mechanism,
        processes: int,
        start_method: str,
        config: HarnessConfig | None = None,
        payload_bytes: int = 0,
        keys: int = 0,
    ) -> None:
        validate(mech, processes, start_method)
        self.mech = mech
        self.payload_bytes = payload_bytes
        self.keys = keys
        self.processes = processes
        self.start_method = start_method
        self.config = config or HarnessConfig()
        #: Set by :meth:`execute` from its plan, before the workers start.
        self.slowdown = 1.0
        self.ctx = multiprocessing.get_context(start_method)
        self.capacity = store_capacity(mech.store, self.config.round_time)
        self.k = 1
        self.store: Store | None = None
        self.pool: Pool | None = None
        self.record = BenchmarkRecord(
            family=mech.family,
            mechanism=mech.name,
            sync=mech.sync,
            operation=mech.operation,
            processes=processes,
            start_method=start_method,
            workers_kind=mech.workers_kind,
            payload_bytes=payload_bytes,
            keys=keys,
            round_target_s=self.config.round_time,
        )
        self._errors: list[str] = []
        self._memory_at_start: list[Memory] = []

    # -- lifecycle (not timed) ---------------------------------------------------------

    def __enter__(self) -> BenchmarkRun:
        t0 = time.perf_counter()
        try:
            spec = StoreSpec(
                self.processes, self.capacity, self.config.run_token,
                payload_bytes=self.payload_bytes, keys=self.keys,
                resources=self.config.resources, round_timeout=self.config.round_timeout,
            )
            self.store = self.mech.store(self.ctx, spec)
            self.pool = POOLS[self.mech.workers_kind](
                self.ctx, self.mech, self.store.handles(), self.processes,
                round_timeout=self.config.round_timeout,
                start_timeout=self.config.start_timeout, slowdown=self.slowdown,
            )
            self.pool.start()
            self.store.watch(self.pool.check_alive)
        except BaseException:
            self.close(grace=0.5)
            raise
        self.record.setup_s = time.perf_counter() - t0
        self._memory_at_start = self._memory()
        return self

    def _memory(self) -> list[Memory]:
        """Each worker process's USS/PSS now (none for threads, or where unreadable: the
        record's ``memory_status`` then says why)."""
        assert self.pool is not None
        pids = self.pool.pids()
        if not pids:
            self.record.memory_status = "skipped: threads share the parent process"
            return []
        try:
            return [read_memory(pid) for pid in pids]
        except MemoryUnavailable as exc:
            self.record.memory_status = f"skipped: {one_line(exc)}"
            return []

    def record_memory(self) -> None:
        """The mean growth of a worker's USS and PSS since the workers attached (call after
        the last measured round, before closing)."""
        start, end = self._memory_at_start, self._memory() if self._memory_at_start else []
        if not start or len(end) != len(start):
            return
        growth = [e - s for s, e in zip(start, end, strict=True)]
        self.record.uss_growth = sum(g.uss for g in growth) / len(growth)
        self.record.pss_growth = sum(g.pss for g in growth) / len(growth)
        self.record.memory_status = "ok"

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
        if (self.mech.sync != "none" and not check.clean) or check.invalid:
            # A lock or atomic variant that loses data is broken, and so is anything that
            # hands back a value nobody wrote (a wrong lookup, a torn echo); say how, once.
            self._errors.append(check.describe())
        if measured:  # all of a round's numbers at once: the lists never disagree in length
            rec = self.record
            rec.issued_ops += check.issued
            rec.lost_updates += check.lost
            rec.duplicates += check.duplicates
            rec.round_lost.append(check.lost)
            rec.round_seconds.append(seconds)
            if check.latency is not None:
                rec.round_latency.append(check.latency)

    @property
    def max_k(self) -> int:
        """The most ops per worker a round may take: an append store holds ``capacity``
        items in all."""
        cap = self.capacity // self.processes if self.mech.operation == "append" else 10**12
        return max(1, cap)

    def calibrate(self) -> int:
        """Find k (ops per worker per round) for the target round time."""
        self.k = calibrate(
            lambda k: self._round(k, measured=False),
            self.config.round_time,
            self.max_k,
            self.config.max_calibration_rounds,
        )
        self.record.ops_per_worker = self.k
        return self.k

    def slow_down(self, factor: float) -> None:
        """Make the benchmark ``factor`` times slower on purpose (before ``__enter__``: the
        pool takes it); recorded with the run. 1 = as it is."""
        check_slowdown(factor)
        self.slowdown = factor
        self.record.slowdown = factor

    def use_k(self, k: int) -> None:
        """Skip calibration: measure with ``k`` ops per worker (found by an earlier pass)."""
        if k < 1:
            raise ConfigError(f"ops per worker must be >= 1, not {k}")
        self.k = k
        self.record.ops_per_worker = k

    def warmup(self, rounds: int | None = None) -> None:
        """Discarded rounds at the current k (``config.warmup_rounds`` by default)."""
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

    # -- the one measurement path ---------------------------------------------------------

    def execute(self, plan: RunPlan | None = None, measure: Measure | None = None
                ) -> BenchmarkRecord:
        """Set up, calibrate (or take ``plan.k``), warm up, measure, verify, tear down.

        Whatever breaks becomes the record's status and the run goes on: a missing service
        gives ``skipped``, any other exception ``error``, data lost under a lock ``error:
        verification failed``. Only bad parameters (:class:`ConfigError`) and interrupts
        (Ctrl-C, SIGTERM turned into KeyboardInterrupt) propagate — after the record says
        ``error: interrupted``, so the partial CSV stays honest.
        """
        plan = plan or RunPlan()
        self.slow_down(plan.slowdown)
        rec = self.record
        rounds = plan.rounds or self.config.rounds
        try:
            with self:
                if plan.k is None:
                    self.calibrate()
                    self.warmup(plan.warmup)
                else:  # the same k in every pass, so all rounds measure the same thing
                    self.use_k(plan.k)
                    warm = min(1, self.config.warmup_rounds) if plan.warmup is None else plan.warmup
                    self.warmup(warm)
                if measure is not None:
                    measure(self.measure_round, rounds)
                while len(rec.round_seconds) < rounds:  # what `measure` did not run
                    self.measure_round()
                self.record_memory()
        except ConfigError:
            raise
        except Exception as exc:  # whatever broke, this benchmark failed and the run goes on
            rec.status = status_of(exc)
        except BaseException as exc:  # Ctrl-C, SIGTERM: keep this row honest, then stop
            rec.status = Status.error("interrupted" if isinstance(exc, KeyboardInterrupt)
                                      else describe_error(exc))
            raise
        finally:
            rec.round_pass = [plan.pass_index] * len(rec.round_seconds)
        error = self.verification_error()
        if rec.status.is_ok and error:
            rec.status = Status.error(error)
        return rec


def run_benchmark(
    mech: Mechanism,
    processes: int,
    start_method: str,
    config: HarnessConfig | None = None,
    payload_bytes: int = 0,
    plan: RunPlan | None = None,
    measure: Measure | None = None,
    keys: int = 0,
) -> BenchmarkRecord:
    """Measure one benchmark end to end (see :meth:`BenchmarkRun.execute`).

    Bad parameters (:class:`ConfigError`) raise: they are the caller's mistake.
    """
    run = BenchmarkRun(mech, processes, start_method, config, payload_bytes, keys)
    return run.execute(plan, measure)


__all__ = [
    "BenchmarkRun",
    "ConfigError",
    "HarnessConfig",
    "Measure",
    "RunPlan",
    "Unavailable",
    "WorkerError",
    "available_start_methods",
    "calibrate",
    "describe_error",
    "run_benchmark",
    "status_of",
    "validate",
]
