"""History queries for the REST API: time ranges, pages, streamed exports, chart series and alarm
filters. Portable across MariaDB and SQLite: plain ``SELECT``s on the existing indexes. Raw rows are
aggregated in Python while they stream in (``yield_per``), so a month of readings is never held in
memory; wide chart buckets come from the minute / hour rollups (:mod:`store.rollups`), grouped in SQL
with integer arithmetic on their epoch-second ``bucket`` (no dialect-specific date functions).

Like :mod:`store.queries`, every function takes a Session and leaves the transaction to its caller.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    CHAR,
    Boolean,
    ColumnElement,
    CursorResult,
    DateTime,
    Float,
    Integer,
    Select,
    func,
    literal_column,
    select,
    type_coerce,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session

from plantmodel.measures import AUTOMATE_MEASURES, MEASURES, METER_MEASURES
from plantmodel.sources import AutomateSource, MeterSource
from store import models as orm

STREAM_BATCH = 1000  # rows fetched per round trip while streaming
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
ALARM_STATES = ("open", "active", "cleared", "all")

HistoryModel = type[orm.Reading] | type[orm.PowerReading]


def epoch_ms(ts: datetime) -> int:
    return (ts - _EPOCH) // _MS


# -- sources of time series -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SeriesSource:
    """The rows of one automate (table ``readings``) or one meter (``power_readings``)."""

    key: str  # units/3/automates/7 or meters/<id>
    model: HistoryModel
    where: tuple[ColumnElement[bool], ...]
    measures: tuple[str, ...]

    @property
    def ts(self) -> Any:
        return self.model.ts


def automate_source(unit: int, automate: int) -> SeriesSource:
    return SeriesSource(AutomateSource(unit, automate).key, orm.Reading,
                        (orm.Reading.unit_id == unit, orm.Reading.automate_no == automate),
                        tuple(AUTOMATE_MEASURES))


def meter_source(meter: str) -> SeriesSource:
    return SeriesSource(MeterSource(meter).key, orm.PowerReading, (orm.PowerReading.meter_id == meter,),
                        tuple(METER_MEASURES))


def _in_range(src: SeriesSource, start: datetime | None, end: datetime | None) -> list[ColumnElement[bool]]:
    clauses = list(src.where)
    if start is not None:
        clauses.append(src.ts >= start)
    if end is not None:
        clauses.append(src.ts <= end)
    return clauses


def count_rows(session: Session, src: SeriesSource, start: datetime | None, end: datetime | None) -> int:
    stmt = select(func.count()).select_from(src.model).where(*_in_range(src, start, end))
    return int(session.scalar(stmt) or 0)


def _at_most(session: Session, src: SeriesSource, start: datetime | None, end: datetime | None, limit: int) -> bool:
    """Whether the range holds at most ``limit`` rows: at most ``limit + 1`` index entries read."""
    some = select(src.ts).where(*_in_range(src, start, end)).limit(limit + 1).subquery()
    return int(session.scalar(select(func.count()).select_from(some)) or 0) <= limit


def rows_page(session: Session, src: SeriesSource, start: datetime | None, end: datetime | None, *,
              offset: int, limit: int, descending: bool = False) -> list[Any]:
    """One page of ORM rows ordered by device time (the ``(source, ts)`` unique index)."""
    order = src.ts.desc() if descending else src.ts.asc()
    stmt = select(src.model).where(*_in_range(src, start, end)).order_by(order).offset(offset).limit(limit)
    return list(session.scalars(stmt))


def stream_rows(session: Session, src: SeriesSource, columns: Sequence[str], start: datetime | None,
                end: datetime | None, *, batch: int = STREAM_BATCH,
                naive_times: bool = False) -> Iterator[Sequence[Any]]:
    """Rows of ``columns`` in time order, fetched ``batch`` at a time (a server-side cursor on
    MariaDB), so the caller can handle any range in constant memory. Finish (or close) the
    iterator before running another query on the same session.

    ``naive_times``: the time columns as naive UTC datetimes, the other columns as the driver gives
    them (booleans may be 0/1), for the CSV exports (tens of thousands of rows a second): no time zone
    attached per value, and on MariaDB each row is read as one text (:func:`_packed_row`)."""
    model_columns = [getattr(src.model, c) for c in columns]
    packed = naive_times and session.get_bind().dialect.name in ("mysql", "mariadb")
    selected: list[Any]
    if packed:
        selected = [_packed_row(model_columns)]
    elif naive_times:
        # The bare DateTime: SQLite's text parsed by SQLAlchemy's compiled processor, no UTCDateTime step.
        selected = [type_coerce(c, DateTime()).label(c.key) if isinstance(c.type, orm.UTCDateTime) else c
                    for c in model_columns]
    else:
        selected = model_columns
    stmt: Select[Any] = select(*selected).where(*_in_range(src, start, end)).order_by(src.ts.asc())
    # Core execution on the session's connection (same transaction): the ORM layer would build a
    # second, processed copy of every fetched batch, doubling the memory held.
    result = session.connection().execute(stmt.execution_options(yield_per=batch))
    try:
        if packed:
            parse = _packed_parser(model_columns)
            for texts in result.scalars().partitions():
                yield from map(parse, texts)
        else:
            yield from result
    finally:
        result.close()


_PACK_SEP = ","  # in no text of a number or a DATETIME(3)


def _packed_row(columns: Sequence[Any]) -> Any:
    """All ``columns`` as one text per row, NULL as an empty field: PyMySQL decodes every field of
    every row in pure Python, so one field instead of fourteen reads a row about three times faster.
    Numbers as the server writes them (what PyMySQL itself parses), DATETIME(3) as
    ``YYYY-MM-DD HH:MM:SS.fff``."""
    for c in columns:
        if not isinstance(c.type, (orm.UTCDateTime, Integer, Float, Boolean)):
            raise TypeError(f"column {c.key} ({c.type}) cannot be packed")  # a text could hold the separator
    fields = [func.coalesce(sql_cast(c, CHAR), literal_column("''")) if c.nullable else sql_cast(c, CHAR)
              for c in columns]
    return func.concat_ws(literal_column(f"'{_PACK_SEP}'"), *fields)


def _packed_parser(columns: Sequence[Any]) -> Callable[[str], list[Any]]:
    """Splits a :func:`_packed_row` text into the values PyMySQL would give (times naive)."""
    converters: list[Callable[[str], Any]] = []
    for c in columns:
        if isinstance(c.type, orm.UTCDateTime):
            convert: Callable[[str], Any] = datetime.fromisoformat
        elif isinstance(c.type, Float):  # Double too
            convert = float
        else:  # integers, and booleans (TINYINT(1): 0/1, as the driver returns them)
            convert = int
        converters.append(_or_none(convert) if c.nullable else convert)

    def parse(text: str) -> list[Any]:
        # map with operator.call: the loop over the fields in C (a NOT NULL field is never empty).
        return list(map(operator.call, converters, text.split(_PACK_SEP)))

    return parse


def _or_none(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    def or_none(field: str) -> Any:
        return convert(field) if field else None

    return or_none


def latest_row(session: Session, src: SeriesSource) -> Any | None:
    stmt = select(src.model).where(*src.where).order_by(src.ts.desc()).limit(1)
    return session.scalar(stmt)


# -- chart series -------------------------------------------------------------------------------------

@dataclass(slots=True)
class Series:
    """Chart data: ``t`` in epoch ms; per measure ``v`` (and ``min``/``max`` when aggregated).
    Aggregated points stand for the bucket ``[t, t + bucket_ms)``; ``v`` is its average."""

    bucket_ms: int
    aggregated: bool
    t: list[int] = field(default_factory=list)
    values: dict[str, list[float | None]] = field(default_factory=dict)
    mins: dict[str, list[float | None]] = field(default_factory=dict)
    maxs: dict[str, list[float | None]] = field(default_factory=dict)

    def measures_dict(self) -> dict[str, dict[str, list[float | None]]]:
        if not self.aggregated:
            return {m: {"v": v} for m, v in self.values.items()}
        return {m: {"v": v, "min": self.mins[m], "max": self.maxs[m]} for m, v in self.values.items()}


class _Bucket:
    """Running count/sum/min/max per measure of one time bucket."""

    __slots__ = ("count", "maxs", "mins", "sums")

    def __init__(self, n: int) -> None:
        self.count = [0] * n
        self.sums = [0.0] * n
        self.mins: list[float] = [math.inf] * n
        self.maxs: list[float] = [-math.inf] * n

    def add(self, values: Sequence[float | None]) -> None:
        for i, v in enumerate(values):
            if v is None:  # meters may lack a field (older firmware, no temperature sensor)
                continue
            self.count[i] += 1
            self.sums[i] += v
            if v < self.mins[i]:
                self.mins[i] = v
            if v > self.maxs[i]:
                self.maxs[i] = v


# Chart buckets at least this wide are read from the hour rollups, at least this from the minute
# ones; narrower ones from the raw rows.
ROLLUP_FROM = {"hour": 15 * 60, "minute": 60}


def series(session: Session, src: SeriesSource, start: datetime, end: datetime, points: int) -> Series:
    """The measures of ``src`` between ``start`` and ``end`` (inclusive), at most ``points`` points.

    The raw rows when there are at most ``points`` (counted up to ``points + 1`` only: a year of
    rows is never counted). Else, when ``(end - start) / points`` is under a minute, the window cut
    into equal buckets of ``bucket_ms`` from ``start``, each non-empty one giving avg/min/max,
    computed while the rows stream by.

    A window whose raw rows retention purged (the minute rollups hold older buckets than its first
    raw row) is read from the rollups too, as wider windows are.

    Wider: read from the rollups (:mod:`store.rollups`), the hour level from 15 min per point, else
    the minute level. ``bucket_ms`` is then the smallest multiple of the level's width at least
    ``(end - start) / points``, buckets are aligned on multiples of it since the epoch (each is a
    union of whole rollup buckets: min, max and mean are exact), so the first point's bucket may begin
    before ``start`` and the last one end after ``end``: they hold the whole buckets' values.
    """
    names = src.measures
    columns = ("ts", *names)
    needed_s = (end - start).total_seconds() / points
    if _at_most(session, src, start, end, points):
        out = Series(bucket_ms=0, aggregated=False, values={m: [] for m in names})
        for row in stream_rows(session, src, columns, start, end):
            out.t.append(epoch_ms(row[0]))
            for i, m in enumerate(names, start=1):
                out.values[m].append(row[i])
        if needed_s < ROLLUP_FROM["minute"] or not _purged_before(session, src, start, end, out.t):
            return out
        # Few raw rows because retention purged the older ones: the rollups still hold them.
    for level in ("hour", "minute"):
        if needed_s >= ROLLUP_FROM[level]:
            return _series_from_rollups(session, src, start, end, level, needed_s)

    t0 = epoch_ms(start)
    span = max(1, epoch_ms(end) - t0)
    bucket_ms = max(1, math.ceil(span / points))
    last_index = math.ceil(span / bucket_ms) - 1  # a row exactly at ``end`` joins the last bucket
    out = _aggregated(bucket_ms, names)
    current: _Bucket | None = None
    current_index = -1
    for row in stream_rows(session, src, columns, start, end):
        index = min((epoch_ms(row[0]) - t0) // bucket_ms, last_index)
        if index != current_index:
            if current is not None:
                _flush(out, names, t0 + current_index * bucket_ms, current)
            current, current_index = _Bucket(len(names)), index
        current.add(row[1:])
    if current is not None:
        _flush(out, names, t0 + current_index * bucket_ms, current)
    return out


def _purged_before(session: Session, src: SeriesSource, start: datetime, end: datetime, raw_t: list[int]) -> bool:
    """Whether the minute rollups hold a bucket inside the window (wholly after ``start``) older
    than its first raw row: raw rows there were purged by retention (one indexed MIN)."""
    model = rollup_model(src, "minute")
    first = -(-_epoch_s(start) // 60) * 60  # the first bucket wholly after start
    oldest = session.scalar(select(func.min(model.bucket))
                            .where(*_rollup_where(src, model), model.bucket >= first, model.bucket <= _epoch_s(end)))
    if oldest is None:
        return False
    return not raw_t or oldest < raw_t[0] // 60_000 * 60


def _aggregated(bucket_ms: int, names: Sequence[str]) -> Series:
    return Series(bucket_ms=bucket_ms, aggregated=True, values={m: [] for m in names},
                  mins={m: [] for m in names}, maxs={m: [] for m in names})


def rollup_model(src: SeriesSource, level: str) -> Any:
    """The rollup table of ``src``'s kind at ``level``."""
    return (orm.READING_ROLLUPS if src.model is orm.Reading else orm.POWER_ROLLUPS)[level]


