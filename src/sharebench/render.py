"""Writing a run's charts and page: the only I/O of the presentation layer.

:func:`render_all` builds every figure (:mod:`sharebench.plot`) and the HTML page
(:mod:`sharebench.htmlpage`) *in memory* first, and writes files (each one atomically) only
once everything rendered, so bad input never leaves a half-written chart behind.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from sharebench.fmt import atomic_write

if TYPE_CHECKING:
    import pandas as pd

#: File names :func:`render_all` owns in the output directory; stale ones from an earlier
#: run are removed so index.html never sits beside an outdated chart. Others (compare.png)
#: are left alone.
_OWNED_PATTERNS = ("throughput-*.png", "scaling-*.png", "bandwidth-*.png", "lost-updates.png",
                   "start-methods.png", "index.html")


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
    from sharebench.plot import build_figures
    from sharebench.plot_base import figure_png

    figures = build_figures(df, rounds)
    payloads = {name: figure_png(fig) for name, fig in figures.items()}
    page = index_html(df, list(figures), source=source)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in payloads.items():
        atomic_write(out / name, data)
        written.append(out / name)
    atomic_write(out / "index.html", page.encode("utf-8"))
    written.append(out / "index.html")
    keep = {p.name for p in written}
    for pattern in _OWNED_PATTERNS:
        for stale in out.glob(pattern):
            if stale.name not in keep:
                with contextlib.suppress(FileNotFoundError):
                    stale.unlink()
    return written
