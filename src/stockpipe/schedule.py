"""Scheduling files: systemd units and a crontab, rendered for one installation.

`stockpipe schedule systemd` and `stockpipe schedule cron` print what this module renders
(render.files prints or writes them: this module only returns text).
The files in the repository's `systemd/` directory are the default rendering
(`DEFAULT_PREFIX`, `DEFAULT_USER`); a test asserts they are equal, so they never drift.

Decisions, written down here because the units are where they show:

- Every service is `Type=oneshot` with `TimeoutStartSec=` (a oneshot has no start timeout
  by default), `StateDirectory=stockpipe` (stockpipe reads `$STATE_DIRECTORY` as its data
  directory) and the hardening profile below, which keeps the network and scores <= 2.0 in
  `systemd-analyze security --offline=true`.
- `User=` plus `DynamicUser=yes`: without a `stockpipe` account systemd allocates one (the
  same for every unit, so they share the state directory); create a static account when
  PostgreSQL peer authentication must match a fixed role and systemd uses it instead.
- Exit codes: 99 (nothing to do: a holiday) is success everywhere. 3 (partial) is success
  for the hourly quotes only, where the next run is an hour away; for the daily run and the
  shards a partial night stays a failure (visible in `systemctl --failed`, `OnFailure=`),
  although the next run retries the remainder.
- Secrets never sit in a unit or the environment file: `credentials` renders, per name,
  `LoadCredential=` from `/etc/stockpipe/credentials/<name>` plus the `..._FILE` variable
  pointing at `%d/<name>` (`$CREDENTIALS_DIRECTORY`). Only the named ones are rendered, because
  stockpipe refuses to start when a `STOCKPIPE_<PROVIDER>_API_KEY_FILE` cannot be read.
- Shards: `stockpipe@3-of-8.service` runs `stockpipe run --all --shard 3/8`; systemd has no
  specifier that turns `3-of-8` into `3/8`, so a one-line `/bin/sh -c` does it and `exec`s.
- cron: Debian's cron has no `CRON_TZ` and fires in the host's zone (UTC assumed). 22:30 in
  New York is 02:30 UTC (EDT) or 03:30 UTC (EST) the next day, so both fire Tue-Sat and a
  guard lets through only the one where it is 22h in New York; `flock -n` skips a run while
  the previous one still holds the lock (a file of its own: stockpipe locks `.stockpipe.lock`).
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from .config import PROVIDERS_WITH_KEYS
from .errors import UsageError

DEFAULT_PREFIX = "/opt/stockpipe/venv"
DEFAULT_USER = "stockpipe"
ENV_FILE = "/etc/stockpipe/stockpipe.env"
CREDENTIALS_DIR = "/etc/stockpipe/credentials"
CRON_DATA_DIR = "/var/lib/stockpipe"
DAILY_CALENDAR = "Mon..Fri 22:30 America/New_York"
QUOTES_CALENDAR = "Mon..Fri 10..16:00 America/New_York"
NEW_YORK = "America/New_York"
# credential name -> (file name under CREDENTIALS_DIR and %d, variable pointing at it)
CREDENTIALS = {
    **{p: (f"{p}_api_key", f"STOCKPIPE_{p.upper()}_API_KEY_FILE") for p in PROVIDERS_WITH_KEYS if p != "yahoo"},
    "pgpass": ("pgpass", "PGPASSFILE"),
}

_HARDENING = """\
# Hardening: `systemd-analyze security --offline=true` exposure <= 2.0, network allowed.
DynamicUser=yes
StateDirectory=stockpipe
StateDirectoryMode=0700
UMask=0077
NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
DevicePolicy=closed
PrivateUsers=yes
PrivateIPC=yes
ProtectHostname=yes
ProtectClock=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectProc=invisible
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
RemoveIPC=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
Nice=10
IOSchedulingClass=best-effort
IOSchedulingPriority=7
"""

_SECRETS = """\
# Secrets: never here or in the environment file. Render with
# `stockpipe schedule systemd --credential eodhd` (repeatable; pgpass for PostgreSQL) to get
#   LoadCredential=eodhd_api_key:/etc/stockpipe/credentials/eodhd_api_key
#   Environment=STOCKPIPE_EODHD_API_KEY_FILE=%d/eodhd_api_key
"""

_SERVICE = """\
# Rendered by `stockpipe schedule systemd`; edit with `systemctl edit @@name@@`.
[Unit]
Description=@@description@@
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
User=@@user@@
Group=@@user@@
EnvironmentFile=-@@env_file@@
@@credentials@@ExecStart=@@exec_start@@
# @@exit_note@@
SuccessExitStatus=@@success@@
TimeoutStartSec=@@timeout@@
MemoryMax=@@memory@@
SyslogIdentifier=@@ident@@
@@hardening@@"""

_TIMER = """\
# Rendered by `stockpipe schedule systemd`; enable with `systemctl enable --now @@enable@@`.
[Unit]
Description=@@description@@

