"""Quality rules: judge the per-symbol facts gathered from the warehouse. Pure.

Each rule has a stable snake_case name (the `check_name` of `quality_results`, the `name`
in `--json`), a severity, a default threshold and a description. `evaluate` returns one
`Check` per (rule, symbol) with the observed value and the threshold, so `quality_results`
says exactly what was seen. A check fails when its observed value is above its threshold:
every threshold is the largest value that still passes.

| rule | severity | default | observed |
|---|---|---|---|
| price_positive | error | 0 | rows with open, high, low or close <= 0 |
| volume_non_negative | error | 0 | rows with volume < 0 |
| high_encloses | error | 0 | rows with high < max(open, close) |
| low_encloses | error | 0 | rows with low > min(open, close) |
| duplicate_keys | error | 0 | duplicate (symbol, date) keys |
| hundred_x | error | 50 | the largest factor between a close and both its neighbours' closes |
| spike | warn | 0.20 | the largest close-to-close move (a fraction) that no split explains |
| gaps | warn | 0 | sessions the calendar expects between the first and last bar that have none |
| unexpected_bars | warn | 0 | bars on days the exchange was closed |
| stale | warn | stale_after_sessions | sessions the last bar lags the latest closed session |
| zero_volume_run | warn | 5 | the longest run of consecutive zero-volume bars |
| provider_divergence | warn | 0.005 | the largest relative difference between prices_daily's and quotes_daily's close |
| restated | warn | 0 | bars whose values a vendor restated in the 7 days before the latest session (price_revisions) |

Decisions:
    * hundred_x (the vendor bug that sends pence for pounds, cents for dollars) flags a close
      that is at least `threshold` times, or at most 1/`threshold` of, BOTH neighbours, in
      the same direction: an isolated bad bar, not a level shift (which `spike` reports).
      The first and last bar have one neighbour and are judged on it, unless that
      neighbour is itself flagged or a split lies between them: a bad newest bar must fail
      tonight, not when the next bar arrives. The default 50 catches 100x with room for
      the day's move and anything larger (1000x).
    * A spike is explained by a split dated from the previous bar to the bar itself (on
      that date or the day before, a weekend included), whatever its ratio: vendors
      disagree on new/old against old/new. Dividends explain nothing (a few percent).
    * unexpected_bars is a warning: vendors fill holidays with a copy of the last bar, and
      that harms nothing; a bar shifted by a time-zone bug also shows as gaps and stale.
    * A threshold of `spike`, `hundred_x` or `provider_divergence` is passed when nothing
      reaches it: observed is then None (the facts hold only bars beyond the threshold).
    * stale's threshold is `stale_after_sessions`, unless the [quality] table names `stale`.
"""

from __future__ import annotations

import datetime as dt
import string
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..errors import ConfigError
from ..models import Check

Fact = Mapping[str, Any]  # one symbol's facts, as storage.quality_data.collect gathers them


@dataclass(frozen=True)
class Rule:
    """One quality rule, declared once: next to the function that judges it, or as a counted
    rule (`_counted_rule`) judging a count of its facts.

    `name` is the rule's `check_name` in quality_results, its key in `thresholds()` and in
    the config's [quality] table; `reads` names the facts it judges (a test checks that
    storage.quality_data.collect gathers every one of them).
    """

    name: str
    severity: str  # error | warn
    threshold: float  # default; the largest observed value that passes
    description: str
    reads: tuple[str, ...]
    judge: Callable[[Rule, str, Fact, float], Check] = field(repr=False, compare=False)
    detail: str = ""  # a counted rule's message: formatted with the count (n) and the facts

    def check(self, symbol: str, fact: Fact, threshold: float) -> Check:
        return self.judge(self, symbol, fact, threshold)


def _rule(name: str, severity: str, threshold: float, description: str, reads: tuple[str, ...]):
    """Declare a rule judged by the decorated function (which becomes the Rule)."""
    def declare(judge: Callable[[Rule, str, Fact, float], Check]) -> Rule:
        return Rule(name, severity, threshold, description, reads, judge)

    return declare


def _check(rule: Rule, symbol: str, observed: float | None, threshold: float, detail: str,
           ok: bool | None = None) -> Check:
    ok = observed is None or observed <= threshold if ok is None else ok
    return Check(rule.name, ok, detail, rule.severity, symbol, None if observed is None else float(observed),
                 float(threshold))


def _counted(rule: Rule, symbol: str, fact: Fact, threshold: float) -> Check:
    """Judge the count in the rule's first fact: "ok" at zero, else the rule's detail."""
    count = int(fact[rule.reads[0]] or 0)
    return _check(rule, symbol, count, threshold, rule.detail.format(n=count, **fact) if count else "ok")


def _counted_rule(name: str, severity: str, threshold: float, description: str, count: str, detail: str) -> Rule:
    """A rule on the count in fact `count`; it reads that fact and those `detail` names."""
    named = tuple(f for _, f, _, _ in string.Formatter().parse(detail) if f and f != "n")
    return Rule(name, severity, threshold, description, (count, *dict.fromkeys(named)), _counted, detail)


