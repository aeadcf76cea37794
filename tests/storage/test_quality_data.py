"""quality_data.collect: the facts the rules judge, on SQLite and PostgreSQL, with a fake calendar."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import sqlalchemy as sa

from stockpipe.stages.quality import RULES, thresholds
from stockpipe.storage import schema, warehouse
from stockpipe.storage.quality_data import Calendar, collect, missing_sessions, save_refetch

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
D = lambda day: dt.date(2026, 11, day)  # noqa: E731
LIMITS = thresholds()
STARTS = {"XLATE": D(10)}  # a calendar that knows nothing before the 10th


def fake_sessions(start: dt.date, end: dt.date, exchange: str) -> list[dt.date]:
    """Weekdays; XNYS also closes on the 26th."""
    days = (start + dt.timedelta(days=i) for i in range((end - start).days + 1))
    return [d for d in days if d.weekday() < 5 and not (exchange == "XNYS" and d == D(26))
            and d >= STARTS.get(exchange, dt.date.min)]


CALENDAR = Calendar(exchange_of=lambda s: {"T": "XTST", "LATE": "XLATE"}.get(s.rpartition(".")[2], "XNYS"),
                    sessions_between=fake_sessions, latest_session=lambda exchange: D(30))
NYSE = fake_sessions(D(2), D(30), "XNYS")  # 20 sessions


def bars(symbol: str, days=NYSE, **at) -> list[dict]:
    rows = []
    for i, day in enumerate(days):
        close = 10.0 + i * 0.01
        row = {"symbol": symbol, "date": day, "open": close, "high": close + 0.1, "low": close - 0.1, "close": close,
               "adj_close": None, "volume": 100, "provider": "test", "fetched_at": NOW}
        row.update(at.get(f"d{day.day}", {}))
        rows.append(row)
    return rows


def put(engine, table, rows) -> None:
    with engine.begin() as conn:
        conn.execute(table.insert(), rows)


def facts_of(engine) -> dict:
    with engine.begin() as conn:
        return collect(conn, CALENDAR, LIMITS)


def test_an_empty_warehouse_has_no_facts(engine):
    assert facts_of(engine) == {}


def test_the_facts_of_a_clean_symbol(engine):
    put(engine, schema.prices_daily, bars("AAA", NYSE[:-2]))
    fact = facts_of(engine)["AAA"]
    assert {k: fact[k] for k in ("rows", "first_date", "last_date", "exchange", "latest_session", "sessions_behind")} \
        == {"rows": 18, "first_date": D(2), "last_date": D(25), "exchange": "XNYS", "latest_session": D(30),
            "sessions_behind": 2}  # the 27th and the 30th: not the 26th, not the weekend
    assert (fact["missing_sessions"], fact["unexpected_bars"], fact["zero_volume_run"]) == (0, 0, 0)


def test_counts_calendar_and_row_facts(engine):
    days = [d for d in NYSE if d != D(24)] + [D(26), D(28)]  # a gap, a holiday bar, a Saturday bar
    put(engine, schema.prices_daily,
        bars("ALL", sorted(days), d3={"close": -1.0, "low": -1.1}, d4={"volume": -5}, d5={"high": 9.0},
             d9={"close": 1000.0, "high": 1000.1}, d16={"volume": 0}, d17={"volume": 0}, d18={"volume": 0},
             d20={"volume": 0})
        + bars("CLEAN"))
    put(engine, schema.corporate_actions, [
        {"symbol": "ALL", "date": D(9), "kind": "split", "value": 2.0, "provider": "t", "fetched_at": NOW},
        {"symbol": "ALL", "date": D(10), "kind": "dividend", "value": 0.1, "provider": "t", "fetched_at": NOW}])
    facts = facts_of(engine)
    a = facts["ALL"]
    assert {k: a[k] for k in ("price_positive", "volume_non_negative", "high_encloses", "low_encloses",
                              "duplicate_keys")} == {"price_positive": 1, "volume_non_negative": 1, "high_encloses": 1,
                                                     "low_encloses": 0, "duplicate_keys": 0}
    assert (a["missing_sessions"], a["first_missing"]) == (1, D(24))
    assert (a["unexpected_bars"], a["first_unexpected"]) == (2, D(26))
    assert (a["zero_volume_run"], a["zero_volume_from"]) == (3, D(16))
    assert a["splits"] == [D(9)]  # dividends are not splits
    moved = [(m["date"], m["prev_close"] is not None) for m in a["moves"]]
    assert (D(3), True) in moved and (D(4), True) in moved  # -1 after 10, 10 after -1: moves above 20%
    around = next(m for m in a["moves"] if m["date"] == D(9))
    assert (around["prev_date"], around["next_date"], around["close"]) == (D(6), D(10), 1000.0)
    c = facts["CLEAN"]
    assert (c["missing_sessions"], c["unexpected_bars"], c["zero_volume_run"], c["moves"], c["splits"]) == (0, 0, 0, [], [])


def test_every_fact_a_rule_reads_is_collected(engine):
    """The rules read the facts by name (Rule.reads), so a renamed or dropped fact fails here."""
    put(engine, schema.prices_daily, bars("AAA"))
    read = {name for rule in RULES for name in rule.reads}
    assert read - set(facts_of(engine)["AAA"]) == set()


def test_divergence_compares_quotes_daily_for_the_same_day(engine):
    put(engine, schema.prices_daily, bars("AAA") + bars("BBB"))
    quote = lambda s, d, close: {"symbol": s, "date": d, "open": close, "high": close, "low": close,  # noqa: E731
                                 "close": close, "quotes": 1, "first_ts": NOW, "last_ts": NOW, "computed_at": NOW}
    put(engine, schema.quotes_daily, [quote("AAA", NYSE[0], 10.0 * 1.01), quote("AAA", NYSE[1], 10.01),
                                      quote("BBB", NYSE[0], 10.0 * 1.003), quote("ZZZ", NYSE[0], 1.0)])
    facts = facts_of(engine)
    assert (facts["AAA"]["quote_days"], facts["AAA"]["max_divergence"]) == (2, pytest.approx(0.01))
    assert facts["AAA"]["divergences"] == [{"date": NYSE[0], "close": 10.0, "quote_close": pytest.approx(10.1)}]
    assert (facts["BBB"]["quote_days"], facts["BBB"]["max_divergence"], facts["BBB"]["divergences"]) \
        == (1, pytest.approx(0.003), [])
    assert "ZZZ" not in facts


def test_each_symbol_uses_its_exchanges_sessions(engine):
    tokyo = fake_sessions(D(2), D(30), "XTST")  # open on the 26th
    put(engine, schema.prices_daily, bars("7203.T", tokyo) + bars("6758.T", NYSE) + bars("IBM", tokyo))
    facts = facts_of(engine)
    assert (facts["7203.T"]["missing_sessions"], facts["7203.T"]["unexpected_bars"]) == (0, 0)
    assert (facts["6758.T"]["missing_sessions"], facts["6758.T"]["first_missing"]) == (1, D(26))
    assert (facts["IBM"]["unexpected_bars"], facts["IBM"]["first_unexpected"]) == (1, D(26))


def test_a_first_bar_on_a_closed_day_is_unexpected(engine):
    put(engine, schema.prices_daily, bars("SUN", [D(1), *NYSE]))  # the 1st is a Sunday
    fact = facts_of(engine)["SUN"]
    assert (fact["unexpected_bars"], fact["first_unexpected"], fact["missing_sessions"]) == (1, D(1), 0)


def test_bars_before_the_calendar_knows_sessions_are_not_judged(engine):
    put(engine, schema.prices_daily, bars("OLD.LATE", [D(1), *NYSE]))  # the 1st is a Sunday
    fact = facts_of(engine)["OLD.LATE"]
    assert (fact["unexpected_bars"], fact["missing_sessions"]) == (0, 1)  # the 26th: XLATE has no holiday
    assert fact["first_missing"] == D(26)


def test_the_number_of_queries_does_not_grow_with_the_symbols(engine):
    def statements(symbols: int) -> int:
        with engine.begin() as conn:
            conn.execute(schema.prices_daily.delete())
        put(engine, schema.prices_daily, [r for i in range(symbols) for r in bars(f"S{i:03d}", NYSE[:5] + NYSE[6:],
                                                                                   d3={"volume": 0})])
        seen = []
        listener = lambda *args: seen.append(args[2])  # noqa: E731 - (conn, cursor, statement, ...)
        sa.event.listen(engine, "before_cursor_execute", listener)
        try:
            facts = facts_of(engine)
        finally:
            sa.event.remove(engine, "before_cursor_execute", listener)
        assert len(facts) == symbols and all(f["missing_sessions"] == 1 for f in facts.values())
        return len(seen)

    assert statements(3) == statements(120)


def test_temp_tables_do_not_outlive_a_collection(engine):
    put(engine, schema.prices_daily, bars("AAA"))
    with engine.connect() as conn:
        first = collect(conn, CALENDAR, LIMITS)
        second = collect(conn, CALENDAR, LIMITS)  # the same connection, uncommitted
        assert first == second
        conn.rollback()  # on SQLite the two (empty) tables come back: the next collect drops them
        assert collect(conn, CALENDAR, LIMITS) == first
        conn.commit()
        assert not {"quality_sessions", "quality_symbols"} & set(sa.inspect(conn).get_temp_table_names())


def test_a_load_committed_between_its_reads_is_not_seen_half(engine):
    """Another shard's load commits while collect reads (the CI failure of 2026-12-05: a symbol
    absent from the counts turned up among the moves, KeyError): in one snapshot it is seen by
    none of the reads."""
    put(engine, schema.prices_daily, bars("AAA"))
    committed = []

    def other_shard_loads(conn, cursor, statement, *args) -> None:
        if not committed and "prices_daily" in statement:
            committed.append(statement)
            put(engine, schema.prices_daily, bars("NEW", d10={"close": 100.0, "high": 100.1}))

    sa.event.listen(engine, "after_cursor_execute", other_shard_loads)
    try:
        with warehouse.snapshot(engine) as conn:
            facts = collect(conn, CALENDAR, LIMITS)
    finally:
        sa.event.remove(engine, "after_cursor_execute", other_shard_loads)
    assert committed and set(facts) == {"AAA"}
    assert set(facts_of(engine)) == {"AAA", "NEW"} and facts_of(engine)["NEW"]["moves"]


def test_missing_sessions_between_the_first_and_last_held_session():
    sessions = np.array([1, 2, 3, 5, 6, 8, 9])
    assert missing_sessions(np.array([2, 3, 8, 4, 3]), sessions).tolist() == [5, 6]
    assert missing_sessions(np.array([4, 7]), sessions).tolist() == []  # no held session
    assert missing_sessions(np.array([], np.int64), sessions).tolist() == []


def test_save_refetch_writes_only_what_changes(engine):
    state = schema.symbol_state
    put(engine, state, [{"symbol": "OLD", "dataset": "prices_daily", "refetch_from": D(3)},
                        {"symbol": "KEEP", "dataset": "prices_daily", "refetch_from": D(5)},
                        {"symbol": "OLD", "dataset": "indicators_daily", "refetch_from": D(4)}])
    with engine.begin() as conn:
        assert save_refetch(conn, {"OLD": None, "KEEP": D(5), "NEW": D(24), "NONE": None}) == 2
        assert save_refetch(conn, {"OLD": None, "KEEP": D(5), "NEW": D(24), "NONE": None}) == 0
    with engine.connect() as conn:
        rows = {(r.symbol, r.dataset): r.refetch_from for r in conn.execute(sa.select(state))}
    assert rows == {("OLD", "prices_daily"): None, ("KEEP", "prices_daily"): D(5), ("NEW", "prices_daily"): D(24),
                    ("OLD", "indicators_daily"): D(4)}


def test_row_rule_counts_per_symbol(engine):
    put(engine, schema.prices_daily, bars("AAA", NYSE[:3]) + bars("BBB", NYSE[:5], **{
        f"d{NYSE[0].day}": {"close": -1.0, "low": -2.0},  # price <= 0 (low still encloses)
        f"d{NYSE[1].day}": {"volume": -5},
        f"d{NYSE[2].day}": {"high": 9.0},  # high < close
        f"d{NYSE[3].day}": {"low": 10.5},  # low > open
        f"d{NYSE[4].day}": {"open": 0.0, "low": 0.0},  # price <= 0
    }))
    facts = facts_of(engine)
    counts = lambda s: {k: facts[s][k] for k in ("rows", "price_positive", "volume_non_negative",  # noqa: E731
                                                 "high_encloses", "low_encloses", "duplicate_keys")}
    assert counts("AAA") == {"rows": 3, "price_positive": 0, "volume_non_negative": 0, "high_encloses": 0,
                             "low_encloses": 0, "duplicate_keys": 0}
    assert counts("BBB") == {"rows": 5, "price_positive": 2, "volume_non_negative": 1, "high_encloses": 1,
                             "low_encloses": 1, "duplicate_keys": 0}
    assert facts["BBB"]["last_date"] == NYSE[4] and isinstance(facts["BBB"]["last_date"], dt.date)
