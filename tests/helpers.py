"""What the test modules share, written once: `from helpers import ...` (the fixtures built
on these, `make_cli`/`cli`, `engine`, `fake_vendor`, are in conftest.py).

- The vendors' answers: PROVIDER_FIXTURES is tests/fixtures/providers/<vendor>/, inside the
  repository (described in tests/fixtures/PROVIDERS.md), so a clone needs nothing beside it.
  `fixture_path`/`fixture_bytes` read one file; `response`/`fixture_response` make the wire
  Response the HTTP layer hands a vendor module; `through_httpx` sends a vendor module's
  Request through a real httpx client to an answer.
- The environment: `clean_environment` (in-process, with monkeypatch) and
  `environment_without_settings` (for a child process) drop the developer's own settings;
  `vendor_base_urls` points every HTTP vendor at a fake server.
- Databases: `query` (rows of SQL on a URL), `db` (rows of the CLI's SQLite warehouse under a
  test's folder), `table_counts`, `as_utc`.
- `assert_no_key`: no API key in a vendor module's request, or in a text.

Imports from stockpipe happen inside the functions, so that importing this module (conftest,
tests/fakevendor.py, bench/bench_fetch.py) costs nothing and names no product module.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping
from urllib.parse import quote, quote_plus

if TYPE_CHECKING:
    import httpx
    import pytest

    from stockpipe.providers.wire import Request, Response

TESTS = Path(__file__).resolve().parent
FIXTURES = TESTS / "fixtures"
PROVIDER_FIXTURES = FIXTURES / "providers"
PROVIDERS_MD = FIXTURES / "PROVIDERS.md"  # what each fixture file is and what it must give
# The vendors spoken over HTTP (every one but the offline demo and csvfile providers).
HTTP_VENDORS = ("yahoo", "eodhd", "alphavantage", "finnhub", "polygon", "tiingo", "stooq")
UTC = dt.timezone.utc

# ------------------------------------------------------------------ vendor answers


def fixture_path(vendor: str, name: str) -> Path:
    """tests/fixtures/providers/<vendor>/<name>; FileNotFoundError naming the folder if absent."""
    path = PROVIDER_FIXTURES / vendor / name
    if not path.is_file():
        raise FileNotFoundError(f"no fixture {path}: the vendors' answers are in {PROVIDER_FIXTURES}/<vendor>/ "
                                f"(see {PROVIDERS_MD.name})")
    return path


def fixture_bytes(vendor: str, name: str) -> bytes:
    return fixture_path(vendor, name).read_bytes()


def response(body: bytes | str | dict | list, status: int = 200, content_type: str = "application/json",
             **headers: str) -> "Response":
    """A response as the HTTP layer hands it to a vendor module: a dict or list body as JSON,
    header names lower-cased with "_" for "-" (retry_after="30" is `retry-after: 30`)."""
    from stockpipe.providers.wire import Response

    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    data = data.encode() if isinstance(data, str) else data
    names = {k.replace("_", "-").lower(): v for k, v in headers.items()}
    return Response(status, {"content-type": content_type, **names}, data)


def fixture_response(vendor: str, name: str, status: int = 200, content_type: str = "application/json",
                     **headers: str) -> "Response":
    """`response` with the fixture file's bytes as the body."""
    return response(fixture_bytes(vendor, name), status, content_type, **headers)


def through_httpx(request: "Request", base_url: str, status: int, body: bytes, content_type: str, *,
                  params: Mapping[str, str] | None = None, check: Callable[["httpx.Request"], None] | None = None,
                  **headers: str) -> "Response":
    """Send a vendor module's `request` (plus `params`, e.g. the key as the HTTP layer adds it)
    through a real httpx client to a transport that answers `body`; `check` sees what was
    sent first. Returns the wire Response built from what came back."""
    import httpx

    from stockpipe.providers.wire import Response

    def answer(sent: httpx.Request) -> httpx.Response:
        if check is not None:
            check(sent)
        return httpx.Response(status, content=body, headers={"content-type": content_type, **headers})

    with httpx.Client(transport=httpx.MockTransport(answer), base_url=base_url) as client:
        got = client.get(request.path, params={**dict(request.params), **(params or {})}, headers=dict(request.headers))
    return Response(got.status_code, {k.lower(): v for k, v in got.headers.items()}, got.content)


