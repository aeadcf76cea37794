"""Strict reading of the values a config file or the environment gives (config.py's helper).

A setting's value is refused rather than guessed: a key the file may not hold (with the
nearest valid one), 3.7 where a whole number belongs, "maybe" where a boolean does, a rate
limit below 1. Every refusal is a ConfigError naming the key and where its value came from
(the file, with its section, or the environment variable).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from .errors import ConfigError
from .redaction import register_secret

# Sections whose keys are not settings: [universe] (and [universe.lists]), the tables that are
# settings themselves, and [providers.<name>] with the keys below.
TABLES = ("universe", "exchanges", "quality", "symbol_map", "health", "providers")
_UNIVERSE_KEYS = ("symbols", "files", "lists", "providers")
_PROVIDER_KEYS = ("base_url", "calls_per_second", "calls_per_minute", "calls_per_hour", "calls_per_day")


def check_keys(values: Mapping[str, Any], path: Path | None, setting_keys: tuple[str, ...]) -> None:
    """Refuse a key the config file may not hold: a misspelt setting is never ignored.

    Raises:
        ConfigError: names the key, its section, the file and the nearest valid key.
    """
    for key, value in values.items():
        if key == "universe" and isinstance(value, dict):
            _known(value, _UNIVERSE_KEYS, "[universe]", path)
        elif key == "providers" and isinstance(value, dict):
            for name, options in value.items():
                if not isinstance(options, dict):
                    raise ConfigError(f"[providers] {name} in {path} must be a table ([providers.{name}]): fix the file")
                _known(options, _PROVIDER_KEYS, f"[providers.{name}]", path)
        elif key in TABLES:
            if not isinstance(value, dict):
                raise ConfigError(f"{key} in {path} must be a table ([{key}]): fix the file")
        elif isinstance(value, dict):
            _known(value, setting_keys, f"[{key}]", path)
        else:
            _known({key: value}, setting_keys + TABLES, "the top level", path)


def _known(table: Mapping[str, Any], valid: tuple[str, ...], section: str, path: Path | None) -> None:
    for key in table:
        if key not in valid:
            near = difflib.get_close_matches(key, valid, n=1)
            hint = f"did you mean {near[0]}?" if near else "see the README's Configuration table"
            raise ConfigError(f"unknown setting {key!r} in {section} of {path}: {hint}")


_PROVIDER_ENV = {"BASE_URL": "base_url", "CALLS_PER_SECOND": "calls_per_second", "CALLS_PER_MINUTE": "calls_per_minute",
                 "CALLS_PER_HOUR": "calls_per_hour", "CALLS_PER_DAY": "calls_per_day"}


def provider_options(from_file: Mapping[str, Any], env: Mapping[str, str], config_file: Path | None,
                     providers: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Per-provider base URL and limits: the file's [providers.<name>], then the environment.

    Raises:
        ConfigError: a limit that is not a whole number above 0 (names the key and its file or variable).
    """
    options = {name: dict(values) for name, values in from_file.items()}
    where = {(name, key): f"[providers.{name}] of {config_file}" for name, values in options.items() for key in values}
    for provider in providers:
        for suffix, key in _PROVIDER_ENV.items():
            variable = f"STOCKPIPE_{provider.upper()}_{suffix}"
            if env.get(variable):
                options.setdefault(provider, {})[key] = env[variable]
                where[provider, key] = variable
    for provider, values in options.items():
        for key, value in values.items():
            if key.startswith("calls_per_"):
                number = integer(value, text=where[provider, key].startswith("STOCKPIPE_"))
                if number is None or number < 1:
                    raise ConfigError(f"{provider} {key} = {value!r} in {where[provider, key]} is not a whole number "
                                      "above 0: fix it (leave it out for the vendor's published limit)")
                values[key] = number
            elif key == "base_url" and not isinstance(value, str):
                raise ConfigError(f"{provider} base_url = {value!r} in {where[provider, key]} is not a URL: fix it")
    return options


def integer(value: Any, text: bool = True) -> int | None:
    """A whole number: a TOML integer (never a bool or a float) or, when `text` (the
    environment, a flag), digits ("42"); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if text and isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    return None



# Whole-number settings: the smallest and largest value each accepts.
RANGES = {"history_days": (1, 36_500), "batch_rows": (1, 100_000_000), "stale_after_sessions": (0, 10_000),
          "unreachable_after": (1, 1_000), "max_consecutive_failures": (1, 1_000_000), "restate_sessions": (0, 250),
          "time_travel_days": (0, 36_500), "http_max_response_bytes": (1, 1 << 40)}
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


def coerce(name: str, kind: str, value: Any, where: str) -> Any:
    """`value` as the type of setting `name`, strictly: a TOML integer for a whole number (3.7
    is refused, not cut to 3), a TOML boolean (or, from text, true/false/1/0/yes/no) for a
    yes/no setting.

    Raises:
        ConfigError: names the setting, where its value came from, and what it accepts.
    """
    if value is None and kind.endswith("| None"):
        return None
    if kind == "int":
        number = integer(value, text=where.startswith(("STOCKPIPE_", "--")))
        if number is None:
            raise ConfigError(f"setting {name} = {value!r} ({where}) is not a whole number: fix it")
        return number
    if kind == "float":
        try:
            if isinstance(value, bool) or not math.isfinite(number := float(value)):
                raise ValueError(value)
        except (TypeError, ValueError):
            raise ConfigError(f"setting {name} = {value!r} ({where}) is not a number: fix it") from None
        return number
    if kind == "bool":
        if isinstance(value, bool):
            return value
        text = value.strip().lower() if isinstance(value, str) and where.startswith(("STOCKPIPE_", "--")) else None
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        accepted = "true or false" if text is None else "true/false/1/0/yes/no"
        raise ConfigError(f"setting {name} = {value!r} ({where}) is not a boolean: use {accepted}")
    if kind in ("str", "Path", "str | None", "Path | None"):
        if not isinstance(value, (str, Path)):
            raise ConfigError(f"setting {name} = {value!r} ({where}) is not text: quote it")
        return value if isinstance(value, Path) else str(value)
    return value


def register_password(url: str) -> None:
    """The database URL's password is a secret: no message, log or traceback shows it."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return
    if password:
        register_secret(password)
        register_secret(unquote(password))