def _rollup_where(src: SeriesSource, model: Any) -> list[ColumnElement[bool]]:
    """``src.where`` (on the raw table's key columns) restated on the rollup table's."""
    return [model.__table__.c[clause.left.key] == clause.right for clause in cast(Any, src.where)]


def _series_from_rollups(session: Session, src: SeriesSource, start: datetime, end: datetime, level: str,
                         needed_s: float) -> Series:
    level_s = orm.ROLLUP_LEVELS[level]
    width = level_s * max(1, math.ceil(needed_s / level_s))
    first = _epoch_s(start) // width * width
    last = _epoch_s(end) // width * width  # the last chart bucket: read whole, as the first one
    model = rollup_model(src, level)
    names = src.measures
    # The width is our own integer, written into the SQL (the same text in SELECT and GROUP BY, which
    # MariaDB's ONLY_FULL_GROUP_BY wants); integer arithmetic, portable.
    chart_bucket = (model.bucket - model.bucket % literal_column(str(int(width)))).label("b")
    aggregates: list[Any] = []
    for m in names:
        aggregates += [func.sum(getattr(model, f"{m}_n")), func.min(getattr(model, f"{m}_min")),
                       func.max(getattr(model, f"{m}_max")), func.sum(getattr(model, f"{m}_sum"))]
    stmt = (select(chart_bucket, *aggregates)
            .where(*_rollup_where(src, model), model.bucket >= first, model.bucket < last + width)
            .group_by(chart_bucket).order_by(chart_bucket))
    out = _aggregated(width * 1000, names)
    bucket = _Bucket(len(names))
    for row in session.execute(stmt):
        for i in range(len(names)):
            n = row[1 + 4 * i]
            bucket.count[i] = int(n or 0)
            bucket.mins[i], bucket.maxs[i], bucket.sums[i] = row[2 + 4 * i], row[3 + 4 * i], row[4 + 4 * i]
        _flush(out, names, int(row[0]) * 1000, bucket)
    return out


