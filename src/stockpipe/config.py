"""Settings: one frozen object, read once.

Precedence, lowest first: built-in defaults < `stockpipe.toml` (`--config`, else
`STOCKPIPE_CONFIG`, else `./stockpipe.toml` when present) < `STOCKPIPE_*` environment <
command-line flags. Nothing outside this module reads `os.environ`.

The universe (the symbols a command works on), first match wins:
1. `--symbol` (repeatable) and/or `--symbols-file FILE`;
2. `--list NAME` (repeatable): named lists from the config's `[universe.lists]`;
3. `STOCKPIPE_SYMBOLS` (comma-separated) / `STOCKPIPE_SYMBOLS_FILE`;
4. the config's `[universe]` `symbols`, `files` and every named list, in that order;
5. the default: IBM, AAPL, GOOGL, MSFT. (`[universe] exchanges`/`--exchange`: pipeline/universe.py.)
A ticker file holds one symbol per line; `#` starts a comment; blank lines are ignored.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from . import config_values as values_
from .errors import BadInputError, ConfigError, UsageError
from .shards import Shard, parse as parse_shard

DEFAULT_SYMBOLS = ("IBM", "AAPL", "GOOGL", "MSFT")
PROVIDERS_WITH_KEYS = ("yahoo", "alphavantage", "eodhd", "finnhub", "polygon", "tiingo", "stooq")
LOG_FORMATS = ("text", "json")

# A ticker: letters/digits, optionally with the punctuation vendors use (BRK.B, RDS-A,
# ^GSPC, EURUSD=X, 7203.T). No slashes, spaces, quotes or "..", so a symbol is always
# safe inside a file name and never SQL.
_SYMBOL = re.compile(r"^\^?[A-Z0-9]+(?:[.\-=_][A-Z0-9]+)*(?:=X)?$")
_SYMBOL_MAX = 20


class Secret(str):
    """A string that never shows itself in repr(), logs or tracebacks."""

    def __repr__(self) -> str:
        return "Secret('***')"

    def reveal(self) -> str:
        return str.__str__(self)


@dataclass(frozen=True)
class Settings:
    """Everything a command needs to know, resolved once."""

    data_dir: Path = Path("stockpipe-data")
    database_url: str = ""
    provider: str = "yahoo"
    # Failover order: the first provider, then the next for what it could not serve
    # (`--provider eodhd,yahoo`, STOCKPIPE_PROVIDER, or [universe] providers = [...]).
    providers: tuple[str, ...] = ()
    symbols: tuple[str, ...] = DEFAULT_SYMBOLS
    universe_source: str = "default"
    history_days: int = 730
    log_format: str = "text"
    csv_path: Path | None = None
    # strptime format of a CSV's dates when they are not YYYY-MM-DD (e.g. "%d-%m-%Y")
    csv_date_format: str | None = None
    stale_after_sessions: int = 1
    auto_migrate: bool = True
    batch_rows: int = 500_000
    # HTTP timeouts (s); attempts in a row without an answer (across symbols) after which a vendor is down for the run
    http_timeout_connect: float = 10.0
    http_timeout_read: float = 30.0
    http_max_response_bytes: int = 32 * 1024 * 1024  # the largest answer, counted decoded (stops a gzip bomb)
    unreachable_after: int = 3
    max_consecutive_failures: int = 5  # failed fetches in a row after which planning skips a symbol (until reset)
    restate_sessions: int = 5  # held sessions an incremental fetch re-reads (restated, late, empty bars); 0: none
    bulk_daily: bool = True  # fetch asks EODHD's exchange-wide day where it costs less (stages/bulk.py)
    bulk_actions: bool = True  # ... and that day's splits and dividends (100 calls each)
    exchange_lists: Mapping[str, Any] = field(default_factory=dict)  # [universe] exchanges, types, exchange_files
    time_travel_days: int = 7  # prune vacuums lake versions (and their change feed) older than this
    config_file: Path | None = None
    # symbol suffix or symbol -> exchange MIC, over calendars.DEFAULT_SUFFIXES ([exchanges] table)
    exchanges: Mapping[str, str] = field(default_factory=dict)
    # quality rule name -> threshold, over stages.quality's defaults ([quality] table)
    quality: Mapping[str, float] = field(default_factory=dict)
    # health-check threshold name -> value, over checks.HEALTH_DEFAULTS ([health] table and
    # STOCKPIPE_HEALTH_<NAME>; checked by checks.health_thresholds, so `validate` names a typo)
    health: Mapping[str, Any] = field(default_factory=dict)
    # provider -> {base_url, calls_per_second/minute/hour/day} ([providers.<name>] tables and
    # STOCKPIPE_<PROVIDER>_BASE_URL / _CALLS_PER_SECOND / _MINUTE / _HOUR / _DAY)
    provider_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # provider -> {canonical symbol: vendor spelling} ([symbol_map.<provider>] tables)
    symbol_map: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    api_keys: Mapping[str, Secret] = field(default_factory=dict, repr=False)
    # `--shard i/n` / STOCKPIPE_SHARD: this invocation works on one hash slice of the universe
    shard: Shard | None = None
    # `--run-id` / STOCKPIPE_RUN_ID: the scheduler's name for the run (Airflow's run_id),
    # stored in pipeline_runs and on every run_events row. Under systemd, which sets
    # $INVOCATION_ID for every service process, that id is the default; else a new one.
    run_id: str | None = None

    @property
    def lake_dir(self) -> Path:
        return self.data_dir / "lake"

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "raw"

    def api_key(self, provider: str) -> Secret | None:
        return self.api_keys.get(provider)


def normalize_symbol(raw: str, where: str = "--symbol") -> str:
    """Upper-case and check one ticker.

    Raises:
        BadInputError: the text is not a well-formed ticker.
    """
    symbol = raw.strip().upper()
    if not symbol or len(symbol) > _SYMBOL_MAX or not _SYMBOL.match(symbol):
        shown = raw if len(raw) <= 40 else raw[:40] + "..."
        raise BadInputError(
            f"malformed symbol {shown!r} in {where}: use a ticker such as AAPL, BRK.B or 7203.T "
            f"(letters, digits and . - = ^, at most {_SYMBOL_MAX} characters)"
        )
    return symbol


def read_symbols_file(path: Path) -> list[str]:
    """Symbols from a ticker file: one per line, `#` comments.

    Raises:
        ConfigError: the file cannot be read.
        BadInputError: a line is not a well-formed ticker (names the line).
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"cannot read symbols file {path}: {exc.strerror}: check the path") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"symbols file {path} is not UTF-8 text (byte {exc.start}): save it as UTF-8") from None
    symbols = []
    for number, line in enumerate(text.splitlines(), start=1):
        token = line.split("#", 1)[0].strip()
        if token:
            symbols.append(normalize_symbol(token, where=f"{path} line {number}"))
    return symbols


