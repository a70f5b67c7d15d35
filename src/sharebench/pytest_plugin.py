"""pytest plugin (entry point ``pytest11``): options, parametrisation, CSV writing.

bench/ declares *what* to run (``@pytest.mark.sharebench("increment")`` on a test that uses
the ``sharebench`` fixture); this module turns it into one test per
``mechanism × sync × processes × start method`` with ids like ``value-lock-increment-p2-fork``,
runs each through the harness inside ``benchmark.pedantic`` and writes the run's CSVs when the
session ends. It is inert in test sessions that use none of it.

Passes. On a shared machine the speed drifts over minutes (other tenants, frequency), so
the rounds of one benchmark taken in a few consecutive seconds all share the same luck, and two
runs disagree far more than their rounds suggest. Like pyperf, which spreads a benchmark over
many worker processes, we spread it over time: the run makes ``passes`` (3) passes through the
whole suite, each benchmark getting its share of the rounds in every pass, with fresh workers
and the k its first pass calibrated. Its median then averages over the run's whole duration,
and its rounds show the drift, so a comparison of two runs sees noise as noise.

pytest-benchmark times the target with its own clock around the call; our round time is what
the *workers* measured (max end − min start), so the fixture's timer is swapped for a
:class:`WorkerClock` that reports exactly that, divided by the operations of the round (all
workers together). pytest-benchmark's table and JSON therefore show the time per operation and
its ``OPS`` column is the throughput in operations per second, as in the CSV; the parent's pipe
round trip is in neither.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from sharebench.harness import (
    BenchmarkRun,
    ConfigError,
    HarnessConfig,
    Unavailable,
    available_start_methods,
    describe_error,
    one_line,
    validate,
)
from sharebench.lifecycle import Segment, clean_stale
from sharebench.mechanisms import OPERATIONS, Mechanism, all_mechanisms
from sharebench.results import BenchmarkRecord, RunInfo, benchmark_id
from sharebench.servers import Services

MARKER = "sharebench"


@dataclass(frozen=True)
class Profile:
    """A named set of defaults for the bench options."""

    processes: tuple[int, ...]
    start_methods: tuple[str, ...]
    rounds: int
    warmup_rounds: int
    round_time: float
    #: Payload sizes (bytes) of the ``transfer`` benchmarks.
    transfer_sizes: tuple[int, ...] = ()
    #: The rounds of each benchmark are split over this many passes through the whole
    #: suite, each with fresh workers (see the module docstring).
    passes: int = 3


#: 1 KiB to 64 MiB in powers of 4.
_TRANSFER_SIZES_FULL = tuple(1024 * 4**i for i in range(9))
#: The ends, and two points between them: 1 KiB, 64 KiB, 4 MiB, 64 MiB.
_TRANSFER_SIZES_QUICK = tuple(1024 * 4**i for i in (0, 3, 6, 8))

PROFILES: dict[str, Profile] = {
    # What `nox -s bench` runs: every mechanism at 1, 2 and 4 processes (4 > cores on
    # purpose: contention), fork only, transfers at 4 sizes, 12 rounds in 3 passes of 4;
    # under 3 minutes on 2 cores.
    "quick": Profile((1, 2, 4), ("fork",), rounds=12, warmup_rounds=2, round_time=0.05,
                     transfer_sizes=_TRANSFER_SIZES_QUICK),
    # Every start method and 8 processes; more rounds for tighter medians.
    "full": Profile(
        (1, 2, 4, 8), ("fork", "spawn", "forkserver"), rounds=20, warmup_rounds=3,
        round_time=0.05, transfer_sizes=_TRANSFER_SIZES_FULL,
    ),
}


@dataclass(frozen=True)
class Case:
    """One parametrised benchmark, in one pass of the run."""

    mech: Mechanism
    processes: int
    start_method: str
    #: Bytes per operation (``transfer`` only; 0 otherwise).
    payload_bytes: int = 0
    pass_index: int = 0
    passes: int = 1

    @property
    def id(self) -> str:
        """The benchmark's id, as in the CSV: the same in every pass."""
        return benchmark_id(
            self.mech.name, self.mech.sync, self.mech.operation, self.processes,
            self.start_method, self.payload_bytes,
        )

    @property
    def test_id(self) -> str:
        """The pytest id: the benchmark id, plus ``-passN`` when the run has passes."""
        return self.id if self.passes == 1 else f"{self.id}-pass{self.pass_index + 1}"


