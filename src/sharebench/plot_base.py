"""What every chart shares: style, figure plumbing, legends, and turning a figure into PNG.

Figures are created as plain ``Figure`` objects (not through pyplot), which always print with
the Agg canvas: no display, no global figure registry to leak, safe to call from tests.
matplotlib is imported inside the functions: ``import sharebench`` stays light.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from sharebench import fmt
from sharebench.views import HARNESS_LABELS, family_color

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

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


@contextlib.contextmanager
def chart_style() -> Iterator[None]:
    import matplotlib

    with matplotlib.rc_context(cast(Any, STYLE)):
        yield


def new_figure(bars: int = 0) -> Figure:
    """A 1600x1000 figure; taller when it must hold more than ~26 bars (0.3 in each), so no
    label overlaps its neighbour."""
    from matplotlib.figure import Figure

    width, height = FIGSIZE
    return Figure(figsize=(width, max(height, 2.5 + 0.3 * bars)), dpi=DPI, layout="constrained")


def add_caption(fig: Figure, caption: str) -> None:
    # The figure-level x label sits under every facet; constrained layout leaves room for it.
    fig.supxlabel(caption, fontsize=12, color="#444444").set_gid("caption")


def caption_of(fig: Figure) -> str:
    """The caption line of a figure built here (tests and the HTML page read it)."""
    return str(fig.get_supxlabel())


#: Line styles of the harness reference lines, in :func:`_refs` order.
REF_STYLES: tuple[Literal["--", ":", "-."], ...] = ("--", ":", "-.")


def refs_of(refs: pd.DataFrame, processes: int | None = None) -> list[tuple[str, float]]:
    """(mechanism, ops/s) of the harness rows, fastest first, for reference lines: one per
    mechanism, measured at ``processes`` where it was (a contended C loop at 2 processes is
    the limit of the 2-process facet), else at its fewest processes."""
    chosen: dict[str, float] = {}
    for _, r in refs.sort_values("processes").iterrows():
        mech = str(r["mechanism"])
        if mech not in chosen or (processes is not None and int(r["processes"]) == processes):
            chosen[mech] = float(r["throughput_ops_s"])
    return sorted(chosen.items(), key=lambda item: -item[1])


def ref_label(mechanism: str, rate: float) -> str:
    return f"{HARNESS_LABELS.get(mechanism, mechanism)}: {fmt.rate(rate)}"


def legend_handles(families: list[str], unsafe: bool, refs: pd.DataFrame | None) -> list[Any]:
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
        for (mech, rate), style in zip(refs_of(refs), REF_STYLES, strict=False):
            handles.append(Line2D([], [], color="#555555", linestyle=style, linewidth=1.8,
                                  label=ref_label(mech, rate)))
    return handles


def empty(ax: Axes, message: str) -> None:
    ax.set_axis_off()
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, fontsize=18)


def line_styles() -> Iterator[tuple[str, str]]:
    """Marker and line style pairs that tell apart lines of one family (one colour)."""
    markers = ("o", "s", "^", "D", "v", "P", "X")
    styles = ("-", "-.", ":")
    i = 0
    while True:
        yield markers[i % len(markers)], styles[(i // len(markers)) % len(styles)]
        i += 1


def figure_png(fig: Figure, dpi: int = DPI) -> bytes:
    """The figure as PNG bytes (Agg), 1600x1000 at the default size."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def save_png(fig: Figure, path: str | os.PathLike[str], dpi: int = DPI) -> Path:
    """Write the figure as PNG, atomically (see :func:`sharebench.fmt.atomic_write`)."""
    return fmt.atomic_write(path, figure_png(fig, dpi))
