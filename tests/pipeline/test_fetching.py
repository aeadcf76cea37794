"""The one fetch loop (pipeline/fetching.py) with a fake provider, on real SQLite: what every
dataset's fetch shares — archive rule, batches, failure counting, stops and deferrals."""

from __future__ import annotations

import datetime as dt
import gzip
from dataclasses import dataclass

import pandas as pd
import pytest
import sqlalchemy as sa

from conftest import NOW, clock
from stockpipe.errors import BadInputError, NotAsked, ProviderError, StopsProvider
from stockpipe.models import DATASETS
from stockpipe.pipeline import context
from stockpipe.pipeline.fetching import Read, Spec, fetch_all, outcome_counts, verdict
from stockpipe.providers.base import Payload
from stockpipe.storage import applied, state
from stockpipe.storage.lake import Lake

QUOTES = DATASETS["quotes"]


class Refused(StopsProvider, ProviderError):
    """A stand-in for a refused key: terminal for the provider."""


class Spent(NotAsked, ProviderError):
    """A stand-in for the quota ledger refusing before the vendor was asked."""


@dataclass(frozen=True)
class Job:
    symbol: str


class FakeProvider:
    """Answers per symbol from a script: bytes, or an error to raise."""

    name = "fake"

    def __init__(self, script: dict[str, object], concurrency: int = 1, media_type: str = "application/json") -> None:
        self.script, self.concurrency, self.media_type = script, concurrency, media_type
        self.asked: list[str] = []

    def call(self, job: Job) -> list[Payload]:
        self.asked.append(job.symbol)
        answer = self.script[job.symbol]
        if isinstance(answer, Exception):
            raise answer
        return [Payload(self.name, job.symbol, answer, self.media_type)]


def quote_rows(job: Job, payloads: list[Payload]) -> Read:
    price = float(payloads[0].content)
    if price <= 0:
        raise BadInputError(f"{job.symbol}: price {price} is not positive")
    rows = pd.DataFrame({"symbol": [job.symbol], "ts": [pd.Timestamp(NOW)], "price": [price],
                         **{c: [None] for c in ("open", "high", "low", "prev_close", "change", "change_pct")},
                         "volume": pd.array([None], dtype="Int64"), "provider": ["fake"]}, columns=QUOTES.column_names)
    rejects = pd.DataFrame([{"run_id": "r", "symbol": job.symbol, "date": "x", "reason": "demo", "raw": "{}",
                             "provider": "fake", "rejected_at": pd.Timestamp(NOW)}] * (job.symbol == "REJ"),
                           columns=DATASETS["rejects"].column_names)
    return Read({QUOTES.name: rows, "rejects": rejects}, len(rows), len(rejects))


def spec(provider: FakeProvider, kind: str | None = "quotes") -> Spec:
    return Spec("fetch-quotes", QUOTES.name, (QUOTES.name, "rejects"), provider.call, quote_rows, archive_kind=kind)


@pytest.fixture
def ctx(make_settings):
    settings = make_settings(batch_rows=2)
    engine = context.open_warehouse(settings)
    yield context.Context(settings, engine, "run-1", NOW, context.no_progress, clock)
    engine.dispose()


def states(ctx, dataset=QUOTES.name) -> dict[str, dict]:
    with ctx.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT symbol FROM symbol_state WHERE dataset = :d"), {"d": dataset}).all()
        return state.read_states(conn, dataset, [r[0] for r in rows])


@pytest.mark.parametrize("media_type, suffix", [("application/json; charset=utf-8", "json"), ("text/csv", "csv"),
                                                ("text/html; charset=UTF-8", "bin")])
def test_payloads_are_archived_once_rule_for_every_dataset(ctx, media_type, suffix):
    provider = FakeProvider({"AAA": b"1.5"}, media_type=media_type)
    fetch_all(ctx, provider, [Job("AAA")], spec(provider))
    fetch_all(ctx, provider, [Job("AAA")], spec(provider, kind=None))  # the daily bars' file name
    folder = ctx.settings.raw_dir / "fake" / "2026-11-23"
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted([f"AAA.quotes.run-1.{suffix}.gz", f"AAA.run-1.{suffix}.gz"])
    for path in folder.iterdir():
        raw = path.read_bytes()
        assert gzip.decompress(raw) == b"1.5"
        assert raw[8] == 4  # gzip's XFL byte: 4 = compressed with the fastest level (1), for every dataset