@dataclass
class BenchState:
    """Per-session state of the plugin, kept in ``config.stash``."""

    profile: str
    processes: tuple[int, ...]
    start_methods: tuple[str, ...]
    harness: HarnessConfig
    csv_path: Path
    passes: int = 1
    records: list[BenchmarkRecord] = field(default_factory=list)
    #: The record of each benchmark id (passes after the first add their rounds to it) and
    #: the ops per worker its first pass calibrated (later passes reuse it).
    by_id: dict[str, BenchmarkRecord] = field(default_factory=dict)
    k_by_id: dict[str, int] = field(default_factory=dict)
    written: list[Path] = field(default_factory=list)
    run: RunInfo | None = None
    cleaned: list[Segment] = field(default_factory=list)
    previous_sigterm: Any = None
    #: Servers for the networked benchmarks (redis-server is started at the first one).
    services: Services = field(default_factory=Services)

    def start_run(self) -> None:
        """At the first benchmark: describe the run, take over SIGTERM, and remove shared
        memory blocks that killed runs left behind (they are reported at the end)."""
        from sharebench.machine import run_info

        self.run = run_info(self.profile)
        self.previous_sigterm = signal.signal(signal.SIGTERM, _on_sigterm)
        self.cleaned = clean_stale()

    def end_run(self) -> None:
        """Give SIGTERM back (the run is over)."""
        if self.previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self.previous_sigterm)
            self.previous_sigterm = None


_STATE = pytest.StashKey[BenchState]()


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an interrupt so teardown and the partial CSV still happen."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated(f"terminated by signal {signum}")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sharebench", "sharebench benchmarks (bench/)")
    group.addoption("--sharebench-profile", default="quick", metavar="NAME",
                    help=f"defaults for the options below: {' or '.join(PROFILES)} "
                         "(default quick)")
    group.addoption("--sharebench-processes", default=None, metavar="N,N,...",
                    help="process counts, e.g. 1,2,4 (profile default)")
    group.addoption("--sharebench-start-methods", default=None, metavar="M,M,...",
                    help="start methods among fork,spawn,forkserver (profile default)")
    group.addoption("--sharebench-round-time", default=None, metavar="SECONDS",
                    help="target duration of one round; k is calibrated to it (0.05)")
    group.addoption("--sharebench-rounds", default=None, metavar="N",
                    help="measured rounds per benchmark (profile default, >= 1)")
    group.addoption("--sharebench-warmup", default=None, metavar="N",
                    help="discarded rounds after calibration (profile default)")
    group.addoption("--sharebench-passes", default=None, metavar="N",
                    help="split each benchmark's rounds over N passes through the suite, "
                         "with fresh workers each (profile default 3; 1 = all in a row)")
    group.addoption("--sharebench-round-timeout", default="30", metavar="SECONDS",
                    help="a round longer than this is a hung worker: error (30)")
    group.addoption("--sharebench-csv", default=None, metavar="PATH",
                    help="summary CSV to write (results/latest.csv); the rounds CSV goes "
                         "next to it and a copy of both to <dir>/runs/")
    group.addoption("--redis-url", default=None, metavar="URL",
                    help="Redis server for the redis benchmarks, e.g. redis://host:6379/0 "
                         "(or SHAREBENCH_REDIS_URL); default: start redis-server on 127.0.0.1")
    group.addoption("--manager-address", default=None, metavar="HOST:PORT",
                    help="Manager server for manager-tcp (run `python -m sharebench.servers "
                         "manager HOST:PORT`; authkey in SHAREBENCH_MANAGER_AUTHKEY); "
                         "default: one on 127.0.0.1 per benchmark")


def _csv_list(raw: str, option: str) -> list[str]:
    items = [x.strip() for x in raw.split(",") if x.strip()]
    if not items:
        raise pytest.UsageError(f"{option}: give a comma-separated list, e.g. 1,2,4")
    return items


