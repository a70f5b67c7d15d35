"""The result schema: columns (versioned), the status of a benchmark, records and rows.

What a run produces, as data: :class:`RunInfo` (who, where, when), one
:class:`BenchmarkRecord` per benchmark (everything measured), its :class:`Status`, and the
rows they turn into. Pure: :mod:`sharebench.results` reads and writes the files.

Two files per run, both versioned by ``schema_version``:

* the *summary* CSV (``results/latest.csv``): one row per benchmark;
* the *rounds* CSV (``results/latest.rounds.csv``): one row per measured round of every
  benchmark, so comparisons can use the whole distribution, not just the median.

Column order follows pytest-benchmark's habit: identity first, then parameters, then metrics.

CSV format history (bump ``SCHEMA_VERSION`` on any change a reader could notice):

* 1 — first version: run/machine identity, benchmark identity (mechanism, sync, operation,
  processes, start_method, workers_kind, payload_bytes), round parameters, timing metrics,
  verification (issued_ops, lost_updates, duplicates, lost_pct) and status.
* 2 — rounds CSV: ``pass`` (which pass through the suite measured the round), so comparisons
  can tell the drift within a run; status is one of ``ok``, ``error: ...``, ``skipped: ...``
  and an ok row has at least one round.
* 3 — ``keys`` (the keys of ``dict-increment``, the entries of ``lookup``; 0 for other
  operations), part of a benchmark's identity; ``slowdown`` (1 = as measured; a factor > 1
  means the benchmark was made that much slower on purpose with ``--sharebench-slowdown``, to
  validate regression detection: such a run is never a clean one); round-trip latencies of
  ``ping-pong`` (``latency_p50_s`` ... ``latency_max_s``, in the rounds CSV per round, in the
  summary the median over rounds of each percentile and the largest maximum); memory of the
  workers (``worker_uss_growth_bytes``, ``worker_pss_growth_bytes``: mean growth per worker
  from attach to the last measured round, the largest over passes; ``memory_status``).
  Version 2 files are read with ``keys`` 0, ``slowdown`` 1 and no latency or memory.

Reading is strict (as pyperf refuses zero or negative timings): a file with another schema
version, a missing column, or impossible numbers raises :class:`ResultsError` with one line that
says what is wrong (see :mod:`sharebench.results`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sharebench.fmt import size
from sharebench.status import Status

SCHEMA_VERSION = 3
#: Versions this sharebench reads, and the columns each later version added, with the value
#: a file of an earlier version is read with.
READABLE_VERSIONS: tuple[int, ...] = (2, 3)
ADDED_COLUMNS: dict[int, dict[str, str]] = {3: {
    "keys": "0", "slowdown": "1", "latency_p50_s": "", "latency_p90_s": "",
    "latency_p99_s": "", "latency_p999_s": "", "latency_max_s": "",
    "worker_uss_growth_bytes": "", "worker_pss_growth_bytes": "",
    "memory_status": "skipped: not measured (schema 2)",
}}

#: Round-trip latency columns (seconds), fastest first.
LATENCY_COLUMNS: tuple[str, ...] = ("latency_p50_s", "latency_p90_s", "latency_p99_s",
                                    "latency_p999_s", "latency_max_s")
#: The percentiles those columns hold (the last is the maximum).
LATENCY_QUANTILES: tuple[float, ...] = (0.5, 0.9, 0.99, 0.999, 1.0)

#: Columns that identify one benchmark across runs (used to match baseline and current).
BENCHMARK_KEY: tuple[str, ...] = (
    "mechanism",
    "sync",
    "operation",
    "processes",
    "start_method",
    "payload_bytes",
    "keys",
)

RUN_COLUMNS: tuple[str, ...] = (
    "schema_version",
    "run_id",
    "run_status",
    "timestamp_utc",
    "profile",
    "hostname",
    "cpu_model",
    "cpu_count",
    "python",
    "platform",
    "git_commit",
)

SUMMARY_COLUMNS: tuple[str, ...] = (
    *RUN_COLUMNS,
    # identity of the benchmark
    "benchmark",
    "family",
    "mechanism",
    "sync",
    "operation",
    "processes",
    "start_method",
    "workers_kind",
    "payload_bytes",
    "keys",
    # parameters of the measurement
    "ops_per_worker",
    "ops_per_round",
    "rounds",
    "warmup_rounds",
    "round_target_s",
    "slowdown",
    # metrics
    "median_s",
    "iqr_s",
    "min_s",
    "max_s",
    "mean_s",
    "stdev_s",
    "throughput_ops_s",
    "ns_per_op",
    "setup_s",
    "issued_ops",
    "lost_updates",
    "duplicates",
    "lost_pct",
    *LATENCY_COLUMNS,
    "worker_uss_growth_bytes",
    "worker_pss_growth_bytes",
    "memory_status",
    "status",
)

ROUND_COLUMNS: tuple[str, ...] = (
    "schema_version",
    "run_id",
    "benchmark",
    "mechanism",
    "sync",
    "operation",
    "processes",
    "start_method",
    "payload_bytes",
    "keys",
    "pass",
    "round",
    "seconds",
    "ops",
    "throughput_ops_s",
    "lost_updates",
    *LATENCY_COLUMNS,
)

INT_COLUMNS = frozenset(
    {
        "schema_version",
        "cpu_count",
        "processes",
        "payload_bytes",
        "keys",
        "ops_per_worker",
        "ops_per_round",
        "rounds",
        "warmup_rounds",
        "issued_ops",
        "lost_updates",
        "duplicates",
        "round",
        "pass",
        "ops",
    }
)
FLOAT_COLUMNS = frozenset(
    {
        "round_target_s",
        "slowdown",
        *LATENCY_COLUMNS,
        "worker_uss_growth_bytes",
        "worker_pss_growth_bytes",
        "median_s",
        "iqr_s",
        "min_s",
        "max_s",
        "mean_s",
        "stdev_s",
        "throughput_ops_s",
        "ns_per_op",
        "setup_s",
        "lost_pct",
        "seconds",
    }
)
#: Numeric columns that may be negative (memory a worker gave back).
SIGNED_COLUMNS = frozenset({"worker_uss_growth_bytes", "worker_pss_growth_bytes"})
#: Timing columns that must be finite and > 0 in every ok row (pyperf refuses the rest).
POSITIVE_OK = ("median_s", "throughput_ops_s", "ns_per_op")

@dataclass(frozen=True)
class RunInfo:
    """Who, where and when: stored with every row so a CSV is self-describing."""

    run_id: str
    timestamp_utc: str
    profile: str
    hostname: str
    cpu_model: str
    cpu_count: int
    python: str
    platform: str
    git_commit: str
    run_status: str = "complete"

    def columns(self) -> dict[str, Any]:
        """The run columns of a row, in schema order."""
        return {
            "schema_version": SCHEMA_VERSION,
            "run_id": self.run_id,
            "run_status": self.run_status,
            "timestamp_utc": self.timestamp_utc,
            "profile": self.profile,
            "hostname": self.hostname,
            "cpu_model": self.cpu_model,
            "cpu_count": self.cpu_count,
            "python": self.python,
            "platform": self.platform,
            "git_commit": self.git_commit,
        }


@dataclass
class BenchmarkRecord:
    """Everything measured for one benchmark; turns into one summary row and N round rows."""

    family: str
    mechanism: str
    sync: str
    operation: str
    processes: int
    start_method: str
    workers_kind: str = "process"
    payload_bytes: int = 0
    #: Keys of a dict-increment, entries of a lookup; 0 for other operations.
    keys: int = 0
    ops_per_worker: int = 0
    warmup_rounds: int = 0
    round_target_s: float = 0.0
    setup_s: float = math.nan
    round_seconds: list[float] = field(default_factory=list)
    round_lost: list[int] = field(default_factory=list)
    #: The pass through the suite that measured each round (0 when there is one pass).
    round_pass: list[int] = field(default_factory=list)
    issued_ops: int = 0
    lost_updates: int = 0
    duplicates: int = 0
    status: Status = Status.OK
    #: > 1 when the benchmark was made slower on purpose (``--sharebench-slowdown``).
    slowdown: float = 1.0
    #: Per measured round, the round-trip latency percentiles (LATENCY_QUANTILES) of a
    #: ping-pong; empty for other operations.
    round_latency: list[tuple[float, ...]] = field(default_factory=list)
    #: Mean growth of a worker's USS / PSS from attach to its last measured round (bytes;
    #: the largest over passes), or NaN; and why not, when not measured.
    uss_growth: float = math.nan
    pss_growth: float = math.nan
    memory_status: str = "skipped: not measured"

    @property
    def ops_per_round(self) -> int:
        """Operations of all workers together in one round."""
        return self.ops_per_worker * self.processes

    @property
    def benchmark_id(self) -> str:
        """Readable id, e.g. ``value-lock-increment-p2-fork`` (pytest uses the same)."""
        return benchmark_id(
            self.mechanism,
            self.sync,
            self.operation,
            self.processes,
            self.start_method,
            self.payload_bytes,
        )


def benchmark_id(
    mechanism: str,
    sync: str,
    operation: str,
    processes: int,
    start_method: str,
    payload_bytes: int = 0,
) -> str:
    """The readable id of one benchmark; sizes appear only for bulk transfers."""
    payload = f"-{size(payload_bytes)}" if payload_bytes else ""
    return f"{mechanism}-{sync}-{operation}{payload}-p{processes}-{start_method}"


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default), without importing numpy."""
    if not sorted_values:
        return math.nan
    pos = (len(sorted_values) - 1) * q
    lo = math.floor(pos)
    hi = math.ceil(pos)
    frac = pos - lo
    return sorted_values[lo] * (1 - frac) + sorted_values[hi] * frac


