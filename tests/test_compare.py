"""sharebench compare: statistics on synthetic rounds (no benchmark is run), CLI, CSV, figure."""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

import factories
from sharebench import cli
from sharebench.compare import (
    COMPARE_COLUMNS,
    COMPARE_SCHEMA_VERSION,
    FAILED_NOW,
    FASTER,
    INSUFFICIENT,
    MIN_FOR_NOISE,
    NOT_COMPARED,
    ONLY_BASELINE,
    ONLY_CURRENT,
    SAME,
    SLOWER,
    Comparison,
    compare_runs,
)
from sharebench.compare_report import compare_csv_text, markdown_report
from sharebench.errors import RuleError
from sharebench.results import ResultsError, rounds_path_for, write_run
from sharebench.rules import RegressionRule, parse_alpha, parse_threshold
from sharebench.schema import (
    ROUND_COLUMNS,
    SUMMARY_COLUMNS,
    BenchmarkRecord,
    RunInfo,
    round_rows,
    summary_row,
)
from sharebench.stats import holm, min_attainable_p

# --------------------------------------------------------------------------------------
# Synthetic runs

Key = tuple[str, str, str, int, str]
Main = Callable[[Sequence[str]], int]
REF: Key = ("reference", "none", "increment", 1, "fork")
OPS_PER_WORKER = 10_000


