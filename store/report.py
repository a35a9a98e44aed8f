"""The shift report's data: what happened in one period ``[start, end)``, as small typed rows.

Every aggregate is computed by the database (``GROUP BY``), never by loading the readings, and only
with portable SQL (``min``/``avg``/``max``/``count``/``coalesce``), so the same queries run on
MariaDB and SQLite. The period is half-open: two consecutive shifts never count a reading twice.
Like :mod:`store.queries`, every function takes a Session and leaves the transaction to its caller.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from plantmodel.measures import AUTOMATE_MEASURES, METER_MEASURES
from plantmodel.sources import MeterSource, unit_key
from store import models as orm

log = logging.getLogger(__name__)

ALARMS_MAX = 2000  # an alarm storm still gives a readable (and printable) report
REJECTED_REASONS_MAX = 50
# Energy counters are reported as the energy used over the period, not as min/mean/max.
METER_COUNTERS = ("energy_wh", "ret_energy_wh")
METER_STAT_MEASURES = tuple(m for m in METER_MEASURES if m not in METER_COUNTERS)


@dataclass(frozen=True, slots=True)
class ReportAlarm:
    id: int
    source: str
    measure: str
    bound: str
    severity: str
    state: str  # active | cleared (now, not at the end of the period)
    value: float
    limit_value: float
    raised_at: datetime
    cleared_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    ack_note: str | None
    ack_disposition: str | None
    detail: str | None
    raised_in: bool  # raised within the period
    cleared_in: bool
    acknowledged_in: bool
    active_at_end: bool  # still active when the period ended


@dataclass(frozen=True, slots=True)
class MeasureStats:
    """min, mean and max of one measure of one unit (all its automates) or one meter."""

    source: str  # units/3 or meters/<id>
    measure: str
    count: int
    minimum: float | None
    mean: float | None
    maximum: float | None


@dataclass(frozen=True, slots=True)
class Completeness:
    """Readings stored for one automate against those its reporting period promises."""

    unit: int
    automate: int
    expected_from: datetime  # the period's start, or later for an automate first seen in the period
    expected_to: datetime  # the period's end, or earlier for a unit removed in the period
    expected: int
    stored: int

    @property
    def ratio(self) -> float | None:
        """stored / expected (above 1 when a unit sent faster than its period, or replayed a buffer)."""
        return None if self.expected == 0 else self.stored / self.expected


@dataclass(frozen=True, slots=True)
class RejectedCount:
    reason: str
    count: int


@dataclass(frozen=True, slots=True)
class MeterEnergy:
    """Energy a meter counted over the period: the difference of its counter *including* the energy
    its resets lost (``energy_wh + energy_offset_wh``), between the last sample before the period
    (else its first sample in it) and its last sample in the period."""

    meter: str
    from_ts: datetime | None
    to_ts: datetime | None
    from_wh: float | None
    to_wh: float | None
    samples: int  # in the period

    @property
    def energy_wh(self) -> float | None:
        if self.from_wh is None or self.to_wh is None:
            return None
        diff = self.to_wh - self.from_wh
        # Negative only for rows stored before resets were compensated: unknown, not "negative use".
        return None if diff < 0 else diff


@dataclass(frozen=True, slots=True)
class ShiftReport:
    start: datetime
    end: datetime
    report_period: float  # seconds between two reports of an automate
    alarms: list[ReportAlarm]
    alarms_truncated: bool
    unit_stats: list[MeasureStats]
    meter_stats: list[MeasureStats]
    completeness: list[Completeness]
    rejected: list[RejectedCount]
    rejected_total: int
    energy: list[MeterEnergy]

    @property
    def empty(self) -> bool:
        return not (self.alarms or self.unit_stats or self.meter_stats or self.rejected
                    or any(c.stored for c in self.completeness) or any(e.samples for e in self.energy))


def shift_report(session: Session, start: datetime, end: datetime, report_period: float) -> ShiftReport:
    """Everything the report shows for ``[start, end)`` (aware datetimes, ``start < end``)."""
    if not start < end:
        raise ValueError(f"the period's start {start} is not before its end {end}")
    alarms, truncated = report_alarms(session, start, end)
    rejected = rejected_by_reason(session, start, end)
    return ShiftReport(
        start=start, end=end, report_period=report_period, alarms=alarms, alarms_truncated=truncated,
        unit_stats=unit_stats(session, start, end), meter_stats=meter_stats(session, start, end),
        completeness=completeness(session, start, end, report_period),
        rejected=rejected[:REJECTED_REASONS_MAX], rejected_total=sum(r.count for r in rejected),
        energy=meter_energy(session, start, end),
    )


# -- alarms -----------------------------------------------------------------------------------------

def report_alarms(session: Session, start: datetime, end: datetime) -> tuple[list[ReportAlarm], bool]:
    """Alarms raised, cleared or acknowledged in the period, and those active throughout it (an
    operator taking over a shift must see them too), oldest first; (rows, whether cut at ALARMS_MAX)."""
    a = orm.Alarm
    overlapping = and_(a.raised_at < end, a.cleared_at.is_(None) | (a.cleared_at >= start))
    acked_in = and_(a.acknowledged_at >= start, a.acknowledged_at < end)
    stmt = (select(a).where(or_(overlapping, acked_in)).order_by(a.raised_at, a.id).limit(ALARMS_MAX + 1))
    rows = list(session.scalars(stmt))

    def within(ts: datetime | None) -> bool:
        return ts is not None and start <= ts < end

    out = [ReportAlarm(
        id=r.id, source=r.source, measure=r.measure, bound=r.bound, severity=r.severity, state=r.state,
        value=r.value, limit_value=r.limit_value, raised_at=r.raised_at, cleared_at=r.cleared_at,
        acknowledged_at=r.acknowledged_at, acknowledged_by=r.acknowledged_by, ack_note=r.ack_note,
        ack_disposition=r.ack_disposition, detail=r.detail, raised_in=within(r.raised_at),
        cleared_in=within(r.cleared_at), acknowledged_in=within(r.acknowledged_at),
        active_at_end=r.raised_at < end and (r.cleared_at is None or r.cleared_at >= end),
    ) for r in rows[:ALARMS_MAX]]
    return out, len(rows) > ALARMS_MAX


# -- statistics -------------------------------------------------------------------------------------

def _aggregates(column: ColumnElement[float]) -> tuple[ColumnElement[int], ...]:
    return (func.count(column), func.min(column), func.avg(column), func.max(column))


def _stats_rows(key: str, row: tuple[object, ...], measures: tuple[str, ...]) -> list[MeasureStats]:
    out = []
    for i, m in enumerate(measures):
        count, lo, avg, hi = row[1 + 4 * i: 5 + 4 * i]
        out.append(MeasureStats(key, m, int(cast(int, count) or 0), _float(lo), _float(avg), _float(hi)))
    return out


def _float(value: object) -> float | None:
    # MariaDB's AVG of a DOUBLE is a DOUBLE, but drivers may hand back Decimal for other types.
    return None if value is None else float(value)  # type: ignore[arg-type]


def unit_stats(session: Session, start: datetime, end: datetime) -> list[MeasureStats]:
    """Per unit (its automates together) and per automate measure, in the measures' order."""
    r = orm.Reading
    measures = tuple(AUTOMATE_MEASURES)
    cols = [agg for m in measures for agg in _aggregates(getattr(r, m))]
    stmt = (select(r.unit_id, *cols).where(r.ts >= start, r.ts < end).group_by(r.unit_id).order_by(r.unit_id))
    return [s for row in session.execute(stmt) for s in _stats_rows(unit_key(row[0]), tuple(row), measures)]


