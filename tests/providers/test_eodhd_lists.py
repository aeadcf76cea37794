"""eodhd_lists.py's bulk day reading: rows by code for the day asked, splits and dividends,
and the requests (the `date=` and `type=` parameters, the cost of 100)."""

from __future__ import annotations

import datetime as dt

import pytest

from stockpipe.providers import eodhd_lists
from stockpipe.providers.wire import Outcome

from helpers import fixture_response, response

DAY = dt.date(2024, 5, 10)


def test_bulk_rows_by_code_from_the_fixture():
    rows, failure = eodhd_lists.bulk_rows(fixture_response("eodhd", "eod_bulk_last_day_success.json"), DAY)
    assert failure is None and sorted(rows) == ["AAPL", "MSFT", "SPY"]
    assert rows["AAPL"]["adjusted_close"] == 183.05 and rows["AAPL"]["close"] == 183.05


def test_bulk_rows_leave_out_carried_forward_bars_and_keep_the_first_of_a_code():
    body = [{"code": "AAPL", "date": "2024-05-10", "close": 1}, {"code": "aapl", "date": "2024-05-10", "close": 2},
            {"code": "THIN", "date": "2024-05-09", "close": 3}, {"code": "", "date": "2024-05-10", "close": 4},
            {"Code": "BRK-B", "Date": "2024-05-10T00:00:00", "Close": 5}]
    rows, failure = eodhd_lists.bulk_rows(response(body), DAY)
    assert failure is None and {c: r["close"] for c, r in rows.items()} == {"AAPL": 1, "BRK-B": 5}


@pytest.mark.parametrize(("status", "body", "outcome"), [
    (402, "You exceeded your daily API requests limit.", Outcome.QUOTA_EXHAUSTED),
    (401, "Unauthenticated", Outcome.AUTH_FAILED), (403, "Only for paid plans", Outcome.NOT_ENTITLED),
    (200, '{"error": "x"}', Outcome.PROTOCOL_ERROR)])
def test_bulk_refusals(status, body, outcome):
    _, failure = eodhd_lists.bulk_rows(response(body, status, "text/plain"), DAY)
    assert failure.outcome is outcome
    _, failure = eodhd_lists.bulk_actions(response(body, status, "text/plain"), "splits")
    assert failure.outcome is outcome


def test_bulk_splits_as_new_over_old_and_dividends_as_declared():
    splits = [{"code": "NVDA", "exchange": "US", "date": "2024-06-10", "split": "10.000000/1.000000"},
              {"code": "REV", "exchange": "US", "date": "2024-06-10", "split": "1.000000/20.000000"},
              {"code": "BAD", "exchange": "US", "date": "2024-06-10", "split": "n/a"},
              {"code": "ZERO", "exchange": "US", "date": "2024-06-10", "split": "1/0"}]
    found, failure = eodhd_lists.bulk_actions(response(splits), "splits")
    assert failure is None
    assert found == {"NVDA": [(dt.date(2024, 6, 10), "split", 10.0)], "REV": [(dt.date(2024, 6, 10), "split", 0.05)]}
    dividends = [{"code": "AAPL", "date": "2024-05-10", "dividend": "0.0625", "unadjustedValue": "0.25",
                  "currency": "USD"}, {"code": "KO", "date": "2024-05-10", "dividend": "0.485"},
                 {"code": "NA", "date": "2024-05-10", "dividend": "NA"}]
    found, _ = eodhd_lists.bulk_actions(response(dividends), "dividends")
    assert found == {"AAPL": [(DAY, "dividend", 0.25)], "KO": [(DAY, "dividend", 0.485)]}


def test_bulk_requests_name_the_day_and_the_type_and_cost_100():
    eod = eodhd_lists.bulk_last_day_request("US", DAY)
    assert (eod.path, eod.params, eod.cost) == ("/api/eod-bulk-last-day/US", {"fmt": "json", "date": "2024-05-10"}, 100)
    splits = eodhd_lists.bulk_last_day_request("LSE", DAY, "splits")
    assert splits.params == {"fmt": "json", "type": "splits", "date": "2024-05-10"} and splits.cost == 100
    with pytest.raises(ValueError, match="bulk type"):
        eodhd_lists.bulk_last_day_request("US", DAY, "prices")


@pytest.mark.parametrize(("spelled", "ticker", "exchange"), [
    ("BRK-B.US", "BRK-B", "US"), ("VOD.LSE", "VOD", "LSE"), ("GSPC.INDX", "GSPC", "INDX"), ("AAPL", "AAPL", None)])
def test_ticker_and_exchange_of_a_spelling(spelled, ticker, exchange):
    assert (eodhd_lists.ticker_of(spelled), eodhd_lists.exchange_of(spelled)) == (ticker, exchange)
