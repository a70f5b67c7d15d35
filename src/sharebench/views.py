"""What the rows of a run mean: pandas only, no drawing. The layer under charts, page and report.

Every place that shows a run — the charts (:mod:`sharebench.plot`), the offline page
(:mod:`sharebench.htmlpage`) and the README findings (:mod:`sharebench.report`) — reads it
through these definitions, so they agree: which family a row belongs to and its colour, how it
is labelled, whether it is *unsafe* (fast because wrong), which rows a chart draws, how many
failed and how many were skipped, and the findings (:func:`findings`: one definition of
"fastest correct").
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

from sharebench.fmt import pct, size
from sharebench.schema import BENCHMARK_KEY
from sharebench.status import Status, status_kinds

if TYPE_CHECKING:
    import pandas as pd

    #: A summary row: a pandas row or a plain mapping with the same keys.
    RowLike: TypeAlias = Mapping[str, Any] | pd.Series[Any]

STATUS_OK = str(Status.OK)

#: One colour per family, the same in every chart and on the page.
FAMILY_COLORS: dict[str, str] = {
    "sharedctypes": "#1f77b4",
    "manager": "#d62728",
    "shm": "#2ca02c",
    "atomics": "#9467bd",
    "message": "#ff7f0e",
    "thread": "#8c564b",
    "mmap": "#e377c2",
    "redis": "#17becf",
    "manager-tcp": "#bcbd22",
    "fork": "#1b9e77",
    "zmq": "#d95f02",
    "ultradict": "#7570b3",
    "shared-memory-dict": "#e7298a",
    "diskcache": "#66a61e",
    "lmdb": "#e6ab02",
    "ray": "#a6761d",
    "harness": "#7f7f7f",
}
#: For families not listed above: picked by a stable hash of the name, so still the same
#: colour in every chart and every run.
_FALLBACK_COLORS = ("#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd")
START_METHOD_ORDER = ("fork", "forkserver", "spawn")
HARNESS_FAMILY = "harness"
#: How harness mechanisms are named on the reference lines.
HARNESS_LABELS = {
    "noop": "harness overhead (empty loop)",
    "reference": "plain Python object (reference)",
    "fetchadd-c": "atomic fetch-add in a C loop (the hardware's limit)",
}
#: The limit line of the bandwidth chart: numpy copying within one process.
MEMCPY_MECHANISM = "memcpy"


def family_color(family: str) -> str:
    """The colour of a family; unknown families get a stable colour from their name."""
    if family in FAMILY_COLORS:
        return FAMILY_COLORS[family]
    return _FALLBACK_COLORS[zlib.crc32(family.encode()) % len(_FALLBACK_COLORS)]


def series_label(row: RowLike) -> str:
    """``mechanism/sync``, with the payload size for bulk transfers (``shm/none 1MiB``)."""
    label = f"{row['mechanism']}/{row['sync']}"
    payload = int(row.get("payload_bytes", 0) or 0)
    return f"{label} {size(payload)}" if payload else label


#: Operations that write shared state: for them, no synchronisation is a race. A lookup only
#: reads (``none`` is right there), a transfer or a ping-pong hands a message over whole.
WRITE_OPERATIONS = frozenset({"increment", "append", "dict-increment"})


def is_unsafe(row: RowLike) -> bool:
    """No synchronisation on a write, or updates were lost or duplicated: mark it, whatever
    its speed.

    Harness rows (empty loop, plain object) run alone and are never a contender, so their
    ``none`` does not mark them; a loss there would, as a harness bug.
    """
    wrong = int(row.get("lost_updates", 0) or 0) > 0 or int(row.get("duplicates", 0) or 0) > 0
    if row.get("family") == HARNESS_FAMILY:
        return wrong
    writes = row.get("operation", "increment") in WRITE_OPERATIONS
    return wrong or (row["sync"] == "none" and writes)


def loss_text(row: RowLike) -> str:
    """The annotation of an unsafe variant: ``loses 37%`` or ``no sync: 0% lost here``."""
    lost = float(row.get("lost_pct", 0.0) or 0.0)
    dup = int(row.get("duplicates", 0) or 0)
    if lost > 0 or int(row.get("lost_updates", 0) or 0) > 0:
        text = f"loses {pct(lost)}%"
    elif dup:
        text = "duplicates updates"
    else:
        return "no sync: 0% lost here"
    return text + (f", {dup} duplicated" if dup and lost > 0 else "")


# --------------------------------------------------------------------------------------
# Status


@dataclass(frozen=True)
class StatusCounts:
    """How the rows of a run ended."""

    ok: int
    failed: int
    skipped: int

    def describe_left_out(self) -> str:
        """``'2 failed, 3 skipped rows omitted'``, or '' when every row is ok."""
        parts = []
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self.skipped:
            parts.append(f"{self.skipped} skipped")
        if not parts:
            return ""
        total = self.failed + self.skipped
        return f"{' and '.join(parts)} row{'s' if total != 1 else ''} omitted"


def status_counts(df: pd.DataFrame) -> StatusCounts:
    """Rows that are ok, failed (``error: ...``) and skipped (``skipped: ...``)."""
    kinds = status_kinds(df["status"])
    return StatusCounts(ok=int((kinds == "ok").sum()), failed=int((kinds == "error").sum()),
                        skipped=int((kinds == "skipped").sum()))


def failed_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows whose benchmark failed (``error: worker died``, timeouts, data lost under a lock)."""
    return df[status_kinds(df["status"]) == "error"]


