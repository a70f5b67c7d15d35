"""Findings from a summary CSV as Markdown: the README's table and the terminal summary.

Pure functions over a DataFrame (``results.read_summary``); the command does the I/O.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

README_START = "<!-- sharebench:findings:start -->"
README_END = "<!-- sharebench:findings:end -->"


def _si(x: float) -> str:
    """``1234567 -> '1.23M'``."""
    if not math.isfinite(x):
        return "–"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


def _ns(x: float) -> str:
    if not math.isfinite(x):
        return "–"
    if x >= 1e6:
        return f"{x / 1e6:.3g} ms"
    if x >= 1e3:
        return f"{x / 1e3:.3g} µs"
    return f"{x:.3g} ns"


def _ok(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["status"] == "ok"]


def findings_table(df: pd.DataFrame, start_method: str | None = None) -> str:
    """One Markdown row per mechanism/sync/operation: cost at 1 process, throughput per
    process count, lost updates at the highest count, status. Sorted by 1-process cost."""
    methods = list(dict.fromkeys(df["start_method"]))
    method = start_method or ("fork" if "fork" in methods else methods[0])
    sub = df[(df["start_method"] == method) & (df["payload_bytes"] == 0)]
    procs = sorted(int(p) for p in set(sub["processes"]))
    head = ["operation", "mechanism/sync", "ns/op (1 proc)"]
    head += [f"ops/s ×{p}" for p in procs] + ["lost (most procs)", "status"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    groups = []
    for (op, mech, sync), g in sub.groupby(["operation", "mechanism", "sync"], sort=False):
        by_p = {int(r.processes): r for r in g.itertuples()}
        one = by_p.get(1)
        cost = float(one.ns_per_op) if one is not None and one.status == "ok" else math.inf
        groups.append((str(op), cost, str(mech), str(sync), by_p))
    order = {"increment": 0, "append": 1}
    groups.sort(key=lambda t: (order.get(t[0], 9), t[1]))
    for op, cost, mech, sync, by_p in groups:
        cells = [op, f"`{mech}/{sync}`", _ns(cost)]
        for p in procs:
            r = by_p.get(p)
            cells.append(_si(float(r.throughput_ops_s)) if r is not None and r.status == "ok"
                         else ("error" if r is not None else ""))
        top = by_p[max(by_p)]
        lost = float(top.lost_pct)
        cells.append(f"**{lost:.1f} %**" if lost > 0 else "0")
        errors = [r for r in by_p.values() if r.status != "ok"]
        cells.append("ok" if not errors else f"{len(errors)} error(s)")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def headline(df: pd.DataFrame) -> list[str]:
    """The few sentences that answer the suite's question, computed from the data."""
    ok = _ok(df)
    out: list[str] = []

    def ns(mech: str, sync: str, op: str, p: int = 1) -> float | None:
        rows = ok[(ok["mechanism"] == mech) & (ok["sync"] == sync) & (ok["operation"] == op)
                  & (ok["processes"] == p)]
        return float(rows["ns_per_op"].median()) if len(rows) else None

    noop = ns("noop", "none", "increment")
    real = ok[(ok["family"] != "harness") & (ok["processes"] == 1)]
    if noop is not None and len(real):
        fastest = real.loc[real["ns_per_op"].idxmin()]
        out.append(
            f"Harness overhead: the empty loop costs {_ns(noop)} per operation, "
            f"{100 * noop / float(fastest['ns_per_op']):.1f} % of the fastest real operation "
            f"(`{fastest['mechanism']}/{fastest['sync']}` {fastest['operation']}, "
            f"{_ns(float(fastest['ns_per_op']))})."
        )
    value_lock, manager_lock = ns("value", "lock", "increment"), ns("manager-value", "lock",
                                                                    "increment")
    if value_lock and manager_lock:
        out.append(
            f"A locked increment on a shared `Value` costs {_ns(value_lock)}; the same through "
            f"a Manager proxy costs {_ns(manager_lock)} ({manager_lock / value_lock:.0f}× "
            "slower): every proxy access is a round trip to the server process."
        )
    racy = ok[(ok["sync"] == "none") & (ok["processes"] > 1) & (ok["lost_updates"] > 0)
              & (ok["family"] != "harness")]
    if len(racy):
        worst = racy.loc[racy["lost_pct"].idxmax()]
        out.append(
            f"Unsynchronised read-modify-write loses updates as soon as two processes share "
            f"the counter: up to {float(worst['lost_pct']):.0f} % lost "
            f"(`{worst['mechanism']}/none` at {int(worst['processes'])} processes); "
            "every lock/atomic variant lost "
            f"{int(ok[ok['sync'] != 'none']['lost_updates'].sum())}."
        )
    return out


def describe_run(df: pd.DataFrame) -> str:
    """``Run 2026…-abc on vm (AMD EPYC, 2 CPUs), CPython 3.11.7, quick profile, 2026-11-26``."""
    first: dict[str, Any] = df.iloc[0].to_dict()
    return (
        f"Run `{first['run_id']}` on {first['hostname']} ({first['cpu_model']}, "
        f"{first['cpu_count']} CPUs), {first['python']}, {first['platform']}, "
        f"{first['profile']} profile, {str(first['timestamp_utc'])[:10]}"
        + (f", commit {first['git_commit']}" if first.get("git_commit") else "")
        + "."
    )


def findings_markdown(df: pd.DataFrame) -> str:
    """Run description, headline sentences and the findings table."""
    parts = [describe_run(df), ""]
    parts += [f"- {line}" for line in headline(df)]
    errors = df[df["status"] != "ok"]
    if len(errors):
        parts.append(f"- {len(errors)} benchmark(s) failed: "
                     + "; ".join(f"`{b}`: {s}" for b, s in
                                 zip(errors["benchmark"], errors["status"], strict=True)))
    parts += ["", findings_table(df)]
    return "\n".join(parts)


def splice_readme(text: str, block: str) -> str:
    """Replace what lies between the README markers with ``block``."""
    if README_START not in text or README_END not in text:
        raise ValueError(f"README has no {README_START} ... {README_END} markers")
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    return f"{head}{README_START}\n{block}\n{README_END}{tail}"
