"""Rollups: per source and per minute / hour bucket, each measure's count, min, max and sum
(``store.models.READING_ROLLUPS`` / ``POWER_ROLLUPS``), so a chart of a week or a year reads a few
thousand rollup rows instead of millions of readings.

They are kept up to date by the transaction that stores the rows (``store.queries.insert_readings``
and ``insert_power_samples``): the rows it actually inserted are aggregated here per (source,
minute) and per (source, hour) (:func:`level_partials`, C builtins over the grouped values), and
both are *added* to the stored buckets (:func:`add`: an upsert that sums counts and sums and keeps
the least minimum / greatest maximum). Adding is commutative, so late rows land in their own old
bucket and batches may arrive in any order; a row is never added twice because the callers only
pass rows they inserted in the same transaction.

Pure aggregation (no I/O) apart from :func:`add`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, cast

from pymysql.converters import escape_string
from sqlalchemy import Table, text
from sqlalchemy.orm import Session

from plantmodel.measures import AUTOMATE_MEASURES, METER_MEASURES
from store import bulk
from store import models as orm

log = logging.getLogger(__name__)

MINUTE = orm.ROLLUP_LEVELS["minute"]
HOUR = orm.ROLLUP_LEVELS["hour"]

# One measure's partial aggregate: (count, min, max, sum); min/max/sum are None while count is 0.
Agg = tuple[int, float | None, float | None, float | None]
EMPTY: Agg = (0, None, None, None)
# (*source key, bucket start in epoch s) -> one Agg per measure, in the kind's measure order.
Partials = dict[tuple[Any, ...], list[Agg]]


@dataclass(frozen=True, slots=True, eq=False)  # hashed by identity: one instance per kind
class RollupKind:
    """The rollup tables of one kind of source: their key columns (before ``bucket``) and measures."""

    name: str
    tables: dict[str, type[orm.Base]]  # level name -> mapped class
    keys: tuple[str, ...]
    measures: tuple[str, ...]

    def table(self, level: str) -> Table:
        return cast(Table, self.tables[level].__table__)


READINGS = RollupKind("readings", orm.READING_ROLLUPS, ("unit_id", "automate_no"), tuple(AUTOMATE_MEASURES))
POWER = RollupKind("power", orm.POWER_ROLLUPS, ("meter_id",), tuple(METER_MEASURES))


# -- pure aggregation ----------------------------------------------------------------------------------

def epoch_s(ts: datetime) -> int:
    """Whole epoch seconds of an aware datetime (floored, also before 1970)."""
    return math.floor(ts.timestamp())


def aggregate(rows: Sequence[Sequence[float | None]]) -> list[Agg]:
    """(count, min, max, sum) of each column of ``rows`` (all of one length), None values left out."""
    if len(rows) == 1:  # the common case at one reading a minute: no zip, no builtins
        return [EMPTY if v is None else (1, v, v, v) for v in rows[0]]
    out: list[Agg] = []
    for column in zip(*rows, strict=True):
        values: Sequence[float | None] = column
        if None in column:  # a meter may lack a field
            values = [v for v in column if v is not None]
            if not values:
                out.append(EMPTY)
                continue
        present = cast(Sequence[float], values)
        out.append((len(present), min(present), max(present), sum(present)))
    return out


def minute_partials(rows: Iterable[tuple[tuple[Any, ...], datetime, Sequence[float | None]]]) -> Partials:
    """Rows (source key, device time, measure values) -> partial aggregates per (source, minute)."""
    groups: dict[tuple[Any, ...], list[Sequence[float | None]]] = {}
    for key, ts, values in rows:
        second = epoch_s(ts)
        groups.setdefault((*key, second - second % MINUTE), []).append(values)
    return {k: aggregate(v) for k, v in groups.items()}


def merge(a: Agg, b: Agg) -> Agg:
    """Two partials of one measure as one (what the upsert does in SQL)."""
    if a[0] == 0:
        return b
    if b[0] == 0:
        return a
    return (a[0] + b[0], min(cast(float, a[1]), cast(float, b[1])), max(cast(float, a[2]), cast(float, b[2])),
            cast(float, a[3]) + cast(float, b[3]))


def level_partials(rows: Iterable[tuple[tuple[Any, ...], datetime, Sequence[float | None]]]) -> dict[str, Partials]:
    """Level name -> partials of ``rows``, each aggregated from the rows themselves (C builtins over
    the grouped values: cheaper than merging the minute partials measure by measure in Python)."""
    minutes: dict[tuple[Any, ...], list[Sequence[float | None]]] = {}
    for key, ts, values in rows:
        second = epoch_s(ts)
        minutes.setdefault((*key, second - second % MINUTE), []).append(values)
    hours: dict[tuple[Any, ...], list[Sequence[float | None]]] = {}
    for key, group in minutes.items():
        hour = (*key[:-1], key[-1] - key[-1] % HOUR)
        have = hours.get(hour)
        if have is None:
            hours[hour] = group if len(minutes) == 1 else list(group)
        else:
            have.extend(group)
    return {"minute": {k: aggregate(v) for k, v in minutes.items()},
            "hour": {k: aggregate(v) for k, v in hours.items()}}


# -- the upsert --------------------------------------------------------------------------------------

def add(session: Session, kind: RollupKind,
        rows: Iterable[tuple[tuple[Any, ...], datetime, Sequence[float | None]]]) -> None:
    """Add ``rows`` (source key, device time, values in ``kind.measures`` order), rows this
    transaction has just inserted, to the minute and hour rollups of ``kind``."""
    for level, partials in level_partials(rows).items():
        add_partials(session, kind, level, partials)


def add_partials(session: Session, kind: RollupKind, level: str, partials: Partials) -> None:
    """Add ``partials`` to the stored buckets of ``level`` (creating missing ones), in key order (the
    same order in every writer: fewer lock waits between bridges writing neighbouring buckets)."""
    if not partials:
        return
    items = sorted(partials.items())
    if session.get_bind().dialect.name in ("mysql", "mariadb"):
        # As the readings' insert (store.bulk): SQL text formatted in one go, no per-value binding.
        bulk.insert_rows(session, _mariadb_head(kind, level), (_literal_row(k, aggs) for k, aggs in items),
                         _mariadb_tail(kind, level))
    else:
        # The DB-API cursor of the session's connection (same transaction) with positional rows:
        # SQLAlchemy's per-row parameter processing of 40-odd columns cost more than SQLite's work.
        cursor = session.connection().connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(_sqlite_upsert(kind, level, positional=True),
                               [(*k, *(v for agg in aggs for v in agg)) for k, aggs in items])
        finally:
            cursor.close()


def add_partials_bound(session: Session, kind: RollupKind, level: str, partials: Partials) -> None:
    """:func:`add_partials` through bound parameters (SQLAlchemy executemany) on MariaDB too: the
    variant the SQL text replaces, kept for ``bench/bench_rollups.py`` and the tests comparing both."""
    if not partials:
        return
    items = sorted(partials.items())
    if session.get_bind().dialect.name in ("mysql", "mariadb"):
        sql = f"{_mariadb_head(kind, level)} VALUES ({','.join(':' + p for p in _param_names(kind))})" \
              f"{_mariadb_tail(kind, level)}"
    else:
        sql = _sqlite_upsert(kind, level)
    session.execute(text(sql), [_params(k, aggs) for k, aggs in items])


def _columns(kind: RollupKind) -> list[str]:
    return [*kind.keys, "bucket", *(f"{m}_{part}" for m in kind.measures for part in ("n", "min", "max", "sum"))]


@cache
def _param_names(kind: RollupKind) -> tuple[str, ...]:
    return tuple(f"p{i}" for i in range(len(_columns(kind))))


def _params(key: tuple[Any, ...], aggs: list[Agg]) -> dict[str, Any]:
    values = [*key, *(v for agg in aggs for v in agg)]
    return {f"p{i}": v for i, v in enumerate(values)}


@cache
def _mariadb_head(kind: RollupKind, level: str) -> str:
    return f"INSERT INTO {kind.table(level).name} ({','.join(_columns(kind))})"


def _merged(kind: RollupKind, new: str, least: str, greatest: str) -> str:
    """The SET list adding a new partial to the stored one, for both dialects: ``new`` names the
    inserted value of a column (``VALUES({})``, ``excluded.{}``), ``least``/``greatest`` the
    dialect's functions of several arguments. Each assignment reads only its own column (MariaDB
    applies them left to right); both functions are null if an argument is, so each side is
    coalesced first: a null side (no value yet, or none added) leaves the other."""
    sets = []
    for m in kind.measures:
        n, lo, hi, total = (f"{m}_{p}" for p in ("n", "min", "max", "sum"))
        nn, nlo, nhi, ntotal = (new.format(c) for c in (n, lo, hi, total))
        sets += [f"{n}={n}+{nn}",
                 f"{lo}={least}(COALESCE({lo},{nlo}),COALESCE({nlo},{lo}))",
                 f"{hi}={greatest}(COALESCE({hi},{nhi}),COALESCE({nhi},{hi}))",
                 f"{total}=COALESCE({total}+{ntotal},{total},{ntotal})"]
    return ",".join(sets)


@cache
def _mariadb_tail(kind: RollupKind, level: str) -> str:
    return " ON DUPLICATE KEY UPDATE " + _merged(kind, "VALUES({})", "LEAST", "GREATEST")


@cache
def _sqlite_upsert(kind: RollupKind, level: str, positional: bool = False) -> str:
    """The upsert with named (``:p0``…) or, for the DB-API cursor, positional (``?``) parameters."""
    params = ",".join("?" if positional else ":" + p for p in _param_names(kind))
    return (f"INSERT INTO {kind.table(level).name} ({','.join(_columns(kind))}) VALUES ({params}) "
            f"ON CONFLICT({','.join((*kind.keys, 'bucket'))}) DO UPDATE SET "
            + _merged(kind, "excluded.{}", "min", "max"))


def _double(value: float | None) -> str:
    """A measure's aggregate as a DOUBLE literal. The values come from validated readings (finite
    numbers) and their sums, so no type check per value here (the hot path), only a cheap one that
    an ``inf`` or ``nan`` (a bug upstream) raises rather than reaching the database."""
    if value is None:
        return "NULL"
    literal = repr(value)
    if literal[-1] in "fn":  # inf, -inf, nan: a bug upstream; refused here, loudly, never stored
        raise ValueError(f"{value} cannot be stored")
    # A number literal without an exponent would be a DECIMAL (or an INT): an exponent keeps it a DOUBLE.
    return literal if "e" in literal else literal + "e0"


def _key_literal(value: Any) -> str:
    if isinstance(value, str):
        return f"'{escape_string(value)}'"
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"not a key: {value!r}")
    return str(value)


def _literal_row(key: tuple[Any, ...], aggs: list[Agg]) -> str:
    cells = [_key_literal(k) for k in key]
    for n, lo, hi, total in aggs:
        if n == 1:  # one value: min = max = sum, formatted once
            value = _double(lo)
            cells += ["1", value, value, value]
        else:
            cells += [str(int(n)), _double(lo), _double(hi), _double(total)]
    return f"({','.join(cells)})"
