"""Findings from a summary CSV as Markdown: the README's table and the terminal summary.

Pure functions over a DataFrame (``results.read_summary``); the command does the I/O. What a
row means, and which variant is the fastest correct one, comes from :mod:`sharebench.views`,
as on the page.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from sharebench.fmt import duration_ns, markers, pct, si, size, splice
from sharebench.status import Status
from sharebench.views import findings, series_label, slowed_rows, status_counts

if TYPE_CHECKING:
    import pandas as pd

README_START, README_END = markers("findings")


Row = dict[str, Any]


def _rows(df: pd.DataFrame) -> list[Row]:
    return [{str(k): v for k, v in r.items()} for r in df.to_dict("records")]


def findings_table(df: pd.DataFrame, start_method: str | None = None) -> str:
    """One Markdown row per mechanism/sync/operation: cost at 1 process, throughput per
    process count, lost updates at the highest count, status. Sorted by 1-process cost."""
    rows = _rows(df)
    methods = list(dict.fromkeys(str(r["start_method"]) for r in rows))
    method = start_method or ("fork" if "fork" in methods else methods[0])
    rows = [r for r in rows if r["start_method"] == method and int(r["payload_bytes"]) == 0]
    procs = sorted({int(r["processes"]) for r in rows})
    head = ["operation", "mechanism/sync", "ns/op (1 proc)"]
    head += [f"ops/s ×{p}" for p in procs] + ["lost (most procs)", "status"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    grouped: dict[tuple[str, str, str], dict[int, Row]] = {}
    for r in rows:
        key = (str(r["operation"]), str(r["mechanism"]), str(r["sync"]))
        grouped.setdefault(key, {})[int(r["processes"])] = r
    order = {"increment": 0, "append": 1, "dict-increment": 2, "lookup": 3}

    def cost(by_p: dict[int, Row]) -> float:
        one = by_p.get(1)
        return float(one["ns_per_op"]) if one is not None and one["status"] == "ok" else math.inf

    for (op, mech, sync), by_p in sorted(
        grouped.items(), key=lambda kv: (order.get(kv[0][0], 9), cost(kv[1]))
    ):
        cells = [op, f"`{mech}/{sync}`", duration_ns(cost(by_p))]
        for p in procs:
            cell = by_p.get(p)
            if cell is None:
                cells.append("")
            else:
                kind = Status.parse(str(cell["status"])).kind
                cells.append(si(float(cell["throughput_ops_s"])) if kind == "ok" else kind)
        lost = float(by_p[max(by_p)]["lost_pct"])
        cells.append(f"**{lost:.1f} %**" if lost > 0 else "0")
        kinds = [Status.parse(str(r["status"])).kind for r in by_p.values()]
        bad = [f"{kinds.count(k)} {k}" for k in ("error", "skipped") if k in kinds]
        cells.append(", ".join(bad) if bad else "ok")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def transfer_table(df: pd.DataFrame) -> str:
    """Bulk transfers: MB/s per mechanism (rows) and payload size (columns); empty if none."""
    rows = [r for r in _rows(df) if r["operation"] == "transfer" and r["status"] == "ok"]
    if not rows:
        return ""
    sizes = sorted({int(r["payload_bytes"]) for r in rows})
    by_mech: dict[str, dict[int, float]] = {}
    for r in rows:
        label = f"`{r['mechanism']}/{r['sync']}`"
        rate = float(r["throughput_ops_s"]) * int(r["payload_bytes"]) / 1e6
        by_mech.setdefault(label, {})[int(r["payload_bytes"])] = rate
    head = ["transfer (MB/s)", *(size(n) for n in sizes)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    biggest = sizes[-1]
    for label, rates in sorted(by_mech.items(), key=lambda kv: -kv[1].get(biggest, 0.0)):
        cells = [label] + [si(rates[n]) if n in rates else "" for n in sizes]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def transfer_headline(df: pd.DataFrame) -> list[str]:
    """How close the best inter-process transfer gets to memcpy at the largest size."""
    rows = [r for r in _rows(df) if r["operation"] == "transfer" and r["status"] == "ok"]
    if not rows:
        return []
    biggest = max(int(r["payload_bytes"]) for r in rows)
    at = [r for r in rows if int(r["payload_bytes"]) == biggest]
    memcpy = [r for r in at if r["mechanism"] == "memcpy"]
    real = [r for r in at if r["family"] != "harness"]
    if not memcpy or not real:
        return []
    best = max(real, key=lambda r: float(r["throughput_ops_s"]))
    limit = float(memcpy[0]["throughput_ops_s"]) * biggest / 1e9
    got = float(best["throughput_ops_s"]) * biggest / 1e9
    return [
        f"Bulk data: at {size(biggest)} `{best['mechanism']}` moves {got:.3g} GB/s between "
        f"processes, {got / limit:.2f}× of this machine's memcpy ({limit:.3g} GB/s)."
    ]


def headline(df: pd.DataFrame) -> list[str]:
    """The few sentences that answer the suite's question, computed from the data."""
    ok = [r for r in _rows(df) if r["status"] == "ok"]
    out: list[str] = []

    def ns(mech: str, sync: str, op: str) -> float | None:
        vals = [float(r["ns_per_op"]) for r in ok
                if (r["mechanism"], r["sync"], r["operation"], int(r["processes"]))
                == (mech, sync, op, 1)]
        return sorted(vals)[len(vals) // 2] if vals else None

    noop = ns("noop", "none", "increment")
    # Real = shared between processes; threads in one process are a baseline, like reference.
    real = [r for r in ok if r["family"] != "harness" and int(r["processes"]) == 1
            and r["workers_kind"] == "process" and int(r["payload_bytes"]) == 0]
    if noop is not None and real:
        fastest = min(real, key=lambda r: float(r["ns_per_op"]))
        out.append(
            f"Harness overhead: the empty loop costs {duration_ns(noop)} per operation, "
            f"{100 * noop / float(fastest['ns_per_op']):.1f} % of the fastest operation on "
            f"state shared between processes (`{fastest['mechanism']}/{fastest['sync']}` "
            f"{fastest['operation']}, {duration_ns(float(fastest['ns_per_op']))})."
        )
    value_lock = ns("value", "lock", "increment")
    manager_lock = ns("manager-value", "lock", "increment")
    if value_lock and manager_lock:
        out.append(
            f"A locked increment on a shared `Value` costs {duration_ns(value_lock)}; the same "
            f"through a Manager proxy costs {duration_ns(manager_lock)} "
            f"({manager_lock / value_lock:.0f}× "
            "slower): every proxy access is a round trip to the server process."
        )
    racy = [r for r in ok if r["sync"] == "none" and int(r["processes"]) > 1
            and int(r["lost_updates"]) > 0 and r["family"] != "harness"
            and r["operation"] == "increment"]
    if racy:
        worst = max(racy, key=lambda r: float(r["lost_pct"]))
        safe_lost = sum(int(r["lost_updates"]) for r in ok if r["sync"] != "none")
        out.append(
            f"Unsynchronised read-modify-write loses updates as soon as two processes share "
            f"the counter: up to {pct(float(worst['lost_pct']))} % lost "
            f"(`{worst['mechanism']}/none` at {int(worst['processes'])} processes); "
            f"every lock/atomic variant lost {safe_lost}."
        )
    for f in findings(df):
        if f.best is None or f.kind != "throughput":
            continue
        n = int(f.best["processes"])
        out.append(
            f"Fastest correct way to {f.operation} between processes here: "
            f"`{series_label(f.best)}`, {si(float(f.best['throughput_ops_s']))} ops/s with {n} "
            f"process{'es' if n != 1 else ''}."
        )
    return out


def _ok_row(rows: list[Row], mech: str, sync: str, op: str, processes: int) -> Row | None:
    found = [r for r in rows if (r["mechanism"], r["sync"], r["operation"],
                                  int(r["processes"])) == (mech, sync, op, processes)
             and r["status"] == "ok" and r["start_method"] == "fork"]
    return found[0] if found else None


def keyed_headline(df: pd.DataFrame) -> list[str]:
    """Dicts, read-mostly data and round trips: the sentences users come for."""
    rows = _rows(df)
    out: list[str] = []
    for f in findings(df):
        if f.operation != "dict-increment" or f.best is None:
            continue
        p = int(f.best["processes"])
        manager = _ok_row(rows, "manager-dict", "lock", "dict-increment", p)
        vs = (f", {float(f.best['throughput_ops_s']) / float(manager['throughput_ops_s']):.0f}× "
              f"the Manager dict under its lock ({si(float(manager['throughput_ops_s']))} "
              "ops/s)") if manager else ""
        out.append(f"Fastest correct way to share a dict between processes here: "
                   f"`{series_label(f.best)}`, {si(float(f.best['throughput_ops_s']))} "
                   f"increments/s with {p} process{'es' if p != 1 else ''}{vs}.")
    racy = _ok_row(rows, "manager-dict", "none", "dict-increment", 2)
    if racy is not None:
        keys = int(racy["keys"])
        out.append(f"`d[key] += 1` on a Manager dict (the usual answer) lost "
                   f"{pct(float(racy['lost_pct']))} % of its increments at 2 processes over "
                   f"{keys:,} keys: a get and a set round trip with a window between them, "
                   "lost only when both processes hit the same key in it (the fewer the "
                   "keys, the more is lost).")
    grow = {m: _ok_row(rows, m, "none", "lookup", 1) for m in ("fork-dict", "fork-dict-frozen")}
    if all(r is not None and r["memory_status"] == "ok" for r in grow.values()):
        plain, frozen = grow["fork-dict"], grow["fork-dict-frozen"]
        assert plain is not None
        assert frozen is not None
        out.append(
            f"Fork-inherited dict of {int(plain['keys']):,} entries: each worker's unique "
            f"memory grew by {float(plain['worker_uss_growth_bytes']) / 2**20:.1f} MiB "
            f"while it read every entry; with `gc.freeze()`: "
            f"{float(frozen['worker_uss_growth_bytes']) / 2**20:.1f} MiB (reading an object "
            "writes its reference count, so the page is copied; freezing only keeps the "
            "garbage collector away).")
    pipe = [r for r in rows if (r["mechanism"], r["operation"], int(r["payload_bytes"]))
            == ("pipe", "ping-pong", 64) and r["status"] == "ok"]
    if pipe:
        p50 = float(pipe[0]["latency_p50_s"])
        c = 1 / 162_441
        out.append(f"A 64-byte round trip through a `Pipe` takes {duration_ns(p50 * 1e9)} "
                   f"(p50; p99 {duration_ns(float(pipe[0]['latency_p99_s']) * 1e9)}), "
                   f"{p50 / c:.1f}× ipc-bench's C pipe ({duration_ns(c * 1e9)}, 100 B): each "
                   "message pays Python's send/receive calls, a pickle-free copy into a new "
                   "bytes object, and two process wake-ups.")
    return out


def _rate(row: Row) -> float:
    return float(row["throughput_ops_s"])


def _times(a: float, b: float) -> str:
    """The ratio a/b for people: ``3.2×``, ``0.41×``, ``366×``."""
    return f"{a / b:.2g}×" if a / b < 10 else f"{a / b:.0f}×"


def _versus(rows: list[Row], mine: tuple[str, str], theirs: tuple[str, str], op: str,
            unit: str, processes: tuple[int, ...] = (1, 4)) -> list[str]:
    """``12.3k vs 4.5k ops/s at 1 process (2.7×)`` for each process count with both ok."""
    out = []
    for p in processes:
        a, b = _ok_row(rows, *mine, op, p), _ok_row(rows, *theirs, op, p)
        if a is not None and b is not None:
            out.append(f"{si(_rate(a))} vs {si(_rate(b))} {unit} at {p} "
                       f"process{'es' if p > 1 else ''} ({_times(_rate(a), _rate(b))})")
    return out


def library_headline(df: pd.DataFrame) -> list[str]:
    """The libraries users pick instead of the standard mechanisms, each against the one it
    replaces, from this run (a sentence only where both rows are ok)."""
    rows = _rows(df)
    out: list[str] = []
    fifo = _versus(rows, ("faster-fifo", "atomic"), ("queue", "atomic"), "append", "appends/s")
    if fifo:
        out.append("faster-fifo against `multiprocessing.Queue` (one item per put; the "
                   "receiver drains with `get_many`): " + "; ".join(fifo) + ".")
    ultra = (_versus(rows, ("ultradict", "lock"), ("manager-dict", "lock"), "dict-increment",
                     "increments/s")
             + _versus(rows, ("ultradict", "none"), ("manager-dict", "atomic"), "lookup",
                       "lookups/s"))
    if ultra:
        out.append("UltraDict against a Manager dict: " + "; ".join(ultra) + ".")
    disk = [f"{label}: {part}" for mech, label in (("diskcache", "diskcache"), ("lmdb", "LMDB"))
            for part in _versus(rows, (mech, "none"), ("redis", "atomic"), "lookup",
                                "lookups/s")]
    if disk:
        out.append("Reading a table on disk (from the page cache) against Redis `GET` over "
                   "loopback: " + "; ".join(disk) + ".")
    sem, lock = (_ok_row(rows, "shm", "posix-sem", "increment", 1),
                 _ok_row(rows, "shm", "lock", "increment", 1))
    if sem is not None and lock is not None:
        two = _versus(rows, ("shm", "posix-sem"), ("shm", "lock"), "increment", "ops/s", (2,))
        out.append(
            f"A POSIX named semaphore (posix_ipc) as the lock of a shared-memory counter: "
            f"{duration_ns(float(sem['ns_per_op']))} per locked increment against "
            f"{duration_ns(float(lock['ns_per_op']))} with `multiprocessing.Lock`"
            + (f"; {two[0]}" if two else "") + ".")
    zmq, pipe = _ok_ping(rows, "zmq"), _ok_ping(rows, "pipe")
    if zmq is not None and pipe is not None:
        out.append(
            f"A 64-byte round trip through pyzmq PAIR sockets over `ipc://` takes "
            f"{duration_ns(float(zmq['latency_p50_s']) * 1e9)} (p50), through a `Pipe` "
            f"{duration_ns(float(pipe['latency_p50_s']) * 1e9)}.")
    ray, manager = (_ok_row(rows, "ray-actor", "atomic", "increment", 1),
                    _ok_row(rows, "manager-value", "lock", "increment", 1))
    if ray is not None and manager is not None:
        batch = _ok_row(rows, "ray-actor-batch-100", "atomic", "increment", 1)
        out.append(
            f"A Ray actor as a shared counter costs {duration_ns(float(ray['ns_per_op']))} per "
            f"increment (one remote call, waited for), a Manager proxy under its lock "
            f"{duration_ns(float(manager['ns_per_op']))}"
            + (f"; with 100 calls per wait the actor costs "
               f"{duration_ns(float(batch['ns_per_op']))}" if batch is not None else "")
            + ".")
    out += counter_headline(rows)
    return out


def _ok_ping(rows: list[Row], mech: str, size_bytes: int = 64) -> Row | None:
    found = [r for r in rows if (r["mechanism"], r["operation"], int(r["payload_bytes"]))
             == (mech, "ping-pong", size_bytes) and r["status"] == "ok"]
    return found[0] if found else None


def counter_headline(rows: list[Row]) -> list[str]:
    """The lock-free counters against ``value/lock-fast`` and the C loop's limit."""
    fast = _ok_row(rows, "value", "lock-fast", "increment", 1)
    mine = _ok_row(rows, "shm-fetchadd", "atomic", "increment", 1)
    if fast is None or mine is None:
        return []
    ns_mine, ns_fast = float(mine["ns_per_op"]), float(fast["ns_per_op"])
    text = (f"Lock-free counter: our C fetch-add (`shm-fetchadd`) costs {duration_ns(ns_mine)} "
            f"per increment at 1 process, {ns_mine / ns_fast:.0%} of a locked `Value` "
            f"(`value/lock-fast`, {duration_ns(ns_fast)})")
    for label, mech in (("atomicshm", "shm-atomicshm"), ("`atomics`", "shm")):
        other = _ok_row(rows, mech, "atomic", "increment", 1)
        if other is not None:
            text += f"; {label} {duration_ns(float(other['ns_per_op']))}"
    two = _ok_row(rows, "shm-fetchadd", "atomic", "increment", 2)
    limit = _ok_row(rows, "fetchadd-c", "none", "increment", 2)
    if two is not None and limit is not None:
        text += (f". At 2 processes on one contended cache line: {si(_rate(two))} ops/s, "
                 f"against {si(_rate(limit))} for the same fetch-add in a C loop (the "
                 "hardware's limit)")
    return [text + "."]


def latency_table(df: pd.DataFrame) -> str:
    """Round trips: p50 (p99) per mechanism (rows) and message size (columns)."""
    rows = [r for r in _rows(df) if r["operation"] == "ping-pong" and r["status"] == "ok"]
    if not rows:
        return ""
    sizes = sorted({int(r["payload_bytes"]) for r in rows})
    by: dict[str, dict[int, Row]] = {}
    for r in rows:
        by.setdefault(f"`{r['mechanism']}`", {})[int(r["payload_bytes"])] = r
    head = ["ping-pong p50 (p99)", *(size(n) for n in sizes)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    smallest = sizes[0]
    for label, cells in sorted(by.items(), key=lambda kv: float(
            kv[1][smallest]["latency_p50_s"]) if smallest in kv[1] else math.inf):
        line = [label] + [
            f"{duration_ns(float(cells[n]['latency_p50_s']) * 1e9)} "
            f"({duration_ns(float(cells[n]['latency_p99_s']) * 1e9)})" if n in cells else ""
            for n in sizes]
        lines.append("| " + " | ".join(line) + " |")
    return "\n".join(lines)


def describe_run(df: pd.DataFrame) -> str:
    """``Run 2026…-abc on vm (AMD EPYC, 2 CPUs), CPython 3.11.7, quick profile, 2026-11-26``."""
    first = _rows(df.head(1))[0]
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
    counts = status_counts(df)
    for kind, n, verb in (("error", counts.failed, "failed"),
                          ("skipped", counts.skipped, "were skipped")):
        if n:
            rows = [r for r in _rows(df) if Status.parse(str(r["status"])).kind == kind]
            parts.append(f"- {n} benchmark(s) {verb}: "
                         + "; ".join(f"`{r['benchmark']}`: {r['status']}" for r in rows))
    slowed = slowed_rows(df)
    if len(slowed):
        parts.append(f"- **{len(slowed)} benchmark(s) were made slower on purpose** "
                     "(`--sharebench-slowdown`, to validate regression detection): not a clean "
                     "run; " + ", ".join(f"`{b}` ×{f:g}" for b, f in
                                         zip(slowed["benchmark"], slowed["slowdown"],
                                             strict=True)))
    parts += [f"- {line}" for line in transfer_headline(df)]
    parts += [f"- {line}" for line in keyed_headline(df)]
    parts += [f"- {line}" for line in library_headline(df)]
    parts += ["", findings_table(df)]
    transfers = transfer_table(df)
    if transfers:
        parts += ["", transfers]
    latencies = latency_table(df)
    if latencies:
        parts += ["", latencies]
    return "\n".join(parts)


def splice_readme(text: str, block: str) -> str:
    """Replace what lies between the README's findings markers with ``block``."""
    return splice(text, block, "findings")
