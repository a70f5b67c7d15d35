"""``sharebench compare`` for people: the Markdown report and the compare CSV.

Renders a :class:`~sharebench.compare.Comparison`; computes nothing (the verdicts are made in
:mod:`sharebench.compare`).
"""

from __future__ import annotations

import math

from sharebench.compare import (
    COMPARE_COLUMNS,
    COMPARED_VERDICTS,
    FAILED_NOW,
    FASTER,
    INSUFFICIENT,
    NOT_COMPARED,
    ONLY_BASELINE,
    ONLY_CURRENT,
    SAME,
    SLOWER,
    Comparison,
)
from sharebench.fmt import p_value, pipe_table, si
from sharebench.normalize import records
from sharebench.results import to_csv_text


def compare_csv_text(comparison: Comparison) -> str:
    """The comparison table as CSV text (columns :data:`COMPARE_COLUMNS`)."""
    rows = records(comparison.table)
    for r in rows:
        r["regression"] = "true" if r["regression"] else "false"
    return to_csv_text(rows, COMPARE_COLUMNS)


_ORDER = {SLOWER: 1, FASTER: 2, SAME: 3, INSUFFICIENT: 4}


def _fmt_rate(value: float) -> str:
    return si(value) if math.isfinite(value) else ""


def _fmt_norm(value: float) -> str:
    return f"{value:.3g}" if math.isfinite(value) else ""


def markdown_report(comparison: Comparison) -> str:
    """The report for stdout: reads in a terminal and pastes as Markdown into a pull request."""
    c = comparison
    compared = c.compared
    unit = "normalised" if c.normalization.applied else "ops/s"
    lines = [
        "## sharebench compare",
        "",
        f"- Baseline: {c.baseline.describe()}",
        f"- Current: {c.current.describe()}",
        f"- {c.normalization.describe()}",
        f"- Regression: {c.rule.describe()}; {len(compared)} benchmarks compared, "
        f"99% bootstrap CI of the throughput ratio, ratio > 1 = faster",
        f"- Run-to-run spread of the log ratios (sigma_run): {c.run_noise:.3f}"
        f" (±{math.expm1(c.run_noise) * 100:.1f} %; capped at {c.drift:.3f}, the runs' own"
        f" pass-to-pass drift); noise floor {math.expm1(c.rule.noise * c.run_noise) * 100:.0f} %",
        "",
    ]
    ordered = compared.assign(
        _severity=[0 if r else _ORDER.get(v, 9)
                   for r, v in zip(compared["regression"], compared["verdict"], strict=True)]
    ).sort_values(["_severity", "ratio"], kind="stable")
    header = ["benchmark", f"baseline {unit}", f"current {unit}", "ratio", "99% CI",
              "p (Holm)", "noise floor", "verdict"]
    body = []
    for r in records(ordered):
        verdict = "**REGRESSION**" if r["regression"] else str(r["verdict"])
        fmt = _fmt_norm if c.normalization.applied else _fmt_rate
        body.append([
            f"`{r['benchmark']}`",
            fmt(r["baseline_median_ops_s"]),
            fmt(r["current_median_ops_s"]),
            f"{r['ratio']:.3f}",
            f"{r['ci_low']:.3f}-{r['ci_high']:.3f}",
            p_value(r["p_holm"]),
            f"{r['noise_floor'] * 100:.0f}%" if math.isfinite(r["noise_floor"]) else "",
            verdict,
        ])
    if body:
        lines.append(pipe_table(header, body, right={1, 2, 3, 4, 5, 6}))
        lines.append("")
    for verdict, title in ((ONLY_BASELINE, "Only in baseline"), (ONLY_CURRENT, "Only in current")):
        names = c.listed(verdict)
        if names:
            lines.append(f"{title} ({len(names)}): " + ", ".join(f"`{n}`" for n in names))
    failed = c.table[c.table["verdict"] == FAILED_NOW]
    if len(failed):
        lines.append(f"**Failed now** ({len(failed)}), ok in the baseline:")
        lines.extend(f"- `{r['benchmark']}`: {r['note']}" for r in records(failed))
    skipped = c.table[c.table["verdict"] == NOT_COMPARED]
    if len(skipped):
        lines.append(f"Not compared ({len(skipped)}):")
        lines.extend(f"- `{r['benchmark']}`: {r['note']}" for r in records(skipped))
    counts = compared["verdict"].value_counts()
    n_reg = len(c.regressions)
    lines += [
        "",
        f"**{n_reg} regression{'s' if n_reg != 1 else ''}**"
        + (f", **{len(failed)} failed now**" if len(failed) else "") + "; "
        + ", ".join(f"{int(counts.get(v, 0))} {v}" for v in COMPARED_VERDICTS),
    ]
    return "\n".join(lines).rstrip() + "\n"
