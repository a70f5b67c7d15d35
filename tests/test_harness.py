"""The harness: exact state after locked runs, what is (not) timed, calibration, bad input."""

from __future__ import annotations

import multiprocessing

import pytest

import faulty
from sharebench import mechanisms
from sharebench.errors import ConfigError
from sharebench.harness import BenchmarkRun, HarnessConfig, calibrate, run_benchmark, validate
from sharebench.mechanisms.base import StoreSpec, Unavailable
from sharebench.pools import POOLS
from sharebench.verify import worker_tag

FAST = HarnessConfig(round_time=0.01, rounds=3, warmup_rounds=1)

# The networked families need a server and have their own tests with a real one
# (test_redis.py, test_manager_tcp.py).
NETWORKED = ("redis", "manager-tcp", "ray")
SAFE_INCREMENTS = [m for m in mechanisms.all_mechanisms("increment")
                   if m.sync != "none" and m.family not in NETWORKED]
SAFE_APPENDS = [m for m in mechanisms.all_mechanisms("append")
                if m.sync != "none" and m.family not in NETWORKED]


def _pool_round(mech, start_method, processes, k):
    """Create the store, start the pool, run one round of k ops per worker, read it back."""
    ctx = multiprocessing.get_context(start_method)
    try:
        store = mech.store(ctx, StoreSpec(processes, capacity=processes * k))  # pid token
    except Unavailable as exc:  # e.g. mmap under spawn: recorded as skipped, never faked
        pytest.skip(str(exc))
    pool = POOLS[mech.workers_kind](ctx, mech, store.handles(), processes)
    try:
        pool.start()
        pool.run_round(k, store.during_round)  # receivers (queue, pipe) take their part
        if mech.operation == "increment":
            return store.read_counter()
        return sorted(int(x) for x in store.read_items())
    finally:
        pool.close()
        store.close()


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
@pytest.mark.parametrize("mech", SAFE_INCREMENTS, ids=lambda m: m.label)
def test_locked_increment_ends_with_exact_count(mech, start_method, no_leaks):
    k = 300 if mech.family == "manager" else 20_000
    assert _pool_round(mech, start_method, 2, k) == 2 * k


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
@pytest.mark.parametrize("mech", SAFE_APPENDS, ids=lambda m: m.label)
def test_locked_append_holds_every_item_once(mech, start_method, no_leaks):
    k = 300 if mech.family == "manager" else 5_000
    expected = sorted(worker_tag(w) + i for w in range(2) for i in range(k))
    assert _pool_round(mech, start_method, 2, k) == expected


def test_tutorial_value_increment_loses_updates():
    """The tutorial's `v.value += 1` from two processes: a finding, not an error."""
    rec = run_benchmark(mechanisms.get("value", "none", "increment"), 2, "fork",
                        HarnessConfig(round_time=0.05, rounds=3, warmup_rounds=0))
    assert rec.status.is_ok
    assert rec.lost_updates > 0
    assert rec.issued_ops == 3 * rec.ops_per_round


def test_locked_runs_report_zero_lost_through_the_harness():
    rec = run_benchmark(mechanisms.get("shm", "lock", "append"), 2, "fork", FAST)
    assert rec.status.is_ok
    assert (rec.lost_updates, rec.duplicates) == (0, 0)
    assert rec.issued_ops == 3 * 2 * rec.ops_per_worker
    assert rec.round_lost == [0, 0, 0]


def test_a_lock_variant_that_loses_updates_is_an_error():
    rec = run_benchmark(faulty.MISLABELLED, 2, "fork",
                        HarnessConfig(round_time=0.05, rounds=3, warmup_rounds=0))
    assert str(rec.status).startswith("error: verification failed:")
    assert "lost" in str(rec.status)


