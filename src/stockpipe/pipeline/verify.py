"""`verify`: check the invariants stockpipe keeps, on any installation, and name every
problem (not only the first); with `--repair`, fix what can be fixed without losing data.

Invariants, one check each (a check lists every problem it finds):

* lake files — every data file the Delta log references is there and reads back to its last
  page, agreeing with the log's statistics (rows, min/max, nulls: storage/lake_files.py);
* duplicate keys — no key twice in a lake table (at its current version) or a warehouse table;
* warehouse = lake — per dataset, the warehouse holds exactly the lake's rows at the version
  recorded in `lake_applied` (row count and an order-independent hash of key and value
  columns, per symbol, so the symbols that differ are named);
* symbol_state — never ahead of the data: a symbol's prices_daily `last_date` is not after
  the newest date the lake holds for it;
* SQLite `PRAGMA integrity_check`; migrations at head;
* litter — no temp file (`*.tmp`: a killed archive or lake write, a Delta commit) under the
  data directory, and no run left `running`.

`--repair` (all under the whole-universe lock, so no run writes meanwhile):
* a damaged lake file is moved to `<data dir>/quarantine/<table>/<stamp>/` and removed from its
  table in one Delta commit (FSCK). Its symbols' prices_daily state is set back so the next
  fetch refetches the range it held (`refetch_from`, and `last_date` lowered to what the lake
  still holds); a derived table's (indicators, adjustments, quotes_daily) transform watermark
  is reset so the next transform recomputes it from its inputs. Quotes, intraday bars and
  rejects in a damaged file cannot be asked for again: the result says how many rows went.
* a warehouse table unequal to the lake loses its load watermark: the next load reloads it.
* symbol_state ahead of the lake is lowered to the lake; temp files are deleted; runs left
  `running` are marked abandoned.
After a repair and a plain `stockpipe run`, the lake and the warehouse hold what an
uninterrupted run would have.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from .. import calendars
from ..config import Settings
from ..errors import ExitCode
from ..models import DATASETS, LOAD_ORDER, Check, CommandResult, Dataset, StageResult
from ..storage import applied, lake_files, lake_stats, lock, schema, state, warehouse
from .context import Clock, chunks, connect
from .lake_repair import PRICES, held_states, lake_newest, repair_files

LOAD = "load"


@dataclass
class _Found:
    """The checks so far and what the repair did."""

    checks: list[Check] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    damaged: set[str] = field(default_factory=set)  # tables left with damaged files: not read further

    def add(self, name: str, problems: list[str], ok_detail: str, severity: str = "error") -> None:
        """One failed check per problem (every one named), or one passing check."""
        if not problems:
            self.checks.append(Check(name, True, ok_detail))
        self.checks.extend(Check(name, False, problem, severity) for problem in problems)


def verify(settings: Settings, repair: bool = False, clock: Clock = calendars.utcnow) -> CommandResult:
    """Check every invariant (module docstring); with `repair`, repair what can be.

    Exit code 0 when every invariant holds (after the repair), else 7 (inconsistent).

    Raises:
        LockedError: a run holds the data directory (verify reads a still state).
        DatabaseUnavailableError: the warehouse cannot be reached.
    """
    started = clock()
    engine = connect(settings)
    found = _Found()
    with lock.hold(settings.data_dir, "verify", None, settings.database_url):
        _check_migrations(engine, found)
        at_head = found.checks[-1].ok
        _check_lake_files(settings, engine if at_head else None, repair, started, found)
        _check_lake_keys(settings, found)
        if at_head:
            _check_warehouse(settings, engine, repair, found)
            _check_state(settings, engine, repair, found)
            _check_runs(engine, repair, started, found)
        _check_integrity(engine, found)
        _check_litter(settings.data_dir, repair, found)
    failed = [c for c in found.checks if not c.ok and c.severity == "error"]
    code = ExitCode.INCONSISTENT if failed else ExitCode.OK
    message = (f"{len(failed)} problem(s) found: " + "; ".join(f"{c.name}: {c.detail}" for c in failed[:3])
               + ("" if repair else ": run `stockpipe verify --repair`")) if failed else "every invariant holds"
    if found.repaired:
        message += "; repaired: " + "; ".join(found.repaired)
    counts = {**found.counts, "problems": len(failed), "repairs": len(found.repaired)}
    stage = StageResult("verify", code, counts, checks=tuple(found.checks), message=message if failed else "")
    return CommandResult("verify", "", code, (stage,), started, clock(), message,
                         {"repaired": list(found.repaired)})


# ------------------------------------------------------------------ lake files


def _check_lake_files(settings: Settings, engine, repair: bool, now: dt.datetime, found: _Found) -> None:
    lake_dir = settings.lake_dir
    names = lake_stats.tables(lake_dir, DATASETS) if lake_dir.is_dir() else []
    damaged: list[lake_stats.FileProblem] = []
    verified: dict[str, list[int]] = {}
    total = 0
    for name in names:
        for file in lake_stats.files(lake_dir, name):
            total += 1
            problem = lake_stats.problem_of(file, lake_dir, {})
            if problem is None or problem.problem == "modified after its commit":
                wrong = lake_files.read_fully(file, lake_dir)
                if wrong is None and problem is not None:  # whole, though its time says otherwise
                    verified[f"{file.table}/{file.path}"] = lake_stats.fingerprint(file.full_path(lake_dir))
                    continue
                problem = None if wrong is None else lake_stats.FileProblem(file, wrong)
            if problem is not None:
                damaged.append(problem)
    lake_stats.save_verified(lake_dir, verified)
    found.counts["lake_files_read"] = total
    problems = [f"{p.file.table}: {p.file.full_path(lake_dir)}: {p.problem}" for p in damaged]
    if repair and damaged:
        problems = []
        found.repaired += repair_files(settings, engine, damaged, now)
    else:
        found.damaged = {p.file.table for p in damaged}
    found.add("lake files", problems, f"{total} file(s) in {len(names)} table(s) read to their last page")


# ------------------------------------------------------------------ keys and contents


def _check_lake_keys(settings: Settings, found: _Found) -> None:
    from ..storage.lake import Lake

    lake = Lake(settings.lake_dir)
    problems = []
    for dataset in LOAD_ORDER:
        if lake.version(dataset) is None or dataset.name in found.damaged:
            continue
        try:
            keys = lake.read(dataset, columns=list(dataset.key))
        except Exception as exc:  # noqa: BLE001 - a damaged file: named by "lake files"
            problems.append(f"lake {dataset.name}: cannot read its keys ({str(exc)[:160]})")
            continue
        doubled = _doubled(keys, dataset)
        if doubled:
            problems.append(f"lake {dataset.name}: {doubled}")
    found.add("lake keys", problems, "no key twice in any lake table")


def _doubled(keys, dataset: Dataset) -> str:
    counted = keys.group_by(list(dataset.key), use_threads=False).aggregate([([], "count_all")])
    twice = counted.filter(counted["count_all"].to_numpy() > 1) if counted.num_rows else counted
    if not twice.num_rows:
        return ""
    shown = ", ".join(str(tuple(row[k] for k in dataset.key)) for row in twice.slice(0, 3).to_pylist())
    return f"{twice.num_rows} key(s) held more than once (e.g. {shown})"


def _check_warehouse(settings: Settings, engine, repair: bool, found: _Found) -> None:
    """Duplicate keys in the warehouse, and the warehouse equal to the lake at lake_applied."""
    from ..storage.lake import Lake

    lake = Lake(settings.lake_dir)
    problems, doubled, owed, rows = [], [], [], 0
    for dataset in LOAD_ORDER:
        with engine.connect() as conn:
            twice = _warehouse_doubles(conn, dataset)
            done = _applied(conn, dataset.name)
        if twice:
            doubled.append(f"warehouse {dataset.name}: {twice} key(s) held more than once")
        if lake.version(dataset) is None or done is None or dataset.name in found.damaged:
            continue
        if done.table_id != lake.identity(dataset):
            problems.append(f"{dataset.name}: the warehouse was loaded from another lake table (id "
                            f"{done.table_id[:8]}): run `stockpipe load --full`")
            continue
        try:
            differ, compared = _compare(engine, lake, dataset, done.version)
        except FileNotFoundError as exc:
            owed.append(f"{dataset.name}: the lake at version {done.version} (what the warehouse holds) "
                            f"lacks a file ({exc}): the next load reloads it")
            continue
        rows += compared
        if differ:
            problems.append(f"{dataset.name}: the warehouse differs from the lake at version {done.version} "
                            f"for {len(differ)} symbol(s): {', '.join(differ[:10])}")
            if repair:
                with engine.begin() as conn:
                    for consumer in _load_consumers(conn, dataset.name):
                        applied.forget(conn, consumer, dataset.name)
                found.repaired.append(f"{dataset.name}: the next load reloads it from the lake")
    found.counts["warehouse_rows_compared"] = rows
    found.checks.extend(Check("warehouse = lake", False, text, "warn") for text in owed)
    found.add("warehouse keys", doubled, "no key twice in any warehouse table")
    repaired = {p for p in problems if repair and "differs" in p}
    found.add("warehouse = lake", [p for p in problems if p not in repaired],
              "every warehouse table holds the lake's rows at the version it applied")


def _warehouse_doubles(conn, dataset: Dataset) -> int:
    table = schema.metadata.tables.get(dataset.name)
    if table is None:
        return 0
    keys = [table.c[k] for k in dataset.key]
    grouped = sa.select(*keys).group_by(*keys).having(sa.func.count() > 1).subquery()
    return int(conn.execute(sa.select(sa.func.count()).select_from(grouped)).scalar() or 0)


def _load_consumers(conn, dataset: str) -> list[str]:
    table = schema.lake_applied
    rows = conn.execute(sa.select(table.c.consumer).where(table.c.dataset == dataset))
    return [c for c in rows.scalars() if c == LOAD or c.startswith(LOAD + ":")]


def _applied(conn, dataset: str) -> applied.Applied | None:
    """The version the warehouse holds: the unsharded load's, or the shards' when they agree."""
    found = {applied.read(conn, consumer, dataset) for consumer in _load_consumers(conn, dataset)}
    whole = applied.read(conn, LOAD, dataset)
    if whole is not None:
        return whole
    return found.pop() if len(found) == 1 else None


def _compare(engine, lake, dataset: Dataset, version: int) -> tuple[list[str], int]:
    """The symbols whose rows differ between the warehouse and the lake at `version`, and how
    many lake rows were compared."""
    from deltalake import DeltaTable

    for uri in DeltaTable(str(lake.path(dataset)), version=version).file_uris():
        if not Path(uri.removeprefix("file://")).exists():
            raise FileNotFoundError(uri.removeprefix("file://"))
    symbols = sorted(set(lake.read(dataset, version=version, columns=["symbol"])["symbol"].to_pylist()))
    with engine.connect() as conn:
        held = set(conn.execute(warehouse.distinct_symbols(dataset)).scalars())
    differ, compared = sorted(held - set(symbols)), 0
    columns = [*dataset.key, *dataset.value_columns]
    for chunk in chunks(symbols):
        rows = lake.read(dataset, chunk, version=version, columns=columns)
        compared += rows.num_rows
        with engine.connect() as conn:
            stored = _warehouse_rows(conn, dataset, chunk, columns)
        mine, theirs = _digests(rows), _digests(stored)
        differ += [s for s in chunk if mine.get(s) != theirs.get(s)]
    return sorted(differ), compared


def _warehouse_rows(conn, dataset: Dataset, symbols, columns: list[str]):
    import pyarrow as pa

    from ..models import arrow_schema

    table = schema.metadata.tables[dataset.name]
    result = conn.execute(sa.select(*(table.c[c] for c in columns)).where(table.c.symbol.in_(list(symbols))))
    fetched = result.fetchall()
    types = arrow_schema(dataset)
    return pa.table({c: pa.array([row[i] for row in fetched], type=types.field(c).type) for i, c in enumerate(columns)})


def _digests(rows) -> dict[str, tuple[int, int]]:
    """symbol -> (rows, sum of the rows' hashes): equal for the same rows in any order."""
    import numpy as np
    import pandas as pd

    if not rows.num_rows:
        return {}
    frame = rows.to_pandas(timestamp_as_object=False, date_as_object=False)
    for name in frame.columns:
        if frame[name].dtype == object:
            frame[name] = frame[name].astype(str).where(frame[name].notna(), None)
    hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy(dtype=np.uint64)
    grouped = pd.DataFrame({"symbol": frame["symbol"], "h": hashes}).groupby("symbol")["h"]
    with np.errstate(over="ignore"):
        sums = grouped.agg(lambda h: int(np.sum(h.to_numpy(), dtype=np.uint64)))
    return {s: (int(n), int(h)) for s, n, h in zip(sums.index, grouped.size().reindex(sums.index), sums)}


# ------------------------------------------------------------------ state, runs, database, litter


def _check_state(settings: Settings, engine, repair: bool, found: _Found) -> None:
    """symbol_state's prices_daily last_date never after the newest date the lake holds."""
    if PRICES.name in found.damaged:
        found.add("symbol_state", [], "not compared: prices_daily has damaged files (see lake files)", "warn")
        return
    held = held_states(engine)
    newest = lake_newest(settings) if held else {}
    ahead = {s: (last, newest.get(s)) for s, (_, last) in held.items()
             if last is not None and (newest.get(s) is None or last > newest[s])}
    problems = [f"{s}: last_date {last} but the lake's newest bar is {kept or 'none'}"
                for s, (last, kept) in sorted(ahead.items())]
    if repair and ahead:
        with engine.begin() as conn:
            state.save_states(conn, [{"symbol": s, "dataset": PRICES.name, "last_date": kept}
                                     for s, (_, kept) in ahead.items()])
        found.repaired.append(f"symbol_state of {len(ahead)} symbol(s) set back to the lake's newest bar")
        problems = []
    found.add("symbol_state", problems, f"{len(held)} symbol(s) never ahead of the lake")


def _check_runs(engine, repair: bool, now: dt.datetime, found: _Found) -> None:
    """Runs still `running` while verify holds the lock: their process is gone."""
    runs = schema.pipeline_runs
    with engine.connect() as conn:
        left = conn.execute(sa.select(runs.c.run_id, runs.c.command).where(runs.c.status == "running")).all()
    problems = [f"run {row.run_id} ({row.command}) is still marked running" for row in left]
    if repair and left:
        with engine.begin() as conn:
            state.abandon_running(conn, None, now)
        found.repaired.append(f"{len(left)} run(s) left running marked abandoned")
        problems = []
    found.add("runs", problems, "no run left `running`")


def _check_migrations(engine, found: _Found) -> None:
    current, head = warehouse.current_revision(engine), warehouse.head_revision()
    problem = [] if current == head else [(f"the database is at {current or 'no migration'}, the code's newest "
                                           f"is {head}: run `stockpipe db upgrade`")]
    found.add("migrations", problem, f"at {head}")


def _check_integrity(engine, found: _Found) -> None:
    if engine.dialect.name != "sqlite":
        found.add("database integrity", [], f"{engine.dialect.name}: the server checks its own pages")
        return
    with engine.connect() as conn:
        answer = [row[0] for row in conn.exec_driver_sql("PRAGMA integrity_check")]
    found.add("database integrity", [] if answer == ["ok"] else answer[:20], "PRAGMA integrity_check: ok")


def _check_litter(data_dir: Path, repair: bool, found: _Found) -> None:
    """Temp files a killed write left (archive `.x.gz.tmp`, lake `.data.parquet.<pid>.tmp`,
    Delta `_commit_*.json.tmp`) and stockpipe 0.1's lake lock files."""
    litter = sorted({*data_dir.rglob("*.tmp"), *data_dir.glob("lake/*/.write.lock")}) if data_dir.is_dir() else []
    litter = [p for p in litter if p.is_file() and lake_files.QUARANTINE not in p.relative_to(data_dir).parts]
    size = sum(p.stat().st_size for p in litter)
    found.counts["litter_files"] = len(litter)
    if repair and litter:
        for path in litter:
            path.unlink(missing_ok=True)
        found.repaired.append(f"{len(litter)} temp file(s) deleted ({size} bytes)")
        litter = []
    found.add("litter", [f"{p}: left by a write that did not finish" for p in litter],
              f"no temp file under {data_dir}")
