"""The charts of a run: figure builders over a results DataFrame, and :func:`build_figures`.

The builders take the validated summary frame (:func:`sharebench.results.read_summary`) and
return a :class:`matplotlib.figure.Figure`; they never touch the disk and never run a
benchmark (:mod:`sharebench.render` writes the files). What a row means — its family and
colour, its label, whether it is unsafe, which rows a chart draws — comes from
:mod:`sharebench.views`; the plumbing every chart shares from :mod:`sharebench.plot_base`.

Conventions shared by every chart:

* rows whose status is not ``ok`` are left out; the caption counts failed and skipped apart;
* one colour per ``family``, the same in every chart;
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

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

from sharebench import fmt
from sharebench.plot_base import (
    LOSS_COLOR,
    REF_STYLES,
    UNSAFE_HATCH,
    add_caption,
    chart_style,
    empty,
    legend_handles,
    line_styles,
    new_figure,
    ref_label,
    refs_of,
)
from sharebench.views import (
    HARNESS_FAMILY,
    MEMCPY_MECHANISM,
    chart_kind,
    family_color,
    has_memory,
    is_unsafe,
    loss_text,
    ok_rows,
    operation_rows,
    operations,
    prepare,
    primary_start_method,
    series_label,
    start_methods,
)

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


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
    method, rows, refs = operation_rows(ok, operation)
    with chart_style():
        fig = new_figure(bars=len(rows))
        fig.suptitle(f"Throughput: {operation} (ops/s, log scale, start method {method})")
        add_caption(fig, prep.caption)
        procs = sorted(int(p) for p in rows["processes"].unique())
        if not procs:
            empty(fig.add_subplot(), f"No successful {operation} benchmarks to show")
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
            for (mech, rate), style in zip(refs_of(refs, p), REF_STYLES, strict=False):
                ax.axvline(rate, color="#555555", linestyle=style, linewidth=1.8,
                           gid=f"ref:{mech}")
        axes[0].set_xscale("log")
        axes[0].set_xlim(x_min / 2, x_max)
        axes[-1].set_xlabel("operations per second, all workers together (log scale)")
        families = sorted(str(f) for f in rows["family"].unique())
        unsafe = any(is_unsafe(r) for _, r in rows.iterrows())
        fig.legend(handles=legend_handles(families, unsafe, refs), loc="outside right center")
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
        value = ax.text(hi[i] * 1.15, y[i], fmt.rate(tp[i]), va="center", ha="left",
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


def scaling_figure(df: pd.DataFrame, operation: str, rounds: pd.DataFrame | None = None) -> Figure:
    """Throughput vs processes (log y), one line per ``mechanism/sync``; marker at core count.

    Unsafe variants are dashed and say in the legend how much they lose at most. Harness rows
    are horizontal grey reference lines.
    """
    prep = prepare(df, rounds)
    ok = prep.ok
    method, rows, refs = operation_rows(ok, operation)
    with chart_style():
        fig = new_figure()
        fig.suptitle(f"Scaling: {operation} throughput vs processes (start method {method})")
        add_caption(fig, prep.caption)
        if rows.empty:
            empty(fig.add_subplot(), f"No successful {operation} benchmarks to show")
            return fig
        ax = fig.add_subplot()
        styles: dict[str, Iterator[tuple[str, str]]] = {}
        for name, series in _series(rows):
            first = series.iloc[0]
            family = str(first["family"])
            marker, style = next(styles.setdefault(family, line_styles()))
            label = name
            if any(is_unsafe(r) for _, r in series.iterrows()):
                style = "--"
                worst = float(series["lost_pct"].max())
                note = f"loses up to {fmt.pct(worst)}%" if worst > 0 else "no sync"
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
        for (mech, rate), ref_style in zip(refs_of(refs), REF_STYLES, strict=False):
            ax.axhline(rate, color="#555555", linestyle=ref_style, linewidth=1.8,
                       label=ref_label(mech, rate), gid=f"ref:{mech}")
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
    with chart_style():
        fig = new_figure()
        fig.suptitle(f"Lost updates without synchronisation (start method {method})")
        add_caption(fig, prep.caption)
        if rows.empty:
            empty(fig.add_subplot(),
                   "No unsynchronised variants and no lost updates in this run")
            return fig
        ax = fig.add_subplot()
        styles: dict[str, Iterator[tuple[str, str]]] = {}
        multi_op = rows["operation"].nunique() > 1
        for (op, _), group in rows.groupby(["operation", "family"], sort=True):
            for label, series in _series(group):
                first = series.iloc[0]
                family = str(first["family"])
                marker, style = next(styles.setdefault(family, line_styles()))
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
    with chart_style():
        fig = new_figure()
        fig.suptitle("Start methods: same benchmark under " + " / ".join(methods))
        add_caption(fig, prep.caption)
        if rows.empty or len(methods) < 2:
            empty(fig.add_subplot(), "No benchmark ran under more than one start method")
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
                ax.text(value * 1.15, i, fmt.rate(value), va="center", fontsize=11)
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
        fig.legend(handles=legend_handles(families, unsafe_any, None),
                   loc="outside right center")
    return fig


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
    with chart_style():
        fig = new_figure()
        fig.suptitle(f"Bandwidth: {operation} of S bytes to another process "
                     f"(MB/s, log–log, start method {method})")
        add_caption(fig, prep.caption)
        if rows.empty:
            empty(fig.add_subplot(), f"No successful {operation} benchmarks to show")
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
            marker, style = next(styles.setdefault(family, line_styles()))
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
                ax.annotate(f"{fmt.pct(100 * mb[-1] / ref)}% of memcpy",
                            xy=(size[-1], mb[-1]),
                            xytext=(10, 0), textcoords="offset points", va="center",
                            fontsize=12, color=family_color(family), gid=f"ratio:{name}")
        sizes = sorted(int(s) for s in rows["payload_bytes"].unique())
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [fmt.size(s) for s in sizes])
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
# All charts of a run


def build_figures(df: pd.DataFrame, rounds: pd.DataFrame | None = None) -> dict[str, Figure]:
    """Every chart of a run, by file name, in the order the HTML page shows them.

    ``throughput-<op>.png`` and ``scaling-<op>.png`` per operation, ``bandwidth-<op>.png``
    instead for bulk transfers (rows with ``payload_bytes > 0``: ops/s of different sizes do
    not compare), ``latency-<op>.png`` for round trips, ``memory-lookup.png`` (ops/s against
    memory per worker), ``lost-updates.png`` always, ``start-methods.png`` only when ok rows
    span more than one start method.
    """
    from sharebench.plot_keyed import latency_figure, memory_figure

    figures: dict[str, Figure] = {}
    ops = operations(df)
    kinds = {op: chart_kind(df[df["operation"] == op]) for op in ops}
    counted = [op for op in ops if kinds[op] == "throughput"]
    for op in counted:
        figures[f"throughput-{op}.png"] = throughput_figure(df, op, rounds)
    for op in counted:
        figures[f"scaling-{op}.png"] = scaling_figure(df, op, rounds)
    for op in (op for op in ops if kinds[op] == "bandwidth"):
        figures[f"bandwidth-{op}.png"] = bandwidth_figure(df, op, rounds)
    for op in (op for op in ops if kinds[op] == "latency"):
        figures[f"latency-{op}.png"] = latency_figure(df, op)
    for op in counted:
        if has_memory(ok_rows(df[df["operation"] == op])) and op == "lookup":
            figures[f"memory-{op}.png"] = memory_figure(df, op)
    figures["lost-updates.png"] = lost_updates_figure(df, rounds)
    if len(start_methods(df)) > 1:
        figures["start-methods.png"] = start_methods_figure(df, rounds)
    return figures
