"""``sharebench ab`` for people: the Markdown report, the ab CSV and the figure.

Renders an :class:`~sharebench.ab.AbResult`; computes nothing (the verdicts are made in
:mod:`sharebench.ab`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from sharebench.ab import (
    AB_COLUMNS,
    JUDGED_VERDICTS,
    NOT_JUDGED,
    REGRESSION,
    TOO_NOISY,
    AbResult,
    describe_mds,
)
from sharebench.compare import FAILED_NOW, FASTER, SAME, SLOWER
from sharebench.fmt import fraction_pct, p_value, pipe_table, si
from sharebench.normalize import records
from sharebench.results import to_csv_text

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_ORDER = {REGRESSION: 0, FAILED_NOW: 1, SLOWER: 2, FASTER: 3, TOO_NOISY: 4, SAME: 5}


def ab_csv_text(result: AbResult) -> str:
    """The judged table as CSV text (columns :data:`~sharebench.ab.AB_COLUMNS`)."""
    rows = records(result.table)
    for r in rows:
        r["regression"] = "true" if r["regression"] else "false"
    return to_csv_text(rows, AB_COLUMNS)


def median_mds(result: AbResult, column: str = "min_detectable") -> float:
    """The median minimum detectable slowdown over the judged benchmarks (inf counts): at the
    pairs each got, or at ``max_pairs`` (``column="mds_max_pairs"``)."""
    import numpy as np

    values = result.judged[column].to_numpy(dtype="float64")
    return float(np.median(values)) if values.size else math.nan


def mds_line(result: AbResult) -> str:
    """The report's line on what this run could detect."""
    judged = result.judged
    reachable = judged["mds_max_pairs"].to_numpy(dtype="float64")
    fine = int((reachable <= result.rule.judge).sum())
    return (
        f"- Minimum detectable slowdown (80 % power), median over the judged benchmarks: "
        f"{describe_mds(median_mds(result))} at the pairs each got (a benchmark that looks "
        f"unchanged stops after its pilot, too few pairs to be significant: ∞); "
        f"{describe_mds(median_mds(result, 'mds_max_pairs'))} at {result.settings.max_pairs} "
        f"pairs, which one that looks slower gets, budget permitting; {fine} of "
        f"{len(judged)} can be judged at {fraction_pct(result.rule.judge)}"
    )


def markdown_report(result: AbResult) -> str:
    """The report for stdout: reads in a terminal and pastes into a pull request."""
    r, t = result, result.table
    judged = r.judged
    pairs = int(t["pairs"].sum())
    lines = [
        "## sharebench ab",
        "",
        f"- A: {r.sides['A']} (run `{r.run_ids['A']}`)",
        f"- B: {r.sides['B']} (run `{r.run_ids['B']}`)",
        f"- Interleaved: pairs of adjacent blocks ({r.settings.block_rounds} round of each "
        f"side; {r.settings.noisy_blocks} rounds, and their median, for a benchmark whose "
        f"pairs spread beyond {r.settings.noisy:g} after a pilot of {r.settings.pilot}), in "
        f"random order per pair; {pairs} judged pairs in {r.seconds:.0f} s (budget "
        f"{r.settings.budget:.0f} s); a regression needs {r.min_pairs} to be significant",
        f"- Regression: B slower than A by more than {fraction_pct(r.rule.threshold)} "
        f"(Hodges-Lehmann estimate of the pairs' log ratios) and significant at alpha "
        f"{r.rule.alpha:g} (Wilcoxon signed-rank, Holm over {len(t)} benchmarks); `same`: no "
        f"significant change, and its 99 % interval rules out a "
        f"{fraction_pct(r.rule.judge)} slowdown, else `too noisy`; a regression must show "
        f"again with fresh processes on both sides ({r.settings.confirm} confirmation "
        f"sessions)",
        mds_line(r),
        "",
    ]
    ordered = judged.assign(_o=[_ORDER.get(v, 9) for v in judged["verdict"]]).sort_values(
        ["_o", "ratio"], kind="stable")
    body = [[
        f"`{row['benchmark']}`", si(row["a_median_ops_s"]), si(row["b_median_ops_s"]),
        f"{row['ratio']:.3f}", f"{row['ci_low']:.3f}-{row['ci_high']:.3f}",
        p_value(row["p_holm"]), str(int(row["pairs"])), describe_mds(row["min_detectable"]),
        "**REGRESSION**" if row["regression"] else str(row["verdict"]),
    ] for row in records(ordered)]
    if body:
        lines.append(pipe_table(
            ["benchmark", "A ops/s", "B ops/s", "B/A", "99% CI", "p (Holm)", "pairs",
             "detects", "verdict"], body, right={1, 2, 3, 4, 5, 6, 7}))
        lines.append("")
    failed = t[t["verdict"] == FAILED_NOW]
    if len(failed):
        lines.append(f"**Failed now** ({len(failed)}), ok on A:")
        lines.extend(f"- `{row['benchmark']}`: {row['note']}" for row in records(failed))
    skipped = t[t["verdict"] == NOT_JUDGED]
    if len(skipped):
        lines.append(f"Not judged ({len(skipped)}):")
        lines.extend(f"- `{row['benchmark']}`: {row['note']}" for row in records(skipped))
    counts = judged["verdict"].value_counts()
    n_reg = len(r.regressions)
    lines += [
        "",
        f"**{n_reg} regression{'s' if n_reg != 1 else ''}**"
        + (f", **{len(failed)} failed now**" if len(failed) else "") + "; "
        + ", ".join(f"{int(counts.get(v, 0))} {v}" for v in JUDGED_VERDICTS if v != REGRESSION),
    ]
    return "\n".join(lines).rstrip() + "\n"


def ab_figure(result: AbResult) -> Figure:
    """B/A ratio per judged benchmark with its 99 % interval; the bar marks the slowdown it
    could detect (its minimum detectable slowdown, or the threshold if wider)."""
    import numpy as np

    from sharebench.plot_compare import ratio_figure

    rows = result.judged.reset_index(drop=True)
    mds = rows["min_detectable"].to_numpy(dtype="float64")
    gates = 1.0 / (1.0 + np.maximum(result.rule.threshold, mds))
    caption = (f"A: {result.sides['A']}  vs  B: {result.sides['B']}\n"
               f"regression = B slower by > {fraction_pct(result.rule.threshold)} and "
               f"significant at alpha {result.rule.alpha:g} (Wilcoxon, Holm); "
               f"whiskers: 99% CI of the pairs' ratio")
    return ratio_figure(rows, threshold=result.rule.threshold, title="sharebench ab",
                        caption=caption, xlabel="throughput ratio B / A  (> 1 B faster)",
                        gates=gates, gate_label="slowdown it can detect (80% power)",
                        empty="no benchmark judged")