[Timer]
OnCalendar=@@calendar@@
Persistent=@@persistent@@
RandomizedDelaySec=@@delay@@
AccuracySec=1min

[Install]
WantedBy=timers.target
"""

_ENV_EXAMPLE = """\
# /etc/stockpipe/stockpipe.env: the settings the stockpipe units read (EnvironmentFile=).
# Copy to /etc/stockpipe/stockpipe.env (root:root 0644) and uncomment what you change.
# No secrets here: API keys and database passwords go to /etc/stockpipe/credentials/<name>
# (root:root 0600) and reach the service through LoadCredential= (see
# `stockpipe schedule systemd --credential NAME`), which sets
# STOCKPIPE_<PROVIDER>_API_KEY_FILE=%d/<provider>_api_key or PGPASSFILE=%d/pgpass in the unit.

# Data source: yahoo (default, no key), alphavantage, eodhd, finnhub, polygon, tiingo, stooq, demo, csv.
#STOCKPIPE_PROVIDER=yahoo
# Warehouse; default sqlite:///$STATE_DIRECTORY/stockpipe.db. No password in the URL: use pgpass.
#STOCKPIPE_DATABASE_URL=postgresql+psycopg2://stockpipe@db.example.internal/stockpipe
# Data directory; default $STATE_DIRECTORY (/var/lib/stockpipe). Other paths are read-only
# under ProtectSystem=strict: add ReadWritePaths= with `systemctl edit` when you move it.
#STOCKPIPE_DATA_DIR=/var/lib/stockpipe
# Config file (sections, [universe], [quality], [exchanges], [symbol_map.*], [providers.*]).
#STOCKPIPE_CONFIG=/etc/stockpipe/stockpipe.toml
# Universe (--all): comma-separated symbols and/or a ticker file; default the config's [universe].
#STOCKPIPE_SYMBOLS=IBM,AAPL,GOOGL,MSFT
#STOCKPIPE_SYMBOLS_FILE=/etc/stockpipe/tickers.txt
# CSV file or folder for STOCKPIPE_PROVIDER=csv.
#STOCKPIPE_CSV_PATH=/srv/stockpipe/csv
# Log lines on stderr (the journal): text or json.
STOCKPIPE_LOG_FORMAT=json
#STOCKPIPE_HISTORY_DAYS=730
#STOCKPIPE_STALE_AFTER_SESSIONS=1
# health-check thresholds ([health] in the config file; see the README's Monitoring section).
#STOCKPIPE_HEALTH_LATE_AFTER_HOURS=12
#STOCKPIPE_HEALTH_DISK_FREE_WARN_GB=2
#STOCKPIPE_HEALTH_QUOTA_LEFT_WARN=0.1
#STOCKPIPE_AUTO_MIGRATE=true
#STOCKPIPE_BATCH_ROWS=500000
# Per provider (<PROVIDER> = YAHOO, ALPHAVANTAGE, EODHD, FINNHUB, POLYGON, TIINGO, STOOQ):
# base URL and the limits of a paid plan.
#STOCKPIPE_EODHD_BASE_URL=https://eodhd.com/api
#STOCKPIPE_EODHD_CALLS_PER_SECOND=
#STOCKPIPE_EODHD_CALLS_PER_MINUTE=1000
#STOCKPIPE_EODHD_CALLS_PER_HOUR=
#STOCKPIPE_EODHD_CALLS_PER_DAY=100000
"""

_CRON = """\
# stockpipe daily run, rendered by `stockpipe schedule cron` for a host whose cron runs in UTC.
# Install as the stockpipe user's crontab (`crontab FILE`). Debian's cron has no CRON_TZ:
# 22:30 in New York is 02:30 UTC (EDT) or 03:30 UTC (EST) the next day, Tue-Sat. Both lines
# fire; the guard lets through only the one where it is 22h in New York, and flock -n skips a
# run while the previous one still runs. stdout (the summary) is dropped, stderr is mailed.
SHELL=/bin/sh
STOCKPIPE_DATA_DIR=@@data_dir@@
30 2 * * 2-6 @@command@@
30 3 * * 2-6 @@command@@
"""

CRON_GUARD = '[ "$(TZ=America/New_York date +\\%H)" = 22 ]'

_SAFE_PATH = re.compile(r"^/[A-Za-z0-9._+/-]*$")
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


def _fill(template: str, **values: str) -> str:
    def one(match: re.Match) -> str:
        return values[match.group(1)]

    return re.sub(r"@@(\w+)@@", one, template)


def _check(prefix: str, user: str, credentials: tuple[str, ...] = ()) -> str:
    if not _SAFE_PATH.match(prefix) or ".." in PurePosixPath(prefix).parts:
        raise UsageError(f"--prefix {prefix!r} must be an absolute path of letters, digits and ._+-/ "
                         "(the virtualenv stockpipe is installed in)")
    if not _USER.match(user):
        raise UsageError(f"--user {user!r} is not a valid user name (lower case letters, digits, _ and -)")
    unknown = [c for c in credentials if c not in CREDENTIALS]
    if unknown:
        raise UsageError(f"unknown --credential {', '.join(unknown)}: one of {', '.join(CREDENTIALS)}")
    return str(PurePosixPath(prefix) / "bin" / "stockpipe")


def _credential_lines(credentials: tuple[str, ...]) -> str:
    if not credentials:
        return _SECRETS
    lines = []
    for name in dict.fromkeys(credentials):
        file, variable = CREDENTIALS[name]
        lines += [f"LoadCredential={file}:{CREDENTIALS_DIR}/{file}", f"Environment={variable}=%d/{file}"]
    return "\n".join(lines) + "\n"


def _service(name: str, description: str, exec_start: str, user: str, credentials: tuple[str, ...],
             success: str, exit_note: str, timeout: str, memory: str, ident: str) -> str:
    return _fill(_SERVICE, name=name, description=description, user=user, env_file=ENV_FILE,
                 credentials=_credential_lines(credentials), exec_start=exec_start, success=success,
                 exit_note=exit_note, timeout=timeout, memory=memory, ident=ident, hardening=_HARDENING)


def systemd_units(prefix: str = DEFAULT_PREFIX, user: str = DEFAULT_USER,
                  credentials: tuple[str, ...] = ()) -> dict[str, str]:
    """File name -> text of every unit (and the environment file example), in install order."""
    stockpipe = _check(prefix, user, credentials)
    credentials = tuple(credentials)
    daily_note = "99 nothing to do (a holiday) is success; 3 partial stays a failure: the next run retries the rest."
    return {
        "stockpipe.service": _service(
            "stockpipe.service", "stockpipe daily ETL: fetch, transform, load, quality-check",
            f"{stockpipe} run --all", user, credentials, "99", daily_note, "2h", "4G", "stockpipe"),
        "stockpipe.timer": _fill(
            _TIMER, enable="stockpipe.timer", description="stockpipe daily run after the US close",
            calendar=DAILY_CALENDAR, persistent="true", delay="10min"),
        "stockpipe-quotes.service": _service(
            "stockpipe-quotes.service", "stockpipe quotes during the US session",
            f"{stockpipe} fetch --quotes --all", user, credentials, "3 99",
            "99 nothing to do and 3 partial are success: the next run is an hour away.", "45min", "1G",
            "stockpipe-quotes"),
        "stockpipe-quotes.timer": _fill(
            _TIMER, enable="stockpipe-quotes.timer", description="stockpipe quotes every hour of the US session",
            calendar=QUOTES_CALENDAR, persistent="false", delay="2min"),
        "stockpipe@.service": _service(
            "stockpipe@3-of-8.service", "stockpipe daily ETL, shard %i",
            f"/bin/sh -c 'exec \"$$0\" run --all --shard \"$${{1%%%%-of-*}}/$${{1##*-of-}}\"' {stockpipe} %i",
            user, credentials, "99", daily_note, "2h", "4G", "stockpipe-%i"),
        "stockpipe@.timer": _fill(
            _TIMER, enable="stockpipe@1-of-8.timer ... stockpipe@8-of-8.timer",
            description="stockpipe daily run after the US close, shard %i",
            calendar=DAILY_CALENDAR, persistent="true", delay="10min"),
        "stockpipe.env.example": _ENV_EXAMPLE,
    }


def crontab(prefix: str = DEFAULT_PREFIX, data_dir: str = CRON_DATA_DIR) -> str:
    """The crontab of the daily run for a host whose cron runs in UTC (install it as the user's crontab)."""
    stockpipe = _check(prefix, DEFAULT_USER)
    if not _SAFE_PATH.match(data_dir):
        raise UsageError(f"--data-dir {data_dir!r} must be an absolute path of letters, digits and ._+-/")
    command = f"{CRON_GUARD} && flock -n {data_dir}/.cron.lock {stockpipe} run --all >/dev/null"
    return _fill(_CRON, data_dir=data_dir, command=command)

