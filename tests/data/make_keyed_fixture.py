"""Write ``plot_keyed.csv`` (+ rounds): a small run of the keyed and round-trip operations —
dict-increment (one racy variant), lookup with the workers' memory, ping-pong with latencies —
for the chart, page and report tests. Written with :func:`sharebench.results.write_run`, so it
matches the schema exactly. Run it again after a schema change."""

from __future__ import annotations

import random
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from factories import record, run_info  # noqa: E402
from sharebench.results import write_run  # noqa: E402

RUN = run_info(run_id="20261129T100000Z-cafe01", hostname="benchbox",
               cpu_model="Test CPU @ 3.0GHz", timestamp_utc="2026-11-29T10:00:00+00:00")
MIB = 2**20


def main() -> None:
    rng = random.Random(5)
    recs = []
    for mech, sync, family, rate, lost in (
        ("manager-dict", "none", "manager", 9e3, 0.004),
        ("manager-dict", "lock", "manager", 4e3, 0.0),
        ("shm-numpy", "lock", "shm", 2.5e6, 0.0),
        ("shm-numpy", "striped", "shm", 2.2e6, 0.0),
        ("thread", "lock", "thread", 6e6, 0.0),
    ):
        for p in (1, 2):
            ops = 10_000 * p
            seconds = [ops / (rate * (1.4 if p == 2 else 1)) * rng.uniform(0.95, 1.05)
                       for _ in range(5)]
            lost_r = [int(ops * lost) if p == 2 else 0 for _ in seconds]
            recs.append(record(
                family=family, mechanism=mech, sync=sync, operation="dict-increment",
                processes=p, keys=1000, ops_per_worker=10_000, round_seconds=seconds,
                round_lost=lost_r, issued_ops=ops * 5, lost_updates=sum(lost_r),
                workers_kind="thread" if family == "thread" else "process",
                memory_status="skipped: threads share the parent process"
                if family == "thread" else "ok",
                uss_growth=0.1 * MIB, pss_growth=0.05 * MIB))
    for mech, sync, family, rate, uss in (
        ("fork-dict", "none", "fork", 6e6, 7.5 * MIB),
        ("fork-dict-frozen", "none", "fork", 6e6, 7.4 * MIB),
        ("shm-flat", "none", "shm", 1.5e6, 0.2 * MIB),
        ("manager-dict", "atomic", "manager", 1.2e4, 0.1 * MIB),
    ):
        for p in (1, 2):
            ops = 50_000 * p
            seconds = [ops / (rate * p * 0.8) * rng.uniform(0.95, 1.05) for _ in range(5)]
            recs.append(record(
                family=family, mechanism=mech, sync=sync, operation="lookup", processes=p,
                keys=100_000, ops_per_worker=50_000, round_seconds=seconds,
                round_lost=[0] * 5, issued_ops=ops * 5, memory_status="ok",
                uss_growth=uss, pss_growth=uss / (p + 1)))
    for mech, family, p50 in (("pipe", "message", 22e-6), ("shm", "message", 30e-6),
                              ("manager", "manager", 140e-6)):
        for size in (64, 65536):
            rtt = p50 * (1 if size == 64 else 3)
            lat = [(rtt * rng.uniform(0.97, 1.03), rtt * 1.4, rtt * 2.5, rtt * 6, rtt * 20)
                   for _ in range(5)]
            ops = 2000
            recs.append(record(
                family=family, mechanism=mech, sync="atomic", operation="ping-pong",
                processes=1, payload_bytes=size, ops_per_worker=ops,
                round_seconds=[ops * rtt * 1.1] * 5, round_lost=[0] * 5, issued_ops=ops * 5,
                round_latency=lat, memory_status="ok", uss_growth=0.0, pss_growth=0.0))
    write_run(recs, RUN, HERE / "plot_keyed.csv")


if __name__ == "__main__":
    main()
