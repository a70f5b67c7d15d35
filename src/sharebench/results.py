"""Result schema, row building and CSV read/validate/write.

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

Reading is strict (as pyperf refuses zero or negative timings): a file with another schema
version, a missing column, or impossible numbers raises :class:`ResultsError` with one line that
says what is wrong. I/O is confined to :func:`read_summary`, :func:`read_rounds` and
:func:`write_run`; everything else is pure.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

SCHEMA_VERSION = 2

#: Columns that identify one benchmark across runs (used to match baseline and current).
BENCHMARK_KEY: tuple[str, ...] = (
    "mechanism",
    "sync",
    "operation",
    "processes",
    "start_method",
    "payload_bytes",
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
    # parameters of the measurement
    "ops_per_worker",
    "ops_per_round",
    "rounds",
    "warmup_rounds",
    "round_target_s",
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
    "pass",
    "round",
    "seconds",
    "ops",
    "throughput_ops_s",
    "lost_updates",
)

_INT_COLUMNS = frozenset(
    {
        "schema_version",
        "cpu_count",
        "processes",
        "payload_bytes",
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
_FLOAT_COLUMNS = frozenset(
    {
        "round_target_s",
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
#: Timing columns that must be finite and > 0 in every ok row (pyperf refuses the rest).
_POSITIVE_OK = ("median_s", "throughput_ops_s", "ns_per_op")

STATUS_OK = "ok"

#: A full-profile summary is ~100 KiB and its rounds file a few MiB; anything far larger is
#: not ours, and reading it would only burn memory before failing.
MAX_CSV_BYTES = 64 * 2**20


class ResultsError(ValueError):
    """A results file that cannot be used; the message is one line for the user."""


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
    status: str = STATUS_OK

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
    size = f"-{format_bytes(payload_bytes)}" if payload_bytes else ""
    return f"{mechanism}-{sync}-{operation}{size}-p{processes}-{start_method}"


def format_bytes(n: int) -> str:
    """``1024 -> '1KiB'``; exact powers only, otherwise bytes ('1500B')."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale}{unit}"
    return f"{n}B"


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
    if status == STATUS_OK and not times:
        status = "error: no round was measured"
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
        "ops_per_worker": record.ops_per_worker,
        "ops_per_round": ops,
        "rounds": n,
        "warmup_rounds": record.warmup_rounds,
        "round_target_s": record.round_target_s,
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
        "status": status,
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
    for i, (seconds, lost_i, pass_i) in enumerate(zip(record.round_seconds, lost, passes,
                                                       strict=True)):
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
                "pass": pass_i,
                "round": i,
                "seconds": seconds,
                "ops": ops,
                "throughput_ops_s": ops / seconds if seconds > 0 else math.nan,
                "lost_updates": lost_i,
            }
        )
    return rows


# --------------------------------------------------------------------------------------
# Writing


def _format(value: Any) -> str:
    """Plain text for a CSV cell; numpy scalars are written as the Python numbers they are."""
    if isinstance(value, bool) or not isinstance(value, numbers.Number):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    f = float(value)  # type: ignore[arg-type]
    return "" if math.isnan(f) else repr(f)


def to_csv_text(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """Rows as CSV text with a fixed column order (stdlib csv: no pandas needed to write)."""
    import csv
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: _format(row[c]) for c in columns})
    return buf.getvalue()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file in the same directory and ``os.replace``.

    A crash mid-write leaves the old file intact, never a truncated one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; results are for reading
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def rounds_path_for(summary_path: Path) -> Path:
    """``results/latest.csv -> results/latest.rounds.csv``."""
    return summary_path.with_name(summary_path.stem + ".rounds.csv")


def write_run(
    records: Sequence[BenchmarkRecord],
    run: RunInfo,
    summary_path: Path,
    history_dir: Path | None = None,
) -> list[Path]:
    """Write summary + rounds CSVs atomically, and a copy of both under ``history_dir``.

    Returns the paths written. Earlier runs are never lost: the history copy is named by
    run id, and an existing history file is never replaced.
    """
    summary = to_csv_text((summary_row(r, run) for r in records), SUMMARY_COLUMNS)
    rounds = to_csv_text(
        (row for r in records for row in round_rows(r, run)), ROUND_COLUMNS
    )
    written = []
    targets = [(summary_path, summary), (rounds_path_for(summary_path), rounds)]
    if history_dir is not None:
        hist = history_dir / f"{run.run_id}.csv"
        n = 1
        while hist.exists():  # never replace history, even on a run-id clash
            hist = history_dir / f"{run.run_id}-{n}.csv"
            n += 1
        targets += [(hist, summary), (rounds_path_for(hist), rounds)]
    for path, text in targets:
        atomic_write_text(path, text)
        written.append(path)
    return written


# --------------------------------------------------------------------------------------
# Reading and validation


