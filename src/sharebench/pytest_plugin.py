"""pytest plugin (entry point ``pytest11``): options, parametrisation, the fixture, CSV writing.

bench/ declares *what* to run (``@pytest.mark.sharebench("increment")`` on a test that uses
the ``sharebench`` fixture); this module turns it into one test per
``mechanism × sync × processes × start method`` with ids like ``value-lock-increment-p2-fork``
(:func:`sharebench.profiles.cases`), measures each through the harness's one path
(:meth:`sharebench.harness.BenchmarkRun.execute`, with pytest-benchmark's timer as its
``measure`` callback) and writes the run's CSVs when the session ends. It is inert in test
sessions that use none of it.

Passes. On a shared machine the speed drifts over minutes (other tenants, frequency), so
the rounds of one benchmark taken in a few consecutive seconds all share the same luck, and two
runs disagree far more than their rounds suggest. Like pyperf, which spreads a benchmark over
many worker processes, we spread it over time: the run makes ``passes`` (2 quick, 3 full)
passes through the whole suite, each benchmark getting its share of the rounds in every pass,
with fresh workers and the k its first pass calibrated. Its median then averages over the
run's whole duration, and its rounds show the drift, so a comparison of two runs sees noise as
noise.

pytest-benchmark times the target with its own clock around the call; our round time is what
the *workers* measured (max end − min start), so the fixture's timer is swapped for a
:class:`WorkerClock` that reports exactly that, divided by the operations of the round (all
workers together). pytest-benchmark's table and JSON therefore show the time per operation and
its ``OPS`` column is the throughput in operations per second, as in the CSV; the parent's pipe
round trip is in neither.
"""

from __future__ import annotations

import dataclasses
import signal
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from sharebench import profiles
from sharebench.errors import SharebenchError
from sharebench.fixture import SharebenchFixture
from sharebench.harness import HarnessConfig
from sharebench.lifecycle import Segment, clean_stale, clean_stale_dirs
from sharebench.mechanisms import OPERATIONS, Mechanism, all_mechanisms, module_mechanisms
from sharebench.profiles import PROFILES, Case, Profile, Slowdown
from sharebench.schema import BenchmarkRecord, RunInfo
from sharebench.servers import Services

MARKER = "sharebench"


@dataclass
class BenchState:
    """Per-session state of the plugin, kept in ``config.stash``."""

    profile: str
    processes: tuple[int, ...]
    start_methods: tuple[str, ...]
    harness: HarnessConfig
    csv_path: Path
    passes: int = 1
    #: Mechanisms of modules given with --sharebench-mechanisms, after the registry's.
    extra: tuple[Mechanism, ...] = ()
    #: --sharebench-slowdown rules: benchmarks made slower on purpose.
    slowdowns: tuple[Slowdown, ...] = ()
    #: The profile with the keys, entries and message sizes asked for laid over it.
    params: Profile = PROFILES["quick"]
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

    def mechanisms(self, operation: str) -> list[Mechanism]:
        """The registry's mechanisms of ``operation``, then the extra ones."""
        return [*all_mechanisms(operation), *(m for m in self.extra if m.operation == operation)]

    def start_run(self) -> None:
        """At the first benchmark: describe the run, take over SIGTERM, and remove shared
        memory blocks that killed runs left behind (they are reported at the end)."""
        from sharebench.machine import run_info

        self.run = run_info(self.profile)
        self.previous_sigterm = signal.signal(signal.SIGTERM, _on_sigterm)
        self.cleaned = clean_stale() + clean_stale_dirs()

    def end_run(self) -> None:
        """Give SIGTERM back (the run is over)."""
        if self.previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self.previous_sigterm)
            self.previous_sigterm = None

    def merge(self, rec: BenchmarkRecord) -> BenchmarkRecord:
        """The benchmark's one record for the CSV: its first pass's, plus later rounds."""
        first = self.by_id.get(rec.benchmark_id)
        if first is None:
            self.by_id[rec.benchmark_id] = rec
            self.records.append(rec)
            return rec
        first.round_seconds.extend(rec.round_seconds)
        first.round_lost.extend(rec.round_lost)
        first.round_pass.extend(rec.round_pass)
        first.round_latency.extend(rec.round_latency)
        first.issued_ops += rec.issued_ops
        first.lost_updates += rec.lost_updates
        first.duplicates += rec.duplicates
        if rec.memory_status == "ok":  # the largest growth of any pass
            grew = first.memory_status != "ok" or rec.uss_growth > first.uss_growth
            if grew:
                first.uss_growth, first.pss_growth = rec.uss_growth, rec.pss_growth
            first.memory_status = "ok"
        if not rec.status.is_ok:
            first.status = rec.status
        return first


