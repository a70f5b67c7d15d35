"""``sharebench plot [CSV] [--out DIR]``: charts and an offline index.html from a results CSV."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "Render the charts (PNG) and an offline index.html from a results CSV."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``sharebench plot``."""
    parser.add_argument(
        "csv", nargs="?", type=Path, default=Path("results/latest.csv"),
        help="summary CSV to plot (default: results/latest.csv); its .rounds.csv beside it, "
        "when present, gives the IQR whiskers",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("plots"),
        help="directory for the PNGs and index.html (default: plots/)",
    )


def run(args: argparse.Namespace) -> int:
    """Validate the CSV (and its rounds file), render everything, report what was written."""
    from sharebench.errors import UsageError
    from sharebench.results import read_rounds, read_summary, rounds_path_for

    csv: Path = args.csv
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a directory")
    df = read_summary(csv)
    rounds_path = rounds_path_for(csv)
    # A rounds file is optional (whiskers fall back to the summary IQR), but one that exists
    # and is broken is bad input like any other: refuse it rather than plot half the truth.
    rounds = read_rounds(rounds_path) if rounds_path.exists() else None

    import matplotlib

    matplotlib.use("Agg")
    from sharebench.render import render_all
    from sharebench.views import status_counts

    written = render_all(df, out, rounds=rounds, source=str(csv))
    charts = [p for p in written if p.suffix == ".png"]
    left_out = status_counts(df).describe_left_out()
    note = f"; {left_out.removesuffix(' omitted')} left out" if left_out else ""
    print(
        f"sharebench plot: {len(charts)} charts and index.html in {out}/ "
        f"from {len(df)} rows{note}",
        file=sys.stdout,
    )
    return 0