def _parse_state(config: pytest.Config) -> BenchState:
    """Options -> state; any bad value is a one-line usage error naming the valid choices."""
    opt = config.getoption
    name = opt("--sharebench-profile")
    if name not in PROFILES:
        raise pytest.UsageError(
            f"--sharebench-profile: unknown profile {name!r}; valid: {', '.join(PROFILES)}"
        )
    profile = PROFILES[name]

    processes = profile.processes
    if opt("--sharebench-processes") is not None:
        parsed = []
        for item in _csv_list(opt("--sharebench-processes"), "--sharebench-processes"):
            if not item.isdigit() or int(item) < 1:
                raise pytest.UsageError(
                    f"--sharebench-processes: {item!r} is not valid; processes are "
                    "integers >= 1, e.g. 1,2,4"
                )
            parsed.append(int(item))
        processes = tuple(dict.fromkeys(parsed))

    methods = profile.start_methods
    if opt("--sharebench-start-methods") is not None:
        valid = available_start_methods()
        chosen = _csv_list(opt("--sharebench-start-methods"), "--sharebench-start-methods")
        for m in chosen:
            if m not in valid:
                raise pytest.UsageError(
                    f"--sharebench-start-methods: {m!r} is not available here; "
                    f"valid: {', '.join(valid)}"
                )
        methods = tuple(dict.fromkeys(chosen))

    def number(option: str, default: float, kind: type[int] | type[float]) -> Any:
        raw = opt(option)
        if raw is None:
            return default
        try:
            return kind(raw)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise pytest.UsageError(f"{option}: {raw!r} is not {what}") from None

    try:
        harness = HarnessConfig(
            round_time=number("--sharebench-round-time", profile.round_time, float),
            rounds=number("--sharebench-rounds", profile.rounds, int),
            warmup_rounds=number("--sharebench-warmup", profile.warmup_rounds, int),
            round_timeout=number("--sharebench-round-timeout", 30.0, float),
        )
    except ConfigError as exc:
        raise pytest.UsageError(f"sharebench: {exc}") from None
    # The profile's passes never exceed the rounds asked for; passes asked for must fit.
    passes = number("--sharebench-passes", min(profile.passes, harness.rounds), int)
    if not 1 <= passes <= harness.rounds:
        raise pytest.UsageError(
            f"--sharebench-passes: {passes} is not valid; passes are integers from 1 to the "
            f"number of rounds ({harness.rounds})"
        )

    raw_csv = opt("--sharebench-csv")
    csv_path = (
        Path(raw_csv).resolve() if raw_csv else config.rootpath / "results" / "latest.csv"
    )
    if csv_path.suffix != ".csv":
        raise pytest.UsageError(f"--sharebench-csv: {raw_csv!r} must end in .csv")
    try:
        services = Services.from_options(opt("--redis-url"), opt("--manager-address"))
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    return BenchState(name, processes, methods, harness, csv_path, services=services,
                      passes=passes)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(operation): a sharebench benchmark of one operation "
        f"({', '.join(OPERATIONS)}), parametrised over mechanisms, processes, start methods",
    )
    config.stash[_STATE] = _parse_state(config)


def cases(
    operation: str,
    processes: tuple[int, ...],
    methods: tuple[str, ...],
    transfer_sizes: tuple[int, ...] = (),
    passes: int = 1,
) -> list[Case]:
    """Every valid combination for one operation, in registry order; ``transfer`` benchmarks
    once per payload size; everything once per pass (collection puts the passes in order)."""
    sizes = transfer_sizes if operation == "transfer" else (0,)
    out: list[Case] = []
    for mech in all_mechanisms(operation):
        # Threads share one process: the start method changes nothing, so measure them once.
        for method in methods if mech.workers_kind == "process" else methods[:1]:
            for p in processes:
                try:
                    validate(mech, p, method)
                except ConfigError:
                    continue  # e.g. the single-process harness yardsticks at p > 1
                out.extend(
                    Case(mech, p, method, size, i, passes)
                    for i in range(passes)
                    for size in sizes
                )
    return out


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker(MARKER)
    if marker is None or "sharebench" not in metafunc.fixturenames:
        return
    operation = marker.args[0] if marker.args else marker.kwargs.get("operation")
    if operation not in OPERATIONS:
        raise pytest.UsageError(
            f"@pytest.mark.{MARKER}: unknown operation {operation!r}; "
            f"valid: {', '.join(OPERATIONS)}"
        )
    state = metafunc.config.stash[_STATE]
    found = cases(operation, state.processes, state.start_methods,
                  PROFILES[state.profile].transfer_sizes, state.passes)
    metafunc.parametrize("sharebench", found, ids=[c.test_id for c in found], indirect=True)


