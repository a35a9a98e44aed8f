"""Data retention (``python -m store retention``): old rows purged in small batches.

What is kept, and for how long (days, from the environment, see :class:`RetentionSettings`):

- raw readings (``readings``, ``power_readings``, by device time ``ts``): ``RETENTION_RAW_DAYS``
  (730, the food-safety record minimum);
- the rollups (``readings_minute``/``_hour``, ``power_readings_minute``/``_hour``, by ``bucket``):
  ``RETENTION_ROLLUP_DAYS`` (3650). A bucket goes only once it *ends* before the cutoff, so nothing
  younger than the retention period is ever summed away. Purging raw rows never touches the
  rollups: they are what stays of the readings once these are gone;
- ``rejected_messages`` (by ``received_at``): ``RETENTION_REJECTED_DAYS`` (90).

Nothing else is ever purged (alarms, the audit trail, thresholds, users, devices ...).

How, so that ingest is never held up: per source (automate or meter) — the leading columns of the
unique index (unit_id, automate_no, ts) / (meter_id, ts) and of the rollups' primary keys — select
the keys of at most ``RETENTION_BATCH`` rows older than the cutoff through that index, delete exactly
those by primary key, commit, pause briefly, repeat. Every batch is its own short transaction that
locks only the rows it deletes (never a range the bridge inserts into); a crash or SIGKILL in the
middle leaves whole batches deleted and the rest in place, and the next run carries on. No
``DELETE ... LIMIT`` (SQLite lacks it) and no scan of a whole table: the sources themselves are
found by a loose index scan (the next key after the last one, one index probe each).
"""

from __future__ import annotations

import argparse
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Column, Table, delete, func, inspect, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from plantmodel.envconf import env_int
from plantmodel.errors import PlantModelError, ValidationError
from store import migrate
from store import models as orm
from store.db import (
    SchemaOutdated,
    _sleep_unless,
    create_db_engine,
    database_url_from_env,
    describe,
)
from store.periodic import run_every

log = logging.getLogger(__name__)

DEFAULT_RAW_DAYS = 730  # the food-safety record minimum
DEFAULT_ROLLUP_DAYS = 3650
DEFAULT_REJECTED_DAYS = 90
DEFAULT_BATCH = 1000
# Upper bound of any period: now - days must stay a valid date (and 100 years is "forever" here).
MAX_DAYS = 36500
DEFAULT_PAUSE = 0.05  # s between batches: lets the bridge's transactions in (SQLite has one writer)

ENV_HELP = ("Configuration comes from the environment: DATABASE_URL (sqlite:///var/plant.db), "
            f"RETENTION_RAW_DAYS (readings and power_readings, {DEFAULT_RAW_DAYS}; the bridge reads it too and "
            "rejects readings older than that), "
            f"RETENTION_ROLLUP_DAYS (the minute and hour rollups, {DEFAULT_ROLLUP_DAYS}; >= RETENTION_RAW_DAYS), "
            f"RETENTION_REJECTED_DAYS (rejected_messages, {DEFAULT_REJECTED_DAYS}), "
            f"RETENTION_BATCH (rows deleted per transaction, {DEFAULT_BATCH}). Each is a whole number >= 1.")


# -- settings ---------------------------------------------------------------------------------------------

def _days(name: str, value: int) -> int:
    if value > MAX_DAYS:
        raise ValidationError(f"{name}={value} must be <= {MAX_DAYS} (days)")
    return value


def raw_days_from_env(env: Mapping[str, str]) -> int:
    """``RETENTION_RAW_DAYS`` (730): how long raw readings are kept. The one parser of it, shared by
    the retention job and the bridge (which rejects readings older than that)."""
    return _days("RETENTION_RAW_DAYS", env_int(env, "RETENTION_RAW_DAYS", DEFAULT_RAW_DAYS, minimum=1))