def _read_csv(path: Path, kind: str) -> pd.DataFrame:
    import pandas as pd

    if not path.exists():
        raise ResultsError(f"{path}: no such file")
    if path.is_dir():
        raise ResultsError(f"{path}: is a directory, expected a {kind} CSV")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ResultsError(f"{path}: cannot read ({exc.strerror})") from None
    if size > MAX_CSV_BYTES:
        raise ResultsError(
            f"{path}: {size / 2**20:.0f} MiB is too large for a {kind} CSV "
            f"(at most {MAX_CSV_BYTES // 2**20} MiB)"
        )
    try:
        df = pd.read_csv(
            path, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8",
            engine="c",
        )
    except pd.errors.EmptyDataError:
        raise ResultsError(f"{path}: empty file, expected a {kind} CSV") from None
    except OSError as exc:
        raise ResultsError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except Exception as exc:  # any parser failure on arbitrary bytes is "not a CSV" to the user
        text = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise ResultsError(f"{path}: not a readable CSV ({text})") from None
    return df


def _coerce(df: pd.DataFrame, path: Path, columns: Sequence[str]) -> pd.DataFrame:
    """Check schema version and columns, convert numeric columns, refuse impossible numbers."""
    import pandas as pd

    missing = [c for c in columns if c not in df.columns]
    if "schema_version" in missing:
        raise ResultsError(f"{path}: no schema_version column; not a sharebench CSV")
    versions = set(df["schema_version"].astype(str).str.strip())
    if versions and versions != {str(SCHEMA_VERSION)}:
        found = ", ".join(sorted(versions))
        raise ResultsError(
            f"{path}: schema_version {found}, this sharebench reads version {SCHEMA_VERSION}"
        )
    if missing:
        raise ResultsError(f"{path}: missing columns: {', '.join(missing)}")
    if df.empty:
        raise ResultsError(f"{path}: header only, no rows")
    out = df.copy()
    for col in columns:
        if col in _INT_COLUMNS or col in _FLOAT_COLUMNS:
            raw = out[col].astype(str).str.strip()
            num = pd.to_numeric(raw.replace("", "nan"), errors="coerce")
            bad = num.isna() & ~raw.str.lower().isin(["", "nan"])
            if bad.any():
                value = raw[bad].iloc[0]
                raise ResultsError(f"{path}: column {col} has non-numeric value {value!r}")
            if col in _INT_COLUMNS:
                if num.isna().any():
                    raise ResultsError(f"{path}: column {col} has an empty value")
                if (num.abs() > 2**62).any():  # inf included
                    raise ResultsError(f"{path}: column {col} has an out-of-range value")
                if (num != num.round()).any():
                    raise ResultsError(f"{path}: column {col} must hold whole numbers")
                out[col] = num.astype("int64")
            else:
                out[col] = num.astype("float64")
    return out


def _refuse_impossible(df: pd.DataFrame, path: Path, ok_mask: pd.Series[bool]) -> None:
    import numpy as np

    for col in df.columns:
        if col in _INT_COLUMNS or col in _FLOAT_COLUMNS:
            values = df[col].to_numpy(dtype="float64")
            if np.isinf(values).any():
                raise ResultsError(f"{path}: column {col} has an infinite value")
            if (values < 0).any():
                raise ResultsError(f"{path}: column {col} has a negative value")
    for col in ("processes",):
        if col in df.columns and (df[col] < 1).any():
            raise ResultsError(f"{path}: column {col} must be >= 1")
    for col in _POSITIVE_OK:
        if col in df.columns:
            values = df.loc[ok_mask, col].to_numpy(dtype="float64")
            if (~np.isfinite(values) | (values <= 0)).any():
                raise ResultsError(
                    f"{path}: column {col} must be a positive number in every ok row"
                )


def read_summary(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read and validate a summary CSV; raise :class:`ResultsError` if it cannot be used."""
    p = Path(path)
    df = _coerce(_read_csv(p, "sharebench summary"), p, SUMMARY_COLUMNS)
    status = df["status"].astype(str)
    valid = (status == STATUS_OK) | status.str.startswith("error: ") | status.str.startswith(
        "skipped: ")
    if not valid.all():
        raise ResultsError(
            f"{p}: status {status[~valid].iloc[0]!r} is not ok, 'error: ...' or 'skipped: ...'"
        )
    ok = df["status"] == STATUS_OK
    _refuse_impossible(df, p, ok)
    dup = df.duplicated(subset=list(BENCHMARK_KEY), keep=False)
    if dup.any():
        first = df.loc[dup, "benchmark"].iloc[0]
        raise ResultsError(f"{p}: benchmark {first} appears more than once")
    return df


def read_rounds(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read and validate a rounds CSV; every round must have a positive, finite time."""
    import numpy as np

    p = Path(path)
    df = _coerce(_read_csv(p, "sharebench rounds"), p, ROUND_COLUMNS)
    _refuse_impossible(df, p, df["seconds"].notna())
    secs = df["seconds"].to_numpy(dtype="float64")
    if (~np.isfinite(secs) | (secs <= 0)).any():
        raise ResultsError(f"{p}: column seconds must be a positive number in every round")
    derived = df["ops"].to_numpy(dtype="float64") / secs
    stated = df["throughput_ops_s"].to_numpy(dtype="float64")
    off = ~np.isclose(stated, derived, rtol=1e-6, atol=0.0)
    if off.any():
        first = df.loc[off, "benchmark"].iloc[0]
        raise ResultsError(f"{p}: round of {first}: throughput_ops_s is not ops / seconds")
    dup = df.duplicated(subset=[*BENCHMARK_KEY, "round"], keep=False)
    if dup.any():
        first = df.loc[dup, "benchmark"].iloc[0]
        raise ResultsError(f"{p}: round of {first} appears more than once")
    return df
