"""``sharebench ab [A] [B] [options] [-- bench options]``: interleaved A/B run, paired verdicts.

A pipeline of small steps: select the benchmarks exactly as ``nox -s bench -- <bench
options>`` would (pytest collection with ``--sharebench-plan``) -> resolve both sides (working
tree, git ref, interpreter; built and cached) -> start a side server for each -> measure in
interleaved pairs (:class:`sharebench.ab.Runner`) -> judge (:func:`sharebench.ab.analyse`) ->
print the Markdown report, write ``ab.csv``, ``ab.png`` and each side's run CSV into ``--out``.
Exit 1 on a regression, 0 on none, 2 on unusable input.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sharebench.errors import UsageError

HELP = ("interleave two sides (working tree, git ref, interpreter) in pairs of blocks and "
        "judge each benchmark's pairs: paired test, Holm, minimum detectable slowdown; exit 1 "
        "on a regression")
PASSTHROUGH = True  # everything after -- selects and configures the benchmarks
#: Seconds of budget per benchmark by default: a quiet benchmark is judged in about 1.5 s
#: (its workers started, k calibrated, a pilot of 8 pairs); the rest goes to noisy and close
#: ones. The whole run (pilots that overrun, the sides' start) then takes at most about 2.5
#: times a `nox -s bench` of the same benchmarks (quick profile: ~1 s per benchmark here;
#: 2.5 s per benchmark measured 2.64 times).
BUDGET_PER_BENCHMARK = 2.2


def _duration(text: str) -> float:
    """``600``, ``600s``, ``10m`` -> seconds."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(s|m|min|h)?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration, e.g. 300, 300s or 5m")
    scale = {"m": 60.0, "min": 60.0, "h": 3600.0}.get(m.group(2) or "s", 1.0)
    value = float(m.group(1)) * scale
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``sharebench ab``."""
    from sharebench.profiles import slowdown

    parser.usage = "sharebench ab [A] [B] [options] [-- bench options]"
    parser.add_argument("a", nargs="?", metavar="A",
                        help="side A: the working tree (default, or .), a git ref, or a path "
                             "to a Python interpreter / virtual environment")
    parser.add_argument("b", nargs="?", metavar="B", help="side B (same forms; default .)")
    parser.add_argument("--a", dest="a_opt", metavar="SIDE", help="side A (overrides A)")
    parser.add_argument("--b", dest="b_opt", metavar="SIDE", help="side B (overrides B)")
    parser.add_argument("--budget", type=_duration, default=None, metavar="TIME",
                        help="time for the whole run, e.g. 300 or 5m (default: 2.2 s per "
                             "benchmark, at least 60 s); every benchmark gets its pilot pairs, "
                             "clear cases stop there, noisy and close ones share the rest")
    parser.add_argument("--threshold", default="5%",
                        help="a significant slowdown beyond this is a regression (5%%)")
    parser.add_argument("--alpha", default="0.01",
                        help="family-wise significance level, Holm over all benchmarks (0.01)")
    parser.add_argument("--judge", default="10%", metavar="SLOWDOWN",
                        help="a benchmark that cannot detect a slowdown this large with the "
                             "pairs it got is reported as too noisy (10%%)")
    parser.add_argument("--block-rounds", type=int, default=1, metavar="N",
                        help="rounds of one side per block (1)")
    parser.add_argument("--min-pairs", type=int, default=None, metavar="N",
                        help="pairs every benchmark gets (default: the fewest with which the "
                             "test can reach alpha over the benchmarks selected)")
    parser.add_argument("--max-pairs", type=int, default=80, metavar="N",
                        help="most pairs a benchmark gets (80)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the random order of each pair (default: from the clock, "
                             "printed in the report)")
    parser.add_argument("--slowdown-a", action="append", default=[], type=slowdown,
                        metavar="PATTERN=FACTOR",
                        help="make matching benchmarks FACTOR times slower on side A only "
                             "(validation); repeatable")
    parser.add_argument("--slowdown-b", action="append", default=[], type=slowdown,
                        metavar="PATTERN=FACTOR",
                        help="the same on side B only, e.g. 'value-lock-*=1.25'")
    parser.add_argument("--out", type=Path, default=Path("results/ab"), metavar="DIR",
                        help="where ab.csv, ab.png and each side's run CSV go (results/ab)")
    parser.add_argument("--readme", type=Path, default=None, metavar="PATH",
                        help="also write the report between the <!-- sharebench:ab:start --> "
                             "and end markers of this Markdown file")
    parser.add_argument("--cache", type=Path, default=None, metavar="DIR",
                        help="where worktrees and environments of sides are kept "
                             "(default .sharebench-cache/, or SHAREBENCH_CACHE)")


def _plan(repo: Path, bench_args: list[str]) -> dict[str, Any]:
    """The benchmarks ``nox -s bench -- <bench_args>`` would measure, and their settings."""
    with tempfile.TemporaryDirectory(prefix="sharebench-ab-") as tmp:
        path = Path(tmp) / "plan.json"
        out = subprocess.run(
            [sys.executable, "-m", "pytest", "bench", "--collect-only", "-q",
             "-p", "no:cacheprovider", f"--sharebench-plan={path}", *bench_args],
            cwd=repo, capture_output=True, text=True, check=False,
        )
        if not path.exists():
            lines = [ln for ln in (out.stderr + out.stdout).strip().splitlines()
                     if "error" in ln.lower()] or (out.stderr + out.stdout).strip().splitlines()
            raise UsageError("bench options: " + (lines[-1] if lines else "collection failed"))
        plan: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if not plan["cases"]:
        raise UsageError("the bench options select no benchmark")
    return plan


def run(args: argparse.Namespace) -> int:
    """Select, resolve, measure, judge, report; return 0, 1 or 2."""
    from sharebench.ab import AbRule, AbSettings, analyse
    from sharebench.ab_report import ab_csv_text, ab_figure, markdown_report
    from sharebench.ab_run import Progress, Runner, side_records, side_run_info
    from sharebench.fmt import atomic_write, splice
    from sharebench.machine import new_run_id
    from sharebench.plot_base import save_png
    from sharebench.profiles import slowdown_for
    from sharebench.results import write_run
    from sharebench.sides import SideClient, default_cache, resolve

    repo = Path.cwd()
    if not (repo / "bench").is_dir():
        raise UsageError(f"run it from the top of the sharebench repository ({repo} has no "
                         "bench/ directory)")
    rule = AbRule.parse(args.threshold, args.alpha, args.judge)
    plan = _plan(repo, list(args.passthrough))
    cases = plan["cases"]
    budget = args.budget or max(60.0, BUDGET_PER_BENCHMARK * len(cases))
    seed = args.seed if args.seed is not None else int(time.time_ns() % 2**31)
    settings = AbSettings(block_rounds=args.block_rounds, min_pairs=args.min_pairs,
                          max_pairs=args.max_pairs, budget=budget, seed=seed)
    cache = args.cache or default_cache(repo)
    specs = {"A": resolve(args.a_opt or args.a, "A", repo, cache),
             "B": resolve(args.b_opt or args.b, "B", repo, cache)}
    env = {"SHAREBENCH_AB_REDIS_URL": plan.get("redis_url") or "",
           "SHAREBENCH_AB_MANAGER_ADDRESS": plan.get("manager_address") or ""}
    side_slow = {"A": args.slowdown_a, "B": args.slowdown_b}
    per_case = {c["id"]: float(c.get("slowdown", 1.0)) for c in cases}

    def slowdown(side: str, bench_id: str) -> float:
        own = slowdown_for(bench_id, side_slow[side])
        return own if own != 1.0 else per_case.get(bench_id, 1.0)

    clients = {label: SideClient(spec, env) for label, spec in specs.items()}
    run_id = new_run_id()
    t0 = time.monotonic()
    try:
        hellos = {label: client.start() for label, client in clients.items()}
        if hellos["A"].get("protocol") != hellos["B"].get("protocol"):
            raise UsageError("the two sides speak different ab protocols: "
                             f"{hellos['A'].get('protocol')} vs {hellos['B'].get('protocol')}")
        print(f"sharebench ab: {len(cases)} benchmarks, A = {specs['A'].describe}, "
              f"B = {specs['B'].describe}, budget {budget:.0f} s, seed {seed}",
              file=sys.stderr, flush=True)
        runner = Runner(clients, plan, rule, settings, slowdown, Progress(len(cases), budget))
        benches = runner.run()
    finally:
        for client in clients.values():
            client.stop()
    seconds = time.monotonic() - t0
    run_ids = {"A": f"{run_id}-A", "B": f"{run_id}-B"}
    sides = {label: f"{spec.describe}, {hellos[label]['run']['python']}"
             for label, spec in specs.items()}
    result = analyse(benches, rule, settings, sides, run_ids, seconds, runner.min_pairs)

    out: Path = args.out
    round_time = float(plan["config"]["round_time"])
    written = []
    for label in ("A", "B"):
        info = side_run_info(hellos[label], run_ids[label])
        written += write_run(side_records(benches, label, round_time), info,
                             out / f"{label}.csv")
    written.append(atomic_write(out / "ab.csv", ab_csv_text(result)))
    written.append(save_png(ab_figure(result), out / "ab.png", dpi=110))
    report = markdown_report(result)
    print(report, end="")
    if args.readme is not None:
        try:
            text = args.readme.read_text(encoding="utf-8")
            written.append(atomic_write(args.readme, splice(text, report.rstrip(), "ab")))
        except (OSError, ValueError) as exc:
            raise UsageError(f"{args.readme}: {exc}") from None
    print(f"\nWrote {', '.join(str(p) for p in written)} (seed {seed})")
    return result.exit_code
