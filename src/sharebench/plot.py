"""Charts from a results DataFrame: pure figure builders, and :func:`render_all` to write them.

The builders take the validated summary frame (:func:`sharebench.results.read_summary`) and
return a :class:`matplotlib.figure.Figure`; they never touch the disk and never run a
benchmark. :func:`render_all` is the only I/O: it builds every figure and the HTML page *in
memory* first, and writes files (each one atomically) only once everything rendered, so bad
input never leaves a half-written chart behind.

Figures are created as plain ``Figure`` objects (not through pyplot), which always print with
the Agg canvas: no display, no global figure registry to leak, safe to call from tests.

Conventions shared by every chart:

* rows whose ``status`` is not ``ok`` are left out and counted in the caption;
* one colour per ``family`` (:data:`FAMILY_COLORS`, stable fallback for new families);
* bars and lines are labelled ``mechanism/sync`` (plus the payload size for transfers);
* family ``harness`` (``noop``: loop overhead, ``reference``: plain Python object) is drawn
  as grey reference lines, never as a bar in the ranking;
* variants without synchronisation (``sync == "none"``) or with lost/duplicated updates are
  hatched and annotated with the percentage they lose, so a fast-but-wrong bar is not mistaken
  for a winner.

Artists carry a ``gid`` (the benchmark id, ``loss:<id>``, ``ref:<mechanism>``...) so tests
can find them without depending on drawing order.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, cast

from sharebench.results import BENCHMARK_KEY, STATUS_OK, format_bytes

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    #: A summary row: a pandas row or a plain mapping with the same keys.
    RowLike: TypeAlias = Mapping[str, Any] | pd.Series[Any]

#: One colour per family, the same in every chart (and in compare's charts, if it imports it).
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
}
#: Hatch marking variants that are fast because they are wrong.
UNSAFE_HATCH = "//"
LOSS_COLOR = "#b00020"
FIGSIZE = (16.0, 10.0)
DPI = 100
#: Large fonts: the charts must read in a slide.
STYLE: dict[str, Any] = {
    "font.size": 14,
    "axes.titlesize": 17,
    "axes.labelsize": 15,
    "xtick.labelsize": 13,
    "ytick.labelsize": 13,
    "legend.fontsize": 12,
    "figure.titlesize": 20,
    "hatch.linewidth": 1.5,
}


def family_color(family: str) -> str:
    """The colour of a family; unknown families get a stable colour from their name."""
    if family in FAMILY_COLORS:
        return FAMILY_COLORS[family]
    return _FALLBACK_COLORS[zlib.crc32(family.encode()) % len(_FALLBACK_COLORS)]


def series_label(row: RowLike) -> str:
    """``mechanism/sync``, with the payload size for bulk transfers (``shm/none 1MiB``)."""
    label = f"{row['mechanism']}/{row['sync']}"
    payload = int(row.get("payload_bytes", 0) or 0)
    return f"{label} {format_bytes(payload)}" if payload else label


def is_unsafe(row: RowLike) -> bool:
    """No synchronisation, or updates were lost or duplicated: mark it, whatever its speed.

    Harness rows (empty loop, plain object) run alone and are never a contender, so their
    ``none`` does not mark them; a loss there would, as a harness bug.
    """
    wrong = int(row.get("lost_updates", 0) or 0) > 0 or int(row.get("duplicates", 0) or 0) > 0
    if row.get("family") == HARNESS_FAMILY:
        return wrong
    return wrong or row["sync"] == "none"


def format_pct(pct: float) -> str:
    """``37.5``, ``4.2``, ``0.013``: enough digits to tell a tiny loss from none."""
    if pct >= 10:
        return f"{pct:.0f}"
    if pct >= 1:
        return f"{pct:.1f}"
    return f"{pct:.2g}"


def loss_text(row: RowLike) -> str:
    """The annotation of an unsafe variant: ``loses 37%`` or ``no sync: 0% lost here``."""
    pct = float(row.get("lost_pct", 0.0) or 0.0)
    dup = int(row.get("duplicates", 0) or 0)
    if pct > 0 or int(row.get("lost_updates", 0) or 0) > 0:
        text = f"loses {format_pct(pct)}%"
    elif dup:
        text = "duplicates updates"
    else:
        return "no sync: 0% lost here"
    return text + (f", {dup} duplicated" if dup and pct > 0 else "")


def format_rate(ops_s: float) -> str:
    """``1.23M/s``: short enough to print at the end of a bar."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if ops_s >= scale:
            return f"{ops_s / scale:.3g}{unit}/s"
    return f"{ops_s:.3g}/s"