@dataclass(frozen=True, slots=True)
class RetentionSettings:
    raw_days: int = DEFAULT_RAW_DAYS  # readings, power_readings
    rollup_days: int = DEFAULT_ROLLUP_DAYS  # the four rollup tables
    rejected_days: int = DEFAULT_REJECTED_DAYS  # rejected_messages
    batch: int = DEFAULT_BATCH  # rows per delete transaction

    def __post_init__(self) -> None:
        for name, value in (("RETENTION_RAW_DAYS", self.raw_days), ("RETENTION_ROLLUP_DAYS", self.rollup_days),
                            ("RETENTION_REJECTED_DAYS", self.rejected_days), ("RETENTION_BATCH", self.batch)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValidationError(f"{name}={value!r} must be a whole number >= 1")
        if self.raw_days > self.rollup_days:
            # Raw rows outliving their rollups would leave charts of long ranges with holes.
            raise ValidationError(f"RETENTION_RAW_DAYS={self.raw_days} must be <= RETENTION_ROLLUP_DAYS="
                                  f"{self.rollup_days}: the rollups are what is kept of the readings once "
                                  "these are purged")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RetentionSettings:
        """``RETENTION_RAW_DAYS`` (730), ``RETENTION_ROLLUP_DAYS`` (3650), ``RETENTION_REJECTED_DAYS``
        (90), ``RETENTION_BATCH`` (1000); each a whole number >= 1, raw <= rollup."""
        return cls(
            raw_days=raw_days_from_env(env),
            rollup_days=_days("RETENTION_ROLLUP_DAYS",
                              env_int(env, "RETENTION_ROLLUP_DAYS", DEFAULT_ROLLUP_DAYS, minimum=1)),
            rejected_days=_days("RETENTION_REJECTED_DAYS",
                                env_int(env, "RETENTION_REJECTED_DAYS", DEFAULT_REJECTED_DAYS, minimum=1)),
            batch=env_int(env, "RETENTION_BATCH", DEFAULT_BATCH, minimum=1),
        )


# -- what is purged ---------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Target:
    """One purged table: ``keys`` name a source (the leading columns of the index used, none for
    rejected_messages), ``time`` the column compared with the cutoff (the next column of that
    index), ``pk`` what a batch deletes by (the primary key)."""

    table: Table
    keys: tuple[str, ...]
    time: str
    pk: tuple[str, ...]
    kind: str  # "raw" | "rollup" | "rejected": which period applies
    width: int = 0  # a rollup's bucket width (s)

    @property
    def name(self) -> str:
        return self.table.name

    def cutoff(self, settings: RetentionSettings, now: datetime) -> datetime:
        days = {"raw": settings.raw_days, "rollup": settings.rollup_days, "rejected": settings.rejected_days}
        return now - timedelta(days=days[self.kind])

    def bound(self, cutoff: datetime) -> Any:
        """The value rows are purged *below*: a datetime, or for a rollup the first bucket start
        kept (a bucket is purged only once its whole width lies before the cutoff)."""
        if self.kind != "rollup":
            return cutoff
        return int(cutoff.timestamp()) - self.width + 1  # bucket + width <= cutoff  <=>  bucket < this

    def as_time(self, value: Any) -> datetime:
        return datetime.fromtimestamp(value, UTC) if self.kind == "rollup" else value


def targets() -> list[Target]:
    """Every purged table, raw first (then rollups, then rejected messages)."""
    out = [Target(cast(Table, orm.Reading.__table__), ("unit_id", "automate_no"), "ts", ("id",), "raw"),
           Target(cast(Table, orm.PowerReading.__table__), ("meter_id",), "ts", ("id",), "raw")]
    for rollups, keys in ((orm.READING_ROLLUPS, ("unit_id", "automate_no")), (orm.POWER_ROLLUPS, ("meter_id",))):
        for level, model in rollups.items():
            table = cast(Table, model.__table__)
            out.append(Target(table, keys, "bucket", (*keys, "bucket"), "rollup", orm.ROLLUP_LEVELS[level]))
    out.append(Target(cast(Table, orm.RejectedMessage.__table__), (), "received_at", ("id",), "rejected"))
    return out


def _col(t: Target, name: str) -> Column[Any]:
    return t.table.c[name]


def _sources(conn: Connection, t: Target) -> Iterator[tuple[Any, ...]]:
    """The distinct sources of ``t`` (values of its key columns), by a loose index scan: for each
    key column in turn, the next value after the last one under the same prefix — one index probe
    per source instead of a DISTINCT over every row."""

    def level(prefix: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
        if len(prefix) == len(t.keys):
            yield prefix
            return
        col = _col(t, t.keys[len(prefix)])
        fixed = [_col(t, k) == v for k, v in zip(t.keys, prefix, strict=False)]
        last: Any = None
        while True:
            q = select(col).where(*fixed).order_by(col).limit(1)
            if last is not None:
                q = q.where(col > last)
            last = conn.scalar(q)
            if last is None:
                return
            yield from level((*prefix, last))

    yield from level(())


def _where(t: Target, source: tuple[Any, ...]) -> list[Any]:
    return [_col(t, k) == v for k, v in zip(t.keys, source, strict=True)]


def _present(engine: Engine, t: Target) -> bool:
    # A database from before the rollups: nothing to purge there (the schema is not ours to change).
    if inspect(engine).has_table(t.name):
        return True
    log.warning("table %s does not exist: skipped", t.name)
    return False


def _engine_of(bind: Engine | Session | sessionmaker[Session]) -> Engine:
    if isinstance(bind, Engine):
        return bind
    engine = bind.get_bind() if isinstance(bind, Session) else bind.kw["bind"]
    if not isinstance(engine, Engine):
        raise TypeError(f"expected an engine behind {bind!r}, got {engine!r}")
    return engine


# -- plan (dry run) ---------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class TablePlan:
    table: str
    cutoff: datetime  # rows older than this go (for a rollup: buckets that end by then)
    count: int  # rows that would be purged now
    oldest: datetime | None  # the oldest row's time (bucket start for a rollup); None: table empty


def require_current_schema(engine: Engine) -> None:
    """Refuse (:class:`store.db.SchemaOutdated`) a database not at this release's revision: on one
    from before the rollups, purging raw rows would destroy years the upgrade has not yet rolled up."""
    with engine.connect() as conn:
        state = migrate.schema_state(conn)
    if state.status != "current":
        raise SchemaOutdated(engine, f"its schema is {state.status} (revision {state.revision}, this release's is "
                             f"{state.head}); retention deletes nothing until it is upgraded")


def plan(session: Session, settings: RetentionSettings, now: datetime) -> list[TablePlan]:
    """What a purge at ``now`` would delete, per table; reads only (counts over index ranges, per
    source)."""
    engine = _engine_of(session)
    require_current_schema(engine)
    conn = session.connection()
    out = []
    for t in targets():
        cutoff = t.cutoff(settings, now)
        if not _present(engine, t):
            continue
        bound, time_col = t.bound(cutoff), _col(t, t.time)
        count, oldest = 0, None
        for source in list(_sources(conn, t)):
            where = _where(t, source)
            count += conn.scalar(select(func.count()).select_from(t.table).where(*where, time_col < bound)) or 0
            first = conn.scalar(select(time_col).where(*where).order_by(time_col).limit(1))
            if first is not None and (oldest is None or first < oldest):
                oldest = first
        out.append(TablePlan(t.name, cutoff, count, None if oldest is None else t.as_time(oldest)))
    return out


# -- purge ------------------------------------------------------------------------------------------------

Progress = Callable[[str, int], None]  # (table, rows deleted from it so far)


@dataclass(slots=True)
class PurgeResult:
    deleted: dict[str, int] = field(default_factory=dict)  # table -> rows deleted (every table purged)
    cutoffs: dict[str, datetime] = field(default_factory=dict)
    stopped: bool = False  # ``stop`` was set before the work was done
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.deleted.values())


def purge(bind: Engine | sessionmaker[Session], settings: RetentionSettings, now: datetime, *,
          progress: Progress | None = None, stop: threading.Event | None = None,
          pause: float = DEFAULT_PAUSE) -> PurgeResult:
    """Delete every row older than its table's cutoff at ``now``, in batches of ``settings.batch``
    rows, each batch its own transaction followed by ``pause`` seconds. ``progress`` is called after
    each batch; ``stop`` set: return after the current batch (``stopped`` in the result)."""
    engine = _engine_of(bind)
    require_current_schema(engine)
    started = time.monotonic()
    result = PurgeResult()
    for t in targets():
        if stop is not None and stop.is_set():
            result.stopped = True
            break
        cutoff = t.cutoff(settings, now)
        result.cutoffs[t.name] = cutoff
        if not _present(engine, t):
            continue
        result.deleted[t.name] = 0
        with engine.connect() as conn:  # the sources, read first: a short read, not held while deleting
            sources = list(_sources(conn, t))
        for source in sources:
            if not _purge_source(engine, t, source, t.bound(cutoff), settings.batch, result, progress, stop, pause):
                result.stopped = True
                break
        if result.stopped:
            break
        if result.deleted[t.name]:
            log.info("%s: %d row(s) older than %s deleted", t.name, result.deleted[t.name], _fmt(cutoff))
    result.seconds = time.monotonic() - started
    return result


def _purge_source(engine: Engine, t: Target, source: tuple[Any, ...], bound: Any, batch: int,
                  result: PurgeResult, progress: Progress | None, stop: threading.Event | None,
                  pause: float) -> bool:
    """Purge one source of ``t`` batch by batch; False if ``stop`` was set meanwhile."""
    where = _where(t, source)
    time_col = _col(t, t.time)
    pk = [_col(t, c) for c in t.pk]
    while True:
        if stop is not None and stop.is_set():
            return False
        with engine.begin() as conn:  # one batch, one transaction: a crash loses nothing but this batch
            # Through the index (source, time): only this source's oldest rows are read.
            keys = conn.execute(select(*pk).where(*where, time_col < bound).order_by(time_col).limit(batch)).all()
            if not keys:
                return True
            if len(t.pk) == 1:
                conn.execute(delete(t.table).where(pk[0].in_([k[0] for k in keys])))
            else:
                # The key columns are the source's (fixed): the last one varies.
                conn.execute(delete(t.table).where(*where, pk[-1].in_([k[-1] for k in keys])))
        result.deleted[t.name] += len(keys)
        if progress is not None:
            progress(t.name, result.deleted[t.name])
        if len(keys) < batch:
            return True
        # Between batches, so the bridge's writes get their turn; a stop is honoured at once.
        # (Polled, not stop.wait(): see store.db._sleep_unless.)
        if pause > 0 and _sleep_unless(stop or threading.Event(), pause):
            return False


def _fmt(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# -- command line (``python -m store retention``) ---------------------------------------------------------

def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add the ``retention`` subcommand; its ``handler`` is :func:`run`."""
    parser = subparsers.add_parser(
        "retention", help="purge readings, rollups and rejected messages older than their retention period",
        description="Delete raw readings (readings, power_readings) older than RETENTION_RAW_DAYS, the minute "
        "and hour rollups older than RETENTION_ROLLUP_DAYS (a bucket once it has wholly ended before the "
        "cutoff) and rejected_messages older than RETENTION_REJECTED_DAYS; nothing else (alarms, the audit "
        "trail, thresholds, users, devices are kept). Rows go in small batches, each its own short "
        "transaction, per automate or meter through the tables' indexes, so the bridge keeps writing; "
        "an interrupted run (even killed) leaves whole batches deleted and the next run carries on. The "
        "account needs SELECT and DELETE on those seven tables. " + ENV_HELP)
    parser.add_argument("--dry-run", action="store_true",
                        help="only print, per table, how many rows are older than its cutoff, the cutoff and "
                        "the oldest row; delete nothing")
    parser.add_argument("--every", type=float, metavar="SECONDS",
                        help="keep running: purge now and then every SECONDS (e.g. 3600, the job in "
                        "docker-compose.yml) until SIGTERM / Ctrl-C; a failed run is logged and tried again at "
                        "the next turn")
    parser.add_argument("--pause", type=float, default=DEFAULT_PAUSE, metavar="SECONDS",
                        help=f"pause between two batches (default {DEFAULT_PAUSE:g}): more is gentler on the bridge")
    parser.set_defaults(handler=run)
    return parser


PROGRESS_EVERY = 5.0  # s between two progress lines of a long run


def run(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    """``python -m store retention``: 0 when done. Configuration errors raise PlantModelError and
    database errors SQLAlchemyError, for ``store.__main__``'s handler (exit 2 / 1)."""
    env = os.environ if env is None else env
    settings = RetentionSettings.from_env(env)
    if not args.pause >= 0:
        raise PlantModelError("--pause must be >= 0 seconds")
    url = database_url_from_env(env)
    engine = create_db_engine(url)
    try:
        if args.dry_run:
            _dry_run(engine, url, settings)
            return 0
        if args.every is None:
            _purge_once(engine, url, settings, args.pause, None)
            return 0
        if not args.every > 0:
            raise PlantModelError("--every must be > 0 seconds")
        return _loop(engine, url, settings, args)
    finally:
        engine.dispose()


def _dry_run(engine: Engine, url: str, settings: RetentionSettings) -> None:
    with Session(engine) as session:
        rows = plan(session, settings, datetime.now(UTC))
    print(f"retention of {describe(url)}: dry run, nothing deleted")
    print(f"{'table':24} {'rows to purge':>13}  {'cutoff (older rows go)':24} oldest row")
    for p in rows:
        print(f"{p.table:24} {p.count:>13}  {_fmt(p.cutoff):24} {_fmt(p.oldest)}")
    print(f"total: {sum(p.count for p in rows)} row(s) would be purged")


def _purge_once(engine: Engine, url: str, settings: RetentionSettings, pause: float,
                stop: threading.Event | None) -> PurgeResult:
    last_line = time.monotonic()

    def progress(table: str, deleted: int) -> None:
        nonlocal last_line
        if time.monotonic() - last_line >= PROGRESS_EVERY:  # only long work says how far it is
            last_line = time.monotonic()
            print(f"  {table}: {deleted} row(s) deleted so far…", flush=True)

    log.info("purging %s (raw %d d, rollups %d d, rejected %d d, batches of %d)", describe(url),
             settings.raw_days, settings.rollup_days, settings.rejected_days, settings.batch)
    result = purge(engine, settings, datetime.now(UTC), progress=progress, stop=stop, pause=pause)
    for table, deleted in result.deleted.items():
        print(f"{table:24} {deleted:>10} deleted  (older than {_fmt(result.cutoffs[table])})", flush=True)
    state = "stopped early" if result.stopped else "done"
    print(f"retention {state}: {result.total} row(s) deleted in {result.seconds:.1f} s", flush=True)
    return result


def _loop(engine: Engine, url: str, settings: RetentionSettings, args: argparse.Namespace) -> int:
    log.info("purging %s every %g s", describe(url), args.every)
    # An outdated schema (DatabaseUnavailable) is tried again at the next turn: after the upgrade.
    return run_every(args.every, lambda stop: _purge_once(engine, url, settings, args.pause, stop),
                     what="retention", log=log)