def summary_row(record: BenchmarkRecord, run: RunInfo) -> dict[str, Any]:
    """One summary row from a record: statistics over its measured rounds. A record that
    says ok but measured nothing is written as an error, never as an ok row without data."""
    times = sorted(record.round_seconds)
    status = record.status
    if status.is_ok and not times:
        status = Status.error("no round was measured")
    n = len(times)
    median = _quantile(times, 0.5)
    mean = sum(times) / n if n else math.nan
    stdev = (
        math.sqrt(sum((t - mean) ** 2 for t in times) / (n - 1)) if n > 1 else math.nan
    )
    ops = record.ops_per_round
    throughput = ops / median if n and median > 0 else math.nan
    issued = record.issued_ops
    row = {
        **run.columns(),
        "benchmark": record.benchmark_id,
        "family": record.family,
        "mechanism": record.mechanism,
        "sync": record.sync,
        "operation": record.operation,
        "processes": record.processes,
        "start_method": record.start_method,
        "workers_kind": record.workers_kind,
        "payload_bytes": record.payload_bytes,
        "keys": record.keys,
        "ops_per_worker": record.ops_per_worker,
        "ops_per_round": ops,
        "rounds": n,
        "warmup_rounds": record.warmup_rounds,
        "round_target_s": record.round_target_s,
        "slowdown": record.slowdown,
        "median_s": median,
        "iqr_s": _quantile(times, 0.75) - _quantile(times, 0.25) if n else math.nan,
        "min_s": times[0] if n else math.nan,
        "max_s": times[-1] if n else math.nan,
        "mean_s": mean,
        "stdev_s": stdev,
        "throughput_ops_s": throughput,
        "ns_per_op": 1e9 / throughput if math.isfinite(throughput) and throughput > 0 else math.nan,
        "setup_s": record.setup_s,
        "issued_ops": issued,
        "lost_updates": record.lost_updates,
        "duplicates": record.duplicates,
        "lost_pct": 100.0 * record.lost_updates / issued if issued else 0.0,
        **latency_summary(record.round_latency),
        "worker_uss_growth_bytes": record.uss_growth,
        "worker_pss_growth_bytes": record.pss_growth,
        "memory_status": record.memory_status,
        "status": str(status),
    }
    assert tuple(row) == SUMMARY_COLUMNS, "summary_row out of step with SUMMARY_COLUMNS"
    return row


