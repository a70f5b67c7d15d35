"""The pytest plugin as bench/ uses it: ids, options, CSV at session end, usage errors."""

from __future__ import annotations

import pytest

from sharebench.pytest_plugin import PROFILES, WorkerClock, cases
from sharebench.results import read_rounds, read_summary

BENCH = """
import pytest

@pytest.mark.sharebench("increment")
def test_increment(sharebench):
    sharebench.run()

@pytest.mark.sharebench("append")
def test_append(sharebench):
    sharebench.run()
"""

FAST = ["--sharebench-rounds=3", "--sharebench-warmup=0", "--sharebench-round-time=0.01",
        "--sharebench-passes=1", "-p", "no:cacheprovider"]


def test_quick_profile_covers_every_combination():
    quick = PROFILES["quick"]
    inc = cases("increment", quick.processes, quick.start_methods)
    app = cases("append", quick.processes, quick.start_methods)
    ids = {c.id for c in inc + app}
    for label in ["value-none", "value-lock", "rawvalue-none", "rawvalue-lock",
                  "manager-value-none", "manager-value-lock", "shm-none", "shm-lock",
                  "shm-numpy-lock"]:
        for p in (1, 2, 4):
            assert f"{label}-increment-p{p}-fork" in ids
    for label in ["array-lock", "manager-list-atomic", "shm-lock", "shareable-list-lock"]:
        for p in (1, 2, 4):
            assert f"{label}-append-p{p}-fork" in ids
    # the yardsticks run once, single-process
    assert {"noop-none-increment-p1-fork", "reference-none-increment-p1-fork"} <= ids
    assert "noop-none-increment-p2-fork" not in ids


def test_full_profile_adds_start_methods_and_eight_processes():
    full = PROFILES["full"]
    ids = {c.id for c in cases("increment", full.processes, full.start_methods)}
    assert "value-lock-increment-p8-spawn" in ids
    assert "shm-lock-increment-p4-forkserver" in ids


def test_worker_clock_reports_what_the_round_stored():
    clock = WorkerClock()
    assert clock() == 0.0
    clock.set(0.25)
    assert clock() - 0.0 == 0.25
    assert clock() == 0.0


def test_bench_run_writes_summary_rounds_and_history(pytester):
    pytester.makepyfile(test_bench=BENCH)
    out = pytester.path / "res" / "run.csv"
    result = pytester.runpytest_subprocess(
        *FAST, "--sharebench-processes=1,2", f"--sharebench-csv={out}",
        "-k", "rawvalue-lock or shm-lock-append", "--benchmark-json=bench.json",
    )
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*4 benchmarks, 0 with errors*",
                                 "*test_increment[[]rawvalue-lock-increment-p2-fork[]]*"])
    df = read_summary(out)
    assert sorted(df["benchmark"]) == sorted([
        "rawvalue-lock-increment-p1-fork", "rawvalue-lock-increment-p2-fork",
        "shm-lock-append-p1-fork", "shm-lock-append-p2-fork"])
    assert (df["status"] == "ok").all()
    assert (df["lost_updates"] == 0).all()
    assert (df["rounds"] == 3).all()
    assert (df["ops_per_round"] == df["ops_per_worker"] * df["processes"]).all()
    assert (df["run_status"] == "complete").all()
    rounds = read_rounds(out.with_name("run.rounds.csv"))
    assert len(rounds) == 12
    assert len(list((out.parent / "runs").glob("*.csv"))) == 2
    # pytest-benchmark's JSON carries per-operation times and our extra info
    import json

    data = json.loads((pytester.path / "bench.json").read_text())
    bench = {b["param"]: b for b in data["benchmarks"]}
    one = bench["rawvalue-lock-increment-p2-fork"]
    assert one["extra_info"]["lost_updates"] == 0
    row = df.set_index("benchmark").loc["rawvalue-lock-increment-p2-fork"]
    assert one["stats"]["median"] == pytest.approx(row["median_s"] / row["ops_per_round"])