def skipped_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows that could not run here (a missing service), with their reason."""
    return df[status_kinds(df["status"]) == "skipped"]


def slowed_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows made slower on purpose (``--sharebench-slowdown``): a run with any is not clean."""
    return df[df["slowdown"] != 1.0]


def ok_rows(df: pd.DataFrame, benchmarks_only: bool = False) -> pd.DataFrame:
    """Rows with status ok; without the harness's own yardsticks if ``benchmarks_only``."""
    ok = df[df["status"].astype(str) == STATUS_OK]
    return ok[ok["family"] != HARNESS_FAMILY] if benchmarks_only else ok


def one_value(df: pd.DataFrame, col: str) -> str:
    """The value of a run-wide column (values joined with ' + ' if a file mixes runs)."""
    values = [str(v) for v in df[col].drop_duplicates().tolist() if str(v)]
    return " + ".join(values) if values else "?"


# --------------------------------------------------------------------------------------
# Preparing the frame of a chart


@dataclass(frozen=True)
class Prepared:
    """The rows a chart draws, and what the caption must say about the rest."""

    ok: pd.DataFrame
    counts: StatusCounts
    caption: str


def caption_text(df: pd.DataFrame) -> str:
    """One line: machine, Python, date, run id, profile, and the rows left out (failed and
    skipped, counted apart)."""
    date = one_value(df, "timestamp_utc").replace("T", " ").replace("+00:00", " UTC")
    parts = [
        f"{one_value(df, 'hostname')} ({one_value(df, 'cpu_model')}, "
        f"{one_value(df, 'cpu_count')} cores)",
        one_value(df, "python"),
        date,
        f"run {one_value(df, 'run_id')}",
        f"profile {one_value(df, 'profile')}",
    ]
    status = one_value(df, "run_status")
    if status != "complete":
        parts.append(f"run {status}")
    left_out = status_counts(df).describe_left_out()
    if left_out:
        parts.append(left_out)
    return "  ·  ".join(parts)