_STATE = pytest.StashKey[BenchState]()


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an interrupt so teardown and the partial CSV still happen."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated(f"terminated by signal {signum}")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sharebench", "sharebench benchmarks (bench/)")
    group.addoption("--sharebench-profile", default="quick", choices=tuple(PROFILES),
                    help=f"defaults for the options below: {' or '.join(PROFILES)} "
                         "(default quick)")
    group.addoption("--sharebench-processes", default=None, metavar="N,N,...",
                    type=profiles.process_counts,
                    help="process counts, e.g. 1,2,4 (profile default)")
    group.addoption("--sharebench-start-methods", default=None, metavar="M,M,...",
                    type=profiles.start_method_list,
                    help="start methods among fork,spawn,forkserver (profile default)")
    group.addoption("--sharebench-round-time", default=None, metavar="SECONDS",
                    type=profiles.positive_seconds,
                    help="target duration of one round; k is calibrated to it (0.05)")
    group.addoption("--sharebench-rounds", default=None, metavar="N",
                    type=profiles.count_at_least_1,
                    help="measured rounds per benchmark (profile default, >= 1)")
    group.addoption("--sharebench-warmup", default=None, metavar="N",
                    type=profiles.count_at_least_0,
                    help="discarded rounds after calibration (profile default)")
    group.addoption("--sharebench-passes", default=None, metavar="N",
                    type=profiles.count_at_least_1,
                    help="split each benchmark's rounds over N passes through the suite, "
                         "with fresh workers each (quick 2, full 3; 1 = all in a row)")
    group.addoption("--sharebench-round-timeout", default=30.0, metavar="SECONDS",
                    type=profiles.positive_seconds,
                    help="a round longer than this is a hung worker: error (30)")
    group.addoption("--sharebench-dict-keys", default=None, metavar="K",
                    type=profiles.dict_keys,
                    help="keys of the dict-increment benchmarks (1000; 1 to 1,000,000)")
    group.addoption("--sharebench-lookup-entries", default=None, metavar="N",
                    type=profiles.lookup_entries,
                    help="entries of the lookup table (quick 100,000, full 1,000,000)")
    group.addoption("--sharebench-pingpong-sizes", default=None, metavar="S,S,...",
                    type=profiles.pingpong_sizes,
                    help="message sizes of ping-pong in bytes (64,4096,65536,1048576)")
    group.addoption("--sharebench-csv", default=None, metavar="PATH", type=profiles.csv_path,
                    help="summary CSV to write (results/latest.csv); the rounds CSV goes "
                         "next to it and a copy of both to <dir>/runs/")
    group.addoption("--sharebench-slowdown", default=[], action="append",
                    metavar="PATTERN=FACTOR", type=profiles.slowdown,
                    help="make benchmarks whose id matches PATTERN (shell wildcards) FACTOR "
                         "times slower, for real (workers busy-wait inside the timed window), "
                         "to validate regression detection; recorded in the CSV; repeatable")
    group.addoption("--sharebench-mechanisms", default=[], action="append", metavar="MODULE",
                    help="also benchmark the MECHANISMS tuple of this importable module "
                         "(your own mechanism, without changing the suite); repeatable")
    group.addoption("--sharebench-plan", default=None, metavar="PATH",
                    help="write the selected benchmarks and their settings as JSON once "
                         "collected (what `sharebench ab` measures; add --collect-only to "
                         "measure nothing)")
    group.addoption("--redis-url", default=None, metavar="URL",
                    help="Redis server for the redis benchmarks, e.g. redis://host:6379/0 "
                         "(or SHAREBENCH_REDIS_URL); default: start redis-server on 127.0.0.1")
    group.addoption("--manager-address", default=None, metavar="HOST:PORT",
                    help="Manager server for manager-tcp (run `sharebench manager "
                         "HOST:PORT`; authkey in SHAREBENCH_MANAGER_AUTHKEY); "
                         "default: one on 127.0.0.1 per benchmark")


