"""Charts, page and README findings of the keyed and round-trip operations, built from the
checked-in ``plot_keyed.csv`` (see ``data/make_keyed_fixture.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sharebench.results import read_rounds, read_summary, rounds_path_for

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def keyed():
    csv = DATA / "plot_keyed.csv"
    return read_summary(csv), read_rounds(rounds_path_for(csv))


def test_the_fixture_carries_the_new_columns(keyed):
    df, rounds = keyed
    pp = df[df["operation"] == "ping-pong"]
    assert (pp["latency_p50_s"] > 0).all()
    assert (pp["latency_p50_s"] <= pp["latency_p99_s"]).all()
    assert (pp["latency_max_s"] >= pp["latency_p999_s"]).all()
    assert rounds.loc[rounds["operation"] == "ping-pong", "latency_p50_s"].notna().all()
    assert rounds.loc[rounds["operation"] != "ping-pong", "latency_p50_s"].isna().all()
    lookups = df[df["operation"] == "lookup"]
    assert (lookups["keys"] == 100_000).all()
    assert (lookups["memory_status"] == "ok").all()


def test_figures_per_kind_of_operation(keyed):
    from sharebench.plot import build_figures

    df, rounds = keyed
    names = set(build_figures(df, rounds))
    assert {"throughput-dict-increment.png", "scaling-dict-increment.png",
            "throughput-lookup.png", "memory-lookup.png", "latency-ping-pong.png"} <= names
    assert not any("ping-pong" in n and not n.startswith("latency") for n in names)


def test_latency_chart_draws_p50_bars_tail_marks_and_ipc_bench(keyed):
    from sharebench.plot_base import caption_of
    from sharebench.plot_keyed import IPC_BENCH, latency_figure

    df, _ = keyed
    fig = latency_figure(df)
    gids = {a.get_gid() for ax in fig.axes for a in ax.get_children() if a.get_gid()}
    pp = df[df["operation"] == "ping-pong"]
    assert set(pp["benchmark"]) <= gids
    assert {f"p99:{b}" for b in pp["benchmark"]} <= gids
    assert {f"ipc-bench:{label}" for label, _ in IPC_BENCH} <= gids
    bars = [a for ax in fig.axes for a in ax.patches if a.get_gid() in set(pp["benchmark"])]
    widths = {b.get_gid(): b.get_width() for b in bars}
    for _, row in pp.iterrows():
        assert widths[row["benchmark"]] == pytest.approx(row["latency_p50_s"])
    assert "goldsborough/ipc-bench" in caption_of(fig)


def test_memory_chart_places_each_mechanism_at_its_growth(keyed):
    from sharebench.plot_keyed import memory_figure

    df, _ = keyed
    fig = memory_figure(df)
    ax = fig.axes[0]
    points = {c.get_gid(): c.get_offsets() for c in ax.collections if c.get_gid()}
    fork = df[(df["mechanism"] == "fork-dict") & (df["operation"] == "lookup")]
    xs = sorted(float(x) for x, _ in points["uss:fork-dict/none"])
    assert xs == pytest.approx(sorted(fork["worker_uss_growth_bytes"] / 2**20))


def test_readme_findings_for_dicts_memory_and_latency(keyed):
    from sharebench.report import findings_markdown

    df, _ = keyed
    text = findings_markdown(df)
    assert "Fastest correct way to share a dict between processes here: `shm-numpy/lock`" in text
    assert "the Manager dict under its lock" in text
    assert "lost 0.4 % of its increments at 2 processes over 1,000 keys" in text
    assert "each worker's unique memory grew by 7.5 MiB" in text
    assert "with `gc.freeze()`: 7.4 MiB" in text
    assert "A 64-byte round trip through a `Pipe` takes" in text
    assert "| ping-pong p50 (p99) | 64B | 64KiB |" in text


def test_page_counts_and_names_the_new_findings(keyed, tmp_path):
    from sharebench.render import render_all

    df, rounds = keyed
    render_all(df, tmp_path, rounds=rounds)
    page = (tmp_path / "index.html").read_text()
    assert "fastest round trip: <strong>pipe/atomic 64B</strong>" in page
    assert 'src="latency-ping-pong.png"' in page
    assert 'src="memory-lookup.png"' in page