def load_settings(
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Resolve settings from defaults, the TOML file, the environment and flags.

    Args:
        flags: command-line values; None values mean "not given". Keys are Settings
            field names plus `config`, `symbols_file`, `lists`.
        environ: the environment (default: os.environ).
        cwd: where relative paths and `./stockpipe.toml` are looked up.

    Raises:
        ConfigError: unreadable or invalid configuration.
        BadInputError: a malformed symbol.
    """
    flags = {k: v for k, v in (flags or {}).items() if v not in (None, (), [])}
    env = dict(os.environ if environ is None else environ)
    cwd = cwd or Path.cwd()
    config_file = _config_path(flags.get("config"), env, cwd)
    file_values = _read_toml(config_file) if config_file else {}
    values: dict[str, Any] = {}
    where: dict[str, str] = {}  # setting -> where its value came from, for the error naming it
    values_.check_keys(file_values, config_file, _SETTING_KEYS)
    values.update(_flatten(file_values))
    where.update({name: f"{config_file}" for name in values})
    values.update(_from_env(env))
    where.update({name: f"STOCKPIPE_{name.upper()}" for name in _from_env(env)})
    values.update({k: v for k, v in flags.items() if k in _FIELDS})
    where.update({k: "--" + k.replace("_", "-") for k in flags if k in _FIELDS})
    values["config_file"] = config_file
    values["api_keys"] = _api_keys(env)
    values["provider_options"] = values_.provider_options(values.get("provider_options", {}), env, config_file,
                                                          PROVIDERS_WITH_KEYS)
    values["health"] = {**values.get("health", {}), **_health_env(env)}
    if "data_dir" not in values and env.get("STATE_DIRECTORY"):
        # systemd's StateDirectory= may list several, separated by ':'.
        values["data_dir"] = env["STATE_DIRECTORY"].split(":")[0]
    values["data_dir"] = _resolve(values.get("data_dir", "stockpipe-data"), cwd)
    if values.get("csv_path") is not None:
        values["csv_path"] = _resolve(values["csv_path"], cwd)
    if not values.get("database_url"):
        values["database_url"] = f"sqlite:///{values['data_dir'] / 'stockpipe.db'}"
    values_.register_password(str(values["database_url"]))
    symbols, source = _universe(flags, env, file_values, config_file.parent if config_file else cwd, cwd)
    values["symbols"], values["universe_source"] = tuple(symbols), source
    listed = {k: v for k, v in (file_values.get("universe") or {}).items() if k in ("exchanges", "types", "exchange_files")}
    values["exchange_lists"] = listed | ({"exchanges": list(flags["list_exchanges"]), "flag": True} if flags.get("list_exchanges") else {})
    values["providers"] = _provider_chain(flags, env, values, file_values)
    values["provider"] = values["providers"][0]
    if values.get("shard") is not None and not isinstance(values["shard"], Shard):
        values["shard"] = parse_shard(values["shard"], "--shard" if "shard" in flags else "STOCKPIPE_SHARD")
    if values.get("run_id") is None and env.get("INVOCATION_ID"):
        values["run_id"] = env["INVOCATION_ID"]  # systemd names every service invocation (see Settings.run_id)
    if values.get("run_id") is not None:
        values["run_id"] = _run_id(str(values["run_id"]), "--run-id" if "run_id" in flags else "STOCKPIPE_RUN_ID")
    return _build(values, where)


def early_log_format(flag: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The log format to report a refused configuration in (load_settings failed, so there
    is no Settings): the flag, else STOCKPIPE_LOG_FORMAT, else text."""
    env = os.environ if environ is None else environ
    chosen = (flag or env.get("STOCKPIPE_LOG_FORMAT") or "text").strip().lower()
    return chosen if chosen in LOG_FORMATS else "text"


def _run_id(value: str, where: str) -> str:
    if not _RUN_ID.match(value):
        raise UsageError(f"{where} {value[:80]!r} is not a run id: use 1 to 64 letters, digits and _ . ~ : + @ = - "
                         "(e.g. Airflow's {{ run_id }} or systemd's $INVOCATION_ID)")
    return value


_FIELDS = {f.name: f for f in fields(Settings)}
_ENV_FIELDS = ("data_dir", "database_url", "provider", "history_days", "log_format", "stale_after_sessions", "auto_migrate",
               "batch_rows", "csv_path", "shard", "run_id", "http_timeout_connect", "http_timeout_read",
               "http_max_response_bytes", "unreachable_after", "csv_date_format", "max_consecutive_failures",
               "restate_sessions", "bulk_daily", "bulk_actions", "time_travel_days")
# A run id (String(64), part of raw archive file names): Airflow's run id alphabet plus @ and =
_RUN_ID = re.compile(r"^(?!\.{1,2}$)[A-Za-z0-9_.~:+@=-]{1,64}$")
# The keys a config file may hold at its top level or in a [section] of its own choosing.
_SETTING_KEYS = tuple(sorted(set(_FIELDS) - {"config_file", "api_keys", "symbols", "universe_source", "providers",
                                             "provider_options", "symbol_map", "exchanges", "quality", "health"}))


def _config_path(flag: Any, env: Mapping[str, str], cwd: Path) -> Path | None:
    if flag:
        return _resolve(flag, cwd)
    if env.get("STOCKPIPE_CONFIG"):
        return _resolve(env["STOCKPIPE_CONFIG"], cwd)
    default = cwd / "stockpipe.toml"
    return default if default.is_file() else None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}: check --config / STOCKPIPE_CONFIG") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML ({exc}): fix the file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {exc.start}): save it as UTF-8 "
                          "(TOML files are UTF-8)") from None


