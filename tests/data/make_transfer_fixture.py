"""Regenerate ``plot_transfer.csv`` (+ rounds): ``python tests/data/make_transfer_fixture.py``.

A made-up run (fixed seed, fixed run info, no benchmark runs) with the increment rows of a
few mechanisms *and* bulk transfers: four mechanisms and the memcpy limit at 1 KiB..64 MiB,
one process, fork; plus one failed transfer row. Written with
:func:`sharebench.results.write_run`, so it matches the schema exactly.
"""

from __future__ import annotations

import random
from pathlib import Path

from make_plot_fixtures import RUN, _record

from sharebench.results import write_run
from sharebench.schema import BenchmarkRecord

HERE = Path(__file__).parent
SIZES = tuple(1024 * 4**i for i in (0, 3, 6, 8))

# (family, mechanism, sync, MB/s at the largest size, ops/s ceiling for tiny payloads)
TRANSFERS = [
    ("harness", "memcpy", "none", 20_000.0, 5.0e6),
    ("shm", "shm-numpy", "atomic", 18_000.0, 1.5e5),
    ("message", "pipe", "atomic", 700.0, 1.5e5),
    ("message", "queue", "atomic", 350.0, 5.0e4),
    ("manager", "manager-list", "atomic", 170.0, 6.0e3),
]


def transfer_records(rng: random.Random) -> list[BenchmarkRecord]:
    """One record per transfer mechanism and size: ops/s = min(ceiling, bandwidth / size)."""
    out = []
    for family, mech, sync, mb_s, ceiling in TRANSFERS:
        for size in SIZES:
            ops_s = min(ceiling, mb_s * 1e6 / size)
            rec = _record(family, mech, sync, "transfer", 1, "fork", ops_s, 0.0, rng)
            rec.payload_bytes = size
            out.append(rec)
    return out


def main() -> None:
    rng = random.Random(6)
    recs = [
        _record("sharedctypes", "value", "lock", "increment", p, "fork", 2e6 / p, 0.0, rng)
        for p in (1, 2)
    ]
    recs += [_record("atomics", "shm", "atomic", "increment", p, "fork", 1.7e5, 0.0, rng)
             for p in (1, 2)]
    recs += transfer_records(rng)
    failed = _record("message", "queue", "atomic", "transfer", 1, "fork", 1.0, 0.0, rng)
    failed.payload_bytes = 4096
    failed.status = "error: transfer: nothing arrived for 30 s"
    failed.round_seconds, failed.round_lost, failed.issued_ops = [], [], 0
    recs.append(failed)
    write_run(recs, RUN, HERE / "plot_transfer.csv")


if __name__ == "__main__":
    main()
