"""Settings: precedence, universe sources, secrets, and the errors bad input gets."""

from __future__ import annotations

from pathlib import Path

import pytest

from stockpipe.config import DEFAULT_SYMBOLS, Secret, load_settings, normalize_symbol
from stockpipe.errors import BadInputError, ConfigError


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults(tmp_path):
    settings = load_settings({}, environ={}, cwd=tmp_path)
    assert settings.data_dir == tmp_path / "stockpipe-data"
    assert settings.database_url == f"sqlite:///{tmp_path / 'stockpipe-data' / 'stockpipe.db'}"
    assert settings.provider == "yahoo"  # real data, no key needed
    assert settings.symbols == DEFAULT_SYMBOLS
    assert settings.history_days == 730
    assert settings.log_format == "text"


def test_precedence_default_file_env_flag(tmp_path):
    write(tmp_path / "stockpipe.toml", 'provider = "csv"\nhistory_days = 100\nlog_format = "json"\n')
    from_file = load_settings({}, environ={}, cwd=tmp_path)
    assert (from_file.provider, from_file.history_days, from_file.log_format) == ("csv", 100, "json")
    env = {"STOCKPIPE_HISTORY_DAYS": "50", "STOCKPIPE_PROVIDER": "demo"}
    from_env = load_settings({}, environ=env, cwd=tmp_path)
    assert (from_env.provider, from_env.history_days, from_env.log_format) == ("demo", 50, "json")
    assert load_settings({}, environ={}, cwd=tmp_path).provider == "csv"  # the file beats the default
    from_flag = load_settings({"provider": "csv"}, environ=env, cwd=tmp_path)
    assert (from_flag.provider, from_flag.history_days) == ("csv", 50)


def test_config_file_from_env_and_flag(tmp_path):
    write(tmp_path / "a.toml", 'history_days = 11\n')
    write(tmp_path / "b.toml", '[fetch]\nhistory_days = 22\n')
    assert load_settings({}, environ={"STOCKPIPE_CONFIG": "a.toml"}, cwd=tmp_path).history_days == 11
    assert load_settings({"config": "b.toml"}, environ={"STOCKPIPE_CONFIG": "a.toml"}, cwd=tmp_path).history_days == 22


def test_state_directory_from_systemd(tmp_path):
    settings = load_settings({}, environ={"STATE_DIRECTORY": f"{tmp_path}/state:{tmp_path}/other"}, cwd=tmp_path)
    assert settings.data_dir == tmp_path / "state"
    flagged = load_settings({"data_dir": "mine"}, environ={"STATE_DIRECTORY": str(tmp_path / "state")}, cwd=tmp_path)
    assert flagged.data_dir == tmp_path / "mine"


def test_symbols_file_comments_and_dedupe(tmp_path):
    write(tmp_path / "t.txt", "# US names\naapl\n\nMSFT  # software\nAAPL\nbrk.b\n")
    settings = load_settings({"symbols_file": "t.txt", "symbols": ("IBM",)}, environ={}, cwd=tmp_path)
    assert settings.symbols == ("IBM", "AAPL", "MSFT", "BRK.B")
    assert settings.universe_source == "command line"


def test_named_lists_and_files_from_config(tmp_path):
    (tmp_path / "lists").mkdir()
    write(tmp_path / "lists" / "lse.txt", "VOD.L\nBP.L\n")
    write(tmp_path / "stockpipe.toml", '[universe]\nsymbols = ["IBM"]\n[universe.lists]\n'
          'us = ["AAPL", "MSFT"]\nlse = "lists/lse.txt"\n')
    everything = load_settings({}, environ={}, cwd=tmp_path)
    assert everything.symbols == ("IBM", "AAPL", "MSFT", "VOD.L", "BP.L")
    only_lse = load_settings({"lists": ["lse"]}, environ={}, cwd=tmp_path)
    assert only_lse.symbols == ("VOD.L", "BP.L")
    with pytest.raises(ConfigError, match="unknown list 'asia'"):
        load_settings({"lists": ["asia"]}, environ={}, cwd=tmp_path)


def test_symbols_from_environment(tmp_path):
    settings = load_settings({}, environ={"STOCKPIPE_SYMBOLS": "ibm, aapl"}, cwd=tmp_path)
    assert settings.symbols == ("IBM", "AAPL")


@pytest.mark.parametrize("bad", ["AAPL'; DROP TABLE x;--", "../../etc", "", "   ", "A B", "AAPL/../x", "X" * 21, ".AAPL"])
def test_malformed_symbols_are_refused(bad):
    with pytest.raises(BadInputError, match="malformed symbol"):
        normalize_symbol(bad)


@pytest.mark.parametrize("good,expected", [("aapl", "AAPL"), ("BRK.B", "BRK.B"), ("7203.T", "7203.T"),
                                           ("^GSPC", "^GSPC"), ("EURUSD=X", "EURUSD=X"), ("RDS-A", "RDS-A")])
def test_well_formed_symbols(good, expected):
    assert normalize_symbol(good) == expected


def test_bad_symbol_in_file_names_the_line(tmp_path):
    write(tmp_path / "t.txt", "AAPL\n../../etc\n")
    with pytest.raises(BadInputError, match=r"t.txt line 2"):
        load_settings({"symbols_file": "t.txt"}, environ={}, cwd=tmp_path)


