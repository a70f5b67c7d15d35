"""The charts of the round-trip and read-mostly operations: latency per message size, and
throughput against memory per worker. Figure builders only (see :mod:`sharebench.plot`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from sharebench import fmt
from sharebench.plot_base import add_caption, chart_style, empty, line_styles, new_figure
from sharebench.views import family_color, ok_rows, prepare, primary_start_method

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

#: Published C figures for a 100-byte ping-pong, drawn on the smallest-size facet as dated
#: reference marks: (label, seconds per round trip).
IPC_BENCH: tuple[tuple[str, float], ...] = (
    ("C pipe", 1 / 162_441),
    ("C Unix socket", 1 / 130_372),
)
IPC_BENCH_SOURCE = ("reference marks: ipc-bench (github.com/goldsborough/ipc-bench, README), C, "
                    "100-byte ping-pong, i5-4590S, Ubuntu 20.04.1 (published c. 2020): "
                    "pipe 162,441 msg/s, Unix socket 130,372 msg/s")
#: gids of the marks, for tests.
P99_GID, P999_GID, REF_GID = "p99", "p99.9", "ipc-bench"


def _us(seconds: float) -> str:
    return fmt.duration_ns(seconds * 1e9)


def latency_figure(df: pd.DataFrame, operation: str = "ping-pong") -> Figure:
    """One facet per message size: a bar per mechanism at its p50 round trip (log scale),
    with its p99 and p99.9 marked; ipc-bench's C figures on the smallest size's facet."""
    prep = prepare(df)
    ok = prep.ok
    method = primary_start_method(ok)
    rows = ok[(ok["operation"] == operation) & (ok["start_method"] == method)]
    rows = rows[rows["latency_p50_s"].notna()]
    with chart_style():
        sizes = sorted(int(s) for s in rows["payload_bytes"].unique())
        fig = new_figure(bars=len(rows) + 2 * len(sizes))
        fig.suptitle(f"Round-trip latency: {operation} (p50 bars, p99 and p99.9 marks, "
                     f"log scale, start method {method})")
        add_caption(fig, prep.caption + "\n" + IPC_BENCH_SOURCE)
        if rows.empty:
            empty(fig.add_subplot(), f"No successful {operation} benchmarks to show")
            return fig
        counts = [int((rows["payload_bytes"] == s).sum()) for s in sizes]
        axes = fig.subplots(len(sizes), 1, sharex=True, squeeze=False,
                            gridspec_kw={"height_ratios": [c + 1 for c in counts]})[:, 0]
        for ax, size in zip(axes, sizes, strict=True):
            facet = rows[rows["payload_bytes"] == size].sort_values("latency_p50_s",
                                                                      ascending=False)
            y = list(range(len(facet)))
            for i, (_, r) in enumerate(facet.iterrows()):
                p50 = float(r["latency_p50_s"])
                (bar,) = ax.barh(i, p50, height=0.7, color=family_color(str(r["family"])))
                bar.set_gid(str(r["benchmark"]))
                ax.plot([float(r["latency_p99_s"])], [i], marker="|", markersize=18,
                        color="#222222", gid=f"{P99_GID}:{r['benchmark']}")
                ax.plot([float(r["latency_p999_s"])], [i], marker="x", markersize=10,
                        color="#b00020", gid=f"{P999_GID}:{r['benchmark']}")
                ax.text(float(r["latency_p999_s"]) * 1.3, i,
                        f"p50 {_us(p50)} · p99 {_us(float(r['latency_p99_s']))}",
                        va="center", fontsize=11)
            ax.set_yticks(y, [str(m) for m in facet["mechanism"]])
            ax.set_title(f"{fmt.size(size)} messages", loc="left", fontsize=15)
            ax.set_ylim(-0.6, len(facet) - 0.4)
            ax.grid(axis="x", alpha=0.3)
            if size == sizes[0]:
                for (label, seconds), style in zip(IPC_BENCH, ("--", ":"), strict=True):
                    ax.axvline(seconds, color="#555555", linestyle=style, linewidth=1.8,
                               gid=f"{REF_GID}:{label}",
                               label=f"{label}, 100 B (ipc-bench): {_us(seconds)}")
        axes[0].set_xscale("log")
        lo = float(rows["latency_p50_s"].min())
        hi = float(rows["latency_p999_s"].max())
        axes[0].set_xlim(min(lo, IPC_BENCH[0][1]) / 2, hi * 30)
        axes[-1].set_xlabel("round trip, seconds (log scale): bar p50, | p99, x p99.9")
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], marker="|", ls="", markersize=14, color="#222222",
                          label="p99"),
                   Line2D([], [], marker="x", ls="", markersize=9, color="#b00020",
                          label="p99.9"),
                   *axes[0].get_legend_handles_labels()[0]]
        fig.legend(handles=handles, loc="outside right center")
    return fig


def memory_figure(df: pd.DataFrame, operation: str = "lookup") -> Figure:
    """Throughput (log) against each worker's memory growth (USS filled, PSS hollow), one
    point per mechanism and process count: what reading shared data costs in memory."""
    prep = prepare(df)
    ok = ok_rows(prep.ok)
    method = primary_start_method(ok)
    rows = ok[(ok["operation"] == operation) & (ok["start_method"] == method)
              & (ok["memory_status"].astype(str) == "ok")]
    with chart_style():
        fig = new_figure()
        fig.suptitle(f"{operation}: throughput against memory each worker copied "
                     f"(start method {method})")
        add_caption(fig, prep.caption)
        if rows.empty:
            empty(fig.add_subplot(), f"No {operation} benchmark measured memory")
            return fig
        ax = fig.add_subplot()
        styles: dict[str, Iterator[tuple[str, str]]] = {}
        for (mech, sync), group in rows.groupby(["mechanism", "sync"], sort=True):
            first = group.iloc[0]
            color = family_color(str(first["family"]))
            marker, _ = next(styles.setdefault(str(first["family"]), line_styles()))
            mib = group["worker_uss_growth_bytes"].to_numpy(dtype="float64") / 2**20
            pss = group["worker_pss_growth_bytes"].to_numpy(dtype="float64") / 2**20
            tp = group["throughput_ops_s"].to_numpy(dtype="float64")
            ax.scatter(mib, tp, s=110, marker=marker, color=color, label=f"{mech}/{sync} USS",
                       gid=f"uss:{mech}/{sync}", zorder=3)
            ax.scatter(pss, tp, s=110, marker=marker, facecolors="none", edgecolors=color,
                       label=f"{mech}/{sync} PSS", gid=f"pss:{mech}/{sync}", zorder=3)
            for x, t, p in zip(mib, tp, group["processes"], strict=True):
                ax.annotate(f"×{int(p)}", xy=(x, t), xytext=(6, 4), textcoords="offset points",
                            fontsize=11)
        ax.set_yscale("log")
        ax.set_xlabel("growth of each worker's memory while it read (MiB; USS filled, "
                      "PSS hollow)")
        ax.set_ylabel("lookups per second, all workers (log scale)")
        ax.axvline(0, color="#999999", linewidth=1)
        ax.grid(alpha=0.3)
        fig.legend(loc="outside right center")
    return fig