def test_rows_land_counted_and_recorded_with_rejects_as_data(ctx):
    provider = FakeProvider({"AAA": b"1.5", "REJ": b"2.0", "BAD": b"-1"})
    fetched = fetch_all(ctx, provider, [Job(s) for s in ("AAA", "REJ", "BAD")], spec(provider))
    counts = outcome_counts(3, fetched.outcomes, written=fetched.written)
    assert counts == {"planned": 3, "ok": 2, "failed": 1, "deferred": 0, "rows_fetched": 2, "rows_rejected": 1,
                      "rows_written": 2, "api_calls": 3}
    assert [(o.symbol, o.status, o.message) for o in fetched.outcomes] == [
        ("AAA", "ok", ""), ("REJ", "ok", "1 row(s) rejected"), ("BAD", "failed", "BAD: price -1.0 is not positive")]
    held = states(ctx)
    assert held["BAD"]["consecutive_failures"] == 1 and "not positive" in held["BAD"]["last_error"]
    assert held["AAA"]["consecutive_failures"] == 0 and held["AAA"]["last_success_at"] is not None
    with ctx.engine.connect() as conn:  # symbol_state reflects the lake up to the batch's commit
        assert applied.read(conn, "plan", QUOTES.name).version == Lake(ctx.settings.lake_dir).version(QUOTES)
    assert sorted(Lake(ctx.settings.lake_dir).read_frame(QUOTES, ["AAA", "REJ"])["symbol"]) == ["AAA", "REJ"]
    assert verdict("fetch-quotes", 3, counts, fetched.outcomes).exit_code == 3

    again = fetch_all(ctx, provider, [Job("BAD")], spec(provider))
    assert again.written == 0 and states(ctx)["BAD"]["consecutive_failures"] == 2  # counted once per attempt


def test_a_provider_that_stops_defers_the_rest_and_hands_them_over(ctx):
    provider = FakeProvider({"AAA": b"1.5", "BBB": Refused("fake refused the key"), "CCC": b"3", "DDD": b"4"})
    fetched = fetch_all(ctx, provider, [Job(s) for s in ("AAA", "BBB", "CCC", "DDD")], spec(provider))
    assert provider.asked == ["AAA", "BBB"]  # nothing asked after the stop
    assert [(o.symbol, o.status) for o in fetched.outcomes] == [
        ("AAA", "ok"), ("BBB", "failed"), ("CCC", "skipped"), ("DDD", "skipped")]
    assert fetched.handover == {"BBB", "CCC", "DDD"}
    held = states(ctx)
    assert held["CCC"]["consecutive_failures"] in (None, 0) and held["CCC"]["last_error"].startswith("deferred")


def test_not_asked_is_deferred_not_failed(ctx):
    provider = FakeProvider({"AAA": Spent("no calls left today"), "BBB": b"2"})
    fetched = fetch_all(ctx, provider, [Job("AAA"), Job("BBB")], spec(provider))
    assert [(o.symbol, o.status) for o in fetched.outcomes] == [("AAA", "skipped"), ("BBB", "ok")]


def test_batches_are_saved_as_they_fill(ctx, monkeypatch):
    """batch_rows=2: a crash after the first batch keeps it (lake and state committed)."""
    provider = FakeProvider({s: b"1" for s in ("A1", "A2", "A3", "A4", "A5")}, concurrency=3)
    saved: list[int] = []
    from stockpipe.pipeline import fetching

    flush = fetching._flush
    monkeypatch.setattr(fetching, "_flush", lambda *a: saved.append(len(a[-1].jobs)) or flush(*a))
    fetched = fetch_all(ctx, provider, [Job(s) for s in ("A1", "A2", "A3", "A4", "A5")], spec(provider))
    assert saved == [2, 2, 1] and fetched.written == 5
    assert [o.symbol for o in fetched.outcomes] == ["A1", "A2", "A3", "A4", "A5"]  # in job order


def test_chunks():
    assert [list(c) for c in context.chunks(list("abcde"), 2)] == [["a", "b"], ["c", "d"], ["e"]]
    assert list(context.chunks([], 2)) == []
    assert context.SYMBOLS_PER_CHUNK == 2000
    assert dt.date(2026, 11, 23) == NOW.date()
