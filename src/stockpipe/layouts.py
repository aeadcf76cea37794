"""Results laid out for a person at a terminal, as rich renderables (tables, text).

Only building: render.py prints them. Numbers sit in right-aligned columns that never wrap
(a count is never cut across two lines at 80 columns); text columns wrap instead. When even
that does not fit, the stage table stacks each stage's counts one per line.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from .errors import ExitCode, HealthCode

if TYPE_CHECKING:
    from rich.table import Table

    from .models import Check, CommandResult, StageResult, SymbolOutcome
    from .outputs import ShowResult
    from .pipeline.status import StatusResult

# Stage table columns: header -> the counts that fill it (the first a stage has). "current"
# is fetch's `skipped` (already up to date, not asked); "deferred" the symbols a provider's
# stop kept from being asked (they come first next run): two different things. A symbol
# that is neither failed nor deferred is ok; the checks and warnings of validate and
# quality-check are in the checks table below; everything is in --json.
STAGE_COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("symbols", ("planned", "symbols", "symbols_checked")),
    ("failed", ("failed", "errors", "checks_failed")),
    ("deferred", ("deferred",)),
    ("current", ("skipped",)),
    ("skipped", ("skipped_failing",)),  # failed max_consecutive_failures times in a row: not asked
    ("rows", ("rows_fetched", "rows_written")),
    ("rejected", ("rows_rejected",)),
    ("calls", ("api_calls",)),
)
ALWAYS = ("symbols", "failed", "rows")
SPARKS = "▁▂▃▄▅▆▇█"
GOOD = (ExitCode.OK, ExitCode.NOTHING_TO_DO)


def result_name(command: str, code: int) -> str:
    """A stage's or command's result in words (exit 99 reads "nothing to do")."""
    kind = HealthCode if command == "health-check" else ExitCode
    try:
        return kind(code).name.lower().replace("_", " ")
    except ValueError:
        return f"exit {code}"


def number(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "—"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) >= 1 else f"{value:.4f}"
    return str(value)


def _cell(stage: StageResult, keys: tuple[str, ...]) -> int | None:
    return next((int(stage.counts[k]) for k in keys if k in stage.counts), None)


def stage_table(result: CommandResult, width: int = 80) -> Table:
    """One row per stage: its result and named numeric columns (those with a value)."""
    from rich import box
    from rich.table import Table

    cells = {header: [_cell(s, keys) for s in result.stages] for header, keys in STAGE_COLUMNS}
    shown = [h for h, _ in STAGE_COLUMNS if h in ALWAYS and any(v is not None for v in cells[h]) or any(cells[h])]
    table = Table(box=box.SIMPLE_HEAD, padding=0, show_edge=False)  # the box puts one space between columns
    table.add_column("stage", no_wrap=True)
    table.add_column("result", no_wrap=True)
    numbers = {h: [number(v) if v is not None else "" for v in cells[h]] for h in shown}
    need = sum(max(len(h), *(len(t) for t in numbers[h])) + 1 for h in shown)  # collapsed padding: 1 between
    need += max((len(s.stage) for s in result.stages), default=5) + 1
    need += max((len(result_name(result.command, s.exit_code)) for s in result.stages), default=6)
    if need > width:
        return _stacked(result, shown, numbers)
    for header in shown:
        table.add_column(header, justify="right", no_wrap=True)
    for i, stage in enumerate(result.stages):
        table.add_row(stage.stage, _verdict(result.command, stage.exit_code), *(numbers[h][i] for h in shown))
    return table


def _stacked(result: CommandResult, shown: Sequence[str], numbers: dict[str, list[str]]) -> Table:
    """The stage table when the columns do not fit: each count on a line of its own."""
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, padding=0, show_edge=False)
    for name in ("stage", "result", "counts"):
        table.add_column(name, no_wrap=name != "stage")
    for i, stage in enumerate(result.stages):
        lines = [f"{h} {numbers[h][i]}" for h in shown if numbers[h][i]]
        table.add_row(stage.stage, _verdict(result.command, stage.exit_code), "\n".join(lines))
    return table


def _verdict(command: str, code: int):
    from rich.text import Text

    if command == "health-check":
        colour = {HealthCode.OK: "green", HealthCode.CRITICAL: "red"}.get(code, "yellow")
    else:
        colour = "green" if code in GOOD else "yellow" if code == ExitCode.PARTIAL else "red"
    return Text(result_name(command, code), style=colour)


def checks_table(rows: Sequence[tuple[str, Check]]) -> Table:
    """validate's and health-check's checks (every one), or the failed ones of other stages."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.SIMPLE_HEAD, padding=0, show_edge=False, title="checks", title_justify="left")
    symbols = any(check.symbol for _, check in rows)
    for name in ("check", "symbol", "result", "detail") if symbols else ("check", "result", "detail"):
        table.add_column(name, no_wrap=name in ("symbol", "result"))
    for _, check in rows:
        verdict = "ok" if check.ok else {"error": "fail", "unknown": "unknown"}.get(check.severity, "warn")
        style = "green" if check.ok else "red" if verdict == "fail" else "yellow"
        cells = (check.symbol,) if symbols else ()
        table.add_row(check.name, *cells, Text(verdict, style=style), Text(check.detail))
    return table


