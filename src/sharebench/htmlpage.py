"""The offline results page (``plots/index.html``): run description, verdicts, charts, table.

One file, no network: styles and the table-sorting script are inline, charts are referenced
by relative name (they sit beside the page), so it works opened from disk or served as-is.
Pure: :func:`index_html` returns text; :func:`sharebench.render.render_all` writes it. Built on
:mod:`sharebench.views` (what rows mean), never on the chart module.
(Named ``htmlpage`` rather than ``html`` so it never shadows the standard library module.)
"""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING, Any

from sharebench import fmt
from sharebench.status import status_kinds
from sharebench.views import (
    failed_rows,
    family_color,
    findings,
    is_unsafe,
    one_value,
    series_label,
    skipped_rows,
    slowed_rows,
)

if TYPE_CHECKING:
    import pandas as pd

#: (column, header, kind) of the summary table; kind "num" sorts numerically.
TABLE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("benchmark", "benchmark", "str"),
    ("family", "family", "str"),
    ("mechanism", "mechanism", "str"),
    ("sync", "sync", "str"),
    ("operation", "operation", "str"),
    ("processes", "processes", "num"),
    ("start_method", "start method", "str"),
    ("payload_bytes", "payload", "num"),
    ("throughput_ops_s", "ops/s", "num"),
    ("median_s", "median s", "num"),
    ("iqr_s", "IQR s", "num"),
    ("ns_per_op", "ns/op", "num"),
    ("rounds", "rounds", "num"),
    ("lost_updates", "lost", "num"),
    ("lost_pct", "lost %", "num"),
    ("status", "status", "str"),
)

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5rem auto;
max-width:1680px;padding:0 1rem;color:#222;line-height:1.4}
h1{margin-bottom:.2rem}
dl.run{display:grid;grid-template-columns:max-content 1fr;gap:.15rem 1rem;margin:.5rem 0 1rem}
dl.run dt{font-weight:600}
dl.run dd{margin:0}
.verdicts li{margin:.2rem 0}
.loss{color:#b00020;font-weight:600}
.errors{background:#fff3f3;border-left:4px solid #b00020;padding:.5rem 1rem}
figure{margin:1.5rem 0}
figure img{max-width:100%;height:auto;border:1px solid #ddd}
figcaption{color:#555}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:.9rem;width:100%}
th,td{border:1px solid #ddd;padding:.25rem .5rem}
td.num{text-align:right;font-variant-numeric:tabular-nums}
th{background:#f3f3f3;cursor:pointer;user-select:none;position:sticky;top:0}
th[aria-sort=ascending]::after{content:" \\25B2"}
th[aria-sort=descending]::after{content:" \\25BC"}
tr.error td{background:#fff3f3}
tr.skipped td{color:#777}
.skipped{background:#f6f6f6;border-left:4px solid #999;padding:.5rem 1rem}
tr.unsafe td.sync{color:#b00020;font-weight:600}
.swatch{display:inline-block;width:.8em;height:.8em;margin-right:.3em;vertical-align:middle}
"""

#: Click a header to sort by it; click again to reverse. Numbers sort by data-value
#: (empty values last), text case-insensitively. No library, works from file://.
_SCRIPT = """
(function () {
  var table = document.getElementById("summary");
  if (!table) { return; }
  var heads = table.tHead.rows[0].cells;
  function key(cell, num) {
    if (!num) { return cell.textContent.trim().toLowerCase(); }
    var v = parseFloat(cell.getAttribute("data-value"));
    return isNaN(v) ? null : v;
  }
  function sortBy(index) {
    var th = heads[index];
    var num = th.getAttribute("data-kind") === "num";
    var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a.cells[index], num), y = key(b.cells[index], num);
      if (x === y) { return 0; }
      if (x === null) { return 1; }
      if (y === null) { return -1; }
      return x < y ? -dir : dir;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    for (var i = 0; i < heads.length; i++) { heads[i].removeAttribute("aria-sort"); }
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
  }
  for (var i = 0; i < heads.length; i++) {
    heads[i].addEventListener("click", sortBy.bind(null, i));
  }
  window.sharebenchSortBy = sortBy;
})();
"""

_CHART_TEXT = {
    "throughput": "Throughput per mechanism/sync, by process count (log scale, IQR whiskers). "
    "Hatched bars have no synchronisation or lost updates: fast because wrong.",
    "scaling": "Throughput as worker processes are added; the dotted line marks the cores.",
    "bandwidth": "Bytes per second handed to another process, by payload size (log–log). "
    "The thick dark line is numpy memcpy within one process: the physical limit.",
    "lost-updates": "Share of updates lost by variants without synchronisation.",
    "latency": "Round trip of one message to another process and back, per message size: "
    "bars at the median, marks at p99 and p99.9 (log scale); dashed lines: ipc-bench's C "
    "figures for 100-byte messages.",
    "memory": "Lookups per second against how much memory each worker copied while it read "
    "(USS filled, PSS hollow): reading an inherited dict writes reference counts.",
    "start-methods": "The same benchmarks under each start method, side by side.",
}


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _cell(col: str, kind: str, value: Any) -> str:
    if kind != "num":
        cls = ' class="sync"' if col == "sync" else ""
        return f"<td{cls}>{_esc(value)}</td>"
    number = float(value)
    if math.isnan(number):
        return '<td class="num" data-value=""></td>'
    if col == "throughput_ops_s":
        shown = f"{number:,.0f}"
    elif col == "payload_bytes":
        shown = fmt.size(int(number)) if number else "-"
    elif col in ("median_s", "iqr_s"):
        shown = f"{number:.4g}"
    elif col in ("ns_per_op", "lost_pct"):
        shown = f"{number:.3g}"
    else:
        shown = f"{int(number)}"
    return f'<td class="num" data-value="{number!r}">{_esc(shown)}</td>'


def _verdicts(df: pd.DataFrame) -> str:
    """Per operation: the fastest correct variant (:func:`sharebench.views.findings`), and
    the variants that lose updates."""
    items = []
    for f in findings(df):
        parts = []
        if f.best is None:
            parts.append("no correct variant between processes measured")
        elif f.kind == "latency":
            parts.append(
                f"fastest round trip: <strong>{_esc(series_label(f.best))}</strong> "
                f"(p50 {_esc(fmt.duration_ns(float(f.best['latency_p50_s']) * 1e9))}, "
                f"p99 {_esc(fmt.duration_ns(float(f.best['latency_p99_s']) * 1e9))})"
            )
        elif f.bulk:
            bps = float(f.best["throughput_ops_s"]) * int(f.best["payload_bytes"])
            parts.append(
                f"highest bandwidth: <strong>{_esc(series_label(f.best))}</strong> "
                f"({_esc(fmt.bandwidth(bps))}, {_esc(f.best['start_method'])})"
            )
        else:
            n = int(f.best["processes"])
            parts.append(
                f"fastest correct between processes: "
                f"<strong>{_esc(series_label(f.best))}</strong> "
                f"({_esc(fmt.rate(float(f.best['throughput_ops_s'])))} with {n} "
                f"process{'es' if n != 1 else ''}, {_esc(f.best['start_method'])})"
            )
        if f.best_thread is not None and f.kind == "throughput":
            # The question is how *processes* share state: threads of one process are the
            # baseline they are measured against, named separately, never the winner.
            parts.append(
                f"threads of one process, for comparison: {_esc(series_label(f.best_thread))} "
                f"{_esc(fmt.rate(float(f.best_thread['throughput_ops_s'])))}"
            )
        if not f.losers:
            loss = "no lost updates"
        else:
            loss = "lose updates: " + ", ".join(
                f'<span class="loss">{_esc(series_label(r))} up to '
                f"{_esc(fmt.pct(float(r['lost_pct'])))}%</span>"
                for r in f.losers
            )
        items.append(f"<li><strong>{_esc(f.operation)}</strong>: {'; '.join(parts)}; {loss}</li>")
    if not items:
        items.append("<li>No successful benchmark in this run.</li>")
    return '<ul class="verdicts">' + "".join(items) + "</ul>"


def _status_section(rows: pd.DataFrame, kind: str) -> str:
    """The failed (or skipped) benchmarks, each with its reason."""
    if rows.empty:
        return ""
    n = len(rows)
    lis = "".join(
        f"<li><code>{_esc(r['benchmark'])}</code>: {_esc(r['status'])}</li>"
        for _, r in rows.iterrows()
    )
    title = (f"{n} failed benchmark{'s' if n != 1 else ''} (left out of the charts)"
             if kind == "error" else
             f"{n} skipped benchmark{'s' if n != 1 else ''} (could not run here; not failures)")
    css = "errors" if kind == "error" else "skipped"
    return f'<section class="{css}"><h2>{title}</h2><ul>{lis}</ul></section>'


def _chart_text(name: str) -> str:
    for prefix, text in _CHART_TEXT.items():
        if name.startswith(prefix):
            return text
    return ""


def index_html(df: pd.DataFrame, charts: list[str], *, source: str = "") -> str:
    """The page for one run; ``charts`` are file names beside the page, shown in order."""
    failed, skipped = failed_rows(df), skipped_rows(df)
    run_rows = [
        ("Machine", f"{one_value(df, 'hostname')} — {one_value(df, 'cpu_model')}"),
        ("Cores", one_value(df, "cpu_count")),
        ("Python", one_value(df, "python")),
        ("Platform", one_value(df, "platform")),
        ("Date (UTC)", one_value(df, "timestamp_utc")),
        ("Run id", one_value(df, "run_id")),
        ("Profile", one_value(df, "profile")),
        ("Run status", one_value(df, "run_status")),
        ("Git commit", one_value(df, "git_commit")),
        ("Benchmarks", f"{len(df)} ({len(failed)} failed, {len(skipped)} skipped)"),
    ]
    if source:
        run_rows.append(("Source", source))
    run_dl = "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in run_rows)

    error_html = _status_section(failed, "error") + _status_section(skipped, "skipped")
    slowed = slowed_rows(df)
    if len(slowed):
        error_html += (
            f'<section class="errors"><h2>{len(slowed)} benchmark'
            f"{'s' if len(slowed) != 1 else ''} slowed on purpose</h2><p>This run used "
            "<code>--sharebench-slowdown</code> to validate regression detection: it is not a "
            "clean run.</p></section>")

    figures = "".join(
        f'<figure id="chart-{_esc(name.removesuffix(".png"))}">'
        f'<img src="{_esc(name)}" alt="{_esc(name)}" width="1600" height="1000" '
        f"loading=\"eager\" onerror=\"this.alt='chart missing: ' + this.alt\">"
        f"<figcaption>{_esc(_chart_text(name))}</figcaption></figure>"
        for name in charts
    )

    head = "".join(
        f'<th scope="col" data-col="{_esc(col)}" data-kind="{kind}">{_esc(title)}</th>'
        for col, title, kind in TABLE_COLUMNS
    )
    body = []
    kinds = status_kinds(df["status"]).tolist()
    for status_kind, (_, row) in zip(kinds, df.iterrows(), strict=True):
        classes = []
        if status_kind != "ok":
            classes.append(status_kind)
        elif is_unsafe(row):
            classes.append("unsafe")
        cells = []
        for col, _, kind in TABLE_COLUMNS:
            if col == "family":
                swatch = (f'<span class="swatch" style="background:'
                          f'{_esc(family_color(str(row[col])))}"></span>')
                cells.append(f"<td>{swatch}{_esc(row[col])}</td>")
            else:
                cells.append(_cell(col, kind, row[col]))
        cls = f' class="{" ".join(classes)}"' if classes else ""
        body.append(f"<tr{cls}>{''.join(cells)}</tr>")

    title = f"sharebench results — {one_value(df, 'hostname')} — run {one_value(df, 'run_id')}"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_esc(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>sharebench results</h1>
<p>How processes share state: what each way costs, and whether it is correct.</p>
<section><h2>Run</h2><dl class="run">{run_dl}</dl></section>
<section><h2>At a glance</h2>{_verdicts(df)}</section>
{error_html}
<section><h2>Charts</h2>{figures}</section>
<section><h2>All benchmarks</h2>
<p>Click a column header to sort; click again to reverse.</p>
<div class="scroll"><table id="summary"><thead><tr>{head}</tr></thead>
<tbody>{"".join(body)}</tbody></table></div>
</section>
<script>{_SCRIPT}</script>
</body>
</html>
"""
