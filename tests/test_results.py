"""The CSV contract: schema, derived metrics, atomic writes, history, refusal of bad files."""

from __future__ import annotations

import csv
import math

import pytest

from factories import record, run_info
from sharebench.fmt import atomic_write as atomic_write_text
from sharebench.results import ResultsError, read_rounds, read_summary, rounds_path_for, write_run
from sharebench.schema import (
    ROUND_COLUMNS,
    SCHEMA_VERSION,
    SUMMARY_COLUMNS,
    summary_row,
)

RUN = run_info()


def test_summary_row_metrics():
    row = summary_row(record(), RUN)
    assert list(row) == list(SUMMARY_COLUMNS)
    assert row["benchmark"] == "shm-lock-increment-p2-fork"
    assert row["ops_per_round"] == 2000
    assert row["median_s"] == pytest.approx(0.05)
    assert row["iqr_s"] == pytest.approx(0.0525 - 0.0475)
    assert row["throughput_ops_s"] == pytest.approx(2000 / 0.05)
    assert row["ns_per_op"] == pytest.approx(1e9 / (2000 / 0.05))
    assert row["lost_pct"] == 0.0
    assert row["schema_version"] == SCHEMA_VERSION


def test_lost_percentage():
    row = summary_row(record(sync="none", lost_updates=2000, round_lost=[500] * 4), RUN)
    assert row["lost_pct"] == pytest.approx(25.0)


def test_write_then_read_round_trips(tmp_path):
    recs = [record(), record(mechanism="value", family="sharedctypes", processes=1),
            record(mechanism="array", operation="append", status="error: worker 0 died",
                   round_seconds=[], round_lost=[])]
    written = write_run(recs, RUN, tmp_path / "latest.csv", history_dir=tmp_path / "runs")
    assert [p.name for p in written] == [
        "latest.csv", "latest.rounds.csv",
        f"{RUN.run_id}.csv", f"{RUN.run_id}.rounds.csv",
    ]
    with open(tmp_path / "latest.csv", newline="") as fh:
        assert next(csv.reader(fh)) == list(SUMMARY_COLUMNS)
    df = read_summary(tmp_path / "latest.csv")
    assert len(df) == 3
    assert df["processes"].tolist() == [2, 1, 2]
    err = df[df["mechanism"] == "array"].iloc[0]
    assert err["status"] == "error: worker 0 died"
    assert math.isnan(err["median_s"])
    rounds = read_rounds(rounds_path_for(tmp_path / "latest.csv"))
    assert list(rounds.columns) == list(ROUND_COLUMNS)
    assert len(rounds) == 8  # 4 + 4 rounds, none for the failed benchmark
    assert rounds["throughput_ops_s"].iloc[0] == pytest.approx(2000 / 0.05)


def test_history_is_never_overwritten(tmp_path):
    for _ in range(3):
        write_run([record()], RUN, tmp_path / "latest.csv", history_dir=tmp_path / "runs")
    names = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert names == sorted([f"{RUN.run_id}.csv", f"{RUN.run_id}.rounds.csv",
                            f"{RUN.run_id}-1.csv", f"{RUN.run_id}-1.rounds.csv",
                            f"{RUN.run_id}-2.csv", f"{RUN.run_id}-2.rounds.csv"])


def test_atomic_write_keeps_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "latest.csv"
    target.write_text("old")

    class Boom:
        def __str__(self):
            raise RuntimeError("disk on fire")

    with pytest.raises(TypeError):
        atomic_write_text(target, Boom())  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["latest.csv"]


def _good(tmp_path):
    write_run([record()], RUN, tmp_path / "good.csv")
    return (tmp_path / "good.csv").read_text().splitlines()


