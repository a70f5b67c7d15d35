"""Regenerate the plot fixtures: ``python tests/data/make_plot_fixtures.py``.

They are written with :func:`sharebench.results.write_run`, so they match schema v1 exactly,
from made-up but plausible numbers (fixed seed, fixed run info): no benchmark runs.

* ``plot_fork.csv`` (+ rounds): one start method, two operations, 1/2/4 processes, harness
  rows, ``none`` variants that lose updates.
* ``plot_errors.csv`` (no rounds file): the same with two failed benchmarks.
* ``plot_methods.csv`` (+ rounds): fork, forkserver and spawn.
"""

from __future__ import annotations

import random
from pathlib import Path

from sharebench.results import write_run
from sharebench.schema import BenchmarkRecord, RunInfo

HERE = Path(__file__).parent

RUN = RunInfo(
    run_id="20260115T100000Z-abc123",
    timestamp_utc="2026-01-15T10:00:00+00:00",
    profile="quick",
    hostname="benchbox",
    cpu_model="Test CPU @ 3.0GHz",
    cpu_count=2,
    python="CPython 3.11.7",
    platform="Linux-6.1.0-x86_64",
    git_commit="0123456789ab",
)

# (family, mechanism, sync, operation, ops/s at 1 process, scaling per doubling, lost share)
SPECS: list[tuple[str, str, str, str, float, float, float]] = [
    ("sharedctypes", "value", "lock", "increment", 2.0e6, 0.6, 0.0),
    ("sharedctypes", "value", "none", "increment", 4.0e6, 0.9, 0.35),
    ("sharedctypes", "rawvalue", "lock", "increment", 2.6e6, 0.6, 0.0),
    ("manager", "manager-value", "lock", "increment", 2.0e4, 0.8, 0.0),
    ("manager", "manager-value", "none", "increment", 2.4e4, 0.9, 0.2),
    ("shm", "shm-buffer", "lock", "increment", 3.0e6, 0.55, 0.0),
    ("shm", "shm-buffer", "none", "increment", 1.2e7, 1.6, 0.5),
    ("sharedctypes", "array", "lock", "append", 1.5e6, 0.6, 0.0),
    ("manager", "manager-list", "lock", "append", 1.8e4, 0.85, 0.0),
    ("shm", "shm-buffer", "atomic", "append", 2.2e6, 0.7, 0.0),
]
HARNESS = [
    ("harness", "noop", "none", "increment", 5.0e7),
    ("harness", "reference", "none", "increment", 3.0e7),
]


def records(
    start_methods: tuple[str, ...], processes: tuple[int, ...], rng: random.Random
) -> list[BenchmarkRecord]:
    """Records for every spec, start method and process count, with noisy rounds."""
    out = []
    for method in start_methods:
        slow = {"fork": 1.0, "forkserver": 0.97, "spawn": 0.93}.get(method, 1.0)
        for family, mech, sync, op, rate, scale, lost_share in SPECS:
            for p in processes:
                steps = p.bit_length() - 1
                ops_s = rate * (scale**steps) * slow
                out.append(_record(family, mech, sync, op, p, method, ops_s,
                                   lost_share if p > 1 else 0.0, rng))
        for family, mech, sync, op, rate in HARNESS:
            out.append(_record(family, mech, sync, op, 1, method, rate * slow, 0.0, rng))
    return out


def _record(
    family: str, mech: str, sync: str, op: str, p: int, method: str,
    ops_s: float, lost_share: float, rng: random.Random,
) -> BenchmarkRecord:
    ops_per_worker = 20_000
    ops = ops_per_worker * p
    rounds = 7
    seconds = [ops / ops_s * rng.uniform(0.93, 1.08) for _ in range(rounds)]
    lost = [int(ops * lost_share * rng.uniform(0.8, 1.2)) for _ in range(rounds)]
    return BenchmarkRecord(
        family=family, mechanism=mech, sync=sync, operation=op, processes=p,
        start_method=method, ops_per_worker=ops_per_worker, warmup_rounds=1,
        round_target_s=0.05, setup_s=0.02 if method == "fork" else 0.15,
        round_seconds=seconds, round_lost=lost, issued_ops=ops * rounds,
        lost_updates=sum(lost),
    )


def main() -> None:
    """Write the three fixture runs (and remove the rounds file of the errors one)."""
    rng = random.Random(3)
    write_run(records(("fork",), (1, 2, 4), rng), RUN, HERE / "plot_fork.csv")

    recs = records(("fork",), (1, 2, 4), rng)
    for rec in recs:
        if (rec.mechanism, rec.sync, rec.processes) in {
            ("manager-list", "lock", 4), ("shm-buffer", "none", 2)
        }:
            rec.status = "error: worker died"
            rec.round_seconds = []
            rec.round_lost = []
            rec.lost_updates = 0
            rec.issued_ops = 0
    write_run(recs, RUN, HERE / "plot_errors.csv")
    (HERE / "plot_errors.rounds.csv").unlink()

    write_run(records(("fork", "forkserver", "spawn"), (1, 2), rng), RUN,
              HERE / "plot_methods.csv")


if __name__ == "__main__":
    main()