def test_a_failing_benchmark_is_recorded_and_the_run_goes_on(pytester):
    pytester.makepyfile(test_bench="""
import pytest
import sharebench.mechanisms as m
from sharebench.mechanisms.base import Mechanism

def broken(local, k, base):
    raise RuntimeError("broken on purpose")

real = m.all_mechanisms
def patched(operation=None):
    out = real(operation)
    if operation in (None, "increment"):
        out = out + [m.get("rawvalue", "lock", "increment").replace(name="broken", loop=broken)]
    return out
m.all_mechanisms = patched
import sharebench.pytest_plugin as plugin
plugin.all_mechanisms = patched

@pytest.mark.sharebench("increment")
def test_increment(sharebench):
    sharebench.run()
""")
    out = pytester.path / "run.csv"
    result = pytester.runpytest_subprocess(
        *FAST, "--sharebench-processes=1", f"--sharebench-csv={out}",
        "-k", "broken or rawvalue-lock",
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*broken-lock-increment-p1-fork: error: worker 0 raised "
                                 "RuntimeError: broken on purpose*"])
    df = read_summary(out).set_index("mechanism")
    assert df.loc["broken", "status"].startswith("error: worker 0 raised RuntimeError")
    assert df.loc["rawvalue", "status"] == "ok"


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--sharebench-processes=0", "'0' is not valid; processes are integers >= 1"),
        ("--sharebench-processes=two", "'two' is not valid"),
        ("--sharebench-start-methods=fork,vfork",
         "'vfork' is not available here; valid: fork, spawn, forkserver"),
        ("--sharebench-profile=huge", "unknown profile 'huge'; valid: quick, full"),
        ("--sharebench-round-time=0", "round time must be a positive number"),
        ("--sharebench-round-time=soon", "'soon' is not a number"),
        ("--sharebench-rounds=0", "rounds must be an integer >= 1"),
    ],
)
def test_bad_bench_options_are_usage_errors(pytester, option, message):
    pytester.makepyfile(test_bench=BENCH)
    result = pytester.runpytest_subprocess(option, f"--sharebench-csv={pytester.path}/x.csv")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])
    assert not (pytester.path / "x.csv").exists()


def test_passes_spread_each_benchmark_over_the_run(pytester):
    """3 passes: every benchmark once per pass, pass-major order, one CSV row with all rounds
    measured at the k of the first pass."""
    pytester.makepyfile(test_bench=BENCH)
    out = pytester.path / "run.csv"
    result = pytester.runpytest_subprocess(
        "--sharebench-rounds=4", "--sharebench-passes=3", "--sharebench-warmup=0",
        "--sharebench-round-time=0.01", "--sharebench-processes=1", "-p", "no:cacheprovider",
        f"--sharebench-csv={out}", "-k", "rawvalue-lock or shm-lock-append", "-v",
    )
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines([
        "*test_increment[[]rawvalue-lock-increment-p1-fork-pass1[]]*",
        "*test_append[[]shm-lock-append-p1-fork-pass1[]]*",
        "*test_increment[[]rawvalue-lock-increment-p1-fork-pass2[]]*",
        "*test_append[[]shm-lock-append-p1-fork-pass2[]]*",
        "*test_increment[[]rawvalue-lock-increment-p1-fork-pass3[]]*",
        "*test_append[[]shm-lock-append-p1-fork-pass3[]]*",
    ])
    df = read_summary(out)
    assert sorted(df["benchmark"]) == ["rawvalue-lock-increment-p1-fork",
                                       "shm-lock-append-p1-fork"]
    assert (df["rounds"] == 4).all()  # 2 + 1 + 1
    assert (df["issued_ops"] == 4 * df["ops_per_round"]).all()
    rounds = read_rounds(out.with_name("run.rounds.csv"))
    assert (rounds.groupby("benchmark")["ops"].nunique() == 1).all()


def test_more_passes_than_rounds_is_a_usage_error(pytester):
    pytester.makepyfile(test_bench=BENCH)
    result = pytester.runpytest_subprocess("--sharebench-rounds=2", "--sharebench-passes=3")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*passes are integers from 1 to the number of rounds (2)*"])
