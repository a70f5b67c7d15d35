"""``sharebench crosscheck``: single-process costs from a run vs a plain timeit, side by side."""

from __future__ import annotations

import argparse

HELP = "compare 1-process ns/op of a run with timeit of the same statement (harness sanity)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("csv", nargs="?", default="results/latest.csv",
                        help="summary CSV (default results/latest.csv)")
    parser.add_argument("--tolerance", type=float, default=25.0, metavar="PERCENT",
                        help="largest accepted difference, percent (default 25)")


def run(args: argparse.Namespace) -> int:
    from sharebench.crosscheck import STATEMENTS, timeit_ns
    from sharebench.errors import UsageError
    from sharebench.results import read_summary

    df = read_summary(args.csv)
    ok = df[(df["status"] == "ok") & (df["processes"] == 1)]
    print("| mechanism/sync | harness ns/op | timeit ns/op | difference |")
    print("|---|---|---|---|")
    worst = 0.0
    compared = 0
    for st in STATEMENTS:
        rows = ok[(ok["mechanism"] == st.mechanism) & (ok["sync"] == st.sync)
                  & (ok["operation"] == "increment")]
        if rows.empty:
            print(f"| `{st.mechanism}/{st.sync}` | not in {args.csv} | | |")
            continue
        harness = float(rows["ns_per_op"].median())
        plain = timeit_ns(st)
        diff = 100.0 * (harness - plain) / plain
        worst = max(worst, abs(diff))
        compared += 1
        print(f"| `{st.mechanism}/{st.sync}` | {harness:.1f} | {plain:.1f} | {diff:+.1f} % |")
    if not compared:
        raise UsageError(f"{args.csv} has none of the cross-checked benchmarks at 1 process")
    verdict = "within" if worst <= args.tolerance else "OUTSIDE"
    print(f"\nlargest difference {worst:.1f} %: {verdict} ±{args.tolerance:g} %")
    return 0 if worst <= args.tolerance else 1