def _flatten(values: Mapping[str, Any]) -> dict[str, Any]:
    """Top-level keys and `[section] key` pairs that name a setting (sections are optional)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key == "universe":
            continue
        if key in ("exchanges", "quality", "symbol_map", "health"):  # tables that are settings themselves
            out[key] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in value.items()}
            continue
        if key == "providers":
            out["provider_options"] = {k: dict(v) for k, v in value.items()}
            continue
        if isinstance(value, dict):
            out.update({k: v for k, v in value.items() if k in _FIELDS})
        elif key in _FIELDS:
            out[key] = value
    return out


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    return {name: env[f"STOCKPIPE_{name.upper()}"] for name in _ENV_FIELDS if env.get(f"STOCKPIPE_{name.upper()}")}


def _health_env(env: Mapping[str, str]) -> dict[str, str]:
    """Every STOCKPIPE_HEALTH_<NAME> (a misspelt name too: checks.health_thresholds refuses it)."""
    prefix = "STOCKPIPE_HEALTH_"
    return {name[len(prefix):].lower(): value for name, value in env.items() if name.startswith(prefix) and value}


def _api_keys(env: Mapping[str, str]) -> dict[str, Secret]:
    keys: dict[str, Secret] = {}
    for provider in PROVIDERS_WITH_KEYS:
        prefix = f"STOCKPIPE_{provider.upper()}_API_KEY"
        if env.get(prefix):
            keys[provider] = Secret(env[prefix].strip())
        elif env.get(prefix + "_FILE"):
            path = Path(env[prefix + "_FILE"])
            try:
                keys[provider] = Secret(path.read_text(encoding="utf-8").strip())
            except OSError as exc:
                raise ConfigError(f"cannot read {prefix}_FILE ({path}): {exc.strerror}: check the path") from None
            except UnicodeDecodeError:
                raise ConfigError(f"{prefix}_FILE ({path}) is not UTF-8 text: write the key alone in it") from None
    return keys


def _provider_chain(flags, env, values, file_values) -> tuple[str, ...]:
    """The providers in failover order; a flag or the environment beat the universe's list."""
    chosen = flags.get("provider") or env.get("STOCKPIPE_PROVIDER")
    listed = (file_values.get("universe") or {}).get("providers")
    if not chosen and isinstance(listed, list) and listed:
        names = [str(n) for n in listed]
    else:
        names = str(chosen or values.get("provider", "yahoo")).split(",")
    names = [n.strip().lower() for n in names if n.strip()]
    if not names:
        raise ConfigError("no provider named: set --provider, STOCKPIPE_PROVIDER or [universe] providers")
    return tuple(dict.fromkeys(names))


