"""The comparison figure: throughput ratio per benchmark, log scale, CI whiskers, threshold band.

Built from the compare table alone (:data:`sharebench.compare.COMPARE_COLUMNS`), so it can be
redrawn from a saved compare CSV. matplotlib is imported inside the functions, with the Agg
canvas and no pyplot state: ``import sharebench`` stays light and nothing needs a display.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

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
    the threshold shaded, regressions in red. Rows that were not tested are left out.
    """
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = table[table["verdict"].isin(COMPARED_VERDICTS)].reset_index(drop=True)
    n = len(rows)
    fig = Figure(figsize=(9.0, 1.6 + 0.28 * max(n, 1)), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    threshold = float(_first(table, "threshold", 0.1))
    lo_band, hi_band = 1.0 / (1.0 + threshold), 1.0 + threshold
    ax.axvspan(lo_band, hi_band, color="#1f77b4", alpha=0.12, lw=0, gid=BAND_GID,
               label=f"within threshold ({threshold * 100:.4g}%)")
    ax.axvline(1.0, color="#1f77b4", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("throughput ratio current / baseline  (> 1 faster, < 1 slower)")
    fig.suptitle("sharebench compare", fontsize=11)
    fig.supxlabel(caption(table), fontsize=7)

    if n == 0:
        ax.text(0.5, 0.5, "no benchmarks compared", ha="center", va="center",
                transform=ax.transAxes)
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
    # Each benchmark's gate: slower than the threshold *and* its noise floor (schema 2).
    if "noise_floor" in rows:
        floor = np.nan_to_num(rows["noise_floor"].to_numpy(dtype="float64"), nan=0.0)
        gate = 1.0 / (1.0 + np.maximum(threshold, floor))
        ax.scatter(gate, y, marker="|", s=70, c="#555555", zorder=2, gid=GATES_GID,
                   label="gate: threshold or noise floor, whichever is wider")
        lo_band = min(lo_band, float(gate.min()))
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
