"""``sharebench compare BASELINE CURRENT``: is the current run slower, beyond noise?

A pipeline of small steps: read both runs (summary + rounds CSV) -> compare (pure) -> print
the Markdown table -> write ``compare.csv`` and ``compare.png`` into ``--out``. Exit 1 if any
benchmark regressed, 0 if none, 2 if the input cannot be used (one line on stderr).
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = (
    "compare two runs: 99% CI of the throughput ratio, Mann-Whitney U with Holm correction, "
    "optional machine normalisation; exit 1 on a regression"
)

DEFAULT_OUT = Path("plots")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``sharebench compare``."""
    parser.add_argument("baseline", type=Path, metavar="BASELINE",
                        help="summary CSV of the baseline run (its .rounds.csv beside it)")
    parser.add_argument("current", type=Path, metavar="CURRENT",
                        help="summary CSV of the current run (its .rounds.csv beside it)")
    parser.add_argument(
        "--threshold", default="10%",
        help="slowdown (extra time per operation) that counts as a regression when also "
             "significant: 10%% (default), 0.1, or a factor such as 2x (= 100%%)",
    )
    parser.add_argument(
        "--alpha", default="0.01",
        help="family-wise significance level after Holm's correction (default 0.01)",
    )
    parser.add_argument(
        "--noise", default="3.5", metavar="K",
        help="noise floor: a regression must also exceed K times the run-to-run spread "
             "measured across all benchmarks of the two runs (default 3.5; 0 = off)",
    )
    parser.add_argument(
        "--normalize", choices=("auto", "on", "off"), default="auto",
        help="divide each run's throughputs by its own reference benchmark first; auto "
             "(default) = on when hostname, CPU model or CPU count differ",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="DIR",
                        help="where to write compare.csv and compare.png (default plots/)")


def run(args: argparse.Namespace) -> int:
    """Compare, print the report, write the CSV and the figure; return 0 or 1."""
    from sharebench import results
    from sharebench.compare import compare_runs
    from sharebench.compare_report import compare_csv_text, markdown_report
    from sharebench.fmt import atomic_write
    from sharebench.plot_base import save_png
    from sharebench.plot_compare import compare_figure
    from sharebench.rules import RegressionRule

    rule = RegressionRule.parse(args.threshold, args.alpha, args.noise)

    baseline: Path = args.baseline
    current: Path = args.current
    frames = [
        (results.read_summary(p), results.read_rounds(results.rounds_path_for(p)))
        for p in (baseline, current)
    ]
    (b_sum, b_rounds), (c_sum, c_rounds) = frames
    try:
        comparison = compare_runs(
            b_sum, b_rounds, c_sum, c_rounds, rule=rule, normalize=args.normalize
        )
    except results.ResultsError as exc:
        raise results.ResultsError(f"{baseline} vs {current}: {exc}") from None

    print(markdown_report(comparison), end="")
    out: Path = args.out
    csv_path = out / "compare.csv"
    atomic_write(csv_path, compare_csv_text(comparison))
    png_path = save_png(compare_figure(comparison.table), out / "compare.png", dpi=110)
    print(f"\nWrote {csv_path} and {png_path}")
    return comparison.exit_code
