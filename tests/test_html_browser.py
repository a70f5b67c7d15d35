"""index.html in a real browser: every chart loads, the table has one row per benchmark and
sorts when a header is clicked. Needs Debian's ``chromium`` (``.ci/run`` installs it); skips
with the reason when it is absent.

The page under test is the real ``index.html`` plus a probe script appended, saved beside it
(so relative chart paths resolve the same way); the probe writes what it measured into the
DOM and ``--dump-dom`` hands it back.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).parent / "data"

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "/usr/bin/chromium")

PROBE = """
<script>
window.addEventListener("load", function () {
  var result = {};
  result.images = Array.prototype.map.call(document.images, function (img) {
    return {src: img.getAttribute("src"), complete: img.complete,
            width: img.naturalWidth, height: img.naturalHeight};
  });
  var body = document.querySelector("#summary tbody");
  result.rows = body.rows.length;
  var heads = document.querySelectorAll("#summary thead th");
  var col = -1;
  for (var i = 0; i < heads.length; i++) {
    if (heads[i].getAttribute("data-col") === "throughput_ops_s") { col = i; }
  }
  function column() {
    return Array.prototype.map.call(body.rows, function (r) {
      return r.cells[col].getAttribute("data-value");
    });
  }
  heads[col].click();
  result.ascending = column();
  result.sortState1 = heads[col].getAttribute("aria-sort");
  heads[col].click();
  result.descending = column();
  result.sortState2 = heads[col].getAttribute("aria-sort");
  var out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
});
</script>
"""


def _chromium() -> str | None:
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _run_probe(chromium: str, page: Path, profile: Path) -> dict[str, Any]:
    cmd = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-extensions", "--disable-dev-shm-usage",
        f"--user-data-dir={profile}", "--virtual-time-budget=10000", "--dump-dom",
        page.as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    match = re.search(r'<pre id="probe">(.*?)</pre>', proc.stdout, re.S)
    assert match, (
        f"probe result not in DOM (exit {proc.returncode}); stderr tail:\n"
        + proc.stderr[-2000:]
    )
    result: dict[str, Any] = json.loads(html.unescape(match.group(1)))
    return result


@pytest.mark.skipif(
    _chromium() is None,
    reason="Chromium not installed (Debian: apt-get install chromium); .ci/run installs it",
)
@pytest.mark.parametrize("fixture", ["plot_errors.csv", "plot_methods.csv", "plot_keyed.csv"])
def test_index_html_loads_every_chart_in_chromium(fixture: str, tmp_path: Path) -> None:
    from sharebench.render import render_all
    from sharebench.results import read_rounds, read_summary, rounds_path_for

    csv = DATA / fixture
    df = read_summary(csv)
    rounds_path = rounds_path_for(csv)
    rounds = read_rounds(rounds_path) if rounds_path.exists() else None
    out = tmp_path / "plots"
    written = render_all(df, out, rounds=rounds)
    charts = sorted(p.name for p in written if p.suffix == ".png")

    page = (out / "index.html").read_text(encoding="utf-8")
    assert page.count("</body>") == 1
    probe = out / "probe.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")

    chromium = _chromium()
    assert chromium is not None
    result = _run_probe(chromium, probe, tmp_path / "chromium-profile")

    images = result["images"]
    assert sorted(img["src"] for img in images) == charts
    for img in images:
        assert img["complete"], img
        assert img["width"] == 1600, img
        assert img["height"] >= 1000, img  # taller when a chart holds many bars
    assert result["rows"] == len(df)

    # Clicking the ops/s header sorts numerically, a second click reverses; error rows
    # (no value) stay last both ways.
    ok_values = sorted(float(v) for v in df.loc[df["status"] == "ok", "throughput_ops_s"])
    n_err = int((df["status"] != "ok").sum())
    asc = result["ascending"]
    desc = result["descending"]
    assert [float(v) for v in asc[: len(ok_values)]] == pytest.approx(ok_values)
    assert [float(v) for v in desc[: len(ok_values)]] == pytest.approx(ok_values[::-1])
    assert asc[len(ok_values):] == [""] * n_err
    assert desc[len(ok_values):] == [""] * n_err
    assert result["sortState1"] == "ascending"
    assert result["sortState2"] == "descending"
