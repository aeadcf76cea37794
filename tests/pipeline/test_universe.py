"""The universe from the exchanges' symbol lists, through the real CLI against the fake
vendor, on SQLite and PostgreSQL: `universe refresh`, the assets table, delisting, the
types filter, a local file, and fetch's universe."""

from __future__ import annotations

import json

import pytest

from fakevendor import EodhdExchange, Reply, fixture
from stockpipe.errors import ExitCode

from helpers import query, vendor_base_urls

KEY = "LISTKEY-31c"
LISTED = [{"Code": "AAPL", "Name": "Apple Inc", "Country": "USA", "Exchange": "NASDAQ", "Currency": "USD",
           "Type": "Common Stock", "Isin": "US0378331005"},
          {"Code": "BRK-B", "Name": "Berkshire Hathaway Inc", "Country": "USA", "Exchange": "NYSE",
           "Currency": "USD", "Type": "Common Stock", "Isin": None},
          {"Code": "SPY", "Name": "SPDR S&P 500 ETF Trust", "Country": "USA", "Exchange": "NYSE ARCA",
           "Currency": "USD", "Type": "ETF", "Isin": "US78462F1030"},
          {"Code": "VFIAX", "Name": "Vanguard 500 Index Admiral", "Country": "USA", "Exchange": "NMFQS",
           "Currency": "USD", "Type": "FUND", "Isin": None},
          {"Code": "BAD CODE", "Name": "A code that is no ticker", "Exchange": "OTC", "Type": "Common Stock"}]


@pytest.fixture
def cli(make_cli, fake_vendor, database_url, tmp_path):
    (tmp_path / "stockpipe.toml").write_text('history_days = 10\n[universe]\nexchanges = ["US"]\n'
                                             'types = ["Common Stock", "ETF"]\nproviders = ["eodhd"]\n')
    return make_cli(**vendor_base_urls(fake_vendor.url), STOCKPIPE_EODHD_API_KEY=KEY,
                    STOCKPIPE_DATABASE_URL=database_url)


def listed(rows) -> Reply:
    return Reply(body=json.dumps(rows))


def test_refresh_reads_the_list_into_assets_and_delists_what_vanished(cli, fake_vendor, database_url):
    fake_vendor.route("/api/exchange-symbol-list/US", listed(LISTED))
    code, out, err = cli("universe", "refresh", "--json")
    assert code == ExitCode.OK, err
    doc = json.loads(out)
    assert {k: doc["counts"][k] for k in ("listed", "new", "delisted", "malformed", "api_calls")} == {
        "listed": 4, "new": 4, "delisted": 0, "malformed": 1, "api_calls": 1}
    assert fake_vendor.calls("/api/exchange-symbol-list/US")[0].param("api_token") == KEY
    rows = query(database_url, "SELECT symbol, name, exchange, venue, country, currency, type, isin, delisted_at "
                 "FROM assets ORDER BY symbol")
    assert rows[0] == ("AAPL", "Apple Inc", "US", "NASDAQ", "USA", "USD", "Common Stock", "US0378331005", None)
    assert [r[0] for r in rows] == ["AAPL", "BRK.B", "SPY", "VFIAX"]
    assert query(database_url, "SELECT command, status FROM pipeline_runs") == [("universe-refresh", "ok")]
    assert query(database_url, "SELECT calls FROM quota_ledger") == [(1,)]

    fake_vendor.route("/api/exchange-symbol-list/US", listed([r for r in LISTED if r["Code"] != "SPY"]))
    code, out, err = cli("universe", "refresh", "--json")
    assert code == ExitCode.OK, err
    assert json.loads(out)["counts"]["delisted"] == 1
    spy = query(database_url, "SELECT first_seen, last_seen, delisted_at FROM assets WHERE symbol = 'SPY'")
    assert spy[0][2] is not None and spy[0][0] == spy[0][1]  # kept, never deleted, last seen the first time

    fake_vendor.route("/api/exchange-symbol-list/US", listed(LISTED))
    code, out, _ = cli("universe", "refresh", "--json")
    assert json.loads(out)["counts"]["relisted"] == 1
    assert query(database_url, "SELECT delisted_at FROM assets WHERE symbol = 'SPY'") == [(None,)]


def test_an_empty_list_delists_nothing(cli, fake_vendor, database_url):
    fake_vendor.route("/api/exchange-symbol-list/US", listed(LISTED), Reply(body="[]"))
    assert cli("universe", "refresh")[0] == ExitCode.OK
    code, out, err = cli("universe", "refresh")
    assert code == ExitCode.BAD_INPUT and "listed no symbol" in err and "nothing marked delisted" in err
    assert query(database_url, "SELECT COUNT(*) FROM assets WHERE delisted_at IS NULL") == [(4,)]


