"""dict-increment, lookup and ping-pong: exact per-key counts, checked lookups, checked echoes,
memory per worker, and the bad input each one can get."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from sharebench import mechanisms
from sharebench.harness import HarnessConfig, run_benchmark
from sharebench.mechanisms.keyed import expected_counts, key_sequence, lookup_order, value_of
from sharebench.memory import MemoryUnavailable, parse_smaps_rollup
from sharebench.verify import check_counts, check_echoes, check_lookups

FAST = HarnessConfig(round_time=0.02, rounds=3, warmup_rounds=1)
NETWORKED = ("redis", "ray")


def _of(operation: str, *, safe: bool) -> list[Any]:
    return [m for m in mechanisms.all_mechanisms(operation)
            if m.family not in NETWORKED and (m.sync != "none") == safe]


# --- pure pieces --------------------------------------------------------------------------


def test_expected_counts_follow_each_workers_cycled_sequence():
    keys, k = 7, 100
    counts = expected_counts(2, keys, k, length=32)
    manual = np.zeros(keys, dtype=np.int64)
    for w in range(2):
        seq = key_sequence(w, keys, 32)
        for i in range(k):
            manual[seq[i % 32]] += 1
    assert counts.tolist() == manual.tolist()
    assert key_sequence(0, keys) == key_sequence(0, keys)  # reproducible
    assert key_sequence(0, keys) != key_sequence(1, keys)


def test_check_counts_tells_lost_from_duplicated_per_key():
    check = check_counts([5, 5, 5], [5, 3, 6])
    assert (check.issued, check.lost, check.duplicates, check.keys_wrong) == (15, 2, 1, 2)
    assert check.describe() == "2 of 15 lost, 1 duplicated, over 2 keys"
    assert check_counts([4, 4], [4, 4]).clean


def test_wrong_lookups_and_echoes_are_foreign_values():
    assert check_lookups(100, [0, 2]).invalid == 2
    check = check_echoes(4, [1000, 2000, 3000, 4000], wrong=1)
    assert check.invalid == 1
    assert check.latency is not None
    assert check.latency[0] == pytest.approx(2.5e-6)
    assert check.latency[-1] == pytest.approx(4e-6)


def test_lookup_order_reads_every_entry_once_before_again():
    order = list(lookup_order(3, 50))
    assert sorted(order) == [3 + 7 * i for i in range(50)]
    assert value_of(10).hex() == "0a00000000000000"


def test_smaps_rollup_parsing_and_its_absence(tmp_path):
    mem = parse_smaps_rollup("Rss: 100 kB\nPss: 40 kB\nPrivate_Clean: 4 kB\n"
                             "Private_Dirty: 8 kB\n")
    assert (mem.uss, mem.pss) == (12 * 1024, 40 * 1024)
    from sharebench.memory import read_memory

    with pytest.raises(MemoryUnavailable, match="no /proc here"):
        read_memory(1, proc=tmp_path / "nothing")


# --- dict-increment --------------------------------------------------------------------------


@pytest.mark.parametrize("processes", [1, 2, 4])
@pytest.mark.parametrize("mech", _of("dict-increment", safe=True), ids=lambda m: m.label)
def test_locked_dict_increments_lose_nothing(mech, processes, no_leaks):
    rec = run_benchmark(mech, processes, "fork", FAST, keys=50)
    assert rec.status.is_ok, rec.status
    assert rec.lost_updates == 0
    assert rec.duplicates == 0
    assert rec.issued_ops == 3 * rec.ops_per_round


def test_the_racy_manager_dict_loses_updates_and_says_so(no_leaks):
    """``d[key] += 1`` on a Manager dict at 2 processes, few keys: the race shows."""
    mech = mechanisms.get("manager-dict", "none", "dict-increment")
    rec = run_benchmark(mech, 2, "fork", HarnessConfig(round_time=0.05, rounds=3,
                                                       warmup_rounds=0), keys=2)
    assert rec.status.is_ok  # a racy variant is allowed to lose: that is the finding
    assert rec.lost_updates > 0


def test_a_lossy_dict_store_fails_its_locked_variant(no_leaks):
    from sharebench.mechanisms.threaded import ThreadDictStore

    class Lossy(ThreadDictStore):
        drops = 0

        def read_counts(self) -> list[int]:
            counts = super().read_counts()
            self.drops += 1
            counts[0] -= self.drops  # each round, one more increment of key 0 vanished
            return counts

    mech = mechanisms.get("thread", "lock", "dict-increment").replace(store=Lossy)
    rec = run_benchmark(mech, 2, "fork", FAST, keys=5)
    assert str(rec.status).startswith("error: verification failed: 1 of ")
    assert "over 1 keys" in str(rec.status)


# --- lookup ---------------------------------------------------------------------------------


@pytest.mark.parametrize("processes", [1, 2])
@pytest.mark.parametrize("mech", [m for m in mechanisms.all_mechanisms("lookup")
                                  if m.family not in NETWORKED], ids=lambda m: m.label)
def test_every_lookup_reads_the_right_values(mech, processes, no_leaks):
    rec = run_benchmark(mech, processes, "fork", FAST, keys=2000)
    assert rec.status.is_ok, rec.status
    assert rec.memory_status == "ok"


def test_a_wrong_lookup_value_is_caught_even_without_a_lock(no_leaks):
    from sharebench.mechanisms.forkdict import ForkDictStore

    class Corrupt(ForkDictStore):
        def __init__(self, ctx: Any, spec: Any) -> None:
            super().__init__(ctx, spec)
            assert self.table is not None
            self.table[3] = value_of(10)  # key 3 holds key 10's value

    mech = mechanisms.get("fork-dict", "none", "lookup").replace(store=Corrupt)
    rec = run_benchmark(mech, 1, "fork", FAST, keys=20)
    assert str(rec.status).startswith("error: verification failed: 0 of ")
    assert "foreign values" in str(rec.status)


def test_reading_an_inherited_dict_copies_it_into_each_worker(no_leaks):
    """Copy-on-read: every entry read dirties its page; the growth is measured per worker."""
    mech = mechanisms.get("fork-dict", "none", "lookup")
    rec = run_benchmark(mech, 1, "fork", HarnessConfig(round_time=0.05, rounds=3,
                                                       warmup_rounds=1), keys=200_000)
    assert rec.status.is_ok
    assert rec.memory_status == "ok"
    assert rec.uss_growth > 4 * 2**20  # 200,000 ints and bytes objects: ~14 MB touched


def test_fork_dict_under_spawn_is_skipped_not_faked(no_leaks):
    rec = run_benchmark(mechanisms.get("fork-dict", "none", "lookup"), 1, "spawn", FAST,
                        keys=100)
    assert str(rec.status).startswith("skipped: fork-dict needs the fork start method")


def test_unreadable_memory_is_a_reason_not_a_crash(no_leaks, monkeypatch):
    from sharebench import harness

    def unreadable(pid: int) -> Any:
        raise MemoryUnavailable("no /proc here")

    monkeypatch.setattr(harness, "read_memory", unreadable)
    rec = run_benchmark(mechanisms.get("shm-flat", "none", "lookup"), 1, "fork", FAST,
                        keys=100)
    assert rec.status.is_ok
    assert rec.memory_status == "skipped: no /proc here"
    assert np.isnan(rec.uss_growth)


# --- ping-pong --------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [64, 65536])
@pytest.mark.parametrize("mech", [m for m in mechanisms.all_mechanisms("ping-pong")
                                  if m.family not in NETWORKED], ids=lambda m: m.label)
def test_every_ping_pong_echoes_and_times_its_round_trips(mech, size, no_leaks):
    rec = run_benchmark(mech, 1, "fork", FAST, payload_bytes=size)
    if rec.status.is_skipped and mech.name == "posix-mq":  # 8 KiB is the kernel's limit here
        assert "msgsize_max" in rec.status.reason
        return
    assert rec.status.is_ok, rec.status
    assert len(rec.round_latency) == 3
    p50, p90, p99, p999, top = rec.round_latency[0]
    assert 0 < p50 <= p90 <= p99 <= p999 <= top < 1.0


def test_a_corrupted_echo_is_caught(no_leaks):
    from sharebench.mechanisms.pingpong import PipePing

    class Flipping(PipePing):
        def echo(self) -> None:
            got = bytearray(self.mine.recv_bytes())
            got[-1] ^= 0xFF
            self.mine.send_bytes(got)

    mech = mechanisms.get("pipe", "atomic", "ping-pong").replace(store=Flipping)
    rec = run_benchmark(mech, 1, "fork", FAST, payload_bytes=64)
    assert str(rec.status).startswith("error: verification failed:")
    assert "foreign values" in str(rec.status)


# --- bad input ----------------------------------------------------------------------------------


BENCH = """
import pytest

@pytest.mark.sharebench("lookup")
def test_lookup(sharebench):
    sharebench.run()
"""


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--sharebench-dict-keys=0", "dict keys must lie between 1 and 1,000,000"),
        ("--sharebench-lookup-entries=20000000",
         "lookup entries must lie between 1 and 10,000,000"),
        ("--sharebench-pingpong-sizes=64,8", "message sizes (bytes) must lie between 16"),
        ("--sharebench-pingpong-sizes=big", "'big' is not an integer"),
    ],
)
def test_nonsense_sizes_are_usage_errors(pytester, option, message):
    pytester.makepyfile(test_bench=BENCH)
    result = pytester.runpytest_subprocess(option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])