# --------------------------------------------------------------------------------------
# Preparing the frame


@dataclass(frozen=True)
class Prepared:
    """The rows a chart draws, and what the caption must say about the rest."""

    ok: pd.DataFrame
    n_errors: int
    caption: str


def error_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows whose status is not ``ok`` (``error: worker died``, timeouts...)."""
    return df[df["status"].astype(str) != STATUS_OK]


def caption_text(df: pd.DataFrame) -> str:
    """One line: machine, Python, date, run id, profile, and the error rows left out."""

    def one(col: str) -> str:
        values = [str(v) for v in df[col].drop_duplicates().tolist() if str(v)]
        return " + ".join(values) if values else "?"

    date = one("timestamp_utc").replace("T", " ").replace("+00:00", " UTC")
    parts = [
        f"{one('hostname')} ({one('cpu_model')}, {one('cpu_count')} cores)",
        one("python"),
        date,
        f"run {one('run_id')}",
        f"profile {one('profile')}",
    ]
    status = one("run_status")
    if status != "complete":
        parts.append(f"run {status}")
    n_err = len(error_rows(df))
    if n_err:
        parts.append(f"{n_err} error row{'s' if n_err != 1 else ''} omitted")
    return "  ·  ".join(parts)


def prepare(df: pd.DataFrame, rounds: pd.DataFrame | None = None) -> Prepared:
    """Keep ok rows, attach the throughput spread (``tp_lo``/``tp_hi``) and build the caption.

    The spread is the interquartile range of the per-round throughput when ``rounds`` (the
    rounds CSV of the same run) covers a benchmark; otherwise it is approximated from the
    summary as ``throughput * median_s / (median_s ± iqr_s / 2)``.
    """
    import numpy as np

    ok = df[df["status"].astype(str) == STATUS_OK].copy()
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
    return Prepared(ok=ok, n_errors=len(df) - len(ok), caption=caption_text(df))


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
    ok = df[(df["status"].astype(str) == STATUS_OK) & (df["family"] != HARNESS_FAMILY)]
    return sorted(str(op) for op in ok["operation"].unique())


def start_methods(df: pd.DataFrame) -> list[str]:
    """Distinct start methods among ok benchmark rows, in fork/forkserver/spawn order."""
    ok = df[(df["status"].astype(str) == STATUS_OK) & (df["family"] != HARNESS_FAMILY)]
    found = {str(m) for m in ok["start_method"].unique()}
    return sorted(found, key=lambda m: (START_METHOD_ORDER.index(m)
                                        if m in START_METHOD_ORDER else 99, m))


def _operation_rows(ok: pd.DataFrame, operation: str) -> tuple[str, pd.DataFrame, pd.DataFrame]:
    """What a per-operation chart draws: ``(start method, benchmark rows, harness rows)`` of
    the primary start method."""
    method = primary_start_method(ok)
    rows = ok[
        (ok["operation"] == operation)
        & (ok["family"] != HARNESS_FAMILY)
        & (ok["start_method"] == method)
    ]
    return method, rows, _harness_refs(ok, operation, method)


def _harness_refs(ok: pd.DataFrame, operation: str, start_method: str) -> pd.DataFrame:
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


# --------------------------------------------------------------------------------------
# Figure plumbing


@contextlib.contextmanager
def _style() -> Iterator[None]:
    import matplotlib

    with matplotlib.rc_context(cast(Any, STYLE)):
        yield


def _new_figure(bars: int = 0) -> Figure:
    """A 1600x1000 figure; taller when it must hold more than ~26 bars (0.3 in each), so no
    label overlaps its neighbour."""
    from matplotlib.figure import Figure

    width, height = FIGSIZE
    return Figure(figsize=(width, max(height, 2.5 + 0.3 * bars)), dpi=DPI, layout="constrained")


def _caption(fig: Figure, caption: str) -> None:
    # The figure-level x label sits under every facet; constrained layout leaves room for it.
    fig.supxlabel(caption, fontsize=12, color="#444444").set_gid("caption")


def caption_of(fig: Figure) -> str:
    """The caption line of a figure built here (tests and the HTML page read it)."""
    return str(fig.get_supxlabel())


#: Line styles of the harness reference lines, in :func:`_refs` order.
_REF_STYLES: tuple[Literal["--", ":", "-."], ...] = ("--", ":", "-.")


def _refs(refs: pd.DataFrame) -> list[tuple[str, float]]:
    """(mechanism, ops/s) of the harness rows, fastest first, for reference lines."""
    ordered = refs.sort_values("throughput_ops_s", ascending=False)
    return [(str(r["mechanism"]), float(r["throughput_ops_s"])) for _, r in ordered.iterrows()]


def _ref_label(mechanism: str, rate: float) -> str:
    return f"{HARNESS_LABELS.get(mechanism, mechanism)}: {format_rate(rate)}"


def _legend_handles(families: list[str], unsafe: bool, refs: pd.DataFrame | None) -> list[Any]:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles: list[Any] = [
        Patch(facecolor=family_color(f), edgecolor="white", label=f) for f in families
    ]
    if unsafe:
        handles.append(
            Patch(facecolor="white", edgecolor=LOSS_COLOR, hatch=UNSAFE_HATCH,
                  label="no sync / loses updates")
        )
    if refs is not None:
        for (mech, rate), style in zip(_refs(refs), _REF_STYLES, strict=False):
            handles.append(Line2D([], [], color="#555555", linestyle=style, linewidth=1.8,
                                  label=_ref_label(mech, rate)))
    return handles


def _empty(ax: Axes, message: str) -> None:
    ax.set_axis_off()
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, fontsize=18)


# --------------------------------------------------------------------------------------
# Figure builders


def throughput_figure(
    df: pd.DataFrame, operation: str, rounds: pd.DataFrame | None = None
) -> Figure:
    """Horizontal bars of ops/s (log axis) per ``mechanism/sync``, one facet per process count.

    Bars are sorted fastest first within a facet; whiskers span the throughput IQR; the value
    is printed at each bar; unsafe variants are hatched and say how much they lose. Harness
    rows become vertical reference lines across every facet. Only the primary start method is
    drawn (``start-methods.png`` compares methods).
    """
    prep = prepare(df, rounds)
    ok = prep.ok
    method, rows, refs = _operation_rows(ok, operation)
    with _style():
        fig = _new_figure(bars=len(rows))
        fig.suptitle(f"Throughput: {operation} (ops/s, log scale, start method {method})")
        _caption(fig, prep.caption)
        procs = sorted(int(p) for p in rows["processes"].unique())
        if not procs:
            _empty(fig.add_subplot(), f"No successful {operation} benchmarks to show")
            return fig
        sizes = [int((rows["processes"] == p).sum()) for p in procs]
        axes = fig.subplots(len(procs), 1, sharex=True, squeeze=False,
                            gridspec_kw={"height_ratios": sizes})[:, 0]
        # Room on the right of the fastest bar for its value and loss note, and for the
        # reference lines, but no more.
        x_max = float(rows["tp_hi"].max()) * 12
        if not refs.empty:
            x_max = max(x_max, float(refs["throughput_ops_s"].max()) * 1.5)
        x_min = float(rows["tp_lo"].min())
        for ax, p in zip(axes, procs, strict=True):
            facet = rows[rows["processes"] == p].sort_values("throughput_ops_s")
            _bars(ax, facet)
            ax.set_title(f"{p} process{'es' if p != 1 else ''}", loc="left", fontsize=15)
            for (mech, rate), style in zip(_refs(refs), _REF_STYLES, strict=False):
                ax.axvline(rate, color="#555555", linestyle=style, linewidth=1.8,
                           gid=f"ref:{mech}")
        axes[0].set_xscale("log")
        axes[0].set_xlim(x_min / 2, x_max)
        axes[-1].set_xlabel("operations per second, all workers together (log scale)")
        families = sorted(str(f) for f in rows["family"].unique())
        unsafe = any(is_unsafe(r) for _, r in rows.iterrows())
        fig.legend(handles=_legend_handles(families, unsafe, refs), loc="outside right center")
    return fig


def _bars(ax: Axes, facet: pd.DataFrame) -> None:
    """One facet of the throughput chart: bars, IQR whiskers, values, loss notes."""
    import numpy as np

    y = np.arange(len(facet))
    tp = facet["throughput_ops_s"].to_numpy(dtype="float64")
    lo = facet["tp_lo"].to_numpy(dtype="float64")
    hi = facet["tp_hi"].to_numpy(dtype="float64")
    for i, (_, row) in enumerate(facet.iterrows()):
        unsafe = is_unsafe(row)
        (bar,) = ax.barh(
            y[i], tp[i], height=0.7, color=family_color(str(row["family"])),
            hatch=UNSAFE_HATCH if unsafe else None,
            edgecolor=LOSS_COLOR if unsafe else "white",
            linewidth=1.5 if unsafe else 0.5,
        )
        bar.set_gid(str(row["benchmark"]))
        value = ax.text(hi[i] * 1.15, y[i], format_rate(tp[i]), va="center", ha="left",
                        fontsize=12, gid=f"value:{row['benchmark']}")
        if unsafe:
            # Anchored to the value's right edge, so the two never overlap at any scale.
            ax.annotate(loss_text(row), xy=(1.0, 0.5), xycoords=value, xytext=(10, 0),
                        textcoords="offset points", va="center", ha="left", fontsize=12,
                        color=LOSS_COLOR, fontweight="bold", gid=f"loss:{row['benchmark']}")
    whiskers = ax.errorbar(tp, y, xerr=[tp - lo, hi - tp], fmt="none", ecolor="black",
                           elinewidth=1.5, capsize=4)
    for collection in whiskers.lines[2]:
        collection.set_gid("iqr")
    ax.set_yticks(y, [series_label(r) for _, r in facet.iterrows()])
    ax.set_ylim(-0.6, len(facet) - 0.4)
    ax.grid(axis="x", which="major", alpha=0.3)


def _line_styles() -> Iterator[tuple[str, str]]:
    """Marker and line style pairs that tell apart lines of one family (one colour)."""
    markers = ("o", "s", "^", "D", "v", "P", "X")
    styles = ("-", "-.", ":")
    i = 0
    while True:
        yield markers[i % len(markers)], styles[(i // len(markers)) % len(styles)]
        i += 1


def scaling_figure(df: pd.DataFrame, operation: str, rounds: pd.DataFrame | None = None) -> Figure:
    """Throughput vs processes (log y), one line per ``mechanism/sync``; marker at core count.

    Unsafe variants are dashed and say in the legend how much they lose at most. Harness rows
    are horizontal grey reference lines.
    """
    prep = prepare(df, rounds)
    ok = prep.ok
    method, rows, refs = _operation_rows(ok, operation)
    with _style():
        fig = _new_figure()
        fig.suptitle(f"Scaling: {operation} throughput vs processes (start method {method})")
        _caption(fig, prep.caption)
        if rows.empty:
            _empty(fig.add_subplot(), f"No successful {operation} benchmarks to show")
            return fig
        ax = fig.add_subplot()
        styles: dict[str, Iterator[tuple[str, str]]] = {}
        for name, series in _series(rows):
            first = series.iloc[0]
            family = str(first["family"])
            marker, style = next(styles.setdefault(family, _line_styles()))
            label = name
            if any(is_unsafe(r) for _, r in series.iterrows()):
                style = "--"
                worst = float(series["lost_pct"].max())
                note = f"loses up to {format_pct(worst)}%" if worst > 0 else "no sync"
                label = f"{name}  ({note})"
            x = series["processes"].to_numpy(dtype="float64")
            tp = series["throughput_ops_s"].to_numpy(dtype="float64")
            lo = series["tp_lo"].to_numpy(dtype="float64")
            hi = series["tp_hi"].to_numpy(dtype="float64")
            drawn = ax.errorbar(x, tp, yerr=[tp - lo, hi - tp], color=family_color(family),
                                marker=marker, linestyle=style, linewidth=2.2, markersize=8,
                                capsize=3, label=label)
            if drawn.lines[0] is not None:
                drawn.lines[0].set_gid(f"series:{name}")
        for (mech, rate), ref_style in zip(_refs(refs), _REF_STYLES, strict=False):
            ax.axhline(rate, color="#555555", linestyle=ref_style, linewidth=1.8,
                       label=_ref_label(mech, rate), gid=f"ref:{mech}")
        cores = int(ok["cpu_count"].max())
        ax.axvline(cores, color="black", linestyle=":", linewidth=2, gid="cpu_count")
        ax.annotate(f"{cores} cores", xy=(cores, 1.0), xycoords=("data", "axes fraction"),
                    xytext=(4, -16), textcoords="offset points", fontsize=13)
        procs = sorted({int(p) for p in rows["processes"]} | {cores})
        ax.set_xscale("log", base=2)
        ax.set_xticks(procs, [str(p) for p in procs])
        ax.minorticks_off()
        ax.set_yscale("log")
        ax.set_xlabel("worker processes")
        ax.set_ylabel("operations per second (log scale)")
        ax.grid(which="major", alpha=0.3)
        fig.legend(loc="outside right center")
    return fig


def _series(rows: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """One series per mechanism/sync (and payload), points sorted by process count."""
    out = []
    keys = ["family", "mechanism", "sync", "payload_bytes"]
    for _, group in rows.groupby(keys, sort=True):
        ordered = group.sort_values("processes")
        out.append((series_label(ordered.iloc[0]), ordered))
    return out


def lost_updates_figure(df: pd.DataFrame, rounds: pd.DataFrame | None = None) -> Figure:
    """Percentage of updates lost vs processes, for unsafe variants of every operation."""
    prep = prepare(df, rounds)
    ok = prep.ok
    method = primary_start_method(ok)
    base = ok[(ok["family"] != HARNESS_FAMILY) & (ok["start_method"] == method)]
    unsafe_keys = {
        (r["family"], r["mechanism"], r["sync"], r["operation"], r["payload_bytes"])
        for _, r in base.iterrows() if is_unsafe(r)
    }
    rows = base[[
        (r["family"], r["mechanism"], r["sync"], r["operation"], r["payload_bytes"])
        in unsafe_keys for _, r in base.iterrows()
    ]] if not base.empty else base
    with _style():
        fig = _new_figure()
        fig.suptitle(f"Lost updates without synchronisation (start method {method})")
        _caption(fig, prep.caption)
        if rows.empty:
            _empty(fig.add_subplot(),
                   "No unsynchronised variants and no lost updates in this run")
            return fig
        ax = fig.add_subplot()
        styles: dict[str, Iterator[tuple[str, str]]] = {}
        multi_op = rows["operation"].nunique() > 1
        for (op, _), group in rows.groupby(["operation", "family"], sort=True):
            for label, series in _series(group):
                first = series.iloc[0]
                family = str(first["family"])
                marker, style = next(styles.setdefault(family, _line_styles()))
                ax.plot(series["processes"].to_numpy(dtype="float64"),
                        series["lost_pct"].to_numpy(dtype="float64"),
                        color=family_color(family), marker=marker, linestyle=style,
                        linewidth=2.2, markersize=9,
                        label=f"{label} {op}" if multi_op else label,
                        gid=f"series:{label} {op}")
        procs = sorted(int(p) for p in rows["processes"].unique())
        ax.set_xscale("log", base=2)
        ax.set_xticks(procs, [str(p) for p in procs])
        ax.minorticks_off()
        top = float(rows["lost_pct"].max())
        ax.set_ylim(0, max(5.0, min(100.0, top * 1.15)))
        ax.set_xlabel("worker processes")
        ax.set_ylabel("updates lost (% of issued)")
        ax.grid(alpha=0.3)
        fig.legend(loc="outside right center")
    return fig


def start_methods_figure(df: pd.DataFrame, rounds: pd.DataFrame | None = None) -> Figure:
    """The same benchmarks under each start method, side by side (one facet per method).

    Only benchmarks measured under at least two methods are drawn; labels add operation and
    process count (``value/lock increment p2``) because all operations share the chart.
    """
    prep = prepare(df, rounds)
    ok = prep.ok
    methods = start_methods(df)
    base = ok[ok["family"] != HARNESS_FAMILY]
    ident = ["family", "mechanism", "sync", "operation", "processes", "payload_bytes"]
    counts = base.groupby(ident)["start_method"].nunique()
    shared = counts[counts >= 2].reset_index()[ident]
    rows = base.merge(shared, on=ident, how="inner")
    if len(shared) > 40:
        # Too many to read: keep the largest process count of each mechanism/sync/operation.
        top = shared.groupby([*ident[:4], "payload_bytes"])["processes"].max()
        rows = rows.merge(top.reset_index(), on=[*top.index.names, "processes"])
    with _style():
        fig = _new_figure()
        fig.suptitle("Start methods: same benchmark under " + " / ".join(methods))
        _caption(fig, prep.caption)
        if rows.empty or len(methods) < 2:
            _empty(fig.add_subplot(), "No benchmark ran under more than one start method")
            return fig
        order = (rows.groupby(ident)["throughput_ops_s"].median()
                 .sort_values().reset_index()[ident])
        labels = [f"{series_label(r)} {r['operation']} p{r['processes']}"
                  for _, r in order.iterrows()]
        axes = fig.subplots(1, len(methods), sharey=True, sharex=True, squeeze=False)[0]
        for ax, method in zip(axes, methods, strict=True):
            mine = order.merge(rows[rows["start_method"] == method], on=ident, how="left")
            facet = mine.assign(family=order["family"])
            for i, (_, row) in enumerate(facet.iterrows()):
                value = float(row["throughput_ops_s"])
                if math.isnan(value):
                    continue
                unsafe = is_unsafe(row)
                (bar,) = ax.barh(i, value, height=0.7, color=family_color(str(row["family"])),
                                 hatch=UNSAFE_HATCH if unsafe else None,
                                 edgecolor=LOSS_COLOR if unsafe else "white")
                bar.set_gid(str(row["benchmark"]))
                ax.text(value * 1.15, i, format_rate(value), va="center", fontsize=11)
            ax.set_title(method)
            ax.set_xscale("log")
            ax.grid(axis="x", alpha=0.3)
        axes[0].set_yticks(range(len(labels)), labels)
        lo = float(rows["throughput_ops_s"].min())
        hi = float(rows["throughput_ops_s"].max())
        axes[0].set_xlim(lo / 2, hi * 8)
        for ax in axes:
            ax.set_xlabel("ops/s (log)")
        families = sorted(str(f) for f in rows["family"].unique())
        unsafe_any = any(is_unsafe(r) for _, r in rows.iterrows())
        fig.legend(handles=_legend_handles(families, unsafe_any, None),
                   loc="outside right center")
    return fig


#: The limit line of the bandwidth chart: numpy copying within one process.
MEMCPY_MECHANISM = "memcpy"


def is_bulk(rows: pd.DataFrame) -> bool:
    """Rows of a bulk-transfer operation (they carry a payload size): bandwidth, not ops/s."""
    return bool((rows["payload_bytes"].astype("int64") > 0).any())


def format_bandwidth(mb_s: float) -> str:
    """``950 MB/s``, ``21.3 GB/s``."""
    return f"{mb_s / 1e3:.3g} GB/s" if mb_s >= 1e3 else f"{mb_s:.3g} MB/s"


def bandwidth_figure(
    df: pd.DataFrame, operation: str = "transfer", rounds: pd.DataFrame | None = None
) -> Figure:
    """MB/s vs payload size (log–log), one line per ``mechanism/sync``; memcpy is the limit.

    MB/s is ``throughput_ops_s × payload_bytes / 1e6`` (whiskers: the throughput IQR, scaled
    the same way). The harness's ``memcpy`` (numpy copying inside one process) is drawn as a
    thick dark line, the physical limit any way of handing bytes to another process is
    bounded by; the other lines end with their share of it at the largest size. Only the
    primary start method and the smallest process count are drawn.
    """
    import numpy as np

    prep = prepare(df, rounds)
    ok = prep.ok
    bulk = ok[(ok["operation"] == operation) & (ok["payload_bytes"].astype("int64") > 0)]
    method = primary_start_method(bulk) if not bulk.empty else ""
    rows = bulk[bulk["start_method"] == method]
    if not rows.empty:
        rows = rows[rows["processes"] == rows["processes"].min()]
    with _style():
        fig = _new_figure()
        fig.suptitle(f"Bandwidth: {operation} of S bytes to another process "
                     f"(MB/s, log–log, start method {method})")
        _caption(fig, prep.caption)
        if rows.empty:
            _empty(fig.add_subplot(), f"No successful {operation} benchmarks to show")
            return fig
        ax = fig.add_subplot()
        groups = [
            (f"{mech}/{sync}", g.sort_values("payload_bytes"))
            for (_, mech, sync), g in rows.groupby(["family", "mechanism", "sync"], sort=True)
        ]
        # The limit first, so every other line can say how close it gets.
        groups.sort(key=lambda item: str(item[1]["mechanism"].iloc[0]) != MEMCPY_MECHANISM)
        limit_at: dict[int, float] = {}
        styles: dict[str, Iterator[tuple[str, str]]] = {}
        for name, series in groups:
            first = series.iloc[0]
            family = str(first["family"])
            size = series["payload_bytes"].to_numpy(dtype="float64")
            mb = series["throughput_ops_s"].to_numpy(dtype="float64") * size / 1e6
            lo = series["tp_lo"].to_numpy(dtype="float64") * size / 1e6
            hi = series["tp_hi"].to_numpy(dtype="float64") * size / 1e6
            if first["mechanism"] == MEMCPY_MECHANISM and family == HARNESS_FAMILY:
                (line,) = ax.plot(size, mb, color="#222222", linewidth=4, marker="s",
                                  markersize=9, zorder=1,
                                  label="memcpy (numpy, one process): the physical limit")
                line.set_gid(f"limit:{name}")
                limit_at = {int(x): float(v) for x, v in zip(size, mb, strict=True)}
                continue
            marker, style = next(styles.setdefault(family, _line_styles()))
            label = name
            if any(is_unsafe(r) for _, r in series.iterrows()):
                style = "--"
                label = f"{name}  (loses data)"
            drawn = ax.errorbar(size, mb, yerr=[mb - lo, hi - mb], color=family_color(family),
                                marker=marker, linestyle=style, linewidth=2.2, markersize=8,
                                capsize=3, label=label, zorder=2)
            if drawn.lines[0] is not None:
                drawn.lines[0].set_gid(f"series:{name}")
            ref = limit_at.get(int(size[-1]))
            if ref:
                ax.annotate(f"{format_pct(100 * mb[-1] / ref)}% of memcpy",
                            xy=(size[-1], mb[-1]),
                            xytext=(10, 0), textcoords="offset points", va="center",
                            fontsize=12, color=family_color(family), gid=f"ratio:{name}")
        sizes = sorted(int(s) for s in rows["payload_bytes"].unique())
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [format_bytes(s) for s in sizes])
        ax.minorticks_off()
        ax.set_xlim(sizes[0] / 1.5, sizes[-1] * 8)  # room for the "% of memcpy" notes
        ax.set_yscale("log")
        all_mb = (rows["throughput_ops_s"] * rows["payload_bytes"] / 1e6).to_numpy(
            dtype="float64")
        ax.set_ylim(float(np.min(all_mb)) / 3, float(np.max(all_mb)) * 3)
        ax.set_xlabel("payload size per transfer (log scale)")
        ax.set_ylabel("MB/s (10⁶ bytes per second, log scale)")
        ax.grid(which="major", alpha=0.3)
        fig.legend(loc="outside right center")
    return fig


# --------------------------------------------------------------------------------------
# All charts, and writing them


def build_figures(df: pd.DataFrame, rounds: pd.DataFrame | None = None) -> dict[str, Figure]:
    """Every chart of a run, by file name, in the order the HTML page shows them.

    ``throughput-<op>.png`` and ``scaling-<op>.png`` per operation, ``bandwidth-<op>.png``
    instead for bulk transfers (rows with ``payload_bytes > 0``: ops/s of different sizes do
    not compare), ``lost-updates.png`` always, ``start-methods.png`` only when ok rows span
    more than one start method.
    """
    figures: dict[str, Figure] = {}
    ops = operations(df)
    bulk = [op for op in ops if is_bulk(df[df["operation"] == op])]
    counted = [op for op in ops if op not in bulk]
    for op in counted:
        figures[f"throughput-{op}.png"] = throughput_figure(df, op, rounds)
    for op in counted:
        figures[f"scaling-{op}.png"] = scaling_figure(df, op, rounds)
    for op in bulk:
        figures[f"bandwidth-{op}.png"] = bandwidth_figure(df, op, rounds)
    figures["lost-updates.png"] = lost_updates_figure(df, rounds)
    if len(start_methods(df)) > 1:
        figures["start-methods.png"] = start_methods_figure(df, rounds)
    return figures


#: File names :func:`render_all` owns in the output directory; stale ones from an earlier
#: run are removed so index.html never sits beside an outdated chart. Others (compare.png)
#: are left alone.
_OWNED_PATTERNS = ("throughput-*.png", "scaling-*.png", "bandwidth-*.png", "lost-updates.png",
                   "start-methods.png", "index.html")


def figure_png(fig: Figure) -> bytes:
    """The figure as PNG bytes (Agg), 1600x1000 at the default size."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file in the same directory and ``os.replace``: never a torn file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes 0600 files; charts are for sharing, so honour the umask instead.
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def render_all(
    df: pd.DataFrame,
    out_dir: str | os.PathLike[str],
    *,
    rounds: pd.DataFrame | None = None,
    source: str = "",
) -> list[Path]:
    """Render every chart and ``index.html`` into ``out_dir``; return the paths written.

    Everything is rendered in memory first: if any chart fails, nothing is written and
    ``out_dir`` is not even created. Files are then replaced one by one (each atomically),
    ``index.html`` last, so the page never references a chart that is not there yet.
    """
    from sharebench.htmlpage import index_html

    figures = build_figures(df, rounds)
    payloads = {name: figure_png(fig) for name, fig in figures.items()}
    page = index_html(df, list(figures), source=source)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in payloads.items():
        atomic_write_bytes(out / name, data)
        written.append(out / name)
    atomic_write_bytes(out / "index.html", page.encode("utf-8"))
    written.append(out / "index.html")
    keep = {p.name for p in written}
    for pattern in _OWNED_PATTERNS:
        for stale in out.glob(pattern):
            if stale.name not in keep:
                with contextlib.suppress(FileNotFoundError):
                    stale.unlink()
    return written