def _resolve(value: Any, cwd: Path) -> Path:
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else cwd / path


def _universe(flags, env, file_values, config_dir: Path, cwd: Path) -> tuple[list[str], str]:
    if flags.get("symbols") or flags.get("symbols_file"):
        symbols = [normalize_symbol(s) for s in flags.get("symbols", ())]
        if flags.get("symbols_file"):
            symbols += read_symbols_file(_resolve(flags["symbols_file"], cwd))
        return _dedupe(symbols), "command line"
    universe = file_values.get("universe", {}) or {}
    lists = universe.get("lists", {}) or {}
    if flags.get("lists"):
        symbols = []
        for name in flags["lists"]:
            if name not in lists:
                known = ", ".join(sorted(lists)) or "none"
                raise ConfigError(f"unknown list {name!r} (--list): the config file names {known}")
            symbols += _list_symbols(lists[name], config_dir, f"[universe.lists] {name}")
        return _dedupe(symbols), "lists " + ",".join(flags["lists"])
    if env.get("STOCKPIPE_SYMBOLS") or env.get("STOCKPIPE_SYMBOLS_FILE"):
        symbols = [normalize_symbol(s, "STOCKPIPE_SYMBOLS") for s in env.get("STOCKPIPE_SYMBOLS", "").split(",") if s.strip()]
        if env.get("STOCKPIPE_SYMBOLS_FILE"):
            symbols += read_symbols_file(_resolve(env["STOCKPIPE_SYMBOLS_FILE"], cwd))
        return _dedupe(symbols), "environment"
    symbols = [normalize_symbol(s, "[universe] symbols") for s in universe.get("symbols", [])]
    for name in universe.get("files", []):
        symbols += read_symbols_file(_resolve(name, config_dir))
    for name, spec in lists.items():
        symbols += _list_symbols(spec, config_dir, f"[universe.lists] {name}")
    if symbols:
        return _dedupe(symbols), "config file"
    return list(DEFAULT_SYMBOLS), "default"


def _list_symbols(spec: Any, config_dir: Path, where: str) -> list[str]:
    """A named list is either an array of tickers or the path of a ticker file."""
    if isinstance(spec, str):
        return read_symbols_file(_resolve(spec, config_dir))
    if isinstance(spec, list):
        return [normalize_symbol(str(s), where) for s in spec]
    raise ConfigError(f"{where} must be a list of tickers or a file name: fix the config file")


def _dedupe(symbols: list[str]) -> list[str]:
    return list(dict.fromkeys(symbols))


def _build(values: dict[str, Any], where: Mapping[str, str] | None = None) -> Settings:
    where = where or {}
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        kwargs[name] = values_.coerce(name, _FIELDS[name].type, value,
                                      where.get(name) or f"the config file or STOCKPIPE_{name.upper()}")
    settings = Settings(**kwargs)
    if settings.log_format not in LOG_FORMATS:
        raise ConfigError(f"log_format {settings.log_format!r} ({where.get('log_format', 'STOCKPIPE_LOG_FORMAT')}) is "
                          f"not one of {', '.join(LOG_FORMATS)}: fix it")
    for name, (low, high) in values_.RANGES.items():
        if not low <= getattr(settings, name) <= high:
            raise ConfigError(f"{name} = {getattr(settings, name)} ({where.get(name, 'STOCKPIPE_' + name.upper())}) is "
                              f"outside {low}..{high}: fix it")
    for name in ("http_timeout_connect", "http_timeout_read"):
        if not 0 < getattr(settings, name) <= 3600:
            raise ConfigError(f"{name} = {getattr(settings, name)} ({where.get(name, 'STOCKPIPE_' + name.upper())}) "
                              "must be above 0 and at most 3600 seconds: fix it")
    return settings
