"""The bandwidth chart of bulk transfers: lines match the CSV, memcpy is the limit line, and
transfer rows leave the other charts alone (fixture: tests/data/plot_transfer.csv, written by
tests/data/make_transfer_fixture.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sharebench.results import read_rounds, read_summary, rounds_path_for

TRANSFER = Path(__file__).parent / "data" / "plot_transfer.csv"


@pytest.fixture(scope="module")
def df() -> Any:
    return read_summary(TRANSFER)


def _lines(fig: Any) -> dict[str, Any]:
    (ax,) = fig.axes
    return {str(ln.get_gid()): ln for ln in ax.get_lines() if ln.get_gid()}


def test_one_line_per_mechanism_in_mb_per_s(df: Any) -> None:
    from sharebench.plot import bandwidth_figure

    fig = bandwidth_figure(df)
    (ax,) = fig.axes
    assert (ax.get_xscale(), ax.get_yscale()) == ("log", "log")
    lines = _lines(fig)
    ok = df[(df["operation"] == "transfer") & (df["status"] == "ok")]
    labels = {f"{m}/{s}" for m, s in zip(ok["mechanism"], ok["sync"], strict=True)}
    expected = {f"series:{x}" for x in labels if not x.startswith("memcpy/")}
    assert {g for g in lines if g.startswith("series:")} == expected
    for gid in expected:
        mech, sync = gid.removeprefix("series:").split("/")
        rows = ok[(ok["mechanism"] == mech) & (ok["sync"] == sync)].sort_values(
            "payload_bytes")
        line = lines[gid]
        assert list(line.get_xdata()) == list(rows["payload_bytes"])
        want = rows["throughput_ops_s"] * rows["payload_bytes"] / 1e6
        assert list(line.get_ydata()) == pytest.approx(list(want))


def test_memcpy_is_drawn_as_the_limit_line(df: Any) -> None:
    from sharebench.plot import bandwidth_figure

    fig = bandwidth_figure(df)
    lines = _lines(fig)
    limit = lines["limit:memcpy/none"]
    memcpy = df[(df["mechanism"] == "memcpy")].sort_values("payload_bytes")
    want = memcpy["throughput_ops_s"] * memcpy["payload_bytes"] / 1e6
    assert list(limit.get_ydata()) == pytest.approx(list(want))
    assert limit.get_linewidth() > max(
        ln.get_linewidth() for g, ln in lines.items() if g.startswith("series:"))
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any("memcpy" in t and "limit" in t for t in legend)
    # Every other mechanism says how close it gets at the largest size.
    ratios = {t.get_gid(): t.get_text() for t in fig.axes[0].texts if t.get_gid()}
    shm = ratios["ratio:shm-numpy/atomic"]
    top = memcpy["payload_bytes"].max()
    at_top = df[(df["payload_bytes"] == top) & (df["operation"] == "transfer")]
    rate = at_top.set_index("mechanism")["throughput_ops_s"]
    from sharebench.fmt import pct as format_pct

    assert shm == f"{format_pct(100 * rate['shm-numpy'] / rate['memcpy'])}% of memcpy"


def test_transfers_get_a_bandwidth_chart_not_throughput_bars(df: Any) -> None:
    from sharebench.plot import build_figures

    figures = build_figures(df, read_rounds(rounds_path_for(TRANSFER)))
    assert "bandwidth-transfer.png" in figures
    assert "throughput-transfer.png" not in figures
    assert "scaling-transfer.png" not in figures
    assert {"throughput-increment.png", "scaling-increment.png"} <= set(figures)
    # The failed transfer row is left out, and said in the caption.
    from sharebench.plot_base import caption_of

    assert "1 failed row omitted" in caption_of(figures["bandwidth-transfer.png"])


def test_page_shows_the_bandwidth_chart_and_verdict(df: Any, tmp_path: Path) -> None:
    from sharebench.render import render_all

    written = render_all(df, tmp_path)
    assert tmp_path / "bandwidth-transfer.png" in written
    page = (tmp_path / "index.html").read_text()
    assert 'src="bandwidth-transfer.png"' in page
    assert "physical limit" in page
    assert "highest bandwidth: <strong>shm-numpy/atomic " in page


def test_no_transfer_rows_no_bandwidth_chart() -> None:
    from sharebench.plot import build_figures

    fork = read_summary(Path(__file__).parent / "data" / "plot_fork.csv")
    assert not any(name.startswith("bandwidth-") for name in build_figures(fork))
