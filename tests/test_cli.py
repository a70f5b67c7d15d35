"""The command line: list, report, --version, exit codes, one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from factories import record, run_info
from sharebench.cli import main
from sharebench.report import README_END, README_START
from sharebench.results import write_run

RUN = run_info()


def rec(mechanism, sync, processes, seconds, lost=0, family="sharedctypes", status="ok"):
    return record(
        family=family, mechanism=mechanism, sync=sync, operation="increment",
        processes=processes, start_method="fork", ops_per_worker=1000,
        round_seconds=[seconds] * 3 if status == "ok" else [],
        round_lost=[lost // 3] * 3 if status == "ok" else [],
        issued_ops=3000 * processes, lost_updates=lost, status=status,
    )


@pytest.fixture
def run_csv(tmp_path):
    records = [
        rec("noop", "none", 1, 0.00001, family="harness"),
        rec("value", "lock", 1, 0.0004),
        rec("value", "none", 2, 0.0004, lost=1500),
        rec("manager-value", "lock", 1, 0.15, family="manager"),
    ]
    write_run(records, RUN, tmp_path / "run.csv")
    return tmp_path / "run.csv"


def test_python_dash_m_and_version():
    out = subprocess.run([sys.executable, "-m", "sharebench", "--version"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.startswith("sharebench ")


def _sharebench(*args: str, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sharebench", *args], capture_output=True,
                          check=False,
                          text=True, timeout=60, **kw)


def test_help_and_every_command_help_exit_0_without_a_traceback():
    from sharebench.cli import COMMANDS

    for args in (["--help"], *([name, "--help"] for name in COMMANDS)):
        out = _sharebench(*args)
        assert out.returncode == 0, (args, out.stderr)
        assert "Traceback" not in out.stderr, args
        assert "usage: sharebench" in out.stdout, args
    listed = _sharebench("--help").stdout
    assert all(name in listed for name in COMMANDS)


def test_output_into_a_pipe_closed_early_ends_quietly():
    """`sharebench list | head -1`: the reader stops after a line; no BrokenPipeError."""
    out = subprocess.run(f"{sys.executable} -m sharebench list | head -1", shell=True,
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0
    assert out.stderr == ""
    assert out.stdout.count("\n") == 1
    # head's exit code is what the shell reports: ask for sharebench's own, with pipefail
    code = subprocess.run(["bash", "-c", "set -o pipefail; "
                           f"{sys.executable} -m sharebench list | head -1 >/dev/null"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert code.returncode == 0, code.stderr
    assert code.stderr == ""


def test_list_names_every_mechanism(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "value/none/increment" in out
    assert "shareable-list/lock/append" in out


def test_list_rejects_unknown_operation(capsys):
    assert main(["list", "--operation", "divide"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("sharebench list: error: unknown operation 'divide'; "
                   "valid: increment, append, transfer, dict-increment, lookup, ping-pong")


def test_report_findings_come_from_the_data(run_csv, capsys):
    assert main(["report", str(run_csv)]) == 0
    out = capsys.readouterr().out
    assert "| increment | `value/lock` | 400 ns |" in out
    assert "(375× slower)" in out
    assert "**25.0 %**" in out  # value/none at 2 processes lost 1500 of 6000
    assert "10 ns per operation, 2.5 % of the fastest operation on state shared" in out


def test_report_check_fails_on_error_rows(tmp_path, capsys):
    write_run([rec("value", "lock", 1, 0.0004),
               rec("shm", "lock", 2, 0.0, status="error: worker 1 died")],
              RUN, tmp_path / "r.csv")
    assert main(["report", str(tmp_path / "r.csv")]) == 0
    assert main(["report", str(tmp_path / "r.csv"), "--check"]) == 1
    assert "1 benchmark(s) have an error status" in capsys.readouterr().out


def test_report_check_fails_on_a_run_slowed_on_purpose(tmp_path, capsys):
    slowed = rec("value", "lock", 1, 0.0004)
    slowed.slowdown = 1.25
    write_run([slowed, rec("shm", "lock", 2, 0.0003)], RUN, tmp_path / "r.csv")
    assert main(["report", str(tmp_path / "r.csv"), "--check"]) == 1
    out = capsys.readouterr().out
    assert "were made slower on purpose" in out
    assert "1 benchmark(s) were slowed on purpose: not a clean run" in out


def test_only_ab_takes_arguments_after_a_double_dash(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["list", "--", "-k", "x"])
    assert exc.value.code == 2
    assert "list takes no arguments after --" in capsys.readouterr().err


def test_report_updates_readme_between_markers(run_csv, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{README_START}\nold\n{README_END}\n\ntail\n")
    assert main(["report", str(run_csv), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "old" not in text
    assert text.startswith("# x\n")
    assert text.endswith("tail\n")
    assert "`value/lock`" in text


def test_report_missing_file_is_one_line_exit_2(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "no such file" in err


def test_report_lists_transfers_in_mb_per_second(capsys):
    from pathlib import Path

    import pandas as pd

    csv = Path(__file__).parent / "data" / "plot_transfer.csv"
    assert main(["report", str(csv)]) == 0
    out = capsys.readouterr().out
    assert "| transfer (MB/s) |" in out
    df = pd.read_csv(csv)
    big = df[(df["mechanism"] == "shm-numpy") & (df["payload_bytes"] == df["payload_bytes"].max())]
    gbs = float(big["throughput_ops_s"].iloc[0]) * int(big["payload_bytes"].iloc[0]) / 1e9
    assert f"`shm-numpy` moves {gbs:.3g} GB/s" in out