def meter_stats(session: Session, start: datetime, end: datetime) -> list[MeasureStats]:
    """Per meter and measure (the energy counters apart: see :func:`meter_energy`)."""
    p = orm.PowerReading
    measures = METER_STAT_MEASURES
    cols = [agg for m in measures for agg in _aggregates(getattr(p, m))]
    stmt = (select(p.meter_id, *cols).where(p.ts >= start, p.ts < end).group_by(p.meter_id)
            .order_by(p.meter_id))
    return [s for row in session.execute(stmt)
            for s in _stats_rows(MeterSource(row[0]).key, tuple(row), measures)]


# -- completeness -----------------------------------------------------------------------------------

def completeness(session: Session, start: datetime, end: datetime, report_period: float) -> list[Completeness]:
    """Stored vs expected readings of every automate known to the plant (table ``automates``).

    Expected = the seconds of the period the automate was part of the plant ÷ ``report_period``,
    rounded up. An automate first seen within the period is expected from the earlier of its
    registration and its first reading in the period (a unit replaying its buffer stored readings
    from before it was first seen); a unit removed from the registry within the period until its
    removal, and not at all if removed before the period. Device time (``ts``) decides what falls
    in the period, as in the statistics.
    """
    r = orm.Reading
    stored = {(u, a): (int(n), first) for u, a, n, first in session.execute(
        select(r.unit_id, r.automate_no, func.count(), func.min(r.ts)).where(r.ts >= start, r.ts < end)
        .group_by(r.unit_id, r.automate_no))}
    removed = {row.device: row.removed_at for row in session.scalars(
        select(orm.Device).where(orm.Device.device.like("units/%"), orm.Device.removed_at.is_not(None)))}
    out = []
    for auto in session.scalars(select(orm.Automate).where(orm.Automate.created_at < end)
                                .order_by(orm.Automate.unit_id, orm.Automate.automate_no)):
        count, first = stored.get((auto.unit_id, auto.automate_no), (0, None))
        gone = removed.get(unit_key(auto.unit_id))
        if gone is not None and gone <= start and count == 0:
            continue
        seen = auto.created_at if first is None else min(auto.created_at, first)
        frm = max(start, seen)
        to = min(end, gone) if gone is not None and gone > frm else end
        out.append(Completeness(auto.unit_id, auto.automate_no, frm, to, expected_count(to - frm, report_period),
                                count))
    return out