def _epoch_s(ts: datetime) -> int:
    return math.floor(ts.timestamp())


def _flush(out: Series, names: Sequence[str], t: int, bucket: _Bucket) -> None:
    out.t.append(t)
    for i, m in enumerate(names):
        if bucket.count[i] == 0:
            out.values[m].append(None)
            out.mins[m].append(None)
            out.maxs[m].append(None)
            continue
        lo, hi = bucket.mins[i], bucket.maxs[i]
        # Rounded to a little more than the probe's resolution (smaller JSON), but never outside
        # [min, max] because of the rounding.
        avg = round(bucket.sums[i] / bucket.count[i], MEASURES[m].decimals + 2)
        out.values[m].append(min(max(avg, lo), hi))
        out.mins[m].append(lo)
        out.maxs[m].append(hi)


# -- alarms ---------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class AlarmFilter:
    state: str = "all"  # open (active or unacknowledged) | active | cleared | all
    unit: int | None = None
    automate: int | None = None
    meter: str | None = None
    measure: str | None = None
    start: datetime | None = None  # on raised_at
    end: datetime | None = None

    def clauses(self) -> list[ColumnElement[bool]]:
        a = orm.Alarm
        out: list[ColumnElement[bool]] = []
        if self.state == "open":
            out.append((a.state == "active") | a.acknowledged_at.is_(None))
        elif self.state in ("active", "cleared"):
            out.append(a.state == self.state)
        elif self.state != "all":
            raise ValueError(f"unknown alarm state filter {self.state!r}")
        if self.unit is not None:
            out.append(a.unit_id == self.unit)
        if self.automate is not None:
            out.append(a.automate_no == self.automate)
        if self.meter is not None:
            out.append(a.meter_id == self.meter)
        if self.measure is not None:
            out.append(a.measure == self.measure)
        if self.start is not None:
            out.append(a.raised_at >= self.start)
        if self.end is not None:
            out.append(a.raised_at <= self.end)
        return out


