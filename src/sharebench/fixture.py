"""What a bench test gets: the ``sharebench`` fixture's object, and pytest-benchmark's timer.

The plugin (:mod:`sharebench.pytest_plugin`) parametrises and keeps the session's state; this
module measures one case through the harness's one path
(:meth:`sharebench.harness.BenchmarkRun.execute`), with pytest-benchmark running the measured
rounds (pytest-benchmark keeps its fixture and its session apart the same way).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import pytest

from sharebench import profiles
from sharebench.harness import BenchmarkRun, HarnessConfig, RunPlan
from sharebench.profiles import Case, Slowdown
from sharebench.schema import BenchmarkRecord, RunInfo
from sharebench.servers import Services


class SessionState(Protocol):
    """What a case needs of the plugin's session state
    (:class:`sharebench.pytest_plugin.BenchState`)."""

    harness: HarnessConfig
    run: RunInfo | None
    services: Services
    by_id: dict[str, BenchmarkRecord]
    k_by_id: dict[str, int]
    slowdowns: tuple[Slowdown, ...]

    def start_run(self) -> None: ...

    def merge(self, rec: BenchmarkRecord) -> BenchmarkRecord: ...


class WorkerClock:
    """A timer for pytest-benchmark that reports the workers' own time per operation.

    pytest-benchmark calls the timer once before and once after the target; we answer 0.0
    and then the value the target stored (round time / ops per round), so its statistics are
    the workers' timings.
    """

    __name__ = "sharebench.WorkerClock"

    def __init__(self) -> None:
        self._pending: float | None = None

    def set(self, seconds: float) -> None:
        self._pending = seconds

    def __call__(self) -> float:
        pending, self._pending = self._pending, None
        return 0.0 if pending is None else pending


class SharebenchFixture:
    """What a bench test gets: ``run()`` measures the parametrised case."""

    def __init__(self, case: Case, benchmark: Any, state: SessionState) -> None:
        self.case = case
        self.benchmark = benchmark
        self.state = state

    def run(self) -> BenchmarkRecord:
        """Measure, verify and record the case; skip or fail the test as its status says."""
        case, state = self.case, self.state
        if state.run is None:
            state.start_run()
        # Networked benchmarks get their server's address (redis-server starts at the first).
        cfg = state.harness = state.services.configure(case.mech, state.harness)
        earlier = state.by_id.get(case.id)
        if earlier is not None and not earlier.status.is_ok:
            pytest.skip(f"{case.id}: not measured again after: {earlier.status}")
        plan = RunPlan(rounds=case.rounds_in_pass(cfg.rounds), k=state.k_by_id.get(case.id),
                       pass_index=case.pass_index,
                       slowdown=profiles.slowdown_for(case.id, state.slowdowns))
        run = BenchmarkRun(case.mech, case.processes, case.start_method, cfg,
                           payload_bytes=case.payload_bytes, keys=case.keys)
        try:
            run.execute(plan, measure=self._pedantic(run))
        finally:
            record = state.merge(run.record)
            if plan.k is None and run.record.ops_per_worker:
                state.k_by_id[case.id] = run.record.ops_per_worker
        self._extra_info(run.record)
        if run.record.status.is_skipped:
            pytest.skip(f"{case.id}: {run.record.status}")
        if not run.record.status.is_ok:
            pytest.fail(f"{case.id}: {run.record.status}", pytrace=False)
        return record

    def _pedantic(self, run: BenchmarkRun) -> Callable[[Callable[[], float], int], None]:
        """The harness's ``measure`` callback: pytest-benchmark runs the measured rounds."""

        def measure(measure_round: Callable[[], float], rounds: int) -> None:
            bm = self.benchmark
            bm.group = f"{self.case.mech.operation} p{self.case.processes} " \
                       f"{self.case.start_method}"
            clock = WorkerClock()
            # pytest-benchmark has no public hook for a timer per benchmark; its runner reads
            # this attribute when each round starts.
            bm._timer = clock
            bm.pedantic(lambda: clock.set(measure_round() / run.record.ops_per_round),
                        rounds=rounds, iterations=1, warmup_rounds=0)

        return measure

    def _extra_info(self, rec: BenchmarkRecord) -> None:
        self.benchmark.extra_info.update(
            {
                "mechanism": rec.mechanism,
                "sync": rec.sync,
                "operation": rec.operation,
                "processes": rec.processes,
                "start_method": rec.start_method,
                "ops_per_round": rec.ops_per_round,
                "ops_per_worker": rec.ops_per_worker,
                "issued_ops": rec.issued_ops,
                "lost_updates": rec.lost_updates,
                "duplicates": rec.duplicates,
                "status": str(rec.status),
            }
        )