def dates(frame, column: str = "date") -> list[str]:
    """A date column of a frame (bars' `date`, intraday's `session_date`) as YYYY-MM-DD texts."""
    return [d.strftime("%Y-%m-%d") for d in frame[column]]


# Every name a vendor takes its key under, as a query parameter or a header (lower-cased).
KEY_NAMES = frozenset({"token", "x-finnhub-token", "apikey", "api_token", "authorization"})


def assert_no_key(sent: "Request | str", key: str | None = None) -> None:
    """No API key in `sent`:
    - a vendor module's Request names no key parameter nor header (the HTTP layer adds the key);
    - a text (URL, message, log) holds `key` neither raw nor URL-encoded (quote, quote_plus)."""
    if isinstance(sent, str):
        if key is None:
            raise TypeError("assert_no_key(text, key): which key to look for?")
        for form in (key, quote(key, safe=""), quote_plus(key)):
            assert form not in sent, f"the key ({form!r}) is in the text"
        return
    names = {k.lower() for k in (*sent.params, *sent.headers)}
    assert not names & KEY_NAMES, f"the request names a key: {sorted(names & KEY_NAMES)}"


# --------------------------------------------------------------------- environment

# Read by stockpipe besides STOCKPIPE_*: systemd's StateDirectory= and its run id (config.py).
_SYSTEMD = ("STATE_DIRECTORY", "INVOCATION_ID")
_TESTS_OWN = ("STOCKPIPE_TEST_DATABASE_URL",)  # the tests' PostgreSQL; stockpipe never reads it


def is_setting(name: str) -> bool:
    """Whether environment variable `name` is a stockpipe setting (a test must not inherit one)."""
    return (name.startswith("STOCKPIPE_") and name not in _TESTS_OWN) or name in _SYSTEMD


def clean_environment(monkeypatch: "pytest.MonkeyPatch", **settings: str) -> None:
    """Drop the developer's stockpipe settings from os.environ for this test, then set `settings`."""
    for name in list(os.environ):
        if is_setting(name):
            monkeypatch.delenv(name)
    for name, value in settings.items():
        monkeypatch.setenv(name, value)


def environment_without_settings(**settings: str) -> dict[str, str]:
    """os.environ for a child process: no stockpipe setting of the developer's, plus `settings`."""
    return {**{k: v for k, v in os.environ.items() if not is_setting(k)}, **settings}


def vendor_base_urls(url: str) -> dict[str, str]:
    """STOCKPIPE_<VENDOR>_BASE_URL = url for every HTTP vendor."""
    return {f"STOCKPIPE_{vendor.upper()}_BASE_URL": url for vendor in HTTP_VENDORS}


# ------------------------------------------------------------------------ databases


def query(url: str, sql: str) -> list[tuple]:
    """Rows of `sql` (no parameters) on the database at `url`, as tuples."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.exec_driver_sql(sql)]
    finally:
        engine.dispose()


def table_counts(url: str) -> dict[str, int]:
    """Row count of every table (for "nothing changed" assertions)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            names = sa.inspect(conn).get_table_names()
            return {n: conn.exec_driver_sql(f'SELECT COUNT(*) FROM "{n}"').scalar() for n in names}
    finally:
        engine.dispose()


# The lake datasets a run writes whose rows must end the same whatever happened on the way.
COMPARED = ("prices_daily", "corporate_actions", "adjustments", "indicators_daily")


def warehouse_rows(url: str, name: str):
    """A warehouse table's rows without its volatile columns, sorted by key, in the lake's dtypes."""
    import pandas as pd
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            frame = pd.read_sql_table(name, conn)
    finally:
        engine.dispose()
    return comparable(frame, name)


