"""The rollups on MariaDB and SQLite: after every kind of write they equal the aggregates recomputed
from the raw rows (each stored row counted exactly once, in its own bucket), the chart series read
from them equal the series aggregated from the raw rows, and the latest row of each source is found
through ``automate_sequences`` / ``power_readings_latest``."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from plantmodel.measures import AUTOMATE_MEASURES, MEASURES, METER_MEASURES
from plantmodel.readings import Reading
from plantmodel.sequence import SeqState
from plantmodel.shelly import PowerSample
from store import history, queries, rollups
from store import models as orm
from store.db import create_db_engine, init_schema, make_sessionmaker
from tests.webapp import make_reading

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
METER_A, METER_B = "shellypro1pm-a8032ab1c2d3", "shellypro1pm-a8032ab1c2d4"
RX = T0


@pytest.fixture
def db(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = create_db_engine(database_url)
    init_schema(engine)
    yield make_sessionmaker(engine)
    engine.dispose()


def reading(unit: int, automate: int, ts: datetime, i: int) -> Reading:
    # Values that move differently per measure, on each measure's resolution.
    return make_reading(unit, automate, ts, tank_temp_c=round(2.0 + (i * 7 % 31) / 10, 1),
                        ph=round(6.5 + (i % 9) / 10, 1), milk_kg=3500 + i * 13 % 1100, listeria_ppm=20 + i % 40)


def sample(meter: str, ts: datetime, i: int) -> PowerSample:
    return PowerSample(meter=meter, ts=ts, output=True, apower=round(100 + (i * 37 % 500) / 10, 1), voltage=230.1,
                       current=round(0.5 + (i % 17) / 100, 3), freq=50.0, pf=0.98, energy_wh=1000.0 + i,
                       ret_energy_wh=0.0, temperature_c=None if i % 3 == 0 else 40.0 + i % 5)  # a missing field


# -- recomputed from the raw rows ------------------------------------------------------------------

def raw_rows(s: Session, power: bool) -> list[tuple[tuple[Any, ...], datetime, list[float | None]]]:
    model = orm.PowerReading if power else orm.Reading
    keys = ("meter_id",) if power else ("unit_id", "automate_no")
    measures = METER_MEASURES if power else AUTOMATE_MEASURES
    cols = [getattr(model, c) for c in (*keys, "ts", *measures)]
    return [(tuple(row[:len(keys)]), row[len(keys)], list(row[len(keys) + 1:])) for row in s.execute(select(*cols))]


def recomputed(rows: list[tuple[tuple[Any, ...], datetime, list[float | None]]], width: int
               ) -> dict[tuple[Any, ...], list[tuple[Any, ...]]]:
    """GROUP BY (source, bucket of ``width``) of the raw rows, per measure (n, min, max, sum)."""
    groups: dict[tuple[Any, ...], list[list[float | None]]] = {}
    for key, ts, values in rows:
        second = math.floor(ts.timestamp())
        groups.setdefault((*key, second - second % width), []).append(values)
    out = {}
    for k, group in groups.items():
        per_measure = []
        for i in range(len(group[0])):
            present = [row[i] for row in group if row[i] is not None]
            per_measure.append((len(present), min(present), max(present), math.fsum(present)) if present
                               else (0, None, None, None))
        out[k] = per_measure
    return out


def stored(s: Session, power: bool, level: str) -> dict[tuple[Any, ...], list[tuple[Any, ...]]]:
    kind = rollups.POWER if power else rollups.READINGS
    table = kind.table(level)
    out = {}
    for row in s.execute(select(table)):
        m = row._mapping
        out[(*(m[k] for k in kind.keys), m["bucket"])] = [
            (m[f"{x}_n"], m[f"{x}_min"], m[f"{x}_max"], m[f"{x}_sum"]) for x in kind.measures]
    return out


def assert_rollups_match(make_session: sessionmaker[Session]) -> None:
    with make_session() as s:
        for power in (False, True):
            rows = raw_rows(s, power)
            for level, width in orm.ROLLUP_LEVELS.items():
                want, got = recomputed(rows, width), stored(s, power, level)
                assert set(got) == set(want), (power, level)
                for key, aggs in want.items():
                    for (n, lo, hi, total), (gn, glo, ghi, gtotal) in zip(aggs, got[key], strict=True):
                        assert (gn, glo, ghi) == (n, lo, hi), (power, level, key)
                        assert gtotal == (None if total is None else pytest.approx(total, rel=1e-12)), key


def write(make_session: sessionmaker[Session], readings: list[Reading], samples: list[PowerSample], *,
          new_only: bool) -> None:
    with make_session.begin() as s:
        queries.insert_readings(s, [(r, RX) for r in readings], RX, new_only=new_only)
        queries.insert_power_samples(s, [(p, RX) for p in samples], RX, new_only=new_only)


def batches() -> tuple[list[Reading], list[PowerSample]]:
    """2 automates every 30 s and 2 meters every 11 s over 2.2 hours (several minutes and hours)."""
    readings = [reading(1, a, T0 + timedelta(seconds=30 * i), i) for i in range(264) for a in (1, 2)]
    samples = [sample(m, T0 + timedelta(seconds=11 * i), i) for i in range(720) for m in (METER_A, METER_B)]
    return readings, samples


def test_rollups_count_each_stored_row_once(db: sessionmaker[Session]) -> None:
    readings, samples = batches()
    # The bridge's path (new_only) in batches, then the same rows again through the skipping path.
    for i in range(0, len(samples), 500):
        write(db, readings[i * 528 // 1440:(i + 500) * 528 // 1440], samples[i:i + 500], new_only=True)
    assert_rollups_match(db)
    before = {level: stored(db(), False, level) for level in orm.ROLLUP_LEVELS}
    write(db, readings, samples, new_only=False)  # all stored already: nothing counted
    assert {level: stored(db(), False, level) for level in orm.ROLLUP_LEVELS} == before
    assert_rollups_match(db)

    # A batch mixing stored and new rows, a key given twice, and late rows into old buckets.
    late = T0 + timedelta(seconds=30 * 3 + 5)
    mixed = [*readings[:10], reading(1, 1, late, 999), reading(1, 1, late, 998), reading(2, 1, T0, 5)]
    write(db, mixed, [*samples[:4], sample(METER_A, T0 + timedelta(seconds=3), 1001)], new_only=False)
    with db() as s:
        stored_late = s.scalar(select(orm.Reading.tank_temp_c).where(orm.Reading.ts == late))
        assert stored_late == reading(1, 1, late, 999).tank_temp_c  # the first of the two
    assert_rollups_match(db)

    # A refused batch (new_only with a stored row: IntegrityError) adds nothing either.
    with pytest.raises(IntegrityError), db.begin() as s:
        queries.insert_readings(s, [(reading(1, 1, T0 + timedelta(hours=9), 1), RX), (readings[0], RX)], RX,
                                new_only=True)
    assert_rollups_match(db)


def test_hours_are_the_sum_of_their_minutes_and_missing_fields_are_not_counted(db: sessionmaker[Session]) -> None:
    readings, samples = batches()
    write(db, readings, samples, new_only=True)
    with db() as s:
        for power in (False, True):
            minutes, hours = stored(s, power, "minute"), stored(s, power, "hour")
            regrouped: rollups.Partials = {}
            for key, aggs in minutes.items():
                hour = (*key[:-1], key[-1] - key[-1] % 3600)
                regrouped[hour] = aggs if hour not in regrouped else [
                    rollups.merge(a, b) for a, b in zip(regrouped[hour], aggs, strict=True)]
            assert set(regrouped) == set(hours)
            for key, aggs in hours.items():
                for (n, lo, hi, total), (rn, rlo, rhi, rtotal) in zip(aggs, regrouped[key], strict=True):
                    assert (n, lo, hi) == (rn, rlo, rhi)
                    assert total == (None if rtotal is None else pytest.approx(rtotal, rel=1e-12))
        # temperature_c is missing in one sample of three: its count says so, the others' do not.
        names = list(METER_MEASURES)
        first_minute = stored(s, True, "minute")[(METER_A, int(T0.timestamp()))]
        assert first_minute[names.index("apower")][0] == 6  # seconds 0, 11, ..., 55
        assert first_minute[names.index("temperature_c")][0] == 4  # not at i = 0 and 3


def test_late_sample_does_not_move_the_latest_back(db: sessionmaker[Session]) -> None:
    write(db, [], [sample(METER_A, T0 + timedelta(minutes=5), 1), sample(METER_B, T0, 2)], new_only=True)
    write(db, [], [sample(METER_A, T0 + timedelta(minutes=1), 3)], new_only=True)  # late
    write(db, [], [sample(METER_B, T0 + timedelta(minutes=9), 4), sample(METER_B, T0 + timedelta(minutes=8), 5)],
          new_only=False)
    with db() as s:
        latest = {row.meter_id: row.ts for row in s.scalars(select(orm.PowerReadingLatest))}
        assert latest == {METER_A: T0 + timedelta(minutes=5), METER_B: T0 + timedelta(minutes=9)}
        got = queries.latest_power_readings(s)
        assert [(p.meter_id, p.ts, p.apower) for p in got] == [
            (METER_A, T0 + timedelta(minutes=5), sample(METER_A, T0, 1).apower),
            (METER_B, T0 + timedelta(minutes=9), sample(METER_B, T0, 4).apower)]
    # A database from before the table: no row for a meter, its newest sample by time is found.
    with db.begin() as s:
        s.execute(delete(orm.PowerReadingLatest).where(orm.PowerReadingLatest.meter_id == METER_B))
    with db() as s:
        assert [(p.meter_id, p.ts) for p in queries.latest_power_readings(s)] == [
            (METER_A, T0 + timedelta(minutes=5)), (METER_B, T0 + timedelta(minutes=9))]


def test_latest_readings_follow_the_settled_sequence(db: sessionmaker[Session]) -> None:
    future = T0 + timedelta(days=30)
    write(db, [reading(1, 1, T0, 1), reading(1, 1, T0 + timedelta(minutes=1), 2), reading(1, 1, future, 3),
               reading(1, 2, T0, 4), reading(1, 2, T0 + timedelta(minutes=2), 5),
               reading(2, 1, T0 + timedelta(minutes=3), 6), reading(2, 1, T0 + timedelta(minutes=4), 7)], [],
          new_only=True)
    with db.begin() as s:
        queries.save_sequences(s, {
            # Unit 1 automate 1: settled on the reading of minute 1 (the future-stamped one came after).
            (1, 1): SeqState(2, 2, T0 + timedelta(minutes=1), future, [], None, None, None),
            # Unit 2 automate 1: a row without a newest reading yet: falls back to the newest by time.
            (2, 1): SeqState(-1, 0, None, None, [], None, None, None),
        }, RX)  # (1, 2): no row at all: the newest by time too
    with db() as s:
        got = [(r.unit_id, r.automate_no, r.ts, r.tank_temp_c) for r in queries.latest_readings(s)]
    assert got == [(1, 1, T0 + timedelta(minutes=1), reading(1, 1, T0, 2).tank_temp_c),
                   (1, 2, T0 + timedelta(minutes=2), reading(1, 1, T0, 5).tank_temp_c),
                   (2, 1, T0 + timedelta(minutes=4), reading(1, 1, T0, 7).tank_temp_c)]


def test_both_upsert_variants_add(db: sessionmaker[Session]) -> None:
    readings, _ = batches()
    partials = rollups.minute_partials(((r.unit, r.automate), r.ts, [getattr(r, m) for m in AUTOMATE_MEASURES])
                                       for r in readings[:200])
    with db.begin() as s:
        rollups.add_partials(s, rollups.READINGS, "minute", partials)
        rollups.add_partials_bound(s, rollups.READINGS, "minute", partials)
    with db() as s:
        got = stored(s, False, "minute")
    assert set(got) == set(partials)
    for key, aggs in partials.items():
        assert got[key] == [(2 * n, lo, hi, pytest.approx(2 * total)) for n, lo, hi, total in aggs]


# -- chart series -------------------------------------------------------------------------------------

def raw_series(s: Session, src: history.SeriesSource, start: datetime, end: datetime, level: str,
               width: int) -> tuple[list[int], dict[str, list[tuple[float | None, float | None, float | None]]]]:
    """The chart buckets of ``width`` s the window touches, each WHOLE (the first and the last too),
    computed from the raw rows: (t in ms, {measure: [(v, min, max)]})."""
    first, last = (math.floor(t.timestamp()) // width * width for t in (start, end))
    buckets: dict[int, list[tuple[float | None, ...]]] = {}
    for row in history.stream_rows(s, src, ("ts", *src.measures), None, None):
        second = math.floor(row[0].timestamp())
        if first <= second - second % width <= last:
            buckets.setdefault(second - second % width, []).append(tuple(row[1:]))
    t = sorted(buckets)
    out: dict[str, list[tuple[float | None, float | None, float | None]]] = {m: [] for m in src.measures}
    for b in t:
        for i, m in enumerate(src.measures):
            vals = [r[i] for r in buckets[b] if r[i] is not None]
            if not vals:
                out[m].append((None, None, None))
                continue
            mean = min(max(round(math.fsum(vals) / len(vals), MEASURES[m].decimals + 2), min(vals)), max(vals))
            out[m].append((mean, min(vals), max(vals)))
    return [b * 1000 for b in t], out


def test_series_from_rollups_equal_the_raw_aggregates(db: sessionmaker[Session]) -> None:
    # 3 days: an automate every 2 minutes, a meter every 10 min (a missing field now and then).
    readings = [reading(1, 1, T0 + timedelta(minutes=2 * i), i) for i in range(3 * 720)]
    samples = [sample(METER_A, T0 + timedelta(minutes=10 * i), i) for i in range(3 * 144)]
    write(db, readings, samples, new_only=True)
    # Neither end on a bucket boundary: the first bucket begins before ``start``.
    end = T0 + timedelta(days=2, hours=5, minutes=7, seconds=30)
    for days, points, level, width in [
        (1, 100, "minute", 900),  # 14.4 min per point: 15 minutes
        (7, 300, "hour", 3600),  # 33.6 min: one hour
        (30, 300, "hour", 3 * 3600),  # 2.4 h: three hours
    ]:
        start = end - timedelta(days=days)
        for src in (history.automate_source(1, 1), history.meter_source(METER_A)):
            with db() as s:
                got = history.series(s, src, start, end, points)
                want_t, want = raw_series(s, src, start, end, level, width)
            assert got.aggregated and got.bucket_ms == width * 1000
            assert got.t == want_t and len(got.t) > 10
            if days == 1:  # data from before ``start`` in the first point, from after ``end`` in the last
                assert got.t[0] < start.timestamp() * 1000 < got.t[0] + got.bucket_ms
                assert got.t[-1] < end.timestamp() * 1000 < got.t[-1] + got.bucket_ms
            for m in src.measures:
                assert got.mins[m] == [w[1] for w in want[m]], m
                assert got.maxs[m] == [w[2] for w in want[m]], m
                step = 10.0 ** -(MEASURES[m].decimals + 2)
                for v, (wv, _, _) in zip(got.values[m], want[m], strict=True):
                    assert v == wv if wv is None else abs(v - wv) <= step * 1.01, m


def test_a_period_whose_raw_rows_were_purged_is_charted_from_the_rollups(db: sessionmaker[Session]) -> None:
    """Retention keeps the rollups 10 years and the raw rows 2: a chart of an old period must not come
    back empty because its few (zero) raw rows fit in ``points``."""
    readings = [reading(1, 1, T0 + timedelta(minutes=i), i) for i in range(3 * 1440)]
    write(db, readings, [], new_only=True)
    src = history.automate_source(1, 1)
    start, end = T0 - timedelta(hours=1), T0 + timedelta(days=2)
    with db() as s:
        before = history.series(s, src, start, end, 1500)
    with db.begin() as s:  # what the retention job does to the raw rows of the first day and a half
        s.execute(delete(orm.Reading).where(orm.Reading.ts < T0 + timedelta(hours=36)))
    with db() as s:
        after = history.series(s, src, start, end, 1500)  # 720 raw rows left: fewer than the points
        year = history.series(s, src, end - timedelta(days=365), end, 1500)
    assert before.aggregated and after.aggregated
    assert (after.t, after.mins, after.maxs, after.values) == (before.t, before.mins, before.maxs, before.values)
    # 6 h points from the hour rollups: the 2 days (the older raw rows gone) and the whole bucket at ``end``
    assert year.aggregated and year.bucket_ms == 6 * 3600_000
    assert year.t == [int((T0 + timedelta(hours=6 * k)).timestamp() * 1000) for k in range(9)]