def test_start_up_is_not_timed(no_leaks):
    """Attach sleeps 0.5 s in every worker: the setup time shows it, round times do not."""
    slow = run_benchmark(faulty.SLOW_ATTACH, 2, "fork", FAST)
    fast = run_benchmark(faulty.RAWLOCK, 2, "fork", FAST)
    assert slow.status.is_ok
    assert fast.status.is_ok
    assert slow.setup_s >= 0.5
    assert fast.setup_s < 0.5
    # Rounds target 10 ms; had the 0.5 s attach been timed, every round would exceed it.
    assert max(slow.round_seconds) < 0.25
    assert sorted(slow.round_seconds)[1] < 5 * sorted(fast.round_seconds)[1] + 0.02


def test_calibration_against_a_fake_clock():
    """1 µs per op: a 50 ms target needs k = 50 000."""
    seen = []

    def round_time(k):
        seen.append(k)
        return k * 1e-6

    k = calibrate(round_time, target=0.05, cap=10**9, max_rounds=30)
    assert k == 50_000
    assert seen[0] == 1
    assert max(seen) <= 50_000  # grows towards the target, never past it


def test_calibration_respects_capacity():
    assert calibrate(lambda k: k * 1e-9, target=0.05, cap=1000, max_rounds=30) == 1000


@pytest.mark.parametrize("target", [0.02, 0.08])
def test_calibration_lands_within_factor_two_of_target(target):
    rec = run_benchmark(mechanisms.get("rawvalue", "lock", "increment"), 1, "fork",
                        HarnessConfig(round_time=target, rounds=5, warmup_rounds=1))
    median = sorted(rec.round_seconds)[2]
    assert target / 2 <= median <= target * 2


def test_round_time_is_max_end_minus_min_start():
    mech = mechanisms.get("rawvalue", "lock", "increment")
    with BenchmarkRun(mech, 2, "fork", FAST) as run:
        timing = run.pool.run_round(1000)
    assert len(timing.starts) == len(timing.ends) == 2
    assert timing.seconds == pytest.approx(max(timing.ends) - min(timing.starts))
    assert all(e > s for s, e in zip(timing.starts, timing.ends, strict=True))


@pytest.mark.parametrize(
    ("processes", "method", "message"),
    [
        (0, "fork", "processes must be an integer >= 1"),
        (-2, "fork", "processes must be an integer >= 1"),
        (2, "vfork", "valid: fork, spawn, forkserver"),
    ],
)
def test_bad_parameters_name_the_valid_choices(processes, method, message):
    with pytest.raises(ConfigError, match=message) as info:
        validate(mechanisms.get("value", "lock", "increment"), processes, method)
    assert "\n" not in str(info.value)


def test_single_process_yardsticks_refuse_more_processes():
    with pytest.raises(ConfigError, match="at most 1 process"):
        validate(mechanisms.get("reference", "none", "increment"), 2, "fork")


@pytest.mark.parametrize(
    ("name", "sync", "op", "message"),
    [
        ("valu", "lock", "increment", "unknown mechanism 'valu'; valid: array, diskcache,"),
        ("value", "atomic", "increment", "no benchmark value/atomic for increment; valid:"),
        ("value", "lock", "multiply",
         "unknown operation 'multiply'; valid: increment, append, transfer"),
    ],
)
def test_unknown_mechanism_lists_choices(name, sync, op, message):
    with pytest.raises(mechanisms.UnknownMechanism) as info:
        mechanisms.get(name, sync, op)
    assert message in str(info.value)


@pytest.mark.parametrize("round_time", [0, -1.0, float("nan"), float("inf")])
def test_non_positive_round_time_is_refused(round_time):
    with pytest.raises(ConfigError, match="round time"):
        HarnessConfig(round_time=round_time)


def test_any_exception_fails_the_benchmark_not_the_run(no_leaks):
    rec = run_benchmark(faulty.BROKEN_READ, 2, "fork", FAST)
    assert str(rec.status) == "error: LookupError: the counter went away"


@pytest.mark.parametrize("timeout", [0, -1, float("inf"), float("nan"), 1e9])
def test_round_timeout_must_be_a_sane_number(timeout):
    with pytest.raises(ConfigError, match="round timeout must be a positive number"):
        HarnessConfig(round_timeout=timeout)


def test_round_time_has_an_upper_bound():
    with pytest.raises(ConfigError, match="round time must be at most 60 s"):
        HarnessConfig(round_time=3600)