def _parse_state(config: pytest.Config) -> BenchState:
    """Options (already checked one by one) laid over the profile; combinations checked
    here, each as a one-line usage error."""
    opt = config.getoption
    name = opt("--sharebench-profile")
    profile = PROFILES[name]

    def given(option: str, default: Any) -> Any:
        value = opt(option)
        return default if value is None else value

    try:
        harness = HarnessConfig(
            round_time=given("--sharebench-round-time", profile.round_time),
            rounds=given("--sharebench-rounds", profile.rounds),
            warmup_rounds=given("--sharebench-warmup", profile.warmup_rounds),
            round_timeout=opt("--sharebench-round-timeout"),
        )
    except SharebenchError as exc:
        raise pytest.UsageError(f"sharebench: {exc}") from None
    # The profile's passes never exceed the rounds asked for; passes asked for must fit.
    passes = given("--sharebench-passes", min(profile.passes, harness.rounds))
    if passes > harness.rounds:
        raise pytest.UsageError(
            f"--sharebench-passes: {passes} is not valid; passes are integers from 1 to the "
            f"number of rounds ({harness.rounds})"
        )
    raw_csv = opt("--sharebench-csv")
    csv_path = (
        Path(raw_csv).resolve() if raw_csv else config.rootpath / "results" / "latest.csv"
    )
    try:
        services = Services.from_options(opt("--redis-url"), opt("--manager-address"))
        extra = tuple(m for module in opt("--sharebench-mechanisms")
                      for m in module_mechanisms(module))
    except (ValueError, SharebenchError) as exc:
        raise pytest.UsageError(str(exc)) from None
    known = {m.key for m in all_mechanisms()}
    for mech in extra:
        if mech.key in known:
            raise pytest.UsageError(
                f"--sharebench-mechanisms: {mech.key} is already registered; give yours "
                "another name (Mechanism.replace(name=...))")
        known.add(mech.key)
    return BenchState(
        name,
        given("--sharebench-processes", profile.processes),
        given("--sharebench-start-methods", profile.start_methods),
        harness, csv_path, passes=passes, extra=extra, services=services,
        slowdowns=tuple(opt("--sharebench-slowdown")),
        params=dataclasses.replace(
            profile,
            dict_keys=given("--sharebench-dict-keys", profile.dict_keys),
            lookup_entries=given("--sharebench-lookup-entries", profile.lookup_entries),
            pingpong_sizes=given("--sharebench-pingpong-sizes", profile.pingpong_sizes),
        ),
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(operation): a sharebench benchmark of one operation "
        f"({', '.join(OPERATIONS)}), parametrised over mechanisms, processes, start methods",
    )
    config.stash[_STATE] = _parse_state(config)


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
    found = profiles.cases(state.mechanisms(operation), state.processes, state.start_methods,
                           state.params.transfer_sizes, state.passes, state.params)
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


def pytest_collection_finish(session: pytest.Session) -> None:
    """With --sharebench-plan: the selected benchmarks (each once, whatever its passes) and
    the settings a run of them would use, as JSON."""
    path = session.config.getoption("--sharebench-plan")
    if not path:
        return
    import json

    from sharebench.fmt import atomic_write

    state = session.config.stash[_STATE]
    seen: dict[str, dict[str, Any]] = {}
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        case = callspec.params.get("sharebench") if callspec is not None else None
        if isinstance(case, Case) and case.id not in seen:
            seen[case.id] = {
                "id": case.id, "mechanism": case.mech.name, "sync": case.mech.sync,
                "operation": case.mech.operation, "processes": case.processes,
                "start_method": case.start_method, "payload_bytes": case.payload_bytes,
                "keys": case.keys, "slowdown": profiles.slowdown_for(case.id, state.slowdowns),
            }
    h = state.harness
    plan = {
        "profile": state.profile,
        "config": {"round_time": h.round_time, "rounds": h.rounds,
                   "warmup_rounds": h.warmup_rounds, "round_timeout": h.round_timeout},
        "redis_url": session.config.getoption("--redis-url"),
        "manager_address": session.config.getoption("--manager-address"),
        "cases": list(seen.values()),
    }
    atomic_write(path, json.dumps(plan, indent=1) + "\n")


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
    errors = sum(1 for r in state.records if r.status.is_error)
    skipped = sum(1 for r in state.records if r.status.is_skipped)
    tr = terminalreporter
    tr.section("sharebench")
    tr.write_line(f"{len(state.records)} benchmarks, {errors} with errors, {skipped} skipped")
    for seg in state.cleaned:
        tr.write_line(f"removed {seg.path} of dead run pid {seg.pid}")
    for path in state.written[:2]:
        tr.write_line(f"wrote {path}")


def pytest_unconfigure(config: pytest.Config) -> None:
    # Runs however the session ends (error, Ctrl-C, SIGTERM): a server the run started
    # must not outlive it.
    state = config.stash.get(_STATE, None)
    if state is not None:
        state.services.close()
