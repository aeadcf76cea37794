"""Lake.merge / Lake.read on real Parquet files in a temporary directory."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from stockpipe.models import DATASETS, arrow_schema
from stockpipe.storage import lake_upkeep
from stockpipe.storage.lake import Commit, Lake, MergeResult, UnavailableError

PRICES = DATASETS["prices_daily"]
REJECTS = DATASETS["rejects"]
SYMBOLS = ("AAA", "BBB", "CCC")
# Two sessions in each of three months.
DATES = ("2026-01-05", "2026-01-06", "2026-02-02", "2026-02-03", "2026-03-02", "2026-03-03")
FIRST_FETCH = pd.Timestamp("2026-03-04 00:00:00", tz="UTC")
LATER_FETCH = pd.Timestamp("2026-04-01 12:00:00", tz="UTC")

def prices(symbols=SYMBOLS, dates=DATES, fetched_at=FIRST_FETCH, close=10.5) -> pd.DataFrame:
    """Rows shaped as validate_bars accepts them (datetime64 date, int volume, UTC fetched_at)."""
    rows = []
    for s_index, symbol in enumerate(symbols):
        for d_index, day in enumerate(dates):
            base = 10.0 + s_index + d_index / 10
            rows.append({
                "symbol": symbol, "date": pd.Timestamp(day), "open": base, "high": base + 1,
                "low": base - 1, "close": close + s_index + d_index / 10,
                "adj_close": None if d_index % 2 else base, "volume": 1000 * (d_index + 1),
                "provider": "demo", "fetched_at": fetched_at, "split_basis": None,
            })
    frame = pd.DataFrame(rows)
    frame["adj_close"] = frame["adj_close"].astype("float64")
    return frame


def snapshot(files: list[Path]) -> dict[str, tuple[int, int, bytes]]:
    return {str(f): (f.stat().st_ino, f.stat().st_mtime_ns, f.read_bytes()) for f in files}


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(tmp_path / "lake")


def test_one_file_per_month_never_per_symbol(lake: Lake):
    result = lake.merge(PRICES, prices())

    files = lake.files(PRICES)
    assert [f.parent.relative_to(lake.root).as_posix() for f in files] == [
        f"prices_daily/month=2026-0{m}" for m in (1, 2, 3)]
    assert result.changed == {"AAA": 6, "BBB": 6, "CCC": 6}
    assert result.rows == 18 and result.version == 1  # one commit after the table's creation
    for f in files:
        table = pq.read_table(f)
        assert table.num_rows == 6
        assert sorted(set(table.column("symbol").to_pylist())) == list(SYMBOLS)


def test_read_returns_every_row_with_the_schema_sorted_by_key(lake: Lake):
    lake.merge(PRICES, prices())

    table = lake.read(PRICES)

    assert table.schema == arrow_schema(PRICES)
    assert table.num_rows == 18
    keys = list(zip(table.column("symbol").to_pylist(), table.column("date").to_pylist()))
    assert keys == sorted(keys)
    assert keys[0] == ("AAA", dt.date(2026, 1, 5))
    assert keys[-1] == ("CCC", dt.date(2026, 3, 3))
    row = table.slice(1, 1).to_pylist()[0]  # AAA 2026-01-06
    assert row["adj_close"] is None
    assert row["volume"] == 2000
    assert row["fetched_at"] == FIRST_FETCH.to_pydatetime()


def test_read_with_a_symbol_filter(lake: Lake):
    lake.merge(PRICES, prices())

    only_b = lake.read(PRICES, ["BBB"])
    assert only_b.num_rows == 6
    assert set(only_b.column("symbol").to_pylist()) == {"BBB"}
    assert only_b.column("date").to_pylist() == [dt.date.fromisoformat(d) for d in DATES]

    two = lake.read(PRICES, ["CCC", "ZZZ", "AAA", "AAA"])
    assert two.num_rows == 12
    assert sorted(set(two.column("symbol").to_pylist())) == ["AAA", "CCC"]

    assert lake.read(PRICES, ["ZZZ"]).num_rows == 0


def test_read_frame_gives_datetime64_columns(lake: Lake):
    lake.merge(PRICES, prices(symbols=("AAA",)))

    frame = lake.read_frame(PRICES, ["AAA"])

    assert len(frame) == 6
    assert pd.api.types.is_datetime64_dtype(frame["date"])
    assert str(frame["fetched_at"].dt.tz) == "UTC"
    assert frame["volume"].dtype == "int64"


def test_read_of_an_empty_dataset_is_an_empty_table_with_the_schema(lake: Lake):
    table = lake.read(PRICES)
    assert table.num_rows == 0
    assert table.schema == arrow_schema(PRICES)

    filtered = lake.read(PRICES, ["AAA"])
    assert filtered.num_rows == 0
    assert filtered.schema == arrow_schema(PRICES)

    frame = lake.read_frame(PRICES)
    assert list(frame.columns) == PRICES.column_names
    assert len(frame) == 0
    assert not lake.root.exists(), "reading must not create the lake"


def test_merging_nothing_writes_nothing(lake: Lake):
    result = lake.merge(PRICES, prices().iloc[:0])
    assert result == MergeResult({}, None)
    assert result.rows == 0
    assert lake.files(PRICES) == []


def test_no_temp_files_left_behind(lake: Lake):
    lake.merge(PRICES, prices(dates=DATES[:2]))  # January
    lake.merge(PRICES, prices(dates=DATES[2:]))  # February and March: new files

    everything = [p for p in lake.root.rglob("*") if p.is_file()]
    assert not [p for p in everything if p.name.endswith(".tmp") or p.name.endswith(".lock")]
    data = {p for p in everything if p.suffix == ".parquet" and not {"_delta_log", "_change_data"} & set(p.parts)}
    assert data == set(lake.files(PRICES)) and len(data) == 3  # no file outside the table's version
    assert lake.read(PRICES).num_rows == 18


def test_duplicate_keys_in_one_batch_keep_the_last(lake: Lake):
    rows = prices(symbols=("AAA",), dates=("2026-01-05",))
    again = rows.assign(close=99.0)

    result = lake.merge(PRICES, pd.concat([rows, again], ignore_index=True))

    assert result.changed == {"AAA": 1}
    table = lake.read(PRICES)
    assert table.num_rows == 1
    assert table.column("close").to_pylist() == [99.0]


def test_every_dataset_partitions_by_a_date_or_time_column_of_its_own():
    for dataset in DATASETS.values():
        kinds = {name: type_.kind for name, type_ in dataset.columns}
        assert kinds[dataset.partition] in ("date", "ts"), dataset.name
        assert set(dataset.key) <= set(kinds) and set(dataset.volatile) <= set(kinds), dataset.name


def test_rejects_are_partitioned_by_rejected_at(lake: Lake):
    rejects = pd.DataFrame([
        {"run_id": "r1", "symbol": "AAA", "date": "not a date", "reason": "unparseable",
         "raw": '{"line": "x,y"}', "provider": "csv", "rejected_at": pd.Timestamp("2026-11-23 23:00", tz="UTC")},
        {"run_id": "r0", "symbol": "AAA", "date": "2020-01-01", "reason": "missing_value",
         "raw": '{"open": null}', "provider": "csv", "rejected_at": pd.Timestamp("2026-10-02 23:00", tz="UTC")},
    ])

    result = lake.merge(REJECTS, rejects)

    assert result.changed == {"AAA": 2}
    relative = [f.parent.relative_to(lake.root).as_posix() for f in lake.files(REJECTS)]
    assert relative == ["rejects/month=2026-10", "rejects/month=2026-11"]
    assert lake.read(REJECTS).column("raw").to_pylist() == ['{"open": null}', '{"line": "x,y"}']


def test_merging_the_same_rows_twice_changes_nothing(lake: Lake):
    lake.merge(PRICES, prices())
    before = snapshot(lake.files(PRICES))

    # The same bars fetched again later: only the volatile fetched_at differs.
    result = lake.merge(PRICES, prices(fetched_at=LATER_FETCH))

    assert result.changed == {}
    assert result.rows == 0
    assert snapshot(lake.files(PRICES)) == before
    fetched = set(lake.read(PRICES).column("fetched_at").to_pylist())
    assert fetched == {FIRST_FETCH.to_pydatetime()}


def test_a_changed_close_is_reported_for_that_symbol_only_and_replaces_the_row(lake: Lake):
    lake.merge(PRICES, prices())
    before = snapshot(lake.files(PRICES))
    refetch = prices(fetched_at=LATER_FETCH)
    target = (refetch["symbol"] == "BBB") & (refetch["date"] == pd.Timestamp("2026-02-03"))
    assert target.sum() == 1
    refetch.loc[target, "close"] = 123.25

    result = lake.merge(PRICES, refetch)

    assert result.changed == {"BBB": 1}
    assert result.rows == 1
    table = lake.read(PRICES)
    assert table.num_rows == 18  # replaced, not appended
    rows = {(r["symbol"], r["date"]): r for r in table.to_pylist()}
    changed = rows[("BBB", dt.date(2026, 2, 3))]
    assert changed["close"] == 123.25
    assert changed["fetched_at"] == LATER_FETCH.to_pydatetime()
    untouched = [r for k, r in rows.items() if k != ("BBB", dt.date(2026, 2, 3))]
    assert {r["fetched_at"] for r in untouched} == {FIRST_FETCH.to_pydatetime()}
    # Only February's file was rewritten (Delta: the old file removed from the version, a new one added).
    after = snapshot(lake.files(PRICES))
    feb = {p for p in after if "month=2026-02" in p}
    assert len(feb) == 1 and feb.isdisjoint(before)
    assert {p: v for p, v in after.items() if p not in feb} == {p: v for p, v in before.items() if "month=2026-02" not in p}


def test_new_rows_in_an_existing_month_are_added_next_to_the_old_ones(lake: Lake):
    lake.merge(PRICES, prices(symbols=("AAA", "BBB"), dates=DATES[:2]))

    result = lake.merge(PRICES, prices(symbols=("CCC",), dates=DATES[:2], fetched_at=LATER_FETCH))

    assert result.changed == {"CCC": 2}
    assert {f.parent.name for f in lake.files(PRICES)} == {"month=2026-01"}  # the old file kept, one added
    table = lake.read(PRICES)
    assert table.num_rows == 6
    assert table.column("symbol").to_pylist() == ["AAA", "AAA", "BBB", "BBB", "CCC", "CCC"]


def test_a_merge_reads_only_the_months_of_its_rows(lake: Lake):
    # A new session is merged into its month alone: the MERGE names the source's months, so
    # delta-rs neither scans nor rewrites the others (the nightly reads one month, not the
    # whole history). Proof: January's file gone from disk does not trouble a March merge.
    lake.merge(PRICES, prices())
    january = next(f for f in lake.files(PRICES) if "month=2026-01" in str(f))
    january.unlink()

    result = lake.merge(PRICES, prices(dates=("2026-03-04",), fetched_at=LATER_FETCH))

    assert result.changed == {"AAA": 1, "BBB": 1, "CCC": 1}
    assert january in lake.files(PRICES)  # still in the table's version, never opened


def test_rows_of_symbols_new_to_their_months_are_appended_as_one_commit_with_its_metadata(lake: Lake):
    # A backfill chunk cannot match a stored row: it is appended (no MERGE join over the
    # table), with the same commit metadata and watermarks, and the change feed sees inserts.
    from deltalake import DeltaTable

    commit = Commit("run-1", "transform", {"transform:prices_daily": 3})
    first = lake.merge(PRICES, prices(symbols=("AAA",)), commit)
    second = lake.merge(PRICES, prices(symbols=("BBB",)), commit)
    third = lake.merge(PRICES, prices(symbols=("AAA", "CCC"), close=99.0))

    history = DeltaTable(str(lake.path(PRICES))).history()  # newest first
    assert [h["operation"] for h in history[:3]] == ["MERGE", "WRITE", "WRITE"]
    assert history[1]["stockpipe.run_id"] == "run-1" and history[1]["stockpipe.stage"] == "transform"
    assert lake.watermark(PRICES, "transform:prices_daily") == 3
    assert (first.changed, second.changed, third.changed) == ({"AAA": 6}, {"BBB": 6}, {"AAA": 6, "CCC": 6})
    feed = lake.changes(PRICES, first.version, second.version)
    assert set(feed["_change_type"].to_pylist()) == {"insert"} and feed.num_rows == 6
    assert lake.read(PRICES).num_rows == 18
    assert lake.merge(PRICES, prices(symbols=("BBB",))).changed == {}  # the same rows again: nothing


def test_a_merge_reads_only_the_files_that_may_hold_its_symbols(lake: Lake):
    # Chunks of symbols written apart (a backfill's) leave files of disjoint symbol ranges in
    # a month: a merge of one chunk prunes the others' files by their statistics.
    lake.merge(PRICES, prices(symbols=("AAA",)))
    lake.merge(PRICES, prices(symbols=("CCC",)))
    aaa = [f for f in lake.files(PRICES) if pq.read_table(f)["symbol"][0].as_py() == "AAA"]
    assert len(aaa) == 3
    for f in aaa:
        f.unlink()

    result = lake.merge(PRICES, prices(symbols=("BBB", "CCC"), close=50.0))

    assert result.changed == {"BBB": 6, "CCC": 6}


def test_a_read_of_some_symbols_opens_only_the_files_that_may_hold_them(lake: Lake):
    # By the Delta log's symbol statistics (pyarrow cannot prune string_view files itself).
    lake.merge(PRICES, prices(symbols=("AAA",)))
    lake.merge(PRICES, prices(symbols=("BBB", "CCC"), close=50.0))
    for f in lake.files(PRICES):
        if pq.read_table(f)["symbol"][0].as_py() == "AAA":
            f.unlink()

    table = lake.read(PRICES, ["CCC"])

    assert table.num_rows == 6 and set(table["symbol"].to_pylist()) == {"CCC"}
    assert lake.read(PRICES, []).num_rows == 0


def test_a_write_of_new_rows_racing_a_merge_of_the_same_rows_keeps_one_copy(lake: Lake, monkeypatch):
    # The race a blind append loses: between this write's look at the table ("no row of AAA
    # in these months") and its commit, another writer merges AAA's rows. delta-rs must
    # refuse the stale commit (it declared the rows it covers), and the retry merges on the
    # other writer's version: one row per key, this write's values last.
    # The other writer runs exactly inside that window, wrapped around _holds_any
    # (monkeypatch places the race; it replaces nothing).
    from stockpipe.storage import lake as lake_module

    other, real, raced = Lake(lake.root), lake_module.holds_any, []

    def look_then_race(*look):
        answer = real(*look)
        if not raced:
            raced.append("racing")  # the other writer's own look passes straight through
            raced[0] = other.merge(PRICES, prices(symbols=("AAA",), close=77.0))
        return answer

    monkeypatch.setattr(lake_module, "holds_any", look_then_race)
    result = lake.merge(PRICES, prices(symbols=("AAA",), close=99.0))

    table = lake.read(PRICES)
    assert raced[0].changed == {"AAA": 6} and result.changed == {"AAA": 6}
    assert table.num_rows == 6 and len(set(table["date"].to_pylist())) == 6
    assert set(table["close"].to_pylist()) == {99.0 + d / 10 for d in range(6)}


def test_a_write_of_new_rows_does_not_lose_another_writers_rows_in_the_same_months(lake: Lake, monkeypatch):
    # The other shard's rows (other symbols, same months) committed in the window stay.
    from stockpipe.storage import lake as lake_module

    other, real, raced = Lake(lake.root), lake_module.holds_any, []

    def look_then_race(*look):
        answer = real(*look)
        if not raced:
            raced.append("racing")
            raced[0] = other.merge(PRICES, prices(symbols=("BBB",)))
        return answer

    monkeypatch.setattr(lake_module, "holds_any", look_then_race)
    lake.merge(PRICES, prices(symbols=("AAA", "CCC")))

    assert lake.read(PRICES).num_rows == 18


def test_optimize_compacts_small_files_without_changing_a_row_or_the_change_feed(lake: Lake):
    for symbol in SYMBOLS:  # three commits: three files per month
        lake.merge(PRICES, prices(symbols=(symbol,)))
    before, version = lake.read(PRICES), lake.version(PRICES)
    assert len(lake.files(PRICES)) == 9

    done = lake_upkeep.optimize(lake, PRICES)

    assert done == {"files_removed": 9, "files_added": 3, "files_vacuumed": 0}
    assert len(lake.files(PRICES)) == 3 and lake.read(PRICES).equals(before)
    assert lake.changes(PRICES, version).num_rows == 0  # a consumer sees nothing new
    assert lake.changes(PRICES, 0, version).num_rows == 18  # and the old feed is still there


def test_vacuum_drops_the_old_files_and_their_change_feed(lake: Lake):
    from stockpipe.storage.lake import ChangesUnavailableError

    for symbol in SYMBOLS:
        lake.merge(PRICES, prices(symbols=(symbol,)))
    before = lake.read(PRICES)

    done = lake_upkeep.optimize(lake, PRICES, vacuum_hours=0)

    assert done["files_vacuumed"] == 9 and lake.read(PRICES).equals(before)
    with pytest.raises(ChangesUnavailableError):  # the consumer falls back to the snapshot
        lake.changes(PRICES, 0)


def test_a_new_session_in_a_month_already_held_is_written_without_a_merge_and_keeps_the_earlier_days(lake: Lake):
    # The nightly: every symbol gets one new date in the current month. No stored row lies
    # in that date range, so no MERGE is needed (and none of the month's earlier files is
    # read); the same day sent again with a change is merged.
    from deltalake import DeltaTable

    lake.merge(PRICES, prices())
    new_day = lake.merge(PRICES, prices(dates=("2026-03-04",)))
    restated = lake.merge(PRICES, prices(dates=("2026-03-04",), close=20.0))

    history = DeltaTable(str(lake.path(PRICES))).history()
    assert [h["operation"] for h in history[:2]] == ["MERGE", "WRITE"]
    assert new_day.changed == restated.changed == {"AAA": 1, "BBB": 1, "CCC": 1}
    table = lake.read(PRICES)
    assert table.num_rows == 21 and lake.read(PRICES, ["AAA"])["date"].to_pylist()[-2:] == [
        dt.date(2026, 3, 3), dt.date(2026, 3, 4)]


def test_scan_reads_a_file_only_when_its_rows_are_asked_for(lake: Lake):
    """A snapshot load streams a 10M-row table through a slow consumer (SQLite): the scan
    must not read ahead of it (a dataset scanner held 1.8 GB so), so a file is opened only
    when the batch that needs it is taken. Here each month's file is one batch: once the
    first is taken, the others are deleted behind the scan's back, and the next batch
    fails to read them instead of coming from memory read ahead."""
    lake.merge(PRICES, prices())
    batches = lake.scan(PRICES, rows=1)
    first = next(batches)
    assert first.num_rows and first.schema == arrow_schema(PRICES)
    for f in lake.files(PRICES):
        f.unlink()
    with pytest.raises(UnavailableError, match="cannot read the lake's prices_daily"):
        next(batches)


def test_scan_yields_every_row_once_in_batches_of_about_the_size_asked(lake: Lake):
    lake.merge(PRICES, prices())
    lake.merge(PRICES, prices(symbols=("DDD",)))
    batches = list(lake.scan(PRICES, rows=10))  # files of 6 rows (3 symbols) and 2 (DDD), a month each
    sizes = [b.num_rows for b in batches]
    assert all(10 <= n < 16 for n in sizes[:-1]) and 0 < sizes[-1] < 16, sizes
    keys = pd.concat([b.to_pandas() for b in batches])[["symbol", "date"]]
    assert len(keys) == 24 and not keys.duplicated().any()


def test_a_lake_sees_other_writers_commits_and_a_table_made_anew(lake: Lake):
    """Lake keeps each DeltaTable it opened and catches it up on each use: what another
    writer (another Lake, another process) commits is seen, and a table deleted and
    created again is opened anew rather than caught up with another table's log."""
    import shutil

    other = Lake(lake.root)
    lake.merge(PRICES, prices(symbols=("AAA",)))
    assert set(lake.read(PRICES)["symbol"].to_pylist()) == {"AAA"}
    identity = lake.identity(PRICES)

    other.merge(PRICES, prices(symbols=("BBB",)))
    assert set(lake.read(PRICES)["symbol"].to_pylist()) == {"AAA", "BBB"}
    assert lake.version(PRICES) == other.version(PRICES)

    shutil.rmtree(lake.path(PRICES))
    other.merge(PRICES, prices(symbols=("CCC",)))
    assert set(lake.read(PRICES)["symbol"].to_pylist()) == {"CCC"}
    assert lake.identity(PRICES) not in (None, identity)
