"""The run report as one self-contained HTML page (`stockpipe report`, `run --report`). Pure.

Everything is inline: the style sheet, and small SVG line charts drawn here from the
closes (no matplotlib, no script, no font, no image file, no link to anything), so the
page opens offline, from an e-mail attachment or a CI artefact, and makes no network
request. Every text from the database is escaped.
"""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

Row = Mapping[str, Any]

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem;color:#1d2733;max-width:90rem}
h1{font-size:1.5rem;margin:0 0 .3rem}h2{font-size:1.1rem;margin:1.8rem 0 .5rem;border-bottom:1px solid #dde3ea}
table{border-collapse:collapse;margin:.3rem 0 1rem}th,td{padding:.25rem .7rem;border-bottom:1px solid #eef1f4;
text-align:left;vertical-align:top;white-space:nowrap}td.msg{white-space:normal;min-width:18rem}th{background:#f5f7f9;font-weight:600}td.n{text-align:right;
font-variant-numeric:tabular-nums}.ok{color:#1e7a45}.failed,.error{color:#b3261e}.warn,.skipped{color:#9a6700}
.badge{display:inline-block;padding:.1rem .6rem;border-radius:1rem;font-weight:600;background:#eef1f4}
.charts{display:flex;flex-wrap:wrap;gap:1rem}figure{margin:0;border:1px solid #e3e8ee;padding:.4rem;border-radius:4px}
figcaption{font-size:12px;color:#4a5663}.muted{color:#6b7785}
"""


@dataclass(frozen=True)
class Report:
    """What the page shows about one run (all its invocations: commands, shards, retries)."""

    run_id: str
    status: str
    generated_at: dt.datetime
    invocations: Sequence[Row]  # pipeline_runs rows
    stages: Sequence[Row]  # stage, ok, failed, skipped, no_data, rows, api_calls
    providers: Sequence[Row]  # provider, api_calls, symbols, quota_limit, quota_left, resets_at
    failing: Sequence[Row]  # run_events rows not ok: symbol, stage, status, provider, message
    quality: Sequence[Row]  # quality_results rows that did not pass
    closes: Mapping[str, Sequence[tuple[dt.date, float]]] = field(default_factory=dict)  # per symbol failing a rule

    @property
    def duration(self) -> dt.timedelta | None:
        started = [r["started_at"] for r in self.invocations if r.get("started_at")]
        finished = [r["finished_at"] for r in self.invocations if r.get("finished_at")]
        return max(finished) - min(started) if started and finished else None


def render(report: Report) -> str:
    """The page's HTML text."""
    title = f"stockpipe run {report.run_id}"
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        # No request may leave the page: forbid every fetch, allow only the inline style and images.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'; '
        'img-src data:">',
        '<link rel="icon" href="data:,">',  # else a browser asks the server for /favicon.ico
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p><span class="badge {_e(report.status)}" id="status">{_e(report.status)}</span> '
        f'<span class="muted">duration {_e(_duration(report.duration))} · report made '
        f'{report.generated_at:%Y-%m-%d %H:%M} UTC</span></p>',
        _section("Invocations", ("command", "shard", "status", "exit", "started (UTC)", "duration", "symbols ok",
                                 "failed", "deferred", "rows fetched", "rows loaded", "API calls", "error"),
                 [_invocation(r) for r in report.invocations], "invocations"),
        _section("Stages", ("stage", "ok", "failed", "deferred", "no data", "rows", "API calls"),
                 [(r["stage"], *(_n(r[k]) for k in ("ok", "failed", "skipped", "no_data", "rows", "api_calls")))
                  for r in report.stages], "stages"),
        _section("Providers", ("provider", "API calls", "symbols", "daily limit", "left today", "resets (UTC)"),
                 [(r["provider"], _n(r["api_calls"]), _n(r["symbols"]), _n(r.get("quota_limit")),
                   _n(r.get("quota_left")), _when(r.get("resets_at"))) for r in report.providers], "providers"),
        _section("Symbols not ok", ("symbol", "stage", "status", "provider", "reason"),
                 [(r["symbol"], r["stage"], (r["status"], r["status"]), r.get("provider") or "", (r.get("message") or "", "msg"))
                  for r in report.failing], "failing", empty="every symbol of this run was ok"),
        _section("Quality failures", ("rule", "severity", "symbol", "observed", "threshold", "detail"),
                 [(r["check_name"], (r["severity"], r["severity"]), r["symbol"], _n(r.get("observed")),
                   _n(r.get("threshold")), (r.get("detail") or "", "msg")) for r in report.quality], "quality",
                 empty="no quality rule failed in this run"),
    ]
    if report.closes:
        charts = "".join(_figure(symbol, closes) for symbol, closes in report.closes.items())
        parts.append(f'<h2>Symbols that failed a rule</h2><div class="charts" id="charts">{charts}</div>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _n(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.6g}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _when(value: dt.datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M}" if value else "—"


def _duration(value: dt.timedelta | None) -> str:
    if value is None:
        return "unknown (still running?)"
    seconds = value.total_seconds()
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _invocation(r: Row) -> tuple:
    took = r["finished_at"] - r["started_at"] if r.get("finished_at") and r.get("started_at") else None
    return (r["command"], r.get("shard") or "—", (r["status"], r["status"]), _n(r.get("exit_code")),
            _when(r.get("started_at")), _duration(took) if took else "—",
            *(_n(r.get(k)) for k in ("ok", "failed", "skipped", "rows_fetched", "rows_loaded", "api_calls")),
            (r.get("error") or "", "msg"))


def _section(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]], ident: str,
             empty: str = "none") -> str:
    """An <h2> and a table; a cell given as (text, css class) gets that class; numbers align right."""
    if not rows:
        return f'<h2>{_e(title)}</h2><p class="muted" id="{ident}">{_e(empty)}</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in rows)
    return f'<h2>{_e(title)}</h2><table id="{ident}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _cell(value: Any) -> str:
    if isinstance(value, tuple):
        text, css = value
        return f'<td class="{_e(css)}">{_e(text)}</td>'
    text = str(value)
    numeric = text.replace(",", "").replace(".", "", 1).lstrip("-").isdigit()
    return f'<td class="n">{_e(text)}</td>' if numeric else f"<td>{_e(text)}</td>"


def svg_line(closes: Sequence[tuple[dt.date, float]], width: int = 260, height: int = 70) -> str:
    """A small inline SVG line chart of the closes, its low and high labelled."""
    values = [c for _, c in closes]
    if len(values) < 2:
        return f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"></svg>'
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    step = (width - 4) / (len(values) - 1)
    points = " ".join(f"{2 + i * step:.1f},{4 + (high - v) / span * (height - 8):.1f}" for i, v in enumerate(values))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img">'
            f'<polyline fill="none" stroke="#1f3b5c" stroke-width="1.3" points="{points}"/>'
            f'<text x="{width - 2}" y="10" font-size="9" text-anchor="end" fill="#6b7785">{high:.4g}</text>'
            f'<text x="{width - 2}" y="{height - 2}" font-size="9" text-anchor="end" fill="#6b7785">{low:.4g}</text>'
            "</svg>")


def _figure(symbol: str, closes: Sequence[tuple[dt.date, float]]) -> str:
    span = f"{closes[0][0]} to {closes[-1][0]}" if closes else "no bars held"
    return (f'<figure data-symbol="{_e(symbol)}">{svg_line(closes)}'
            f"<figcaption><b>{_e(symbol)}</b> close, {_e(span)}</figcaption></figure>")