_OFFENDING_ROWS = (  # (rule, description): errors on a count of offending rows, the fact of the rule's name
    ("price_positive", "rows with a price <= 0"),
    ("volume_non_negative", "rows with volume < 0"),
    ("high_encloses", "rows with high < max(open, close)"),
    ("low_encloses", "rows with low > min(open, close)"),
    ("duplicate_keys", "duplicate (symbol, date) keys"),
)
COUNT_RULES: tuple[Rule, ...] = tuple(_counted_rule(name, "error", 0, description, name, "{n} " + description)
                                      for name, description in _OFFENDING_ROWS)


def thresholds(overrides: Mapping[str, Any] | None = None, stale_after_sessions: int | None = None) -> dict[str, float]:
    """Every rule's threshold: the defaults, `stale_after_sessions`, then the [quality] table.

    Raises:
        ConfigError: an unknown rule name, or a value that is not a number >= 0.
    """
    out = {rule.name: float(rule.threshold) for rule in RULES}
    if stale_after_sessions is not None:
        out["stale"] = float(stale_after_sessions)
    for name, value in (overrides or {}).items():
        if name not in RULES_BY_NAME:
            raise ConfigError(f"unknown quality rule {name!r} in the config's [quality] table: "
                              f"known rules are {', '.join(RULES_BY_NAME)}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = -1.0
        if isinstance(value, bool) or not number >= 0:  # `not >=` also refuses NaN
            raise ConfigError(f"[quality] {name} = {value!r} is not a number >= 0: fix the config file")
        out[name] = number
    return out


def evaluate(facts: Mapping[str, Fact], symbols: Sequence[str],
             limits: Mapping[str, float] | None = None) -> list[Check]:
    """Judge every rule for every symbol of `symbols`, in RULES order.

    Args:
        facts: symbol -> its facts (see storage.quality_data.collect); a symbol without
            facts has no rows and fails only `stale` (a warning: the next fetch fills it).
        symbols: the symbols judged.
        limits: rule name -> threshold (default: `thresholds()`).
    """
    limits = limits or thresholds()
    checks: list[Check] = []
    for symbol in symbols:
        fact = facts.get(symbol)
        if fact is None:
            checks.append(_check(_stale, symbol, None, limits[_stale.name], "no bars in the warehouse", ok=False))
            continue
        checks += [rule.check(symbol, fact, limits[rule.name]) for rule in RULES]
    return checks


def _pct(x: float) -> str:
    return f"{x:+.1%}"


def _share(x: float) -> str:
    """A threshold fraction as a percentage without noise: 0.2 -> 20%, 0.005 -> 0.5%."""
    return f"{x * 100:.4g}%"


# --------------------------------------------------------------------- moves


def _fold(a: float | None, b: float | None) -> float | None:
    """How many times a is b (or b is a), when both are positive."""
    if a is None or b is None or a <= 0 or b <= 0:
        return None
    return max(a / b, b / a)


def _split_between(splits: Iterable[dt.date], start: dt.date | None, end: dt.date) -> bool:
    return any((start or end) <= day <= end for day in splits)


def hundred_x_bars(fact: Fact, factor: float) -> list[tuple[dt.date, float]]:
    """(date, factor) of the closes more than `factor` away from their neighbours (see Decisions)."""
    def far(move, side):
        fold = _fold(move["close"], move[f"{side}_close"])
        return fold if fold is not None and fold > factor else None

    both, edges = {}, []
    for move in fact["moves"]:
        prev, nxt = far(move, "prev"), far(move, "next")
        if prev and nxt and (move["close"] > move["prev_close"]) == (move["close"] > move["next_close"]):
            both[move["date"]] = min(prev, nxt)
        elif move["prev_close"] is None and nxt:
            edges.append((move["date"], nxt, move["next_date"], move["date"], move["next_date"]))
        elif move["next_close"] is None and prev:
            edges.append((move["date"], prev, move["prev_date"], move["prev_date"], move["date"]))
    out = list(both.items())
    out += [(day, fold) for day, fold, neighbour, start, end in edges
            if neighbour not in both and not _split_between(fact["splits"], start, end)]
    return sorted(out)


@_rule("hundred_x", "error", 50.0, "a close this many times (or this fraction of) both neighbours' closes",
       reads=("moves", "splits"))
def _hundred_x(rule: Rule, symbol: str, fact: Fact, factor: float) -> Check:
    bad = hundred_x_bars(fact, factor)
    if not bad:
        return _check(rule, symbol, None, factor, f"no close more than {factor:g}x away from its neighbours")
    day, fold = max(bad, key=lambda b: b[1])
    move = next(m for m in fact["moves"] if m["date"] == day)
    detail = (f"{len(bad)} close(s) more than {factor:g}x away from the neighbouring closes (a unit error?); "
              f"worst {fold:.1f}x on {day.isoformat()}: {_neighbours(move)}")
    return _check(rule, symbol, fold, factor, detail)


def _neighbours(move: Fact) -> str:
    parts = [f"{move[k]:g}" if move[k] is not None else "-" for k in ("prev_close", "close", "next_close")]
    return " -> ".join(parts)


def spike_moves(fact: Fact, threshold: float) -> list[tuple[dt.date, float]]:
    """(date, move) of the close-to-close moves above `threshold` that no split explains."""
    out = []
    for move in fact["moves"]:
        prev = move["prev_close"]
        if prev is None or prev <= 0:
            continue
        change = move["close"] / prev - 1.0
        if abs(change) > threshold and not _split_between(fact["splits"], move["prev_date"], move["date"]):
            out.append((move["date"], change))
    return out


@_rule("spike", "warn", 0.20, "a close-to-close move (fraction) that no split explains", reads=("moves", "splits"))
def _spike(rule: Rule, symbol: str, fact: Fact, threshold: float) -> Check:
    moves = spike_moves(fact, threshold)
    if not moves:
        return _check(rule, symbol, None, threshold, f"no unexplained move above {_share(threshold)}")
    day, change = max(moves, key=lambda m: abs(m[1]))
    detail = (f"{len(moves)} close-to-close move(s) above {_share(threshold)} without a split; "
              f"largest {_pct(change)} on {day.isoformat()}")
    return _check(rule, symbol, abs(change), threshold, detail)


# ------------------------------------------------------------------ calendar


_gaps = _counted_rule(
    "gaps", "warn", 0, "sessions the calendar expects between the first and last bar without a bar", "missing_sessions",
    "{n} {exchange} session(s) without a bar between {first_date} and {last_date}; first {first_missing} "
    "(refetched by the next fetch)")
_unexpected = _counted_rule("unexpected_bars", "warn", 0, "bars on days the exchange was closed", "unexpected_bars",
                            "{n} bar(s) on days {exchange} was closed; first {first_unexpected}")


@_rule("stale", "warn", 1, "sessions the last bar lags the latest closed session",
       reads=("sessions_behind", "latest_session", "last_date"))
def _stale(rule: Rule, symbol: str, fact: Fact, threshold: float) -> Check:
    behind, latest = int(fact["sessions_behind"]), fact["latest_session"]
    detail = f"last bar {fact['last_date'].isoformat()}, {behind} session(s) behind {latest.isoformat()}"
    return _check(rule, symbol, behind, threshold, detail)


# --------------------------------------------------------------- volume, source


_zero_volume = _counted_rule("zero_volume_run", "warn", 5, "consecutive zero-volume bars", "zero_volume_run",
                             "{n} consecutive zero-volume bar(s) from {zero_volume_from}")


@_rule("provider_divergence", "warn", 0.005, "relative difference of prices_daily's and quotes_daily's close",
       reads=("quote_days", "max_divergence", "divergences"))
def _divergence(rule: Rule, symbol: str, fact: Fact, threshold: float) -> Check:
    days = int(fact["quote_days"])
    if not days:
        return _check(rule, symbol, None, threshold, "no quotes_daily day to compare")
    worst = fact["max_divergence"]
    bad = [d for d in fact["divergences"] if abs(d["quote_close"] - d["close"]) > threshold * d["close"]]
    if not bad:
        return _check(rule, symbol, worst, threshold,
                      f"{days} day(s) compared with quotes_daily, all within {_share(threshold)}", ok=True)
    top = max(bad, key=lambda d: abs(d["quote_close"] / d["close"] - 1))
    detail = (f"{len(bad)} of {days} day(s) where quotes_daily's close differs from prices_daily's by more than "
              f"{_share(threshold)}; largest on {top['date'].isoformat()}: {top['close']:g} vs {top['quote_close']:g}")
    return _check(rule, symbol, max(worst or 0.0, abs(top["quote_close"] / top["close"] - 1)), threshold, detail)


@_rule("restated", "warn", 0, "bars a vendor restated lately (their old values are in price_revisions)",
       reads=("revisions",))
def _restated(rule: Rule, symbol: str, fact: Fact, threshold: float) -> Check:
    revisions = fact["revisions"]
    bars = sorted({r["date"] for r in revisions})
    if not bars:
        return _check(rule, symbol, 0, threshold, "no bar restated lately")
    shown = "; ".join(f"{r['date'].isoformat()} {r['column']} {_value(r['old'])} -> {_value(r['new'])}"
                      for r in revisions[:5])
    more = f"; {len(revisions) - 5} more" if len(revisions) > 5 else ""
    detail = (f"{len(bars)} bar(s) restated ({len(revisions)} value(s); old values in price_revisions): "
              f"{shown}{more}")
    return _check(rule, symbol, len(bars), threshold, detail)


def _value(x: float | None) -> str:
    return "NULL" if x is None else f"{x:g}"


# Every rule, in the order `evaluate` judges them and quality_results lists them.
RULES: tuple[Rule, ...] = (*COUNT_RULES, _hundred_x, _spike, _gaps, _unexpected, _stale, _zero_volume, _divergence,
                           _restated)
RULES_BY_NAME: dict[str, Rule] = {rule.name: rule for rule in RULES}