def test_unreadable_config_is_a_config_error(tmp_path):
    write(tmp_path / "stockpipe.toml", "provider = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings({}, environ={}, cwd=tmp_path)
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings({"config": "missing.toml"}, environ={}, cwd=tmp_path)


def test_invalid_values_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="history_days"):
        load_settings({}, environ={"STOCKPIPE_HISTORY_DAYS": "soon"}, cwd=tmp_path)
    with pytest.raises(ConfigError, match="log_format"):
        load_settings({"log_format": "xml"}, environ={}, cwd=tmp_path)
    write(tmp_path / "stockpipe.toml", 'colour = "red"\n')
    with pytest.raises(ConfigError, match="unknown setting 'colour'"):
        load_settings({}, environ={}, cwd=tmp_path)


def test_api_keys_from_env_and_file_never_show(tmp_path):
    key_file = write(tmp_path / "key", "file-secret-123\n")
    settings = load_settings({}, environ={"STOCKPIPE_EODHD_API_KEY": "env-secret-456",
                                          "STOCKPIPE_FINNHUB_API_KEY_FILE": str(key_file)}, cwd=tmp_path)
    assert settings.api_key("eodhd").reveal() == "env-secret-456"
    assert settings.api_key("finnhub").reveal() == "file-secret-123"
    assert "secret" not in repr(settings) and "secret" not in repr(settings.api_key("eodhd"))
    assert isinstance(settings.api_key("eodhd"), Secret)


def test_settings_are_frozen(tmp_path):
    settings = load_settings({}, environ={}, cwd=tmp_path)
    with pytest.raises(AttributeError):
        settings.provider = "csv"  # type: ignore[misc]  # frozen on purpose


def test_provider_options_from_file_and_env(tmp_path):
    write(tmp_path / "stockpipe.toml", '[providers.eodhd]\ncalls_per_day = 1000\nbase_url = "http://file"\n'
          '[symbol_map.eodhd]\n"BRK.B" = "BRK-B.US"\n')
    settings = load_settings({}, environ={"STOCKPIPE_EODHD_BASE_URL": "http://127.0.0.1:9/",
                                          "STOCKPIPE_YAHOO_CALLS_PER_MINUTE": "30"}, cwd=tmp_path)
    assert settings.provider_options["eodhd"] == {"calls_per_day": 1000, "base_url": "http://127.0.0.1:9/"}
    assert settings.provider_options["yahoo"] == {"calls_per_minute": 30}
    assert settings.symbol_map == {"eodhd": {"BRK.B": "BRK-B.US"}}
    with pytest.raises(ConfigError, match="STOCKPIPE_YAHOO_CALLS_PER_DAY"):
        load_settings({}, environ={"STOCKPIPE_YAHOO_CALLS_PER_DAY": "lots"}, cwd=tmp_path)


# ------------------------------------------------------------------ strict values (issue 11)


def _file(tmp_path, text: str):
    path = tmp_path / "stockpipe.toml"
    path.write_text(text)
    return path


def test_an_unknown_key_in_a_section_suggests_the_nearest(tmp_path):
    _file(tmp_path, "[pipeline]\nbatch_row = 10\n")
    with pytest.raises(ConfigError, match=r"'batch_row' in \[pipeline\] of .*stockpipe.toml: did you mean batch_rows\?"):
        load_settings({}, environ={}, cwd=tmp_path)


def test_a_key_in_a_section_is_a_setting(tmp_path):
    _file(tmp_path, "[pipeline]\nhistory_days = 10\nauto_migrate = false\n[http]\nhttp_timeout_read = 5\n")
    settings = load_settings({}, environ={}, cwd=tmp_path)
    assert (settings.history_days, settings.auto_migrate, settings.http_timeout_read) == (10, False, 5.0)


@pytest.mark.parametrize("text, where", [("history_days = 3.7\n", "stockpipe.toml"),
                                         ('auto_migrate = "no"\n', "stockpipe.toml"),
                                         ("batch_rows = true\n", "stockpipe.toml")])
def test_types_are_strict_in_the_file(tmp_path, text, where):
    _file(tmp_path, text)
    with pytest.raises(ConfigError, match=where):
        load_settings({}, environ={}, cwd=tmp_path)


def test_values_from_the_environment_are_parsed_and_named(tmp_path):
    settings = load_settings({}, environ={"STOCKPIPE_AUTO_MIGRATE": "No", "STOCKPIPE_BATCH_ROWS": " 42 "}, cwd=tmp_path)
    assert (settings.auto_migrate, settings.batch_rows) == (False, 42)
    with pytest.raises(ConfigError, match="STOCKPIPE_HISTORY_DAYS.*1..36500"):
        load_settings({}, environ={"STOCKPIPE_HISTORY_DAYS": "36501"}, cwd=tmp_path)


def test_rate_limits_must_be_above_zero(tmp_path):
    _file(tmp_path, "[providers.eodhd]\ncalls_per_day = 0\n")
    with pytest.raises(ConfigError, match=r"\[providers.eodhd\] of .*stockpipe.toml.*above 0"):
        load_settings({}, environ={}, cwd=tmp_path)


def test_the_database_password_is_registered_as_a_secret(tmp_path):
    from stockpipe.errors import StockpipeError

    load_settings({}, environ={"STOCKPIPE_DATABASE_URL": "postgresql://u:Zq9-secret-pw@h/db"}, cwd=tmp_path)
    assert "Zq9-secret-pw" not in str(StockpipeError("failed with Zq9-secret-pw in it"))