def prepare(df: pd.DataFrame, rounds: pd.DataFrame | None = None) -> Prepared:
    """Keep ok rows, attach the throughput spread (``tp_lo``/``tp_hi``) and build the caption.

    The spread is the interquartile range of the per-round throughput when ``rounds`` (the
    rounds CSV of the same run) covers a benchmark; otherwise it is approximated from the
    summary as ``throughput * median_s / (median_s ± iqr_s / 2)``.
    """
    import numpy as np

    ok = ok_rows(df).copy()
    tp = ok["throughput_ops_s"].to_numpy(dtype="float64")
    med = ok["median_s"].to_numpy(dtype="float64")
    half = np.nan_to_num(ok["iqr_s"].to_numpy(dtype="float64"), nan=0.0) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        lo = tp * med / (med + half)
        hi = np.where(med - half > 0, tp * med / (med - half), tp)
    ok["tp_lo"] = lo
    ok["tp_hi"] = hi
    if rounds is not None and not rounds.empty and not ok.empty:
        key = list(BENCHMARK_KEY)
        same_run = rounds[rounds["run_id"].isin(ok["run_id"].unique())]
        if not same_run.empty:
            by = same_run.groupby(key)["throughput_ops_s"]
            q = by.quantile(0.25).rename("r_lo").to_frame().join(
                by.quantile(0.75).rename("r_hi")).reset_index()
            merged = ok.merge(q, on=key, how="left")
            merged.index = ok.index
            have = merged["r_lo"].notna().to_numpy() & merged["r_hi"].notna().to_numpy()
            ok.loc[have, "tp_lo"] = merged.loc[have, "r_lo"].to_numpy()
            ok.loc[have, "tp_hi"] = merged.loc[have, "r_hi"].to_numpy()
    # A spread never hides the point: the bar's own value is always inside it.
    ok["tp_lo"] = np.minimum(ok["tp_lo"].to_numpy(dtype="float64"), tp)
    ok["tp_hi"] = np.maximum(ok["tp_hi"].to_numpy(dtype="float64"), tp)
    return Prepared(ok=ok, counts=status_counts(df), caption=caption_text(df))


def primary_start_method(ok: pd.DataFrame) -> str:
    """The start method the throughput and scaling charts show: most rows, then fork first."""
    counts = ok.loc[ok["family"] != HARNESS_FAMILY, "start_method"].value_counts()
    if counts.empty:
        counts = ok["start_method"].value_counts()
    if counts.empty:
        return ""
    best = int(counts.max())
    tied = [str(m) for m in counts.index if int(counts[m]) == best]

    def rank(m: str) -> tuple[int, str]:
        order = START_METHOD_ORDER.index(m) if m in START_METHOD_ORDER else 99
        return (order, m)

    return min(tied, key=rank)


def operations(df: pd.DataFrame) -> list[str]:
    """Operations that get a throughput and a scaling chart (harness-only ones do not)."""
    ok = ok_rows(df, benchmarks_only=True)
    return sorted(str(op) for op in ok["operation"].unique())


def start_methods(df: pd.DataFrame) -> list[str]:
    """Distinct start methods among ok benchmark rows, in fork/forkserver/spawn order."""
    ok = ok_rows(df, benchmarks_only=True)
    found = {str(m) for m in ok["start_method"].unique()}
    return sorted(found, key=lambda m: (START_METHOD_ORDER.index(m)
                                        if m in START_METHOD_ORDER else 99, m))


def operation_rows(ok: pd.DataFrame, operation: str) -> tuple[str, pd.DataFrame, pd.DataFrame]:
    """What a per-operation chart draws: ``(start method, benchmark rows, harness rows)`` of
    the primary start method."""
    method = primary_start_method(ok)
    rows = ok[
        (ok["operation"] == operation)
        & (ok["family"] != HARNESS_FAMILY)
        & (ok["start_method"] == method)
    ]
    return method, rows, harness_refs(ok, operation, method)