def _pass_of(item: pytest.Item) -> int:
    callspec = getattr(item, "callspec", None)
    case = callspec.params.get("sharebench") if callspec is not None else None
    return case.pass_index if isinstance(case, Case) else -1


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Pass 1 of every benchmark, then pass 2 of every benchmark, ...: a benchmark's rounds
    are spread over the whole run instead of a few consecutive seconds (stable sort, so the
    order within a pass is the usual one)."""
    items[:] = sorted(items, key=_pass_of)


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

    def __init__(self, case: Case, benchmark: Any, state: BenchState) -> None:
        self.case = case
        self.benchmark = benchmark
        self.state = state

    def run(self) -> BenchmarkRecord:
        """Measure, verify and record the case; fail the test if the benchmark failed."""
        case, cfg = self.case, self.state.harness
        if self.state.run is None:
            self.state.start_run()
        # Networked benchmarks get their server's address (redis-server starts at the first).
        cfg = self.state.harness = self.state.services.configure(case.mech, cfg)
        earlier = self.state.by_id.get(case.id)
        if earlier is not None and earlier.status != "ok":
            pytest.skip(f"{case.id}: not measured again after: {earlier.status}")
        rounds = self._rounds_in_pass()
        run = BenchmarkRun(case.mech, case.processes, case.start_method, cfg,
                           payload_bytes=case.payload_bytes)
        try:
            with run:
                k = self.state.k_by_id.get(case.id)
                if k is None:
                    self.state.k_by_id[case.id] = run.calibrate()
                    run.warmup()
                else:  # the same k in every pass, so all rounds measure the same thing
                    run.use_k(k)
                    run.warmup(min(1, cfg.warmup_rounds))
                self._pedantic(run, rounds)
                while len(run.record.round_seconds) < rounds:  # --benchmark-disable
                    run.measure_round()
        except Unavailable as exc:
            run.record.status = f"skipped: {one_line(exc)}"
        except Exception as exc:  # whatever broke, this benchmark failed and the run goes on
            run.record.status = f"error: {describe_error(exc)}"
        except BaseException as exc:  # Ctrl-C, SIGTERM: keep this row honest, then stop
            run.record.status = ("error: interrupted" if isinstance(exc, KeyboardInterrupt)
                                 else f"error: {describe_error(exc)}")
            raise
        finally:
            run.record.round_pass = [case.pass_index] * len(run.record.round_seconds)
            record = self._merge(run.record)
        if record.status.startswith("skipped:"):
            pytest.skip(f"{case.id}: {record.status}")
        if run.record.status == "ok":
            error = run.verification_error()
            if error:
                record.status = run.record.status = f"error: {error}"
        self._extra_info(run.record)
        if run.record.status != "ok":
            pytest.fail(f"{case.id}: {run.record.status}", pytrace=False)
        return record

    def _rounds_in_pass(self) -> int:
        """This pass's share of the benchmark's rounds (earlier passes take the remainder)."""
        total, passes = self.state.harness.rounds, self.case.passes
        return total // passes + (1 if self.case.pass_index < total % passes else 0)

    def _merge(self, rec: BenchmarkRecord) -> BenchmarkRecord:
        """The benchmark's one record for the CSV: the first pass's, plus later rounds."""
        first = self.state.by_id.get(self.case.id)
        if first is None:
            self.state.by_id[self.case.id] = rec
            self.state.records.append(rec)
            return rec
        first.round_seconds.extend(rec.round_seconds)
        first.round_lost.extend(rec.round_lost)
        first.round_pass.extend(rec.round_pass)
        first.issued_ops += rec.issued_ops
        first.lost_updates += rec.lost_updates
        first.duplicates += rec.duplicates
        if rec.status != "ok":
            first.status = rec.status
        return first

    def _pedantic(self, run: BenchmarkRun, rounds: int) -> None:
        bm = self.benchmark
        bm.group = f"{self.case.mech.operation} p{self.case.processes} {self.case.start_method}"
        clock = WorkerClock()
        # pytest-benchmark has no public hook for a timer per benchmark; its runner reads
        # this attribute when each round starts.
        bm._timer = clock
        bm.pedantic(
            lambda: clock.set(run.measure_round() / run.record.ops_per_round),
            rounds=rounds,
            iterations=1,
            warmup_rounds=0,
        )

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
                "status": rec.status,
            }
        )


@pytest.fixture
def sharebench(request: pytest.FixtureRequest, benchmark: Any) -> SharebenchFixture:
    """The parametrised case of a ``@pytest.mark.sharebench`` test, ready to ``run()``."""
    case = getattr(request, "param", None)
    if not isinstance(case, Case):
        raise pytest.UsageError(
            "the sharebench fixture needs @pytest.mark.sharebench('<operation>') on the test"
        )
    return SharebenchFixture(case, benchmark, request.config.stash[_STATE])


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = session.config.stash.get(_STATE, None)
    if state is None:
        return
    state.end_run()
    if not state.records:
        return
    import dataclasses

    from sharebench.machine import run_info
    from sharebench.results import write_run

    info = state.run or run_info(state.profile)
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        info = dataclasses.replace(info, run_status="interrupted")
    state.written = write_run(
        state.records, info, state.csv_path, history_dir=state.csv_path.parent / "runs"
    )


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is None or not state.written:
        return
    errors = sum(1 for r in state.records if r.status.startswith("error"))
    tr = terminalreporter
    tr.section("sharebench")
    tr.write_line(f"{len(state.records)} benchmarks, {errors} with errors")
    for seg in state.cleaned:
        tr.write_line(f"removed stale shared memory /dev/shm/{seg.name} "
                      f"({seg.size} bytes) of dead run pid {seg.pid}")
    for path in state.written[:2]:
        tr.write_line(f"wrote {path}")


def pytest_unconfigure(config: pytest.Config) -> None:
    # Runs however the session ends (error, Ctrl-C, SIGTERM): a server the run started
    # must not outlive it.
    state = config.stash.get(_STATE, None)
    if state is not None:
        state.services.close()
