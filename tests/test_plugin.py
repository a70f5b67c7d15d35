"""The pytest plugin as bench/ uses it: ids, options, CSV at session end, usage errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from sharebench.fixture import WorkerClock
from sharebench.mechanisms import all_mechanisms
from sharebench.profiles import PROFILES, cases
from sharebench.results import read_rounds, read_summary

TESTS_DIR = Path(__file__).parent

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
    inc = cases(all_mechanisms("increment"), quick.processes, quick.start_methods)
    app = cases(all_mechanisms("append"), quick.processes, quick.start_methods)
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
    ids = {c.id for c in cases(all_mechanisms("increment"), full.processes, full.start_methods)}
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


def test_statuses_reach_the_csv_through_a_real_run(pytester, monkeypatch):
    """Through the plugin, as `nox -s bench` runs it: a lock variant that loses data, a worker
    that dies and a missing service each end as their CSV row's status, with the reason; the
    benchmarks around them are measured as usual."""
    pytester.makepyfile(test_bench=BENCH)
    monkeypatch.setenv("PYTHONPATH", str(TESTS_DIR))  # the run imports tests/faulty.py
    out = pytester.path / "run.csv"
    result = pytester.runpytest_subprocess(
        *FAST, "--sharebench-processes=2", f"--sharebench-csv={out}",
        "--sharebench-mechanisms=faulty", "-k",
        "increment and (rawvalue-lock or mislabelled or dying or no-service)",
    )
    result.assert_outcomes(passed=1, failed=2, skipped=1)
    result.stdout.fnmatch_lines(["*4 benchmarks, 2 with errors, 1 skipped*"])
    status = read_summary(out).set_index("mechanism")["status"]
    assert status["rawvalue"] == "ok"
    assert status["mislabelled"].startswith("error: verification failed: ")
    assert " lost" in status["mislabelled"]
    assert status["dying"] == "error: worker 0 died during round (exit code 3)" or \
        status["dying"] == "error: worker 1 died during round (exit code 3)"
    assert status["no-service"] == ("skipped: no frobnicator on this machine "
                                    "(install frobnicatord)")


def test_a_mechanism_module_that_is_not_one_is_a_usage_error(pytester):
    pytester.makepyfile(test_bench=BENCH, notmechs="MECHANISMS = ('value',)")
    result = pytester.runpytest_subprocess("--sharebench-mechanisms=notmechs",
                                           "--sharebench-mechanisms=nosuchmodule")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*module 'notmechs' has no MECHANISMS tuple*"])


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--sharebench-processes=0", "'0' is not valid; processes are integers >= 1"),
        ("--sharebench-processes=two", "'two' is not valid"),
        ("--sharebench-start-methods=fork,vfork",
         "'vfork' is not available here; valid: fork, spawn, forkserver"),
        ("--sharebench-profile=huge", "invalid choice: 'huge' (choose from 'quick', 'full')"),
        ("--sharebench-round-time=0", "'0' must be a positive number of seconds"),
        ("--sharebench-round-time=soon", "'soon' is not a number"),
        ("--sharebench-rounds=0", "--sharebench-rounds: '0' must be >= 1"),
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


def test_a_slowdown_is_real_and_recorded(pytester):
    """--sharebench-slowdown makes the matching benchmark slower for real, and says so in
    the CSV; the others are untouched."""
    pytester.makepyfile(test_bench=BENCH)
    rows = {}
    for name, extra in (("plain", []), ("slowed", ["--sharebench-slowdown=rawvalue-lock-*=5",
                                                    "--sharebench-slowdown=shm-*=2"])):
        out = pytester.path / f"{name}.csv"
        result = pytester.runpytest_subprocess(
            *FAST, "--sharebench-processes=1", f"--sharebench-csv={out}",
            "-k", "rawvalue-lock-increment", *extra)
        result.assert_outcomes(passed=1)
        rows[name] = read_summary(out).iloc[0]
    assert rows["plain"]["slowdown"] == 1.0
    assert rows["slowed"]["slowdown"] == 5.0
    # calibration sees the slower loop, so k shrinks and the throughput falls about 5x
    assert rows["plain"]["throughput_ops_s"] > 2.5 * rows["slowed"]["throughput_ops_s"]


def test_bad_slowdowns_are_usage_errors(pytester):
    pytester.makepyfile(test_bench=BENCH)
    for bad, message in (("value", "is not PATTERN=FACTOR"), ("value=0.5", "between 1 and 100"),
                         ("value=fast", "'fast' is not a number")):
        result = pytester.runpytest_subprocess(f"--sharebench-slowdown={bad}")
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([f"*{message}*"])