def expected_count(span: timedelta, report_period: float) -> int:
    """Reports promised in ``span``: one at its start, then one every period (rounded up, with a
    millisecond's tolerance so 8 h of 60 s periods is 480, not 481)."""
    seconds = max(0.0, span.total_seconds() - 0.001)
    return math.ceil(seconds / report_period) if seconds > 0 else 0


# -- rejected messages ------------------------------------------------------------------------------

def rejected_by_reason(session: Session, start: datetime, end: datetime) -> list[RejectedCount]:
    """Messages refused in the period (by receive time: a rejected message may have no valid
    device time), counted per reason, most frequent first."""
    rm = orm.RejectedMessage
    n = func.count().label("n")
    stmt = (select(rm.reason, n).where(rm.received_at >= start, rm.received_at < end).group_by(rm.reason)
            .order_by(n.desc(), rm.reason))
    return [RejectedCount(reason, int(count)) for reason, count in session.execute(stmt)]


# -- energy -----------------------------------------------------------------------------------------

def meter_energy(session: Session, start: datetime, end: datetime) -> list[MeterEnergy]:
    """Energy per meter known before the period's end. Consecutive periods add up exactly: each
    starts from the sample the previous one ended on (the last one before its start)."""
    p = orm.PowerReading
    counted = p.energy_wh.is_not(None)
    samples = {meter: int(n) for meter, n in session.execute(
        select(p.meter_id, func.count()).where(p.ts >= start, p.ts < end).group_by(p.meter_id))}
    before = _sample_at(session, func.max(p.ts), counted, p.ts < start)
    first_in = _sample_at(session, func.min(p.ts), counted, p.ts >= start, p.ts < end)
    last_in = _sample_at(session, func.max(p.ts), counted, p.ts < end)
    out = []
    for meter in session.scalars(select(orm.Meter.id).where(orm.Meter.first_seen < end).order_by(orm.Meter.id)):
        frm = before.get(meter) or first_in.get(meter)
        to = last_in.get(meter)
        out.append(MeterEnergy(meter, frm and frm[0], to and to[0], frm and frm[1], to and to[1],
                               samples.get(meter, 0)))
    return out


def _sample_at(session: Session, pick: ColumnElement[datetime], *where: ColumnElement[bool]
               ) -> dict[str, tuple[datetime, float]]:
    """meter -> (ts, energy counted) of the sample at ``pick`` (min/max of ``ts``) among ``where``:
    a GROUP BY on the ``(meter_id, ts)`` unique index, then one row per meter."""
    p = orm.PowerReading
    chosen = select(p.meter_id.label("meter_id"), pick.label("ts")).where(*where).group_by(p.meter_id).subquery()
    total = p.energy_wh + func.coalesce(p.energy_offset_wh, 0.0)
    stmt = select(p.meter_id, p.ts, total).join(chosen, and_(p.meter_id == chosen.c.meter_id, p.ts == chosen.c.ts))
    return {meter: (ts, float(cast(float, wh))) for meter, ts, wh in session.execute(stmt)}  # not null: `where`
