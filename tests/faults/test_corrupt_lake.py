"""Issue 11 rows 5 and 25: a lake file with valid Parquet framing and garbage inside, a file
cut short, a file deleted — through the real CLI, on SQLite and PostgreSQL.

Each must be named (every one, not the first) by `verify` and `health-check`; transform,
load, quality-check and run must stop with exit 5 naming the file and `verify --repair`
rather than read it; `verify --repair` moves it to the quarantine, and after a plain run the
lake and the warehouse hold exactly what an uninterrupted run holds.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from helpers import query
from stockpipe.errors import ExitCode, HealthCode

SYMBOLS = ("--symbol", "AAPL", "--symbol", "MSFT")
TABLES = ("prices_daily", "corporate_actions", "adjustments", "indicators_daily")
VOLATILE = {"fetched_at", "computed_at"}


@pytest.fixture
def setup(make_cli, database_url, tmp_path):
    """A CLI on `database_url` (SQLite or PostgreSQL) after one uninterrupted run."""
    cli = make_cli(STOCKPIPE_PROVIDER="demo", STOCKPIPE_HISTORY_DAYS="120", STOCKPIPE_DATABASE_URL=database_url)
    code, _, err = cli("run", *SYMBOLS)
    assert code == ExitCode.OK, err
    return cli, database_url, tmp_path / "stockpipe-data"


def content(url: str) -> dict[str, str]:
    """table -> (rows, a hash of its sorted rows without the volatile columns)."""
    found = {}
    for table in TABLES:
        rows = query(url, f"SELECT * FROM {table}")
        names = _columns(url, table)
        kept = [i for i, name in enumerate(names) if name not in VOLATILE]
        lines = sorted(repr(tuple(_plain(row[i]) for i in kept)) for row in rows)
        found[table] = f"{len(lines)}:{hashlib.sha256(''.join(lines).encode()).hexdigest()[:16]}"
    return found


def _columns(url: str, table: str) -> list[str]:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [c["name"] for c in sa.inspect(conn).get_columns(table)]
    finally:
        engine.dispose()


def _plain(value):
    return str(value)[:10] if hasattr(value, "isoformat") and not isinstance(value, float) else value


def files(data: Path, table: str) -> list[Path]:
    return sorted((data / "lake" / table).glob("month=*/*.parquet"))


def garble(path: Path) -> None:
    """Garbage in the middle, the magic bytes and the size kept."""
    body = bytearray(path.read_bytes())
    middle = len(body) // 3
    body[middle:middle + 200] = os.urandom(200)
    path.write_bytes(bytes(body))


def damage(data: Path) -> list[Path]:
    """A garbled, a truncated and a deleted file (three tables / months)."""
    prices = files(data, "prices_daily")
    garbled, cut, gone = prices[-2], prices[1], files(data, "indicators_daily")[2]
    garble(garbled)
    with cut.open("r+b") as handle:
        handle.truncate(cut.stat().st_size // 2)
    gone.unlink()
    return [garbled, cut, gone]


def test_every_damaged_file_is_named_nothing_reads_it_and_repair_restores_the_run(setup, make_cli, tmp_path):
    cli, url, data = setup
    golden = content(url)
    bad = damage(data)

    code, out, err = cli("health-check", "--json")
    assert code == HealthCode.CRITICAL, err
    lake = next(c for c in json.loads(out)["checks"] if c["name"] == "lake")
    assert not lake["ok"] and all(str(p) in lake["detail"] for p in bad), lake

    code, out, err = cli("verify", "--json")
    assert code == ExitCode.INCONSISTENT, err
    failed = [c["detail"] for c in json.loads(out)["checks"] if not c["ok"] and c["name"] == "lake files"]
    assert len(failed) == 3 and all(any(str(p) in d for d in failed) for p in bad), failed

    for command in ("transform", "load", "quality-check"):
        code, _, err = cli(command)
        assert code == ExitCode.UNAVAILABLE, (command, err)
        assert str(bad[0]) in err and "stockpipe verify --repair" in err, err
        assert len(err.strip().splitlines()) == 1, err
    code, _, err = cli("run", *SYMBOLS)
    assert code == ExitCode.UNAVAILABLE and "verify --repair" in err, err
    assert content(url) == golden  # nothing loaded from the damaged lake

    code, out, err = cli("verify", "--repair", "--json")
    assert code == ExitCode.OK, (out, err)
    document = json.loads(out)
    assert document["repaired"] and document["counts"]["problems"] == 0
    quarantined = sorted(p.name for p in (data / "quarantine").rglob("*.parquet"))
    assert quarantined == sorted(p.name for p in bad[:2])  # the deleted one had nothing to move

    code, _, err = cli("run", *SYMBOLS)
    assert code == ExitCode.OK, err
    assert content(url) == golden
    code, out, err = cli("verify")
    assert code == ExitCode.OK, out + err
    code, _, err = cli("health-check")
    assert "lake file(s) damaged" not in err


def test_a_garbled_file_is_caught_even_where_framing_and_size_hold(setup):
    """The modified-after-commit rule needs no page read; a lake copied without its file times
    is read fully once by verify, and then no longer alarms."""
    cli, _, data = setup
    path = files(data, "prices_daily")[0]
    garble(path)
    code, out, _ = cli("verify", "--json")
    assert code == ExitCode.INCONSISTENT
    assert any(str(path) in c["detail"] for c in json.loads(out)["checks"] if not c["ok"])

    clean = files(data, "prices_daily")[1]  # touched, but whole
    shutil.copy(clean, clean.with_suffix(".copy"))
    clean.with_suffix(".copy").replace(clean)
    os.utime(clean)
    code, out, _ = cli("health-check", "--json")
    lake = next(c for c in json.loads(out)["checks"] if c["name"] == "lake")
    assert str(clean) in lake["detail"]
    cli("verify")  # reads it fully: whole
    code, out, _ = cli("health-check", "--json")
    lake = next(c for c in json.loads(out)["checks"] if c["name"] == "lake")
    assert str(clean) not in lake["detail"] and str(path) in lake["detail"]
