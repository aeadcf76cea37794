"""The universe from the exchanges' symbol lists: `[universe] exchanges = ["US", "LSE"]`
(or `--exchange US`), read into the warehouse's `assets` table.

Each exchange's list comes from EODHD (`/api/exchange-symbol-list/{EX}`, one call) or from
a local file standing in for it (`[universe.exchange_files] LSE = "lists/lse.csv"`: EODHD's
JSON or CSV shape, Code,Name,Country,Exchange,Currency,Type,Isin). A code becomes the
canonical symbol (BRK-B on US is BRK.B, VOD on LSE is VOD.L); one that is not a well-formed
ticker is left out and counted (`malformed`).

Decisions (the issue left them open):
    * `stockpipe universe refresh` reads every configured list now; `fetch` and `run` read
      a list at their start only when it was not read yet in the current UTC day (EODHD's
      quota day), so a nightly costs one call per exchange and a second run that day none.
      A list that cannot be read at the start of a fetch is a WARNING line, and the fetch
      goes on with the assets already held; with none held for that exchange, it stops
      (the error's exit code).
    * A list that comes back empty never delists an exchange: it is refused (exit 3 for
      `universe refresh`), since a vendor hiccup must not stop a whole exchange's fetches.
    * New symbols have no symbol_state, so planning backfills them (`history_days`);
      delisted ones keep their row, their data and their state, and are no longer fetched.
    * `types = ["Common Stock", "ETF"]` filters what is fetched, not what is stored, so
      changing the filter needs no new list. The universe is the listed symbols of the
      configured exchanges plus the config's own `[universe]` symbols; with `--exchange`,
      only those exchanges' listed symbols.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from .. import calendars
from ..config import Settings, normalize_symbol
from ..errors import BadInputError, ConfigError, ExitCode, StockpipeError
from ..models import CommandResult, StageResult
from ..storage import archive, assets
from .context import Clock, Context, Progress, finish, no_progress, recorded

log = logging.getLogger("stockpipe")


@dataclass(frozen=True)
class Lists:
    """What the settings say of the exchanges' lists."""

    exchanges: tuple[str, ...]
    types: tuple[str, ...]
    files: dict[str, Path]
    only: bool  # --exchange: these exchanges' listed symbols are the whole universe


def lists_of(settings: Settings) -> Lists:
    """The exchanges' lists the settings name (none: `exchanges` empty).

    Raises:
        ConfigError: `exchanges`, `types` or `exchange_files` is not what the README says.
    """
    raw = settings.exchange_lists
    exchanges, types, files = raw.get("exchanges", []), raw.get("types", []), raw.get("exchange_files", {})
    if not isinstance(exchanges, list) or not all(isinstance(e, str) and e.strip() for e in exchanges):
        raise ConfigError("[universe] exchanges must be a list of EODHD exchange codes, e.g. [\"US\", \"LSE\"]")
    if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
        raise ConfigError("[universe] types must be a list of listing types, e.g. [\"Common Stock\", \"ETF\"]")
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise ConfigError("[universe.exchange_files] maps an exchange code to a file: LSE = \"lists/lse.csv\"")
    base = settings.config_file.parent if settings.config_file else Path.cwd()
    codes = tuple(dict.fromkeys(e.strip().upper() for e in exchanges))
    from ..providers import eodhd_lists

    for code in codes:
        try:
            eodhd_lists.symbol_list_request(code)
        except ValueError:
            raise ConfigError(f"[universe] exchanges: {code!r} is not an EODHD exchange code (US, LSE, XETRA, TO, "
                              "...): fix the config file or --exchange") from None
    paths = {k.strip().upper(): (Path(v).expanduser() if Path(v).expanduser().is_absolute() else base / v)
             for k, v in files.items()}
    return Lists(codes, tuple(types), paths, bool(raw.get("flag")))


# ------------------------------------------------------------------ universe refresh


def refresh(settings: Settings, progress: Progress = no_progress, clock: Clock = calendars.utcnow) -> CommandResult:
    """`stockpipe universe refresh`: read every configured exchange's list into `assets`.

    Raises:
        UsageError-like ConfigError: no exchange configured.
    """
    lists = lists_of(settings)
    if not lists.exchanges:
        raise ConfigError("no exchange to read: set [universe] exchanges = [\"US\", ...] or pass --exchange US")
    args = {"exchanges": list(lists.exchanges), "types": list(lists.types)}
    with recorded(settings, "universe-refresh", args, progress, clock) as ctx:
        stage, _ = refresh_stage(ctx, lists, lists.exchanges)
        return finish(ctx, "universe refresh", (stage,), stage.exit_code)


