"""`report [--run-id ID] --out report.html` (and `run --report FILE`): one static page about
a run, from what the warehouse recorded of it (pipeline_runs, run_events, quality_results,
quota_ledger) and the closes of the symbols that failed a rule. Reads only."""

from __future__ import annotations

from pathlib import Path

from .. import calendars, files, htmlreport
from ..config import Settings
from ..errors import NoDataError
from ..outputs import WrittenResult
from ..storage import monitoring, reads
from .reading import open_reader

CHART_BARS = 120  # closes in each failing symbol's chart
MAX_CHARTS = 24  # symbols charted (the first by rule severity); the tables list every one
STATUSES = ("ok", "failed", "skipped", "no_data")


def check_out(out: Path) -> None:
    """Refuse a report path that cannot be written before any work (`run --report`)."""
    files.check_output(out, "--report", (".html", ".htm"))


def report(settings: Settings, out: Path, run_id: str | None = None,
           clock=calendars.utcnow) -> WrittenResult:
    """Write the page of run `run_id` (default: the newest run) to `out`.

    Raises:
        UsageError: `out` is not an .html file in an existing directory.
        NoDataError: no run recorded yet, or none named `run_id`.
    """
    files.check_output(out, "--out", (".html", ".htm"))
    now = clock()
    with open_reader(settings).connect() as conn:
        run_id = run_id or reads.latest_run_id(conn)
        invocations = reads.invocations(conn, run_id) if run_id else []
        if not invocations:
            raise NoDataError(f"no run named {run_id!r} in pipeline_runs: see `stockpipe report --help`"
                              if run_id else "no run recorded yet: run `stockpipe run --all` first")
        events = reads.events(conn, run_id)
        quality = reads.quality_failures(conn, run_id)
        called = sorted({e["provider"] for e in events if e["provider"]})
        quotas = {q.provider: q for q in monitoring.quotas(conn, now, called)}
        charted = list(dict.fromkeys(r["symbol"] for r in quality if r["symbol"] != "*"))[:MAX_CHARTS]
        closes = reads.closes(conn, charted, CHART_BARS)
    page = htmlreport.Report(run_id, _status(invocations), now, invocations, _stages(events),
                             _providers(events, quotas), [e for e in events if e["status"] != "ok"], quality, closes)
    files.write_atomic(out, htmlreport.render(page).encode("utf-8"))
    failing = sorted({e["symbol"] for e in events if e["status"] == "failed"})
    what = (f"run {run_id}: {page.status}, {len(failing)} failing symbol(s), {len(quality)} quality failure(s)")
    return WrittenResult("report", out, what, {"run_id": run_id, "status": page.status, "failing_symbols": failing,
                                               "quality_failures": len(quality)})


def _status(invocations: list[dict]) -> str:
    """failed when any invocation failed or was interrupted, running while one runs, else ok."""
    statuses = {r["status"] for r in invocations}
    for status in ("failed", "interrupted", "running"):
        if status in statuses:
            return status
    return "ok"


def _stages(events: list[dict]) -> list[dict]:
    """Per stage: symbols per status (the last event of a symbol in a stage counts), rows, calls."""
    last: dict[tuple[str, str], dict] = {}
    for event in events:
        last[(event["stage"], event["symbol"])] = event
    stages: dict[str, dict] = {}
    for (stage, _), event in last.items():
        row = stages.setdefault(stage, {"stage": stage, **{s: 0 for s in STATUSES}, "rows": 0, "api_calls": 0})
        row[event["status"] if event["status"] in STATUSES else "failed"] += 1
        row["rows"] += event["rows"] or 0
        row["api_calls"] += event["api_calls"] or 0
    return list(stages.values())


def _providers(events: list[dict], quotas: dict) -> list[dict]:
    rows: dict[str, dict] = {}
    for event in events:
        if not event["provider"]:
            continue
        row = rows.setdefault(event["provider"], {"provider": event["provider"], "api_calls": 0, "symbols": set()})
        row["api_calls"] += event["api_calls"] or 0
        row["symbols"].add(event["symbol"])
    out = []
    for name, row in sorted(rows.items()):
        quota = quotas.get(name)
        out.append({**row, "symbols": len(row["symbols"]), "quota_limit": quota.limit if quota else None,
                    "quota_left": quota.remaining if quota else None,
                    "resets_at": quota.resets_at if quota else None})
    return out