def lake_rows(data_dir: Path, name: str):
    """A lake dataset's rows under `data_dir`, as `warehouse_rows` gives a table's."""
    from stockpipe.models import DATASETS
    from stockpipe.storage.lake import Lake

    return comparable(Lake(data_dir / "lake").read_frame(DATASETS[name]), name)


def comparable(frame, name: str):
    """`frame` without dataset `name`'s volatile columns (run times), dates as text, sorted by key."""
    import pandas as pd

    from stockpipe.models import DATASETS

    dataset = DATASETS[name]
    columns = [c for c in dataset.column_names if c not in dataset.volatile]
    frame = frame[columns].copy()
    for column, type_ in dataset.columns:
        if column in frame and type_.kind == "date":
            frame[column] = pd.to_datetime(frame[column]).dt.strftime("%Y-%m-%d")
        if column in frame and type_.kind == "ts":
            frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame.sort_values(list(dataset.key)).reset_index(drop=True)


def db(folder: Path, sql: str, *params: Any) -> list[tuple]:
    """Rows of `sql` in the SQLite warehouse a CLI run in `folder` made (stockpipe-data/stockpipe.db)."""
    with sqlite3.connect(folder / "stockpipe-data" / "stockpipe.db") as conn:
        return conn.execute(sql, params).fetchall()


def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    """A stored timestamp as aware UTC: SQLite hands back naive UTC datetimes, PostgreSQL aware ones."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# ------------------------------------------------------------------- built answers


def yahoo_chart(symbol: str, bars: list[tuple], splits: tuple = (), dividends: tuple = (),
                zone: str = "America/New_York") -> bytes:
    """A Yahoo chart answer (v8, daily) as Yahoo sends it: `bars` are (day, open, high, low,
    close, volume) already adjusted as the answer has them, stamped at 09:30 in `zone`,
    prices float32-widened; `splits` (day, new, old) and `dividends` (day, amount) are the
    answer's events."""
    from zoneinfo import ZoneInfo

    import numpy as np

    def stamp(day: str) -> int:
        return int(dt.datetime.fromisoformat(f"{day}T09:30").replace(tzinfo=ZoneInfo(zone)).timestamp())

    def f32(value: float) -> float:
        return float(np.float32(value))

    quote = {name: [f32(bar[i]) for bar in bars] for i, name in ((1, "open"), (2, "high"), (3, "low"), (4, "close"))}
    quote["volume"] = [int(bar[5]) for bar in bars]
    events = {"splits": {str(stamp(d)): {"date": stamp(d), "numerator": n, "denominator": m, "splitRatio": f"{n}:{m}"}
                         for d, n, m in splits},
              "dividends": {str(stamp(d)): {"date": stamp(d), "amount": a} for d, a in dividends}}
    meta = {"currency": "USD", "symbol": symbol, "exchangeTimezoneName": zone, "priceHint": 2}
    result = {"meta": meta, "timestamp": [stamp(bar[0]) for bar in bars], "events": events,
              "indicators": {"quote": [quote], "adjclose": [{"adjclose": quote["close"]}]}}
    return json.dumps({"chart": {"result": [result], "error": None}}).encode()


def left_in(folder: Path) -> tuple[list[str], list[bytes]]:
    """What a run left under `folder`, for a search for secrets: every path (relative), and
    every file's bytes, a gzip file's also decompressed and a Parquet file's rows as text."""
    import gzip

    import pyarrow.parquet as pq

    names, blobs = [], []
    for path in sorted(folder.rglob("*")):
        names.append(str(path.relative_to(folder)))
        if not path.is_file():
            continue
        data = path.read_bytes()
        blobs.append(data)
        if path.suffix == ".gz":
            blobs.append(gzip.decompress(data))
        if path.suffix == ".parquet":
            blobs.append(repr(pq.read_table(path).to_pylist()).encode())
    return names, blobs
