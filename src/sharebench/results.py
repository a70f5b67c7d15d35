"""Results files: write a run's CSVs atomically, read them back strictly.

Two files per run (their columns and format history are in :mod:`sharebench.schema`):

* the *summary* CSV (``results/latest.csv``): one row per benchmark;
* the *rounds* CSV (``results/latest.rounds.csv``): one row per measured round of every
  benchmark, so comparisons can use the whole distribution, not just the median.

Reading is strict (as pyperf refuses zero or negative timings): a file with another schema
version, a missing column, or impossible numbers raises :class:`ResultsError` with one line
that says what is wrong. This module is the only one that reads or writes results files.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sharebench.errors import ResultsError
from sharebench.fmt import atomic_write
from sharebench.schema import (
    ADDED_COLUMNS,
    BENCHMARK_KEY,
    FLOAT_COLUMNS,
    INT_COLUMNS,
    POSITIVE_OK,
    READABLE_VERSIONS,
    ROUND_COLUMNS,
    SCHEMA_VERSION,
    SIGNED_COLUMNS,
    SUMMARY_COLUMNS,
    BenchmarkRecord,
    RunInfo,
    round_rows,
    summary_row,
)
from sharebench.status import Status

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ResultsError", "read_rounds", "read_summary", "rounds_path_for", "to_csv_text",
           "write_run"]

#: A full-profile summary is ~100 KiB and its rounds file a few MiB; anything far larger is
#: not ours, and reading it would only burn memory before failing.
MAX_CSV_BYTES = 64 * 2**20


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
        atomic_write(path, text)
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

    if "schema_version" not in df.columns:
        raise ResultsError(f"{path}: no schema_version column; not a sharebench CSV")
    versions = set(df["schema_version"].astype(str).str.strip())
    readable = {str(v) for v in READABLE_VERSIONS}
    if len(versions) > 1 or not versions <= readable:
        found = ", ".join(sorted(versions))
        raise ResultsError(
            f"{path}: schema_version {found}, this sharebench reads versions "
            f"{', '.join(sorted(readable))}"
        )
    if versions and versions != {str(SCHEMA_VERSION)}:
        # An older file: the columns later versions added take the value they meant then.
        df = df.copy()
        old = int(versions.pop())
        for version, added in ADDED_COLUMNS.items():
            if version > old:
                for col, value in added.items():
                    if col in columns and col not in df.columns:
                        df[col] = value
    missing = [c for c in columns if c not in df.columns]
    later = {c for added in ADDED_COLUMNS.values() for c in added}
    if df.empty and set(missing) <= later:  # an older file's header: fine, but nothing in it
        raise ResultsError(f"{path}: header only, no rows")
    if missing:
        raise ResultsError(f"{path}: missing columns: {', '.join(missing)}")
    if df.empty:
        raise ResultsError(f"{path}: header only, no rows")
    out = df.copy()
    for col in columns:
        if col in INT_COLUMNS or col in FLOAT_COLUMNS:
            raw = out[col].astype(str).str.strip()
            num = pd.to_numeric(raw.replace("", "nan"), errors="coerce")
            bad = num.isna() & ~raw.str.lower().isin(["", "nan"])
            if bad.any():
                value = raw[bad].iloc[0]
                raise ResultsError(f"{path}: column {col} has non-numeric value {value!r}")
            if col in INT_COLUMNS:
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
        if col in INT_COLUMNS or col in FLOAT_COLUMNS:
            values = df[col].to_numpy(dtype="float64")
            if np.isinf(values).any():
                raise ResultsError(f"{path}: column {col} has an infinite value")
            if (values < 0).any() and col not in SIGNED_COLUMNS:
                raise ResultsError(f"{path}: column {col} has a negative value")
    for col in ("processes",):
        if col in df.columns and (df[col] < 1).any():
            raise ResultsError(f"{path}: column {col} must be >= 1")
    for col in POSITIVE_OK:
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
    for text in df["status"].astype(str).unique():
        try:
            Status.parse(text)
        except ValueError as exc:
            raise ResultsError(f"{p}: {exc}") from None
    ok = df["status"] == str(Status.OK)
    _refuse_impossible(df, p, ok)
    if (df["slowdown"] < 1).any() or df["slowdown"].isna().any():
        raise ResultsError(f"{p}: column slowdown must be a factor >= 1 in every row")
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
