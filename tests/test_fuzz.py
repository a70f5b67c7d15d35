"""Fuzzed input: whatever bytes a user points sharebench at, the reader raises ResultsError
(or returns valid data) and the commands print one line and exit 2 — never a traceback."""

from __future__ import annotations

import csv
import io
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from factories import run_info
from sharebench.cli import main
from sharebench.results import MAX_CSV_BYTES, ResultsError, read_rounds, read_summary, write_run
from sharebench.schema import SUMMARY_COLUMNS, BenchmarkRecord

RUN = run_info()
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def _valid_text(tmp: Path) -> tuple[str, str]:
    recs = [BenchmarkRecord(family="shm", mechanism=m, sync="lock", operation="increment",
                            processes=p, start_method="fork", ops_per_worker=1000,
                            round_seconds=[0.05, 0.051, 0.049], round_lost=[0, 0, 0],
                            issued_ops=3000 * p)
            for m in ("shm", "value") for p in (1, 2)]
    write_run(recs, RUN, tmp / "v.csv")
    return (tmp / "v.csv").read_text(), (tmp / "v.rounds.csv").read_text()


def _check_reader(path: Path) -> None:
    """The contract: ResultsError with one line, or a frame whose ok rows are sane."""
    try:
        df = read_summary(path)
    except ResultsError as exc:
        message = str(exc)
    else:
        message = None
    if message is not None:
        assert "\n" not in message
        return
    ok = df[df["status"] == "ok"]
    assert list(df.columns[: len(SUMMARY_COLUMNS)]) == list(SUMMARY_COLUMNS)
    assert (ok["median_s"] > 0).all()
    assert all(math.isfinite(x) for x in ok["throughput_ops_s"])
    assert (df["processes"] >= 1).all()


@SETTINGS
@given(data=st.binary(max_size=2000))
def test_random_bytes(tmp_path, data):
    path = tmp_path / "random.csv"
    path.write_bytes(data)
    _check_reader(path)


@SETTINGS
@given(cut=st.integers(min_value=0, max_value=10_000))
def test_truncated_file(tmp_path, cut):
    text, _ = _valid_text(tmp_path)
    path = tmp_path / "cut.csv"
    path.write_text(text[: cut % (len(text) + 1)])
    _check_reader(path)


CELLS = st.one_of(
    st.sampled_from(["", "nan", "NaN", "inf", "-inf", "-1", "0", "1e400", "-0.0", "1e-320",
                     "9" * 30, "0x10", "1,5", '"', "true", "None", "ok", "error: x", "1"]),
    st.text(max_size=12),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
)


@SETTINGS
@given(row=st.integers(0, 3), col=st.sampled_from(SUMMARY_COLUMNS), value=CELLS)
def test_one_wrong_cell(tmp_path, row, col, value):
    text, _ = _valid_text(tmp_path)
    rows = list(csv.reader(io.StringIO(text)))
    rows[1 + row][rows[0].index(col)] = value
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    path = tmp_path / "cell.csv"
    path.write_text(out.getvalue())
    _check_reader(path)


@SETTINGS
@given(data=st.binary(max_size=500))
def test_rounds_reader(tmp_path, data):
    path = tmp_path / "r.rounds.csv"
    path.write_bytes(data)
    try:
        df = read_rounds(path)
    except ResultsError as exc:
        message = str(exc)
    else:
        message = None
        assert (df["seconds"] > 0).all()
    assert message is None or "\n" not in message


def test_duplicate_rows_and_wrong_types(tmp_path):
    text, _ = _valid_text(tmp_path)
    lines = text.splitlines()
    (tmp_path / "dup.csv").write_text("\n".join([*lines, lines[1]]) + "\n")
    with pytest.raises(ResultsError, match="appears more than once"):
        read_summary(tmp_path / "dup.csv")


def test_huge_file_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "huge.csv"
    with open(path, "wb") as fh:  # sparse: costs no disk
        fh.truncate(MAX_CSV_BYTES + 1)
    with pytest.raises(ResultsError, match="too large"):
        read_summary(path)


BAD_INPUTS = {
    "random": os.urandom(3000),
    "binary-zeros": b"\0" * 500,
    "latin1": "schema_version,run_id\n1,caf\xe9\n".encode("latin-1"),
    "truncated": None,  # filled from a valid file
    "not-csv": b"<html><body>hello</body></html>",
    "nan-times": None,
}


def _bad_file(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.csv"
    text, rounds = _valid_text(tmp_path)
    if kind == "truncated":
        path.write_text(text[: len(text) // 2])
    elif kind == "nan-times":
        rows = list(csv.reader(io.StringIO(text)))
        rows[1][rows[0].index("median_s")] = "nan"
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(rows)
        path.write_text(out.getvalue())
        path.with_name(f"{kind}.rounds.csv").write_text(rounds)
    else:
        path.write_bytes(BAD_INPUTS[kind])
    return path


@pytest.mark.parametrize("kind", sorted(BAD_INPUTS))
@pytest.mark.parametrize("command", ["plot", "compare", "report"])
def test_commands_answer_bad_input_with_one_line(tmp_path, capsys, kind, command):
    bad = _bad_file(tmp_path, kind)
    good = tmp_path / "v.csv"
    out = tmp_path / "out"
    argv = {"plot": ["plot", str(bad), "--out", str(out)],
            "compare": ["compare", str(good), str(bad), "--out", str(out)],
            "report": ["report", str(bad)]}[command]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())


def test_no_traceback_from_the_real_command_line(tmp_path):
    bad = tmp_path / "garbage.csv"
    bad.write_bytes(os.urandom(4096))
    proc = subprocess.run([sys.executable, "-m", "sharebench", "plot", str(bad), "--out",
                           str(tmp_path / "p")], capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr
