"""Configuration mistakes, through the real CLI: each is refused before anything runs, with
exit 4 and one line naming the key, where it came from (the file or the variable) and the
fix — never accepted silently, never exit 1, never a traceback.

Row 15 of issue 11 (config: unknown keys, wrong types, unreadable file, env overrides) and
the ordinary bad inputs of row 24 (`--start` after `--end`, an absurd history).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stockpipe.errors import ExitCode, HealthCode


def write_config(tmp_path: Path, text: str | bytes, name: str = "stockpipe.toml") -> Path:
    path = tmp_path / "inputs" / name
    path.parent.mkdir(exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def assert_refused(code: int, err: str, tmp_path: Path, *needles: str, exit_code: int = ExitCode.CONFIG) -> None:
    """Refused with `exit_code`, one line naming every needle, and nothing ran."""
    assert code == exit_code, err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and "unexpected" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)
    assert not (tmp_path / "stockpipe-data").exists(), "a refused configuration must not run anything"


@pytest.mark.parametrize("section", ["pipeline", "database"])
def test_unknown_key_in_a_section_names_key_section_file_and_the_nearest(cli, tmp_path, section):
    config = write_config(tmp_path, f"[{section}]\nhistroy_days = 10\n")
    code, _, err = cli("run", "--all", "--config", str(config))
    assert_refused(code, err, tmp_path, "'histroy_days'", f"[{section}]", str(config), "did you mean history_days?")


@pytest.mark.parametrize("text, key, section, nearest", [
    ("histroy_days = 10\n", "histroy_days", "the top level", "history_days"),
    ('[universe]\nsymbol = ["IBM"]\n', "symbol", "[universe]", "symbols"),
    ("[providers.yahoo]\ncalls_per_minit = 5\n", "calls_per_minit", "[providers.yahoo]", "calls_per_minute"),
])
def test_unknown_keys_everywhere_are_refused(cli, tmp_path, text, key, section, nearest):
    config = write_config(tmp_path, text)
    code, _, err = cli("fetch", "--all", "--config", str(config))
    assert_refused(code, err, tmp_path, repr(key), section, str(config), f"did you mean {nearest}?")


@pytest.mark.parametrize("value", ['"maybe"', '"flase"', '"true"', "1"])
def test_a_boolean_in_the_file_is_a_toml_boolean(cli, tmp_path, value):
    config = write_config(tmp_path, f"auto_migrate = {value}\n")
    code, _, err = cli("fetch", "--all", "--config", str(config))
    assert_refused(code, err, tmp_path, "auto_migrate", str(config), "true or false")


@pytest.mark.parametrize("value, expected", [("true", True), ("FALSE", False), ("1", True), ("0", False),
                                             ("yes", True), ("no", False)])
def test_a_boolean_in_the_environment_accepts_the_usual_words(make_settings, value, expected):
    assert make_settings({"STOCKPIPE_AUTO_MIGRATE": value}).auto_migrate is expected


@pytest.mark.parametrize("value", ["maybe", "flase", "2", "on-ish"])
def test_a_boolean_in_the_environment_refuses_anything_else(make_cli, tmp_path, value):
    cli = make_cli(STOCKPIPE_PROVIDER="demo", STOCKPIPE_AUTO_MIGRATE=value)
    code, _, err = cli("fetch", "--all")
    assert_refused(code, err, tmp_path, "auto_migrate", "STOCKPIPE_AUTO_MIGRATE", repr(value))


@pytest.mark.parametrize("value", ["3.7", "3.0", '"ten"', '"10"', "true"])
def test_whole_numbers_are_whole_numbers(make_cli, tmp_path, value):
    config = write_config(tmp_path, f"[pipeline]\nhistory_days = {value}\n")
    code, _, err = make_cli(STOCKPIPE_PROVIDER="demo")("run", "--all", "--config", str(config))
    assert_refused(code, err, tmp_path, "history_days", str(config), "whole number")


@pytest.mark.parametrize("variable, value, needle", [
    ("STOCKPIPE_BATCH_ROWS", "lots", "whole number"),
    ("STOCKPIPE_HTTP_TIMEOUT_READ", "soon", "not a number"),
    ("STOCKPIPE_HTTP_TIMEOUT_READ", "nan", "not a number"),
    ("STOCKPIPE_STALE_AFTER_SESSIONS", "1.5", "whole number"),
])
def test_a_type_error_in_the_environment_names_the_variable(make_cli, tmp_path, variable, value, needle):
    cli = make_cli(STOCKPIPE_PROVIDER="demo", **{variable: value})
    code, _, err = cli("fetch", "--all")
    assert_refused(code, err, tmp_path, variable, needle)


@pytest.mark.parametrize("value", ["1000000000", "0", "-5"])
def test_history_days_out_of_range_names_the_range(make_cli, tmp_path, value):
    cli = make_cli(STOCKPIPE_PROVIDER="demo", STOCKPIPE_HISTORY_DAYS=value)
    code, _, err = cli("validate")
    assert_refused(code, err, tmp_path, "STOCKPIPE_HISTORY_DAYS", "1..36500")


@pytest.mark.parametrize("value", ["0", "-5", "2.5", '"many"', '"60"'])
def test_rate_limits_in_the_file_are_whole_numbers_above_zero(cli, tmp_path, value):
    config = write_config(tmp_path, f"[providers.yahoo]\ncalls_per_minute = {value}\n")
    code, _, err = cli("fetch", "--all", "--config", str(config))
    assert_refused(code, err, tmp_path, "calls_per_minute", "[providers.yahoo]", str(config), "above 0")


@pytest.mark.parametrize("value", ["0", "-1", "x"])
def test_rate_limits_in_the_environment_name_the_variable(make_cli, tmp_path, value):
    cli = make_cli(STOCKPIPE_PROVIDER="demo", STOCKPIPE_EODHD_CALLS_PER_DAY=value)
    code, _, err = cli("fetch", "--all")
    assert_refused(code, err, tmp_path, "STOCKPIPE_EODHD_CALLS_PER_DAY", "above 0")


def test_an_unknown_exchange_mic_is_refused_naming_exchange_calendars(cli, tmp_path):
    config = write_config(tmp_path, '[exchanges]\n".T" = "XTKY"\n')
    code, _, err = cli("fetch", "--all", "--config", str(config))
    assert code == ExitCode.CONFIG, err
    assert "'XTKY'" in err and "exchange_calendars" in err and "did you mean XTKS?" in err, err
    assert len(err.strip().splitlines()) == 1, err


def test_a_known_exchange_mic_is_accepted(cli, tmp_path):
    config = write_config(tmp_path, '[exchanges]\n".T" = "XTKS"\n')
    code, _, err = cli("fetch", "--symbol", "IBM", "--config", str(config))
    assert code == ExitCode.OK, err


NOT_UTF8 = b'provider = "d\xe9mo"\n'


def test_a_non_utf8_config_is_a_config_error(cli, tmp_path):
    config = write_config(tmp_path, NOT_UTF8)
    code, _, err = cli("validate", "--config", str(config))
    assert_refused(code, err, tmp_path, str(config), "not UTF-8", "save it as UTF-8")


def test_a_non_utf8_config_makes_health_check_unknown_in_one_line(cli, tmp_path):
    config = write_config(tmp_path, NOT_UTF8)
    code, _, err = cli("health-check", "--config", str(config))
    assert_refused(code, err, tmp_path, str(config), "not UTF-8", exit_code=HealthCode.UNKNOWN)


@pytest.mark.parametrize("how", ["flag", "env", "config"])
def test_a_non_utf8_symbols_file_is_a_config_error(make_cli, tmp_path, how):
    symbols = write_config(tmp_path, b"IBM\nA\xe9PL\n", "tickers.txt")
    env = {"STOCKPIPE_PROVIDER": "demo"}
    args = ["run", "--all"]
    if how == "flag":
        args = ["run", "--symbols-file", str(symbols)]
    elif how == "env":
        env["STOCKPIPE_SYMBOLS_FILE"] = str(symbols)
    else:
        args += ["--config", str(write_config(tmp_path, f'[universe]\nfiles = ["{symbols}"]\n'))]
    code, _, err = make_cli(**env)(*args)
    assert_refused(code, err, tmp_path, str(symbols), "not UTF-8")


# Every command with --start and --end: the window is refused before anything runs.
WINDOWS = [
    ("fetch", "--all"),
    ("run", "--all"),
    ("fetch", "--symbol", "IBM", "--interval", "60m"),
    ("export", "--symbol", "IBM"),
    ("plot", "IBM", "--out", "chart.png"),
]


@pytest.mark.parametrize("command", WINDOWS, ids=lambda c: " ".join(c))
def test_start_after_end_is_a_usage_error_everywhere(cli, tmp_path, command):
    code, _, err = cli(*command, "--start", "2026-01-10", "--end", "2026-01-02")
    assert_refused(code, err, tmp_path, "--start 2026-01-10 is after --end 2026-01-02", exit_code=ExitCode.USAGE)


def test_a_non_utf8_key_file_is_a_config_error(make_cli, tmp_path):
    key_file = write_config(tmp_path, b"\xff\xfek\x00e\x00y\x00", "eodhd.key")
    cli = make_cli(STOCKPIPE_PROVIDER="demo", STOCKPIPE_EODHD_API_KEY_FILE=str(key_file))
    code, _, err = cli("fetch", "--all")
    assert_refused(code, err, tmp_path, "STOCKPIPE_EODHD_API_KEY_FILE", str(key_file), "not UTF-8")
