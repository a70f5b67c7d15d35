"""``sharebench report``: findings of a run as Markdown (terminal, README), and a status check."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "print the findings of a results CSV as Markdown; optionally update the README"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("csv", nargs="?", default="results/latest.csv",
                        help="summary CSV (default results/latest.csv)")
    parser.add_argument("--readme", metavar="PATH",
                        help="replace the findings block between the sharebench markers")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if any benchmark has an error status (skipped ones pass) "
                             "or was slowed on purpose (--sharebench-slowdown)")


def run(args: argparse.Namespace) -> int:
    from sharebench.errors import UsageError
    from sharebench.fmt import atomic_write
    from sharebench.report import findings_markdown, splice_readme
    from sharebench.results import read_summary
    from sharebench.views import slowed_rows, status_counts

    df = read_summary(args.csv)
    text = findings_markdown(df)
    print(text)
    if args.readme:
        readme = Path(args.readme)
        try:
            atomic_write(readme, splice_readme(readme.read_text(encoding="utf-8"), text))
        except (OSError, ValueError) as exc:
            raise UsageError(f"{readme}: {exc}") from None
        print(f"\nupdated {readme}")
    errors = status_counts(df).failed  # skipped rows say why, and pass
    slowed = len(slowed_rows(df))
    if args.check and errors:
        print(f"\n{errors} benchmark(s) have an error status")
    if args.check and slowed:
        print(f"\n{slowed} benchmark(s) were slowed on purpose: not a clean run")
    return 1 if args.check and (errors or slowed) else 0