def outcomes_table(outcomes: Iterable[SymbolOutcome]) -> Table:
    """The symbols that were not ok, each once, with its reason (skipped reads "deferred")."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.SIMPLE_HEAD, padding=0, show_edge=False, title="symbols not ok", title_justify="left")
    for name in ("stage", "symbol", "status", "reason"):
        table.add_column(name, no_wrap=name != "reason")
    for o in outcomes:
        status = "deferred" if o.status == "skipped" else o.status.replace("_", " ")
        table.add_row(o.stage, o.symbol, Text(status, style="red" if o.status == "failed" else "yellow"),
                      Text(o.message))
    return table


def sparkline(values: Sequence[float], width: int = 60) -> str:
    """The values as block characters, one per value (the last `width`), low to high."""
    values = [v for v in values[-width:] if v == v]
    if not values:
        return ""
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    return "".join(SPARKS[min(len(SPARKS) - 1, int((v - low) / span * len(SPARKS)))] for v in values)


def show_parts(result: ShowResult) -> list:
    """`show SYMBOL`: the heading with its sparkline, the bars, state, actions, failures."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    label = f"{result.provider} (synthetic data)" if result.provider == "demo" else result.provider
    heading = Text.assemble((result.symbol, "bold"), f"  provider {label or 'unknown'}")
    parts: list = [heading]
    if result.sparkline:
        first, last = result.sparkline[0], result.sparkline[-1]
        change = (last / first - 1) * 100 if first else 0.0
        parts.append(Text.assemble(sparkline(result.sparkline), f"  {len(result.sparkline)} closes, "
                                   f"{number(first)} → {number(last)} ({change:+.1f}%)"))
    bars = Table(box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False, show_edge=False, title="newest bars (indicators on "
                 "split-adjusted prices)", title_justify="left")
    headers = ("date", "close", "chg %", "volume", *(_short(n) for n in result.indicators))
    for name in headers:
        bars.add_column(name, justify="left" if name == "date" else "right", no_wrap=True)
    previous = None
    for bar in result.bars:
        change = "" if previous is None else f"{(bar['close'] / previous - 1) * 100:+.2f}"
        bars.add_row(str(bar["date"]), number(bar["close"]), change, number(bar["volume"]),
                     *(number(bar.get(n)) for n in result.indicators))
        previous = bar["close"]
    parts += [bars, _state_table(result), _actions_table(result), _failures_table(result)]
    return [p for p in parts if p is not None]


def _short(name: str) -> str:
    return {"sma_20": "sma20", "sma_50": "sma50", "rsi_14": "rsi14", "macd_hist": "macd h"}.get(name, name)