def harness_refs(ok: pd.DataFrame, operation: str, start_method: str) -> pd.DataFrame:
    """Harness rows for ``operation``; harness rows of no benchmarked operation apply to all.

    Only the chart's start method counts, unless the harness ran under another one only.
    """
    harness = ok[ok["family"] == HARNESS_FAMILY]
    if (harness["start_method"] == start_method).any():
        harness = harness[harness["start_method"] == start_method]
    mine = harness[harness["operation"] == operation]
    if not mine.empty:
        return mine
    bench_ops = set(ok.loc[ok["family"] != HARNESS_FAMILY, "operation"])
    return harness[~harness["operation"].isin(bench_ops)]


def has_latency(rows: pd.DataFrame) -> bool:
    """Rows of a round-trip operation (``ping-pong``): latency percentiles, not ops/s."""
    return bool(rows["latency_p50_s"].notna().any()) if "latency_p50_s" in rows else False


def is_bulk(rows: pd.DataFrame) -> bool:
    """Rows of a bulk-transfer operation (a payload size, no latencies): bandwidth."""
    return bool((rows["payload_bytes"].astype("int64") > 0).any()) and not has_latency(rows)


def chart_kind(rows: pd.DataFrame) -> str:
    """How an operation's rows are drawn: ``latency``, ``bandwidth`` or ``throughput``."""
    if has_latency(rows):
        return "latency"
    return "bandwidth" if is_bulk(rows) else "throughput"


def has_memory(rows: pd.DataFrame) -> bool:
    """Whether any ok row measured the workers' memory growth."""
    return bool((rows["memory_status"].astype(str) == "ok").any()) \
        if "memory_status" in rows else False


# --------------------------------------------------------------------------------------
# Findings


@dataclass(frozen=True)
class Finding:
    """What a run says about one operation.

    ``best``: the *fastest correct* way between processes — the highest throughput among ok
    rows that lost nothing and are synchronised, with process workers (threads are a baseline,
    not a way for processes to share), at any process count, under the primary start method.
    For bulk transfers (``kind`` bandwidth) the highest bytes per second instead; for round
    trips (``kind`` latency) the lowest p50 at the smallest message size.
    ``best_thread``: the same among threads of one process, for comparison. ``losers``: every
    mechanism/sync that lost updates, once each at its worst.
    """

    operation: str
    kind: str
    best: dict[str, Any] | None
    best_thread: dict[str, Any] | None
    losers: list[dict[str, Any]]

    @property
    def bulk(self) -> bool:
        """Bytes per second, not operations, say which is best."""
        return self.kind == "bandwidth"


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts keyed by column name."""
    return [{str(k): v for k, v in r.items()} for r in df.to_dict("records")]


def _fastest(rows: pd.DataFrame, kind: str) -> dict[str, Any] | None:
    if rows.empty:
        return None
    if kind == "latency":
        smallest = rows[rows["payload_bytes"] == rows["payload_bytes"].min()]
        return records(smallest.loc[[smallest["latency_p50_s"].idxmin()]])[0]
    score = rows["throughput_ops_s"] * (rows["payload_bytes"] if kind == "bandwidth" else 1)
    return records(rows.loc[[score.idxmax()]])[0]


def findings(df: pd.DataFrame) -> list[Finding]:
    """One :class:`Finding` per operation of the run's ok benchmarks, in name order."""
    ok = ok_rows(df, benchmarks_only=True)
    method = primary_start_method(ok)
    out = []
    for op in sorted(str(o) for o in ok["operation"].unique()):
        rows = ok[ok["operation"] == op]
        kind = chart_kind(rows)
        safe = rows[[not is_unsafe(r) for _, r in rows.iterrows()]]
        safe = safe[safe["start_method"] == method] if (safe["start_method"] == method).any() \
            else safe
        losers = rows[rows["lost_pct"] > 0].sort_values("lost_pct", ascending=False)
        out.append(Finding(
            operation=op,
            kind=kind,
            best=_fastest(safe[safe["workers_kind"] == "process"], kind),
            best_thread=_fastest(safe[safe["workers_kind"] != "process"], kind),
            losers=records(losers.drop_duplicates(subset=["mechanism", "sync",
                                                          "payload_bytes"])),
        ))
    return out