def bench_keys(n: int) -> dict[Key, float]:
    """The reference plus ``n`` distinct benchmarks with throughputs spread over 3 decades."""
    keys: dict[Key, float] = {REF: 5e6}
    mechs = ("value", "array", "rawarray", "manager", "shm")
    for i in range(n):
        key = (mechs[i % 5], ("none", "lock")[(i // 5) % 2], "increment", 1 + i // 10, "fork")
        keys[key] = 1e4 * 10 ** (3 * i / max(n, 1))
    return keys


def run_info(run_id: str, hostname: str = "host-a", cpu_count: int = 2) -> RunInfo:
    return factories.run_info(run_id=run_id, hostname=hostname, cpu_count=cpu_count,
                              cpu_model="Test CPU @ 3GHz")


def make_records(
    throughputs: Mapping[Key, float],
    rng: np.random.Generator,
    *,
    rounds: int = 15,
    cv: float = 0.10,
    scale: Mapping[Key, float] | None = None,
    machine: float = 1.0,
    status: Mapping[Key, str] | None = None,
    passes: int = 1,
) -> list[BenchmarkRecord]:
    """One record per benchmark; round throughputs are lognormal around the given median.

    ``scale`` multiplies one benchmark's throughput (0.5 = twice as slow), ``machine`` all
    of them, the reference included (a uniformly slower or faster machine).
    """
    scale = scale or {}
    status = status or {}
    out = []
    for key, tp in throughputs.items():
        mech, sync, op, procs, sm = key
        per_round = tp * machine * scale.get(key, 1.0) * rng.lognormal(0.0, cv, size=rounds)
        ops = OPS_PER_WORKER * procs
        out.append(
            factories.record(
                family="harness" if mech == "reference" else "sharedctypes",
                mechanism=mech,
                sync=sync,
                operation=op,
                processes=procs,
                start_method=sm,
                ops_per_worker=OPS_PER_WORKER,
                round_seconds=[float(s) for s in ops / per_round],
                round_pass=[i * passes // rounds for i in range(rounds)],
                issued_ops=ops * rounds,
                status=status.get(key, "ok"),
            )
        )
    return out


def frames(records: list[BenchmarkRecord], run: RunInfo) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Summary and rounds DataFrames with exactly the schema columns (no file involved)."""
    summary = pd.DataFrame([summary_row(r, run) for r in records], columns=list(SUMMARY_COLUMNS))
    rounds = pd.DataFrame(
        [row for r in records for row in round_rows(r, run)], columns=list(ROUND_COLUMNS)
    )
    return summary, rounds


def compare_records(
    base: list[BenchmarkRecord],
    cur: list[BenchmarkRecord],
    *,
    base_run: RunInfo | None = None,
    cur_run: RunInfo | None = None,
    **kwargs: object,
) -> Comparison:
    b = frames(base, base_run or run_info("A"))
    c = frames(cur, cur_run or run_info("B"))
    return compare_runs(*b, *c, **kwargs)  # type: ignore[arg-type]


def name_of(key: Key) -> str:
    mech, sync, op, procs, sm = key
    return f"{mech}-{sync}-{op}-p{procs}-{sm}"


# --------------------------------------------------------------------------------------
# The rule


@pytest.mark.parametrize(
    ("text", "expected"),
    [("10%", 0.10), ("0.1", 0.10), (" 5 % ", 0.05), ("100%", 1.0), ("2x", 1.0),
     ("1.5X", 0.5), ("0", 0.0), (0.25, 0.25)],
)
def test_parse_threshold(text: str, expected: float) -> None:
    assert parse_threshold(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "empty"), ("abc", "not understood"), ("-10%", "negative"), ("10", "ambiguous"),
     ("0.5x", "at least 1x"), ("10%%", "not understood")],
)
def test_parse_threshold_refuses_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(RuleError, match=message):
        parse_threshold(text)


def test_parse_alpha() -> None:
    assert parse_alpha("0.01") == 0.01
    assert parse_alpha("5%") == pytest.approx(0.05)
    for bad in ("0", "1", "x", "-0.1"):
        with pytest.raises(RuleError, match="alpha"):
            parse_alpha(bad)


def test_rule_beyond_is_about_time_per_op() -> None:
    rule = RegressionRule.parse("100%")  # the CI smoke gate: only a 2x slowdown
    assert rule.min_ratio == 0.5
    assert rule.beyond(0.49)
    assert not rule.beyond(0.51)
    assert RegressionRule.parse("10%").beyond(0.90)  # 1/0.9 = 11 % more time per op
    assert not RegressionRule.parse("10%").beyond(0.92)


# --------------------------------------------------------------------------------------
# Statistics


def test_holm_known_values() -> None:
    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> monotone
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert np.isnan(holm([np.nan, 0.5])[0])
    assert holm([0.5, np.nan])[0] == 0.5  # NaN does not count in the family


@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=40))
def test_holm_is_at_least_raw_at_most_one_and_keeps_order(ps: list[float]) -> None:
    adjusted = holm(ps)
    raw = np.asarray(ps)
    assert (adjusted >= raw - 1e-12).all()
    assert (adjusted <= 1.0).all()
    order = np.argsort(raw, kind="stable")
    assert (np.diff(adjusted[order]) >= -1e-12).all()


def test_min_attainable_p() -> None:
    assert min_attainable_p(3, 3) == pytest.approx(0.1)  # 2 / C(6, 3)
    assert min_attainable_p(15, 15) == pytest.approx(2 / math.comb(30, 15))
    assert min_attainable_p(1, 1) == 1.0
    assert min_attainable_p(15, 15, ties=True) > min_attainable_p(15, 15)  # asymptotic


# --------------------------------------------------------------------------------------
# Verdicts on synthetic runs


def test_identical_distributions_give_no_regression() -> None:
    keys = bench_keys(20)
    records = make_records(keys, np.random.default_rng(1))
    result = compare_records(records, records)
    assert result.exit_code == 0
    assert set(result.compared["verdict"]) == {SAME}
    assert result.compared["ratio"].tolist() == pytest.approx([1.0] * len(keys))
    assert result.normalization.mode == "off"  # same machine


def test_one_benchmark_slowed_1_5x_is_the_only_one_flagged() -> None:
    keys = bench_keys(20)
    slowed = list(keys)[7]
    rng = np.random.default_rng(0)
    result = compare_records(
        make_records(keys, rng), make_records(keys, rng, scale={slowed: 1 / 1.5})
    )
    assert result.regressions["benchmark"].tolist() == [name_of(slowed)]
    row = result.regressions.iloc[0]
    assert row["verdict"] == SLOWER
    assert row["ci_low"] < row["ratio"] < row["ci_high"] < 1 / 1.1
    assert row["ratio"] == pytest.approx(1 / 1.5, rel=0.15)
    assert result.exit_code == 1


def test_a_1_5x_slowdown_is_found_every_time_and_alone_measured_50_of_50() -> None:
    """50 trials as above with fresh noise: the slowed benchmark flagged in 50 of 50, another
    one alongside it in 0 of 50 (100 of 100 and 0 of 100 when measured over 100 trials).

    "Alone" is not guaranteed trial by trial: Holm bounds the chance that any unshifted
    benchmark is flagged at alpha = 1 % per trial (with seed 4 one reached raw p = 5.6e-5).
    """
    keys = bench_keys(20)
    slowed = name_of(list(keys)[7])
    rng = np.random.default_rng(2026)
    found = with_others = 0
    for i in range(50):
        result = compare_records(
            make_records(keys, rng),
            make_records(keys, rng, scale={list(keys)[7]: 1 / 1.5}),
            base_run=run_info(f"A{i}"), cur_run=run_info(f"B{i}"), resamples=200,
        )
        flagged = result.regressions["benchmark"].tolist()
        found += slowed in flagged
        with_others += any(f != slowed for f in flagged)
    assert found == 50
    assert with_others <= 2  # 5 %


def test_aa_trials_flag_nothing_measured_rate_0_of_200() -> None:
    """200 A/A trials, 20 benchmarks x 15 rounds each side, 10 % CV, no shift.

    Measured on this code: 0 of 200 trials flagged any benchmark (0.0 %); the issue allows
    at most 5 %. Holm keeps the family-wise error at or below alpha = 1 % by construction,
    and the threshold removes what little is left.
    """
    keys = bench_keys(20)
    rng = np.random.default_rng(2026)
    flagged = 0
    significant = 0
    for i in range(200):
        result = compare_records(
            make_records(keys, rng), make_records(keys, rng),
            base_run=run_info(f"A{i}"), cur_run=run_info(f"B{i}"), resamples=200,
        )
        flagged += bool(len(result.regressions))
        significant += bool(result.compared["verdict"].isin([FASTER, SLOWER]).any())
    assert flagged / 200 <= 0.05
    assert flagged == 0, f"{flagged} of 200 A/A trials flagged a regression"
    assert significant / 200 <= 0.05, f"{significant} of 200 A/A trials had a significant change"


def test_uniform_2x_machine_difference_cancels_with_normalisation_on() -> None:
    keys = bench_keys(20)
    rng = np.random.default_rng(3)
    base = make_records(keys, rng)
    cur = make_records(keys, rng, machine=0.5)  # a machine twice as slow at everything
    on = compare_records(base, cur, normalize="on")
    assert on.normalization.applied
    assert on.normalization.machine_ratio == pytest.approx(0.5, rel=0.1)
    assert on.exit_code == 0
    assert len(on.regressions) == 0
    assert set(on.compared["verdict"]) <= {SAME}
    assert on.listed(NOT_COMPARED) == [name_of(REF)]  # the yardstick is not itself tested

    off = compare_records(base, cur, normalize="off")
    assert not off.normalization.applied
    assert set(off.compared["verdict"]) == {SLOWER}
    assert off.regressions["benchmark"].tolist() == [name_of(k) for k in keys]
    assert off.exit_code == 1


def test_auto_normalises_only_when_the_machines_differ() -> None:
    keys = bench_keys(10)
    rng = np.random.default_rng(4)
    base = make_records(keys, rng)
    cur = make_records(keys, rng, machine=0.5)
    other = compare_records(base, cur, cur_run=run_info("B", hostname="host-b"))
    assert other.normalization.applied
    assert "hostname host-a != host-b" in other.normalization.reason
    assert other.exit_code == 0
    cpus = compare_records(base, cur, cur_run=run_info("B", cpu_count=64))
    assert cpus.normalization.applied
    assert "cpu_count" in cpus.normalization.reason
    same = compare_records(base, cur)
    assert not same.normalization.applied
    assert same.exit_code == 1
    assert "Normalisation: on (auto: different machines" in markdown_report(other)


def test_normalisation_without_reference_is_refused() -> None:
    keys = bench_keys(5)
    del keys[REF]
    rng = np.random.default_rng(5)
    with pytest.raises(ResultsError, match="no ok reference benchmark"):
        compare_records(make_records(keys, rng), make_records(keys, rng), normalize="on")
    with pytest.raises(ResultsError, match="different machines"):
        compare_records(make_records(keys, rng), make_records(keys, rng),
                        cur_run=run_info("B", hostname="elsewhere"))
    plain = compare_records(make_records(keys, rng), make_records(keys, rng))
    assert math.isnan(plain.normalization.machine_ratio)


def test_too_few_rounds_is_insufficient_data_not_a_regression() -> None:
    keys = bench_keys(10)
    slowed = list(keys)[3]
    rng = np.random.default_rng(6)
    result = compare_records(
        make_records(keys, rng, rounds=3),
        make_records(keys, rng, rounds=3, scale={slowed: 0.5}),
    )
    assert set(result.compared["verdict"]) == {INSUFFICIENT}
    assert result.exit_code == 0
    row = result.table.set_index("benchmark").loc[name_of(slowed)]
    assert row["ratio"] == pytest.approx(0.5, rel=0.25)  # the numbers are still reported
    assert row["p_floor"] > 0.01
    assert "cannot reach alpha" in row["note"]


def test_status_and_presence_are_listed_not_compared() -> None:
    keys = bench_keys(6)
    names = list(keys)
    rng = np.random.default_rng(7)
    base_keys = {k: v for k, v in keys.items() if k != names[1]}
    cur_keys = {k: v for k, v in keys.items() if k != names[2]}
    result = compare_records(
        make_records(base_keys, rng, status={names[4]: "skipped: no server"}),
        make_records(cur_keys, rng, status={names[3]: "error: TimeoutError: worker hung"}),
    )
    assert result.listed(ONLY_CURRENT) == [name_of(names[1])]
    assert result.listed(ONLY_BASELINE) == [name_of(names[2])]
    assert result.listed(NOT_COMPARED) == [name_of(names[4])]
    # ok in the baseline, broken now: the change broke it, which fails the comparison
    assert result.listed(FAILED_NOW) == [name_of(names[3])]
    note = result.table.set_index("benchmark").loc[name_of(names[3]), "note"]
    assert "now error: TimeoutError" in note
    assert result.exit_code == 1
    assert result.regressions.empty
    assert len(result.compared) == len(keys) - 4
    report = markdown_report(result)
    assert f"Only in current (1): `{name_of(names[1])}`" in report
    assert "worker hung" in report


def test_no_common_benchmarks_is_an_error() -> None:
    rng = np.random.default_rng(8)
    a = {k: v for k, v in bench_keys(4).items() if k[0] == "value"}
    b = {k: v for k, v in bench_keys(4).items() if k[0] == "array"}
    with pytest.raises(ResultsError, match="no common benchmarks"):
        compare_records(make_records(a, rng), make_records(b, rng), normalize="off")


def test_markdown_report_is_a_pipe_table() -> None:
    keys = bench_keys(6)
    rng = np.random.default_rng(9)
    result = compare_records(
        make_records(keys, rng), make_records(keys, rng, scale={list(keys)[2]: 0.5})
    )
    report = markdown_report(result)
    table = [ln for ln in report.splitlines() if ln.startswith("|")]
    assert len(table) == 2 + len(result.compared)
    assert len({ln.count("|") for ln in table}) == 1
    assert len({len(ln) for ln in table}) == 1  # padded: lines up in a terminal too
    assert set(table[1]) <= {"|", "-", ":"}
    assert "**REGRESSION**" in table[2]  # regressions first
    assert "**1 regression**" in report


# --------------------------------------------------------------------------------------
# Command line


@pytest.fixture
def main(monkeypatch: pytest.MonkeyPatch) -> Main:
    """cli.main, with only the subcommands whose modules exist yet (others are in progress)."""
    available = tuple(
        n for n in cli.COMMANDS
        if importlib.util.find_spec(f"sharebench.commands.{n.replace('-', '_')}") is not None
    )
    monkeypatch.setattr(cli, "COMMANDS", available)
    return cli.main


def test_compare_is_a_registered_subcommand() -> None:
    assert "compare" in cli.COMMANDS


def write(
    tmp_path: Path, name: str, records: list[BenchmarkRecord], run: RunInfo
) -> Path:
    path = tmp_path / f"{name}.csv"
    write_run(records, run, path)
    return path


@pytest.fixture
def two_runs(tmp_path: Path) -> tuple[Path, Path, str]:
    keys = bench_keys(8)
    slowed = list(keys)[4]
    rng = np.random.default_rng(10)
    base = write(tmp_path, "base", make_records(keys, rng), run_info("run-A"))
    cur = write(tmp_path, "cur", make_records(keys, rng, scale={slowed: 1 / 1.5}),
                run_info("run-B"))
    return base, cur, name_of(slowed)


def test_cli_flags_the_regression_and_writes_csv_and_png(
    main: Main, two_runs: tuple[Path, Path, str], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base, cur, slowed = two_runs
    out = tmp_path / "plots"
    assert main(["compare", str(base), str(cur), "--out", str(out)]) == 1
    stdout = capsys.readouterr().out
    assert f"`{slowed}`" in stdout
    assert "**REGRESSION**" in stdout
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in out.iterdir()) == ["compare.csv", "compare.png"]  # no temps

    table = pd.read_csv(out / "compare.csv", keep_default_na=False)
    assert tuple(table.columns) == COMPARE_COLUMNS
    assert set(table["schema_version"]) == {COMPARE_SCHEMA_VERSION}
    assert set(table["baseline_run_id"]) == {"run-A"}
    assert set(table["current_run_id"]) == {"run-B"}
    assert table.loc[table["regression"], "benchmark"].tolist() == [slowed]
    assert table["regression"].dtype == bool
    assert set(table["verdict"]) <= {FASTER, SLOWER, SAME, INSUFFICIENT, NOT_COMPARED,
                                     ONLY_BASELINE, ONLY_CURRENT}
    compared = table[table["verdict"] != NOT_COMPARED]
    assert (compared["ratio"] == compared["current_median_ops_s"]
            / compared["baseline_median_ops_s"]).all()
    assert (compared["ci_low"] <= compared["ci_high"]).all()
    assert ((compared["p_value"] <= compared["p_holm"]) & (compared["p_holm"] <= 1)).all()


def test_cli_threshold_100pct_ignores_a_1_5x_slowdown(
    main: Main, two_runs: tuple[Path, Path, str], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base, cur, _ = two_runs
    code = main(["compare", str(base), str(cur), "--threshold", "100%",
                     "--normalize", "on", "--out", str(tmp_path / "o")])
    assert code == 0
    stdout = capsys.readouterr().out
    assert "Normalisation: on (on: as requested)" in stdout
    assert "slower by more than 100%" in stdout


def test_cli_same_run_exits_0(
    main: Main, two_runs: tuple[Path, Path, str], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base, _, _ = two_runs
    assert main(["compare", str(base), str(base), "--out", str(tmp_path / "o")]) == 0
    assert "**0 regressions**" in capsys.readouterr().out


def _edit_csv(path: Path, column: str, row: int, value: str) -> None:
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    if row < 0:
        df[column] = value
    else:
        df.loc[row, column] = value
    df.to_csv(path, index=False)


@pytest.mark.parametrize(
    "case",
    [
        ("missing", "no such file"),
        ("missing-rounds", "cur.rounds.csv: no such file"),
        ("schema", "schema_version 99, this sharebench reads versions 2, 3"),
        ("nan-time", "column seconds must be a positive number"),
        ("negative-time", "column seconds has a negative value"),
        ("no-common", "no common benchmarks"),
        ("stale-rounds", "rounds file is stale"),
        ("threshold", "threshold 'ten' not understood"),
    ],
    ids=lambda case: case[0],
)
def test_cli_bad_input_exits_2_with_one_line(
    main: Main, two_runs: tuple[Path, Path, str], tmp_path: Path,
    capsys: pytest.CaptureFixture[str], case: tuple[str, str],
) -> None:
    breakage, message = case
    base, cur, _ = two_runs
    args = ["compare", str(base), str(cur), "--out", str(tmp_path / "o")]
    if breakage == "missing":
        args[2] = str(tmp_path / "nope.csv")
    elif breakage == "missing-rounds":
        rounds_path_for(cur).unlink()
    elif breakage == "schema":
        _edit_csv(cur, "schema_version", -1, "99")
    elif breakage == "nan-time":
        _edit_csv(rounds_path_for(cur), "seconds", 3, "")
    elif breakage == "negative-time":
        _edit_csv(rounds_path_for(cur), "seconds", 3, "-0.5")
    elif breakage == "no-common":
        _edit_csv(cur, "start_method", -1, "spawn")
        _edit_csv(rounds_path_for(cur), "start_method", -1, "spawn")
    elif breakage == "stale-rounds":
        _edit_csv(rounds_path_for(cur), "run_id", -1, "older-run")
    elif breakage == "threshold":
        args += ["--threshold", "ten"]
    assert main(args) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("sharebench compare: error: ")
    assert message in lines[0]
    assert "Traceback" not in captured.err
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------------------
# The figure


def test_figure_points_labels_colours_and_band_match_the_data() -> None:
    from matplotlib.colors import to_hex

    from sharebench.plot_compare import (
        BAND_GID,
        GATES_GID,
        POINTS_GID,
        REGRESSION_COLOR,
        VERDICT_COLORS,
        compare_figure,
    )

    keys = bench_keys(8)
    slowed = list(keys)[5]
    rng = np.random.default_rng(11)
    result = compare_records(
        make_records(keys, rng),
        make_records(keys, rng, scale={slowed: 0.5}, status={list(keys)[2]: "error: x"}),
        rule=RegressionRule.parse("25%"),
    )
    compared = result.compared
    fig = compare_figure(result.table)
    (ax,) = fig.axes
    assert ax.get_xscale() == "log"
    (points,) = [c for c in ax.collections if c.get_gid() == POINTS_GID]
    offsets = np.asarray(points.get_offsets())
    # first benchmark at the top: y decreases down the table
    order = np.argsort(-offsets[:, 1])
    assert offsets[order, 0] == pytest.approx(compared["ratio"].to_numpy())
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == compared["benchmark"].tolist()  # the not-compared row is left out
    colours = [to_hex(c) for c in points.get_facecolors()[order]]
    expected = [REGRESSION_COLOR if r else VERDICT_COLORS[v]
                for r, v in zip(compared["regression"], compared["verdict"], strict=True)]
    assert colours == expected
    assert colours.count(REGRESSION_COLOR) == 1
    assert labels[colours.index(REGRESSION_COLOR)] == name_of(slowed)
    (band,) = [p for p in ax.patches if p.get_gid() == BAND_GID]
    assert (band.get_x(), band.get_x() + band.get_width()) == pytest.approx((1 / 1.25, 1.25))
    caption = fig._supxlabel.get_text()  # type: ignore[attr-defined]
    assert "baseline A vs current B" in caption
    # one gate mark per benchmark, at the wider of threshold and noise floor
    (gates,) = [c for c in ax.collections if c.get_gid() == GATES_GID]
    gate_x = np.asarray(gates.get_offsets())[order, 0]
    wider = np.maximum(0.25, compared["noise_floor"].to_numpy())
    assert gate_x == pytest.approx(1 / (1 + wider))


def test_figure_without_compared_rows_still_renders(tmp_path: Path) -> None:
    from sharebench.plot_base import save_png
    from sharebench.plot_compare import compare_figure

    empty = pd.DataFrame(columns=list(COMPARE_COLUMNS))
    path = save_png(compare_figure(empty), tmp_path / "compare.png")
    assert path.stat().st_size > 0


def test_compare_csv_text_round_trips() -> None:
    keys = bench_keys(4)
    rng = np.random.default_rng(12)
    result = compare_records(make_records(keys, rng), make_records(keys, rng))
    text = compare_csv_text(result)
    assert text.splitlines()[0] == ",".join(COMPARE_COLUMNS)
    assert len(text.splitlines()) == 1 + len(keys)



def _run_level_noise(keys: Mapping[Key, float], rng: np.random.Generator,
                     sigma: float) -> dict[Key, float]:
    """Each benchmark gets its own run-level luck (lognormal, sigma): what two runs on a
    shared machine look like even when nothing changed."""
    return {k: float(rng.lognormal(0.0, sigma)) for k in keys}


def test_noise_floor_keeps_run_to_run_wobble_from_failing_ci() -> None:
    """Per-benchmark run-level shifts of ~8 % with tight rounds (2 %): Mann-Whitney alone
    calls several "significant regressions"; the noise floor (3.5 x spread across all
    benchmarks) calls none."""
    keys = bench_keys(40)
    rng = np.random.default_rng(3)
    base = make_records(keys, rng, cv=0.02, scale=_run_level_noise(keys, rng, 0.08))
    cur = make_records(keys, rng, cv=0.02, scale=_run_level_noise(keys, rng, 0.08))
    without = compare_records(base, cur, rule=RegressionRule(noise=0))
    with_floor = compare_records(base, cur)
    assert len(without.regressions) >= 3
    assert with_floor.regressions.empty
    assert 0.05 < with_floor.run_noise < 0.2
    assert (with_floor.compared["noise_floor"] > 0.2).all()
    noted = with_floor.table[with_floor.table["note"].str.contains("within the noise floor")]
    assert set(noted["benchmark"]) == set(without.regressions["benchmark"])


def test_noise_floor_still_catches_a_slowdown_of_everything() -> None:
    """The spread is taken around the median ratio: a uniform 25 % slowdown (same machine,
    no normalisation) moves every ratio and widens nothing, so all are regressions."""
    keys = bench_keys(20)
    rng = np.random.default_rng(4)
    slower = dict.fromkeys(keys, 1 / 1.25)
    result = compare_records(make_records(keys, rng, cv=0.03),
                             make_records(keys, rng, cv=0.03, scale=slower))
    assert result.run_noise < 0.03
    assert len(result.regressions) == len(keys)


def test_noise_floor_needs_enough_benchmarks() -> None:
    keys = bench_keys(MIN_FOR_NOISE - 2)  # plus the reference: one short of the minimum
    rng = np.random.default_rng(5)
    result = compare_records(make_records(keys, rng), make_records(keys, rng))
    assert result.run_noise == 0.0
    assert (result.compared["noise_floor"] == 0.0).all()


def test_noise_option_is_validated() -> None:
    with pytest.raises(RuleError, match="noise 'lots' not understood"):
        RegressionRule.parse("10%", "0.01", "lots")
    with pytest.raises(RuleError, match=r"noise -1\.0 must be a finite number >= 0"):
        RegressionRule.parse("10%", "0.01", "-1")



def test_a_broad_uneven_slowdown_cannot_hide_behind_the_noise_floor() -> None:
    """18 of 30 benchmarks slowed by 1.3-2.5x: the spread of the ratios is huge, but the
    floor is capped by the runs' own pass-to-pass drift (3 passes, 3 % noise), so every
    slowed benchmark is a regression and nothing else is."""
    keys = bench_keys(30)
    names = list(keys)[1:]  # not the reference
    rng = np.random.default_rng(11)
    slowed = {k: 1 / float(f) for k, f in zip(names[:18], np.linspace(1.3, 2.5, 18),
                                              strict=True)}
    result = compare_records(make_records(keys, rng, cv=0.03, passes=3),
                             make_records(keys, rng, cv=0.03, passes=3, scale=slowed))
    assert result.drift < 0.05
    assert result.run_noise == result.drift  # the spread across benchmarks was capped
    assert sorted(result.regressions["benchmark"]) == sorted(name_of(k) for k in slowed)


def test_every_benchmark_failing_now_fails_the_comparison() -> None:
    keys = bench_keys(10)
    rng = np.random.default_rng(12)
    broken = dict.fromkeys(keys, "error: worker 0 died during round (exit code -9)")
    result = compare_records(make_records(keys, rng), make_records(keys, rng, status=broken))
    assert len(result.listed(FAILED_NOW)) == len(keys)
    assert result.exit_code == 1


def test_nothing_comparable_is_unusable_input() -> None:
    keys = bench_keys(4)
    rng = np.random.default_rng(13)
    skipped = dict.fromkeys(keys, "skipped: no redis-server on PATH")
    with pytest.raises(ResultsError, match="no benchmark could be compared"):
        compare_records(make_records(keys, rng, status=skipped), make_records(keys, rng))