def alarms_page(session: Session, flt: AlarmFilter, *, offset: int, limit: int) -> tuple[int, list[orm.Alarm]]:
    """(total matching, one page newest raised first)."""
    clauses = flt.clauses()
    total = int(session.scalar(select(func.count()).select_from(orm.Alarm).where(*clauses)) or 0)
    stmt = (select(orm.Alarm).where(*clauses).order_by(orm.Alarm.raised_at.desc(), orm.Alarm.id.desc())
            .offset(offset).limit(limit))
    return total, list(session.scalars(stmt))


def alarms_overlapping(session: Session, source: str, start: datetime, end: datetime) -> list[orm.Alarm]:
    """Alarms of ``source`` that were active at some time within ``[start, end]``, oldest first."""
    a = orm.Alarm
    stmt = (select(a).where(a.source == source, a.raised_at <= end,
                            a.cleared_at.is_(None) | (a.cleared_at >= start))
            .order_by(a.raised_at, a.id))
    return list(session.scalars(stmt))


def acknowledge_once(session: Session, alarm_id: int, by: str, now: datetime, *, note: str | None = None,
                     disposition: str | None = None) -> tuple[orm.Alarm | None, bool]:
    """Acknowledge an alarm unless somebody already did: (row or None if unknown, whether this call
    acknowledged it). A conditional UPDATE, so two operators clicking at once cannot both win; the
    corrective action (``note``, product ``disposition``) is written by the same UPDATE."""
    done = cast(CursorResult[Any], session.execute(
        update(orm.Alarm).where(orm.Alarm.id == alarm_id, orm.Alarm.acknowledged_at.is_(None))
        .values(acknowledged_at=now, acknowledged_by=by, ack_note=note, ack_disposition=disposition)
        .execution_options(synchronize_session=False)
    )).rowcount == 1
    row = session.get(orm.Alarm, alarm_id, populate_existing=True)
    return row, done


# -- thresholds audit -------------------------------------------------------------------------------

def threshold_changes_page(session: Session, *, offset: int, limit: int) -> tuple[int, list[orm.ThresholdChange]]:
    """(total, one page of the audit trail newest first)."""
    c = orm.ThresholdChange
    total = int(session.scalar(select(func.count()).select_from(c)) or 0)
    stmt = select(c).order_by(c.changed_at.desc(), c.id.desc()).offset(offset).limit(limit)
    return total, list(session.scalars(stmt))