def test_a_refused_key_exits_4(cli, fake_vendor):
    fake_vendor.route("/api/exchange-symbol-list/US", fixture("eodhd", "bad_key.txt", status=401))
    code, _, err = cli("universe", "refresh")
    assert code == ExitCode.CONFIG and KEY not in err


def test_fetch_takes_the_listed_symbols_of_the_types_and_reads_the_list_once_a_day(cli, fake_vendor, database_url):
    fake_vendor.route("/api/exchange-symbol-list/US", listed(LISTED))
    EodhdExchange(fake_vendor, {"US": ["AAPL", "BRK-B", "SPY", "VFIAX"]}).install()
    code, out, err = cli("fetch", "--all", "--json")  # the list is read first: no refresh needed before
    assert code == ExitCode.OK, err
    assert sorted(s["symbol"] for s in json.loads(out)["symbols"]) == ["AAPL", "BRK.B", "SPY"]  # no FUND
    assert len(fake_vendor.calls("/api/exchange-symbol-list/US")) == 1
    assert query(database_url, "SELECT COUNT(*) FROM symbol_state WHERE last_date IS NOT NULL") == [(3,)]

    fake_vendor.route("/api/exchange-symbol-list/US", listed([r for r in LISTED if r["Code"] != "AAPL"]))
    assert cli("universe", "refresh")[0] == ExitCode.OK
    fake_vendor.clear()
    code, out, err = cli("fetch", "--all", "--start", "2026-11-02", "--json")
    assert code == ExitCode.OK, err
    assert sorted(s["symbol"] for s in json.loads(out)["symbols"]) == ["BRK.B", "SPY"]  # AAPL delisted: not asked
    assert not fake_vendor.calls("/api/exchange-symbol-list/*")  # read today already
    assert not fake_vendor.calls("/api/eod/AAPL.US")


def test_a_local_file_stands_in_for_an_exchange_and_exchange_narrows_fetch(make_cli, fake_vendor, database_url,
                                                                           tmp_path):
    (tmp_path / "lse.csv").write_text("Code,Name,Country,Exchange,Currency,Type,Isin\r\n"
                                      "VOD,Vodafone Group PLC,UK,LSE,GBX,Common Stock,GB00BH4HKS39\r\n"
                                      "BP,BP PLC,UK,LSE,GBX,Common Stock,GB0007980591\r\n")
    (tmp_path / "stockpipe.toml").write_text('history_days = 10\n[universe]\nexchanges = ["US", "LSE"]\nsymbols = ["IBM"]\n'
                                             '[universe.exchange_files]\nLSE = "lse.csv"\n')
    fake_vendor.route("/api/exchange-symbol-list/US", listed(LISTED[:1]))
    cli = make_cli(**vendor_base_urls(fake_vendor.url), STOCKPIPE_EODHD_API_KEY=KEY,
                   STOCKPIPE_DATABASE_URL=database_url)
    code, out, err = cli("universe", "refresh", "--json")
    assert code == ExitCode.OK, err
    assert query(database_url, "SELECT symbol, exchange, currency FROM assets ORDER BY symbol") == [
        ("AAPL", "US", "USD"), ("BP.L", "LSE", "GBX"), ("VOD.L", "LSE", "GBX")]
    assert len(fake_vendor.calls("/api/exchange-symbol-list/*")) == 1  # the file costs no call
    EodhdExchange(fake_vendor, {"US": ["AAPL", "IBM"], "LSE": ["VOD", "BP"]}).install()
    code, out, err = cli("fetch", "--exchange", "LSE", "--provider", "eodhd", "--start", "2026-11-02", "--json")
    assert code == ExitCode.OK, err
    assert sorted(s["symbol"] for s in json.loads(out)["symbols"]) == ["BP.L", "VOD.L"]
    code, out, err = cli("fetch", "--all", "--provider", "eodhd", "--start", "2026-11-02", "--json")
    assert sorted(s["symbol"] for s in json.loads(out)["symbols"]) == ["AAPL", "BP.L", "IBM", "VOD.L"]


def test_bad_exchange_settings_exit_4(make_cli, tmp_path):
    cli = make_cli()
    (tmp_path / "stockpipe.toml").write_text('[universe]\nexchanges = ["MARS"]\n')
    code, _, err = cli("universe", "refresh")
    assert code == ExitCode.CONFIG and "'MARS' is not an EODHD exchange code" in err
    (tmp_path / "stockpipe.toml").write_text('[universe]\nsymbols = ["IBM"]\n')
    code, _, err = cli("universe", "refresh")
    assert code == ExitCode.CONFIG and "--exchange" in err