def _state_table(result: ShowResult):
    """The daily bars' symbol_state as name/value lines, then the other datasets in one line."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    daily = next((s for s in result.states if s["dataset"] == "prices_daily"), None)
    others = [s for s in result.states if s is not daily and (s.get("lake_version") or s.get("last_date"))]
    if daily is None and not others:
        return None
    table = Table(box=box.SIMPLE, show_header=False, padding=0, show_edge=False, title="state",
                  title_justify="left")
    table.add_column("name", no_wrap=True, style="dim")
    table.add_column("value")
    if daily is not None:
        held = f"{_day(daily.get('first_date'))} to {_day(daily.get('last_date'))}"
        rows = [("provider", daily.get("provider") or "—"), ("daily bars held", held),
                ("last attempt", _moment(daily.get("last_attempt_at"))),
                ("last success", _moment(daily.get("last_success_at"))),
                ("consecutive failures", number(daily.get("consecutive_failures") or 0)),
                ("in the warehouse", _loaded(daily))]
        if daily.get("last_error"):
            rows.append(("last error", daily["last_error"]))
        for name, value in rows:
            table.add_row(name, Text(str(value)))
    if others:
        table.add_row("other datasets", Text(", ".join(f"{s['dataset']} ({_loaded(s)})" for s in others)))
    return table


def _loaded(state: dict) -> str:
    return "loaded" if state.get("lake_version") == state.get("loaded_version") else "not loaded: run load"


def _actions_table(result: ShowResult):
    from rich import box
    from rich.table import Table

    if not result.actions:
        return None
    table = Table(box=box.SIMPLE_HEAD, padding=0, show_edge=False, title="corporate actions",
                  title_justify="left")
    for name in ("ex-date", "kind", "value"):
        table.add_column(name, justify="right" if name == "value" else "left", no_wrap=True)
    for a in result.actions[-8:]:
        value = f"{a['value']:g}:1" if a["kind"] == "split" else f"{a['value']:g} per share"
        table.add_row(str(a["date"]), a["kind"], value)
    return table


def _failures_table(result: ShowResult):
    from rich import box
    from rich.table import Table
    from rich.text import Text

    if not result.failures:
        return Text("quality: no open failure", style="green")
    table = Table(box=box.SIMPLE_HEAD, padding=0, show_edge=False, title="open quality failures",
                  title_justify="left")
    for name in ("rule", "severity", "detail"):
        table.add_column(name, no_wrap=name != "detail")
    for f in result.failures:
        table.add_row(f["check_name"], Text(f["severity"], style="red" if f["severity"] == "error" else "yellow"),
                      Text(f.get("detail") or ""))
    return table


def _day(value: dt.date | None) -> str:
    return value.isoformat() if value else "—"


def _moment(value: dt.datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M}" if value else "—"


# ------------------------------------------------------------------ status

STATUS_COLUMNS = (("symbols", "symbols"), ("current", "current"), ("stale", "stale"), ("failing", "failing"),
                  ("skipped", "skipped"), ("never", "never_loaded"), ("rows held", "rows_held"))


def _when(value: Any) -> str:
    return value.isoformat(timespec="minutes") if value is not None else "never"


def status_lines(result: StatusResult) -> list[str]:
    """The plain layout of `status`: one line per (exchange, provider), the totals, each quota,
    the notes, then the symbol's story."""
    def counts(row: dict[str, Any]) -> str:
        return " ".join(f"{key}={row[key]}" for _, key in STATUS_COLUMNS) + f" last_success={_when(row['last_success'])}"

    lines = [f"{g['exchange']} {g['provider'] or '-'}: {counts(g)}" for g in result.groups]
    lines.append(f"total: {counts(result.totals)}")
    lines += [f"quota {q['provider']}: " + (f"{q['remaining']} of {q['limit']} calls left today" if q["limit"] is not None
              else "no daily limit") + f" (calls={q['calls']})" for q in result.quotas]
    lines += [f"note: {note}" for note in result.notes]
    return lines + (_story_lines(result.story) if result.story is not None else [])


def _story_lines(story: dict[str, Any]) -> list[str]:
    lines = [f"{story['symbol']}: {story['status']} on {story['exchange']} (latest session {story['latest_session']})"]
    for state in story["states"]:
        lines.append(f"  state {state['dataset']}: first={state.get('first_date')} last={state.get('last_date')} "
                     f"last_success={_when(state.get('last_success_at'))} failures={state.get('consecutive_failures')} "
                     f"reprocess={bool(state.get('needs_reprocess'))} rows_held={state.get('rows_held')} "
                     f"provider={state.get('provider')}")
    if story["last_error"]:
        lines.append(f"  last error: {story['last_error']}")
    lines += [f"  event {_when(e['created_at'])} {e['stage']} {e['status']} rows={e['rows']} calls={e['api_calls']} "
              f"{e['provider'] or ''} {e['message'] or ''}".rstrip() for e in story["events"]]
    lines += [f"  quality {f['check_name']} {f['severity']}: {f.get('detail') or ''}" for f in story["quality_failures"]]
    lines += [f"  revision {r['date']} {r['column']}: {r['old']} -> {r['new']} ({r['provider']}, run {r['run_id']})"
              for r in story["revisions"]]
    return lines


def status_table(result: StatusResult, width: int = 80) -> Table | None:
    """The terminal table of `status`: a row per (exchange, provider) and the totals; None when
    it does not fit in `width` columns (the plain lines are printed instead)."""
    from rich import box
    from rich.table import Table

    headers = ["exchange", "provider", *(h for h, _ in STATUS_COLUMNS), "last success (UTC)"]
    rows = [[row["exchange"], row["provider"] or "-", *(number(row[key]) for _, key in STATUS_COLUMNS),
             row["last_success"].strftime("%Y-%m-%d %H:%M") if row["last_success"] else "never"]
            for row in (*result.groups, {**result.totals, "exchange": "total", "provider": ""})]
    if sum(max(len(h), *(len(r[i]) for r in rows)) + 1 for i, h in enumerate(headers)) - 1 > width:
        return None
    table = Table(box=box.SIMPLE_HEAD, padding=0, show_edge=False)  # the box puts one space between columns
    for i, header in enumerate(headers):
        table.add_column(header, justify="right" if 2 <= i < len(headers) - 1 else "left", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    return table