def _edit(tmp_path, column, value):
    lines = _good(tmp_path)
    header = lines[0].split(",")
    cells = next(csv.reader([lines[1]]))
    cells[header.index(column)] = value
    path = tmp_path / "bad.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        w.writerow(cells)
    return path


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("schema_version", "99",
         f"schema_version 99, this sharebench reads versions 2, {SCHEMA_VERSION}"),
        ("median_s", "fast", "column median_s has non-numeric value 'fast'"),
        ("median_s", "-0.05", "column median_s has a negative value"),
        ("median_s", "0", "median_s must be a positive number in every ok row"),
        ("median_s", "nan", "median_s must be a positive number in every ok row"),
        ("throughput_ops_s", "inf", "column throughput_ops_s has an infinite value"),
        ("processes", "0", "processes must be >= 1"),
        ("processes", "1.5", "processes must hold whole numbers"),
    ],
)
def test_impossible_values_are_refused(tmp_path, column, value, message):
    with pytest.raises(ResultsError, match=message) as info:
        read_summary(_edit(tmp_path, column, value))
    assert "\n" not in str(info.value)


def test_missing_empty_and_foreign_files(tmp_path):
    with pytest.raises(ResultsError, match="no such file"):
        read_summary(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ResultsError, match="empty file"):
        read_summary(tmp_path / "empty.csv")
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ResultsError, match="no schema_version column"):
        read_summary(tmp_path / "other.csv")
    lines = _good(tmp_path)
    header = lines[0].split(",")
    i = header.index("status")
    (tmp_path / "cut.csv").write_text(
        ",".join(h for j, h in enumerate(header) if j != i) + "\n"
    )
    with pytest.raises(ResultsError, match="missing columns: status"):
        read_summary(tmp_path / "cut.csv")


def test_duplicate_benchmarks_are_refused(tmp_path):
    lines = _good(tmp_path)
    (tmp_path / "dup.csv").write_text("\n".join([lines[0], lines[1], lines[1]]) + "\n")
    with pytest.raises(ResultsError, match="appears more than once"):
        read_summary(tmp_path / "dup.csv")


def test_an_ok_record_without_rounds_is_written_as_an_error():
    row = summary_row(record(round_seconds=[], round_lost=[]), RUN)
    assert row["status"] == "error: no round was measured"


def test_rounds_of_an_interrupted_benchmark_are_kept(tmp_path):
    rec = record(round_seconds=[0.05, 0.05, 0.05], round_lost=[0, 0], round_pass=[0])
    write_run([rec], RUN, tmp_path / "r.csv")
    rounds = read_rounds(tmp_path / "r.rounds.csv")
    assert rounds["lost_updates"].tolist() == [0, 0, 0]
    assert rounds["pass"].tolist() == [0, 0, 0]


def test_unknown_status_is_refused(tmp_path):
    with pytest.raises(ResultsError, match=r"status '' is not ok, 'error: \.\.\.' or"):
        read_summary(_edit(tmp_path, "status", ""))


def test_round_throughput_must_match_ops_and_seconds(tmp_path):
    write_run([record()], RUN, tmp_path / "r.csv")
    path = tmp_path / "r.rounds.csv"
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[1].split(",")
    cells[header.index("throughput_ops_s")] = "1.0"
    path.write_text("\n".join([lines[0], ",".join(cells), *lines[2:]]) + "\n")
    with pytest.raises(ResultsError, match="throughput_ops_s is not ops / seconds"):
        read_rounds(path)


def test_a_version_2_file_reads_with_no_slowdown(tmp_path):
    """Schema 3 added ``slowdown``; a file written before it was never slowed."""
    write_run([record()], RUN, tmp_path / "r.csv")
    text = (tmp_path / "r.csv").read_text().splitlines()
    header = text[0].split(",")
    col = header.index("slowdown")
    old = [",".join(c for i, c in enumerate(line.split(",")) if i != col) for line in text]
    old = [old[0]] + [line.replace("3,", "2,", 1) for line in old[1:]]
    (tmp_path / "r.csv").write_text("\n".join(old) + "\n")
    df = read_summary(tmp_path / "r.csv")
    assert list(df["slowdown"]) == [1.0]
    assert list(df["schema_version"]) == [2]


def test_a_slowdown_below_one_is_refused(tmp_path):
    write_run([record(slowdown=0.5)], RUN, tmp_path / "r.csv")
    with pytest.raises(ResultsError, match="slowdown must be a factor >= 1"):
        read_summary(tmp_path / "r.csv")
