"""Shards: a stable hash slice of the universe that covers it exactly once."""

from __future__ import annotations

import pytest

from stockpipe import shards
from stockpipe.config import load_settings
from stockpipe.errors import ExitCode, UsageError

UNIVERSE = [f"S{i:05d}" for i in range(21_817)] + ["AAPL", "BRK.B", "7203.T", "VOD.L", "^GSPC", "EURUSD=X"]


@pytest.mark.parametrize("count", [1, 2, 3, 8, 13, 64])
def test_the_slices_cover_the_universe_exactly_once(count):
    slices = [shards.Shard(i, count).select(UNIVERSE) for i in range(1, count + 1)]
    flat = [s for part in slices for s in part]
    assert sorted(flat) == sorted(UNIVERSE)  # every symbol once, none twice
    assert len(flat) == len(set(flat))
    sizes = [len(part) for part in slices]
    assert min(sizes) > 0.8 * len(UNIVERSE) / count  # a hash, not a range: balanced


def test_a_symbol_keeps_its_shard_whatever_the_universe():
    """Every machine, process and Airflow worker must agree: pinned values guard the hash."""
    assert [shards.shard_of(s, 8) for s in ("AAPL", "MSFT", "IBM", "BRK.B", "7203.T")] == [5, 3, 7, 7, 3]
    alone = shards.Shard(5, 8).select(["AAPL"])
    among = shards.Shard(5, 8).select(UNIVERSE)
    assert alone == ["AAPL"] and "AAPL" in among
    assert shards.Shard(5, 8).select(["MSFT", "AAPL"]) == ["AAPL"]  # order kept, others dropped


@pytest.mark.parametrize("text, expected", [("3/8", (3, 8)), (" 1 / 1 ", (1, 1)), ("8/8", (8, 8))])
def test_parse(text, expected):
    shard = shards.parse(text)
    assert (shard.index, shard.count) == expected
    assert str(shard) == f"{expected[0]}/{expected[1]}" and shard.slug == f"{expected[0]}-of-{expected[1]}"


@pytest.mark.parametrize("text, says", [("0/8", "counted from 1"), ("9/8", "1..8"), ("3", "not I/N"),
                                        ("3/0", "1..4096"), ("a/b", "not I/N"), ("-1/4", "not I/N")])
def test_bad_shards_are_usage_errors(text, says):
    with pytest.raises(UsageError, match=says) as caught:
        shards.parse(text)
    assert caught.value.exit_code == ExitCode.USAGE


def test_settings_take_shard_and_run_id_from_flags_and_environment(tmp_path):
    settings = load_settings({"shard": "2/4", "run_id": "scheduled__2026-11-20T03:30:00+00:00"}, environ={}, cwd=tmp_path)
    assert settings.shard == shards.Shard(2, 4) and settings.run_id == "scheduled__2026-11-20T03:30:00+00:00"
    from_env = load_settings({}, environ={"STOCKPIPE_SHARD": "1/2", "STOCKPIPE_RUN_ID": "abc"}, cwd=tmp_path)
    assert from_env.shard == shards.Shard(1, 2) and from_env.run_id == "abc"
    assert load_settings({}, environ={}, cwd=tmp_path).shard is None
    systemd = {"INVOCATION_ID": "0f3c9a4e5b6d4c2e8a1b7c9d0e2f4a6b"}  # set by systemd for every service process
    assert load_settings({}, environ=systemd, cwd=tmp_path).run_id == systemd["INVOCATION_ID"]
    assert load_settings({"run_id": "mine"}, environ=systemd, cwd=tmp_path).run_id == "mine"


@pytest.mark.parametrize("bad", ["", "has space", "x" * 65, "tab\there"])
def test_bad_run_ids_are_usage_errors(tmp_path, bad):
    with pytest.raises(UsageError, match="--run-id"):
        load_settings({"run_id": bad}, environ={}, cwd=tmp_path)