def refresh_stage(ctx: Context, lists: Lists, exchanges: Sequence[str]) -> tuple[StageResult, list[StockpipeError]]:
    """Read `exchanges`' lists and apply each to `assets` in its own transaction; the
    result, and the errors of the lists that could not be read (nothing changed for those)."""
    counts = {"exchanges": 0, "listed": 0, "new": 0, "relisted": 0, "delisted": 0, "malformed": 0, "api_calls": 0}
    errors: list[StockpipeError] = []
    for exchange in exchanges:
        try:
            listed, malformed, calls = _read(ctx, lists, exchange)
        except StockpipeError as exc:
            counts["api_calls"] += exc.api_calls
            errors.append(exc)
            log.warning("%s", exc)
            continue
        counts["api_calls"] += calls
        with ctx.engine.begin() as conn:
            applied = assets.apply(conn, exchange, listed, ctx.now)
        log.info("%s list: %d symbols, %d new, %d delisted", exchange, applied["listed"], applied["new"],
                 applied["delisted"])
        counts = {k: v + applied.get(k, 0) for k, v in counts.items()} | {
            "exchanges": counts["exchanges"] + 1, "malformed": counts["malformed"] + malformed}
    if not errors:
        return StageResult("universe", ExitCode.OK, counts), errors
    code = errors[0].exit_code if len(errors) == len(exchanges) else ExitCode.PARTIAL
    return StageResult("universe", code, counts, message="; ".join(str(e) for e in errors)), errors


def _read(ctx: Context, lists: Lists, exchange: str) -> tuple[list[dict[str, Any]], int, int]:
    """(the listed symbols as assets rows, the codes left out as malformed, calls spent).

    Raises:
        BadInputError: the list is empty or cannot be read (nothing is changed).
        StockpipeError: the vendor refused (a key, the quota) or could not be reached.
    """
    from ..providers import eodhd_lists

    calls = 0
    if exchange in lists.files:
        path = lists.files[exchange]
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read the {exchange} list {path}: {exc.strerror}: fix "
                              "[universe.exchange_files]") from None
        parsed, where = eodhd_lists.parse_symbol_file(data, exchange), str(path)
    else:
        payload = _ask(ctx, exchange)
        calls = payload.api_calls
        from ..providers.wire import Response

        parsed = eodhd_lists.parse_symbol_list(Response(payload.status, payload.headers, payload.content), exchange)
        where = f"eodhd exchange-symbol-list/{exchange}"
    if not parsed.symbols:
        error = BadInputError(f"{where} listed no symbol ({parsed.message or parsed.outcome.name}): nothing "
                              "marked delisted; check the file or try again later")
        error.api_calls = calls
        raise error
    rows, malformed = [], 0
    for row in parsed.symbols:
        try:
            rows.append({**row, "symbol": normalize_symbol(row["symbol"], where), "venue": row.get("exchange")})
        except BadInputError:
            malformed += 1
    return rows, malformed, calls


def _ask(ctx: Context, exchange: str):
    """EODHD's list of `exchange`, archived as received (raw/eodhd/<day>/<EX>.symbols.<run>.json.gz)."""
    from ..providers import eodhd_lists, registry
    from ..storage import ledger

    provider = registry.create("eodhd", ctx.settings, ctx.clock, ledger=ledger.opener(ctx.engine))
    try:
        request = eodhd_lists.symbol_list_request(exchange)
        payload = provider.fetch_exchange(exchange, request, lambda r: eodhd_lists.parse_symbol_list(r, exchange))
    finally:
        provider.close()
    path = archive.archive_path(ctx.settings.raw_dir, "eodhd", ctx.now.date(), exchange, ctx.run_id,
                                payload.media_type, "symbols")
    archive.write(path, payload.content)
    return payload


# ------------------------------------------------------------------ fetch's universe


def symbols(ctx: Context) -> list[str]:
    """The symbols `fetch` works on: the settings' own, or with exchanges configured their
    listed symbols (each list read first when not read yet today), in this shard.

    Raises:
        StockpipeError: an exchange's list cannot be read and `assets` holds none of it.
    """
    settings = ctx.settings
    lists = lists_of(settings)
    if not lists.exchanges or (settings.universe_source not in ("config file", "default") and not lists.only):
        return ctx.mine(settings.symbols)
    today = ctx.now.astimezone(dt.timezone.utc).date()
    with ctx.engine.connect() as conn:
        stale = [e for e in lists.exchanges if (assets.last_read(conn, e) or dt.datetime.min.replace(
            tzinfo=dt.timezone.utc)).date() < today]
    if stale:
        stage, errors = refresh_stage(ctx, lists, stale)
        if errors:
            with ctx.engine.connect() as conn:
                if any(assets.last_read(conn, e) is None for e in stale):
                    raise errors[0]
            log.warning("fetch goes on with the symbols already listed: %s", stage.message)
    with ctx.engine.connect() as conn:
        listed = assets.active(conn, lists.exchanges, lists.types)
    own = list(settings.symbols) if settings.universe_source == "config file" and not lists.only else []
    return ctx.mine(list(dict.fromkeys(own + listed)))