def round_rows(record: BenchmarkRecord, run: RunInfo) -> list[dict[str, Any]]:
    """One row per measured round of a record."""
    rows = []
    ops = record.ops_per_round
    n = len(record.round_seconds)
    # An interrupted benchmark may have fewer entries in a list: pad, never lose the run.
    lost = (record.round_lost + [0] * n)[:n]
    passes = (record.round_pass + [record.round_pass[-1] if record.round_pass else 0] * n)[:n]
    none = (math.nan,) * len(LATENCY_COLUMNS)
    latency = (record.round_latency + [none] * n)[:n]
    for i, (seconds, lost_i, pass_i, lat) in enumerate(zip(record.round_seconds, lost, passes,
                                                            latency, strict=True)):
        rows.append(
            {
                "schema_version": SCHEMA_VERSION,
                "run_id": run.run_id,
                "benchmark": record.benchmark_id,
                "mechanism": record.mechanism,
                "sync": record.sync,
                "operation": record.operation,
                "processes": record.processes,
                "start_method": record.start_method,
                "payload_bytes": record.payload_bytes,
                "keys": record.keys,
                "pass": pass_i,
                "round": i,
                "seconds": seconds,
                "ops": ops,
                "throughput_ops_s": ops / seconds if seconds > 0 else math.nan,
                "lost_updates": lost_i,
                **dict(zip(LATENCY_COLUMNS, lat, strict=True)),
            }
        )
    return rows


def latency_quantiles(samples: Sequence[float]) -> tuple[float, ...]:
    """The LATENCY_QUANTILES of one round's round-trip times (seconds)."""
    ordered = sorted(samples)
    return tuple(_quantile(ordered, q) for q in LATENCY_QUANTILES)


def latency_summary(rounds: Sequence[tuple[float, ...]]) -> dict[str, float]:
    """The summary row's latency columns: the median over rounds of each percentile, and the
    largest maximum (NaN when the operation has no latencies)."""
    if not rounds:
        return dict.fromkeys(LATENCY_COLUMNS, math.nan)
    out = {}
    for i, col in enumerate(LATENCY_COLUMNS):
        values = sorted(r[i] for r in rounds)
        out[col] = values[-1] if col == "latency_max_s" else _quantile(values, 0.5)
    return out
