"""The ratio figures of ``compare`` and ``ab``: ratio per benchmark, log scale, CI whiskers,
threshold band.

Built from the compare table alone (:data:`sharebench.compare.COMPARE_COLUMNS`), so it can be
redrawn from a saved compare CSV. matplotlib is imported inside the functions, with the Agg
canvas and no pyplot state: ``import sharebench`` stays light and nothing needs a display.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from sharebench.ab import TOO_NOISY
from sharebench.compare import COMPARED_VERDICTS, FASTER, INSUFFICIENT, SAME, SLOWER

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

#: Point colour per verdict; regressions override with :data:`REGRESSION_COLOR`.
VERDICT_COLORS: dict[str, str] = {
    FASTER: "#2ca02c",
    SLOWER: "#ff7f0e",
    SAME: "#7f7f7f",
    INSUFFICIENT: "#bcbcbc",
    TOO_NOISY: "#d9d9d9",
}
REGRESSION_COLOR = "#d62728"
#: gid of the artists, so tests and callers can find the data points and the band.
POINTS_GID = "compare-points"
BAND_GID = "threshold-band"
GATES_GID = "compare-gates"


def point_colors(table: pd.DataFrame) -> list[str]:
    """The colour of each row's point: red for regressions, else by verdict."""
    return [
        REGRESSION_COLOR if bool(reg) else VERDICT_COLORS.get(str(verdict), "#000000")
        for reg, verdict in zip(table["regression"], table["verdict"], strict=True)
    ]


def _first(table: pd.DataFrame, column: str, default: Any = "") -> Any:
    return table[column].iloc[0] if len(table) and column in table else default


def caption(table: pd.DataFrame) -> str:
    """Both run ids, then the normalisation and the rule: the figure's two-line caption."""
    norm = str(_first(table, "normalize", "off"))
    ratio = float(_first(table, "machine_ratio", math.nan))
    machine = f", machine ratio {ratio:.3g}" if math.isfinite(ratio) else ""
    threshold = float(_first(table, "threshold", math.nan))
    alpha = float(_first(table, "alpha", math.nan))
    return (
        f"baseline {_first(table, 'baseline_run_id')} vs current "
        f"{_first(table, 'current_run_id')}\nnormalisation {norm}{machine}; "
        f"regression = slower by > {threshold * 100:.4g}% and significant at "
        f"alpha {alpha:g} (Holm); whiskers: 99% CI"
    )


def compare_figure(table: pd.DataFrame) -> Figure:
    """Ratio current/baseline per compared benchmark (one row each, file order, top down).

    Log x axis centred on 1, whiskers from ``ci_low`` to ``ci_high``, the band of ratios within
    the threshold shaded, regressions in red, and each benchmark's gate (the threshold or its
    noise floor, whichever is wider). Rows that were not tested are left out.
    """
    import numpy as np

    rows = table[table["verdict"].isin(COMPARED_VERDICTS)].reset_index(drop=True)
    threshold = float(_first(table, "threshold", 0.1))
    gates = None
    if "noise_floor" in rows:  # schema 2: each benchmark's gate
        floor = np.nan_to_num(rows["noise_floor"].to_numpy(dtype="float64"), nan=0.0)
        gates = 1.0 / (1.0 + np.maximum(threshold, floor))
    return ratio_figure(
        rows, threshold=threshold, title="sharebench compare", caption=caption(table),
        xlabel="throughput ratio current / baseline  (> 1 faster, < 1 slower)", gates=gates,
        gate_label="gate: threshold or noise floor, whichever is wider",
        empty="no benchmarks compared",
    )


def ratio_figure(
    rows: pd.DataFrame,
    *,
    threshold: float,
    title: str,
    caption: str,
    xlabel: str,
    gates: Any = None,
    gate_label: str = "",
    empty: str = "nothing to show",
) -> Figure:
    """One row per benchmark: its ratio (``ratio``), CI whiskers (``ci_low``/``ci_high``),
    coloured by ``verdict``/``regression``; ``gates`` (ratios, one per row, NaN for none)
    marked with a bar. Shared by ``compare`` and ``ab``."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = len(rows)
    fig = Figure(figsize=(9.0, 1.6 + 0.28 * max(n, 1)), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    lo_band, hi_band = 1.0 / (1.0 + threshold), 1.0 + threshold
    ax.axvspan(lo_band, hi_band, color="#1f77b4", alpha=0.12, lw=0, gid=BAND_GID,
               label=f"within threshold ({threshold * 100:.4g}%)")
    ax.axvline(1.0, color="#1f77b4", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    fig.suptitle(title, fontsize=11)
    fig.supxlabel(caption, fontsize=7)

    if n == 0:
        ax.text(0.5, 0.5, empty, ha="center", va="center", transform=ax.transAxes)
        ax.set_yticks([])
        return fig

    y = np.arange(n)[::-1].astype("float64")  # first row at the top
    ratio = rows["ratio"].to_numpy(dtype="float64")
    lo = rows["ci_low"].to_numpy(dtype="float64")
    hi = rows["ci_high"].to_numpy(dtype="float64")
    colors = point_colors(rows)
    ok = np.isfinite(lo) & np.isfinite(hi)
    ax.hlines(y[ok], lo[ok], hi[ok], colors=[c for c, k in zip(colors, ok, strict=True) if k],
              lw=1.4, gid="compare-whiskers")
    ax.scatter(ratio, y, c=colors, s=22, zorder=3, gid=POINTS_GID)
    if gates is not None:
        gate = np.asarray(gates, dtype="float64")
        shown = np.isfinite(gate) & (gate > 0)
        ax.scatter(gate[shown], y[shown], marker="|", s=70, c="#555555", zorder=2,
                   gid=GATES_GID, label=gate_label)
        if shown.any():
            lo_band = min(lo_band, float(gate[shown].min()))
    ax.set_yticks(y, [str(b) for b in rows["benchmark"]], fontsize=7)
    ax.set_ylim(-0.7, n - 0.3)

    # Keep 1 and the band in view, and every whisker, with some margin on a log axis.
    finite = np.concatenate([ratio, lo[ok], hi[ok], [lo_band, hi_band]])
    finite = finite[np.isfinite(finite) & (finite > 0)]
    left, right = float(finite.min()) / 1.15, float(finite.max()) * 1.15
    ax.set_xlim(left, right)
    _ratio_ticks(ax, left, right)
    ax.grid(axis="x", which="both", alpha=0.3)

    from matplotlib.lines import Line2D

    handles, labels = (list(x) for x in ax.get_legend_handles_labels())
    for label, color in (("regression", REGRESSION_COLOR), *VERDICT_COLORS.items()):
        handles.append(Line2D([], [], marker="o", ls="", color=color))
        labels.append(label)
    ax.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


#: Tick positions that read as ratios (1/4 ... 4x) instead of powers of ten.
_TICKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 1 / 3, 0.5, 2 / 3, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5,
          2.0, 3.0, 4.0, 5.0, 10.0, 20.0, 50.0, 100.0)


def _ratio_ticks(ax: Any, left: float, right: float) -> None:
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    ticks = [t for t in _TICKS if left <= t <= right]
    if len(ticks) > 9:  # a wide range: keep the round numbers only
        ticks = [t for t in ticks if t in (0.01, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 10.0, 100.0)]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:.3g}"))
