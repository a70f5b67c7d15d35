"""The README's sentences on the libraries: each one against what it replaces, computed from
the rows, and silent where a row is missing or failed."""

from __future__ import annotations

from typing import Any

import pytest

from factories import record, run_info
from sharebench.report import findings_markdown, library_headline
from sharebench.results import read_summary, write_run


def rate(mechanism: str, sync: str, operation: str, processes: int, ops_per_s: float,
         **extra: Any) -> Any:
    """A row whose throughput is ``ops_per_s`` (1000 ops per worker per round)."""
    seconds = 1000 * processes / ops_per_s
    return record(family="x", mechanism=mechanism, sync=sync, operation=operation,
                  processes=processes, ops_per_worker=1000, round_seconds=[seconds] * 3,
                  round_lost=[0] * 3, issued_ops=3000 * processes, **extra)


def ping(mechanism: str, p50: float) -> Any:
    return rate(mechanism, "atomic", "ping-pong", 1, 1 / p50, payload_bytes=64,
                round_latency=[(p50, p50, 2 * p50, 3 * p50, 4 * p50)] * 3)


ROWS = [
    rate("faster-fifo", "atomic", "append", 1, 200e3),
    rate("queue", "atomic", "append", 1, 100e3),
    rate("faster-fifo", "atomic", "append", 4, 300e3),
    rate("queue", "atomic", "append", 4, 120e3),
    rate("ultradict", "lock", "dict-increment", 1, 30e3),
    rate("manager-dict", "lock", "dict-increment", 1, 6e3),
    rate("ultradict", "none", "lookup", 1, 2e6),
    rate("manager-dict", "atomic", "lookup", 1, 20e3),
    rate("diskcache", "none", "lookup", 1, 120e3),
    rate("lmdb", "none", "lookup", 1, 2e6),
    rate("redis", "atomic", "lookup", 1, 10e3),
    rate("shm", "posix-sem", "increment", 1, 1e9 / 140),
    rate("shm", "lock", "increment", 1, 1e9 / 280),
    rate("ray-actor", "atomic", "increment", 1, 1e9 / 600e3),
    rate("ray-actor-batch-100", "atomic", "increment", 1, 1e9 / 200e3),
    rate("manager-value", "lock", "increment", 1, 1e9 / 150e3),
    rate("value", "lock-fast", "increment", 1, 1e9 / 300),
    rate("shm-fetchadd", "atomic", "increment", 1, 1e9 / 36),
    rate("shm-fetchadd", "atomic", "increment", 2, 40e6),
    rate("fetchadd-c", "none", "increment", 2, 220e6),
    ping("zmq", 80e-6),
    ping("pipe", 25e-6),
]


@pytest.fixture
def df(tmp_path):
    write_run(ROWS, run_info(), tmp_path / "run.csv")
    return read_summary(tmp_path / "run.csv")


def test_each_library_is_set_against_what_it_replaces(df):
    lines = library_headline(df)
    text = "\n".join(lines)
    assert ("200k vs 100k appends/s at 1 process (2×); 300k vs 120k appends/s at 4 processes "
            "(2.5×)") in text
    assert "30k vs 6k increments/s at 1 process (5×)" in text
    assert "2M vs 20k lookups/s at 1 process (100×)" in text
    assert "diskcache: 120k vs 10k lookups/s at 1 process (12×)" in text
    assert "LMDB: 2M vs 10k lookups/s at 1 process (200×)" in text
    assert "140 ns per locked increment against 280 ns with `multiprocessing.Lock`" in text
    assert "pyzmq PAIR sockets over `ipc://` takes 80 µs (p50), through a `Pipe` 25 µs" in text
    assert "Ray actor as a shared counter costs 600 µs" in text
    assert "Manager proxy under its lock 150 µs" in text
    assert "100 calls per wait the actor costs 200 µs" in text
    assert "costs 36 ns per increment at 1 process, 12% of a locked `Value`" in text
    assert "40M ops/s, against 220M for the same fetch-add in a C loop" in text
    page = findings_markdown(df)
    assert all(f"- {line}\n" in page for line in lines)


def test_a_missing_or_failed_row_drops_only_its_sentence(tmp_path):
    rows = [r for r in ROWS if r.mechanism != "queue"]
    rows.append(rate("queue", "atomic", "append", 1, 100e3,
                     status="error: verification failed"))
    write_run(rows, run_info(), tmp_path / "run.csv")
    text = "\n".join(library_headline(read_summary(tmp_path / "run.csv")))
    assert "faster-fifo" not in text
    assert "UltraDict against a Manager dict" in text
    assert library_headline(read_summary(tmp_path / "run.csv").head(0)) == []
