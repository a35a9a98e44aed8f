"""``python -m store generate-history``: load a realistic plant history into an empty database.

For demos and benchmarks (how fast are the dashboard and the API over years of data?). It writes
what the bridge would have written over ``--days`` ending at ``--end``:

- ``units``, ``automates``, ``meters`` and one reading per automate every ``--period`` seconds, values
  inside the normal ranges (a daily cycle, day-to-day drift and noise, on each measure's step; the
  milk tank drains and is refilled as the simulator's does);
- one power reading per meter every ``--meter-period`` seconds (an EV charger's cycle, ~230 V, ~50 Hz,
  an energy counter that only goes up);
- a few tank temperature excursions above the normal range (20 minutes) with their alarms, raised
  and cleared, most acknowledged with a note; a few gaps (an automate silent for an hour) with their
  ``no_data`` alarms;
- ``automate_sequences`` (seq 0, 1, 2 … per automate, all settled), ``power_readings_latest``, and
  the rollup tables, filled from the raw rows by ``INSERT … SELECT … GROUP BY`` (so they are exactly
  what a GROUP BY over the rows gives).

Speed: the values are drawn once into tables of row text (``_ValueTables``); a row is then a few
look-ups and one ``str.format``, built by a thread ahead of the one sending. Rows go in chunks of
about 50 000 (one transaction each, on whole hours): on MariaDB as ``LOAD DATA LOCAL INFILE`` when
the server allows it (``local_infile``; our deployment and tests turn it off), else as multi-row
INSERT text (formatted as :mod:`store.bulk` does), with ``unique_checks`` and ``foreign_key_checks``
off for the session (the rows are new by construction: the database had none). Each chunk's rollups
are one ``INSERT … SELECT`` per table over the chunk's id range (a range of the clustered index); on
MariaDB a second connection runs them while the next chunk loads. A failed run leaves the chunks
loaded so far: start again on a new database.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from queue import Queue
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from devices.shelly import ChargerLoad, power_factor
from devices.units import MAX_DRAIN_KG, REFILL_MARGIN_KG, REFILL_SPAN_KG, step_value
from plantmodel.envconf import layout_from_env
from plantmodel.errors import ValidationError
from plantmodel.layout import PlantLayout, default_meter_ids
from plantmodel.measures import AUTOMATE_MEASURES, METER_MEASURES, SOURCE_HEALTH, Measure
from plantmodel.sequence import SeqState
from plantmodel.sources import AutomateSource
from store import models as orm
from store import queries
from store.db import create_db_engine, database_url_from_env, describe, init_schema, make_sessionmaker
from store.migrations.helpers import epoch_seconds

log = logging.getLogger(__name__)

CHUNK_ROWS = 50_000  # rows per transaction
STATEMENT_ROWS = 2_000  # rows per INSERT statement
PROGRESS_EVERY_S = 3.0
DAY_VARIANTS = 11  # distinct days of values per measure (prime: no weekly pattern)
METER_TABLE = 8191  # samples in a meter's precomputed cycle (prime)
EXCURSION_S = 20 * 60  # a tank temperature excursion above the normal range
GAP_S = 3600  # an automate silent for an hour
EXCURSIONS_PER_AUTOMATE_DAY = 0.01  # 50 automates: ~3.5 a week
GAPS_PER_AUTOMATE_DAY = 0.005  # 50 automates: ~1.75 a week
TANK = "tank_temp_c"
READING_COLUMNS = ("unit_id", "automate_no", "seq", "ts", "received_at", "stored_at", *AUTOMATE_MEASURES)
POWER_COLUMNS = ("meter_id", "ts", "received_at", "stored_at", "output", "apower", "voltage", "current", "freq",
                 "pf", "energy_wh", "ret_energy_wh", "temperature_c", "errors", "energy_offset_wh")
ACK_NOTES = ("Cold room door left open during loading; closed, product temperature checked",
             "Compressor restarted by maintenance; batch kept on hold until lab check",
             "Probe cleaned and re-seated; reading back to normal",
             "Refill with warm milk; temperature back in range within the hour")


class HistoryRefused(Exception):
    """The database already holds readings."""


@dataclass(frozen=True, slots=True)
class HistoryOptions:
    layout: PlantLayout
    days: float
    end: datetime
    period: int = 60
    meter_period: int = 10
    seed: int = 1


@dataclass(slots=True)
class HistoryResult:
    readings: int = 0
    power_readings: int = 0
    alarms: int = 0
    gaps: int = 0
    method: str = ""  # how the rows were sent
    load_s: float = 0.0  # raw rows
    rollup_s: float = 0.0
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return self.readings + self.power_readings

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


# -- SQL text ---------------------------------------------------------------------------------------------

def _float_text(value: float) -> str:
    # As store.bulk writes a float: with an exponent, so MariaDB reads a DOUBLE, never a DECIMAL.
    text = repr(float(value))
    return text if "e" in text else text + "e0"


def _value_text(n: int, measure: Measure) -> str:
    value = step_value(n, measure)
    return str(value) if isinstance(value, int) else _float_text(value)


class _Clock:
    """SQL time literals for whole epoch seconds: an hour's prefix (cached) + a "MM:SS" table."""

    def __init__(self, quote: str) -> None:
        self.quote = quote
        self._hours: dict[int, str] = {}
        self.mmss = [f"{m:02d}:{s:02d}" for m in range(60) for s in range(60)]

    def hour(self, h: int) -> str:
        text = self._hours.get(h)
        if text is None:
            if len(self._hours) > 10_000:
                self._hours.clear()
            text = self._hours[h] = self.quote + datetime.fromtimestamp(h * 3600, UTC).strftime("%Y-%m-%d %H:")
        return text


# -- values ---------------------------------------------------------------------------------------------

class _ValueTables:
    """Every automate measure's values over ``DAY_VARIANTS`` days, as the VALUES text of a reading's
    measure columns (``row[i]``), indexed by the period number since the epoch (+ a per-automate shift
    in whole days): the daily cycle follows the clock, and automates read different days."""

    def __init__(self, rng: random.Random, period: int) -> None:
        self.per_day = max(1, 86400 // period)
        self.size = self.per_day * DAY_VARIANTS
        self.columns = [self._column(measure, rng, period) for measure in AUTOMATE_MEASURES.values()]
        self.tank_index = list(AUTOMATE_MEASURES).index(TANK)

    def rows(self, sep: str) -> list[str]:
        return [sep.join(values) for values in zip(*self.columns, strict=True)]
        self.tank_index = list(AUTOMATE_MEASURES).index(TANK)

    def _column(self, m: Measure, rng: random.Random, period: int) -> list[str]:
        if m.name == "milk_kg":
            return [_value_text(v, m) for v in self._milk(rng, period)[0]]
        if m.name == "product_kg":
            return [_value_text(v, m) for v in self._milk(rng, period)[1]]
        if m.low is None or m.high is None:  # a measure without a range: steady, mid-plausible
            mid = round((max(m.plausible_min, 0) + min(m.plausible_max, 100)) / 2 / m.step)
            return [_value_text(mid, m)] * self.size
        lo, hi = round(m.low / m.step), round(m.high / m.step)
        span = hi - lo
        texts = {n: _value_text(n, m) for n in range(lo, hi + 1)}
        center = (lo + hi) / 2
        amplitude = span * (0.3 if m.name == "ext_temp_c" else 0.18)
        phase = rng.random()  # when in the day the measure peaks
        out: list[str] = []
        noise = 0
        for _day in range(DAY_VARIANTS):
            drift = rng.uniform(-0.12, 0.12) * span  # this day runs a little high or low
            for i in range(self.per_day):
                noise = max(-2, min(2, noise + rng.choice((-1, 0, 0, 1))))
                x = center + drift + amplitude * math.sin(2 * math.pi * (i / self.per_day - phase)) + noise
                out.append(texts[max(lo, min(hi, round(x)))])
        return out

    _milk_cache: tuple[list[int], list[int]] | None = None

    def _milk(self, rng: random.Random, period: int) -> tuple[list[int], list[int]]:
        """The tank drains by what became butter and is refilled near the top, as in the simulator."""
        if self._milk_cache is None:
            m = AUTOMATE_MEASURES["milk_kg"]
            assert m.low is not None and m.high is not None
            low, high = int(m.low), int(m.high)
            drain = max(1, round(MAX_DRAIN_KG * period / 60))
            milk, prev, milks, products = rng.randint(low, high), None, [], []
            for _ in range(self.size):
                if prev is not None:
                    milk -= rng.randint(0, drain)
                    if milk < low + REFILL_MARGIN_KG:
                        milk = rng.randint(high - REFILL_SPAN_KG, high)
                milks.append(milk)
                products.append(0 if prev is None else max(prev - milk, 0))
                prev = milk
            self._milk_cache = (milks, products)
        return self._milk_cache


@dataclass(slots=True)
class _MeterTable:
    """A charger's cycle, sample by sample: (energy added in Wh, "apower,voltage,current,freq,pf", °C)."""

    increments: list[float]
    heads: list[str]
    temps: list[str]

    @classmethod
    def draw(cls, rng: random.Random, meter_period: int) -> _MeterTable:
        load = ChargerLoad(rng)
        increments, heads, temps = [], [], []
        temp = 30.0
        for _ in range(METER_TABLE):
            p = load.advance(meter_period)
            voltage = round(230.0 + rng.gauss(0.0, 1.2), 1)
            pf = round(power_factor(p), 2)
            current = round(p / (voltage * pf), 3) if pf > 0 else 0.0
            freq = round(50.0 + rng.gauss(0.0, 0.02), 2)
            temp += (28.0 + 16.0 * p / 3400.0 - temp) * min(1.0, meter_period / 600)  # lags the load
            increments.append(p * meter_period / 3600.0)
            heads.append("\t".join(_float_text(v) for v in (p, voltage, current, freq, pf)))
            temps.append(_float_text(round(temp + rng.gauss(0.0, 0.1), 1)))
        return cls(increments, heads, temps)


# -- the plan: which rows, which events -------------------------------------------------------------------

@dataclass(slots=True)
class _Automate:
    unit: int
    automate: int
    offset: int  # seconds after each period boundary it reports at
    shift: int  # table rows (whole days): which day of values it reads
    count: int  # report slots in the range
    gaps: list[tuple[int, int]] = field(default_factory=list)  # [k0, k1) slots without a reading
    forced: dict[int, str] = field(default_factory=dict)  # slot -> tank temperature text
    seq: int = 0
    last_s: int | None = None

    @property
    def key(self) -> str:
        return f"{self.unit},{self.automate}"


@dataclass(slots=True)
class _Meter:
    id: str
    offset: int
    shift: int
    count: int
    energy: float
    last_s: int | None = None


class _Plan:
    def __init__(self, options: HistoryOptions) -> None:
        o = options
        self.options = o
        rng = random.Random(o.seed)
        self.end_s = int(o.end.timestamp()) // 60 * 60
        self.start_s = self.end_s - round(o.days * 86400)
        if self.start_s >= self.end_s:
            raise ValidationError("--days must cover at least one minute")
        span = self.end_s - self.start_s
        self.values = _ValueTables(rng, o.period)
        self.meter_table = _MeterTable.draw(rng, o.meter_period)
        self.automates = []
        for u, a in ((s.unit, s.automate) for s in o.layout.automate_sources()):
            offset = (u * 7 + a * 13) % o.period
            count = len(range(self.start_s + offset, self.end_s, o.period))
            shift = ((u * 3 + a * 5) % DAY_VARIANTS) * self.values.per_day + (u + a) % 17
            self.automates.append(_Automate(u, a, offset, shift, count))
        self.meters = [
            _Meter(m, (i * 3) % o.meter_period, rng.randrange(METER_TABLE),
                   len(range(self.start_s + (i * 3) % o.meter_period, self.end_s, o.meter_period)),
                   round(rng.uniform(10_000.0, 50_000.0), 3))
            for i, m in enumerate(o.layout.meters)]
        self.alarms: list[dict[str, Any]] = []
        self._events(rng, span)

    # A slot k of an automate is at start_s + offset + k * period.
    def slot_s(self, a: _Automate, k: int) -> int:
        return self.start_s + a.offset + k * self.options.period

    def _events(self, rng: random.Random, span: int) -> None:
        o = self.options
        days = span / 86400
        n_auto = len(self.automates)
        gap_slots = max(1, math.ceil(GAP_S / o.period))
        above = max(2, math.ceil(EXCURSION_S / o.period))
        busy: dict[int, list[tuple[int, int]]] = {}

        def place(length: int, margin: int) -> tuple[int, int] | None:
            for _ in range(100):
                i = rng.randrange(n_auto)
                a = self.automates[i]
                lo, hi = margin, a.count - length - margin  # never at the very start or end
                if hi <= lo:
                    return None
                k = rng.randint(lo, hi)
                if all(k + length + margin <= b0 or b1 + margin <= k for b0, b1 in busy.get(i, [])):
                    busy.setdefault(i, []).append((k, k + length))
                    return i, k
            return None

        for _ in range(max(1, round(days * n_auto * GAPS_PER_AUTOMATE_DAY))):
            spot = place(gap_slots, 5)
            if spot is not None:
                self._gap(self.automates[spot[0]], spot[1], gap_slots, rng)
        for _ in range(max(1, round(days * n_auto * EXCURSIONS_PER_AUTOMATE_DAY))):
            spot = place(above + 2, 5)
            if spot is not None:
                self._excursion(self.automates[spot[0]], spot[1], above, rng)
        for a in self.automates:
            a.gaps.sort()

    def _alarm(self, a: _Automate, measure: Measure, value: float, raised_s: float, cleared_s: float,
               last_value: float, rng: random.Random) -> None:
        assert measure.high is not None
        row: dict[str, Any] = {
            "source": AutomateSource(a.unit, a.automate).key, "unit_id": a.unit, "automate_no": a.automate,
            "meter_id": None, "measure": measure.name, "bound": "high", "severity": measure.severity,
            "state": "cleared", "value": value, "limit_value": measure.high, "last_value": last_value,
            "raised_at": _utc(raised_s), "cleared_at": _utc(cleared_s), "acknowledged_at": None,
            "acknowledged_by": None, "ack_note": None, "ack_disposition": None, "detail": None}
        if rng.random() < 0.7:  # most are acknowledged, some time after they cleared
            acked = min(cleared_s + rng.uniform(120, 5400), self.end_s - 1)
            row.update(acknowledged_at=_utc(max(acked, cleared_s)), acknowledged_by=rng.choice(("operator", "admin")),
                       ack_note=rng.choice(ACK_NOTES),
                       ack_disposition=rng.choice(("hold", "release")) if measure.severity == "critical" else "none")
        self.alarms.append(row)

    def _gap(self, a: _Automate, k: int, length: int, rng: random.Random) -> None:
        a.gaps.append((k, k + length))
        # The bridge's timer raises no_data past 2.5 silent periods; the next reading clears it.
        no_data = SOURCE_HEALTH["no_data"]
        assert no_data.high is not None
        last = self.slot_s(a, k - 1)
        raised = last + math.ceil(no_data.high * self.options.period) + 1
        self._alarm(a, no_data, round((raised - last) / self.options.period, 2), raised, self.slot_s(a, k + length),
                    0.0, rng)

    def _excursion(self, a: _Automate, k: int, above: int, rng: random.Random) -> None:
        tank = AUTOMATE_MEASURES[TANK]
        assert tank.high is not None
        high = round(tank.high / tank.step)
        peak = rng.randint(3, 7)  # steps above the limit
        values = []
        for i in range(above):
            rise = min(i + 1, peak, above - i)  # up, a plateau, back down: always above the limit
            values.append(step_value(high + rise, tank))
        back = step_value(high - 4, tank)  # back inside by more than the deadband: the alarm clears
        for i, v in enumerate(values):
            a.forced[k + i] = _float_text(v)
        a.forced[k + above] = a.forced[k + above + 1] = _float_text(back)
        self._alarm(a, tank, values[0], self.slot_s(a, k), self.slot_s(a, k + above), back, rng)

    def expected_rows(self) -> int:
        gap_rows = sum(k1 - k0 for a in self.automates for k0, k1 in a.gaps)
        return sum(a.count for a in self.automates) - gap_rows + sum(m.count for m in self.meters)

    def chunks(self) -> Iterator[tuple[int, int]]:
        """[t0, t1) time ranges of about CHUNK_ROWS rows, on whole hours (so no rollup bucket is split)."""
        rows_per_hour = 3600 * (len(self.automates) / self.options.period
                                + len(self.meters) / self.options.meter_period)
        hours = max(1, int(CHUNK_ROWS / max(rows_per_hour, 1)))
        t0 = self.start_s
        while t0 < self.end_s:
            t1 = min((t0 // 3600 + hours) * 3600, self.end_s)
            yield t0, t1
            t0 = t1


def _utc(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


def _slots(start: int, offset: int, period: int, t0: int, t1: int) -> range:
    """The slots k with t0 <= start + offset + k * period < t1."""
    first = start + offset
    return range(max(0, -((first - t0) // period)), max(0, -((first - t1) // period)))


# -- rows -------------------------------------------------------------------------------------------------

class _Writer:
    """Builds the VALUES text of each chunk."""

    def __init__(self, plan: _Plan, tsv: bool) -> None:
        """``tsv``: rows as LOAD DATA's tab-separated lines, else as INSERT's ``(…)`` tuples."""
        self.plan = plan
        self.tsv = tsv
        q, self.sep = ("", "\t") if tsv else ("'", ",")
        self.clock = _Clock(q)
        self.values = plan.values.rows(self.sep)
        self.meter_heads = plan.meter_table.heads if tsv else [h.replace("\t", ",") for h in plan.meter_table.heads]
        rng = random.Random(plan.options.seed + 1)
        # received_at / stored_at: a few hundred ms after the reading, within the same second.
        self.delays = []
        for _ in range(97):
            rx = rng.randint(120, 600)
            self.delays.append((f"{rx:03d}000{q}", f"{rx + rng.randint(15, 300):03d}000{q}"))

    def reading_rows(self, t0: int, t1: int) -> Iterator[str]:
        p = self.plan
        period, start = p.options.period, p.start_s
        table, size, mmss, delays, sep = self.values, p.values.size, self.clock.mmss, self.delays, self.sep
        tank_i = p.values.tank_index
        # (u,a,seq,'ts','rx','st',values) or u<TAB>a<TAB>seq<TAB>ts<TAB>rx<TAB>st<TAB>values
        fmt = ("{0}\t{1}\t{2}.000000\t{2}.{3}\t{2}.{4}\t{5}" if self.tsv
               else "({0},{1},{2}.000000',{2}.{3},{2}.{4},{5})")
        for a in p.automates:
            slots = _slots(start, a.offset, period, t0, t1)
            if not slots:
                continue
            for ka, kb in _without(slots, a.gaps):
                key, seq, first = a.key.replace(",", sep), a.seq, start + a.offset
                forced = {k: v for k, v in a.forced.items() if ka <= k < kb}
                hour, prefix = -1, ""
                for k in range(ka, kb):
                    s = first + k * period
                    if s // 3600 != hour:
                        hour = s // 3600
                        prefix = self.clock.hour(hour)
                    t = prefix + mmss[s - hour * 3600]
                    rx, st = delays[k % 97]
                    values = table[(s // period + a.shift) % size]
                    if forced and k in forced:
                        parts = values.split(sep)
                        parts[tank_i] = forced[k]
                        values = sep.join(parts)
                    yield fmt.format(key, seq, t, rx, st, values)
                    seq += 1
                a.seq = seq
                a.last_s = first + (kb - 1) * period

    def power_rows(self, t0: int, t1: int) -> Iterator[str]:
        p = self.plan
        period, start, tab = p.options.meter_period, p.start_s, p.meter_table
        mmss, delays, heads = self.clock.mmss, self.delays, self.meter_heads
        fmt = ("{0}\t{1}.000000\t{1}.{2}\t{1}.{3}\t1\t{4}\t{5}\t0e0\t{6}\t\\N\t0e0" if self.tsv
               else "({0},{1}.000000',{1}.{2},{1}.{3},1,{4},{5},0e0,{6},NULL,0e0)")
        for m in p.meters:
            slots = _slots(start, m.offset, period, t0, t1)
            if not slots:
                continue
            first, energy, mid = start + m.offset, m.energy, m.id if self.tsv else f"'{m.id}'"
            hour, prefix = -1, ""
            for k in slots:
                s = first + k * period
                if s // 3600 != hour:
                    hour = s // 3600
                    prefix = self.clock.hour(hour)
                t = prefix + mmss[s - hour * 3600]
                rx, st = delays[k % 97]
                i = (k + m.shift) % METER_TABLE
                energy += tab.increments[i]
                yield fmt.format(mid, t, rx, st, heads[i], _float_text(round(energy, 3)), tab.temps[i])
            m.energy = energy
            m.last_s = first + slots[-1] * period


def _without(slots: range, gaps: Sequence[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    """[k0, k1) runs of ``slots`` outside the gaps (sorted)."""
    k = slots.start
    for g0, g1 in gaps:
        if g1 <= k or g0 >= slots.stop:
            continue
        if g0 > k:
            yield k, g0
        k = max(k, g1)
    if k < slots.stop:
        yield k, slots.stop


# -- rollups ------------------------------------------------------------------------------------------------

def _bucket_sql(dialect: str, width: int) -> str:
    # (The epoch seconds as the migrations compute them: never in the session's time zone.)
    return f"({epoch_seconds(dialect, 'ts')} {'/' if dialect == 'sqlite' else 'DIV'} {width} * {width})"


def rollup_sql(dialect: str, kind: str, level: str) -> str:
    """``INSERT … SELECT … GROUP BY`` of one rollup table from its raw table, for the rows of one
    chunk (``{where}``: their id range, formatted in by the caller)."""
    keys: tuple[str, ...]
    if kind == "readings":
        table, keys, measures = orm.READING_ROLLUPS[level].__tablename__, ("unit_id", "automate_no"), AUTOMATE_MEASURES
    else:
        table, keys, measures = orm.POWER_ROLLUPS[level].__tablename__, ("meter_id",), METER_MEASURES
    width = orm.ROLLUP_LEVELS[level]
    columns, exprs = [*keys, "bucket"], [*keys, _bucket_sql(dialect, width) + " AS b"]
    for m in measures:
        columns += [f"{m}_n", f"{m}_min", f"{m}_max", f"{m}_sum"]
        exprs += [f"COUNT({m})", f"MIN({m})", f"MAX({m})", f"SUM({m})"]
    # ORDER BY NULL: MariaDB would otherwise sort the groups, for nothing.
    return (f"INSERT INTO {table} ({','.join(columns)}) SELECT {','.join(exprs)} FROM {kind} "
            f"WHERE {{where}} GROUP BY {','.join(keys)}, b{' ORDER BY NULL' if dialect != 'sqlite' else ''}")


# -- loading ----------------------------------------------------------------------------------------------

class _Loader:
    """Sends statements on one DBAPI connection of its own. On MariaDB, rows go as ``LOAD DATA LOCAL
    INFILE`` (about twice as fast as INSERT text: no SQL to parse per value) when the server allows it
    (``local_infile``, ON by default; our deployment and tests turn it off), else as INSERT text."""

    def __init__(self, engine: Engine, tmp_dir: str) -> None:
        self.dialect = engine.dialect.name
        self.engine = self.given = engine
        self.tsv = False
        if self.dialect != "sqlite":
            with engine.connect() as conn:
                self.tsv = bool(conn.exec_driver_sql("SELECT @@GLOBAL.local_infile").scalar())
            if self.tsv:
                # The client must opt in too; a connection of our own, not the pool's.
                self.engine = create_db_engine(engine.url.render_as_string(hide_password=False),
                                               connect_args={"local_infile": True}, poolclass=NullPool)
        self.conn = self.engine.raw_connection()
        self.cur = self.conn.cursor()
        self.file = os.path.join(tmp_dir, "rows.tsv")
        if self.dialect != "sqlite":
            # Bulk load of an empty range: the rows are new by construction (checked before).
            self.cur.execute("SET SESSION unique_checks=0, foreign_key_checks=0")

    def execute(self, sql: str) -> None:
        self.cur.execute(sql)

    def scalar(self, sql: str) -> Any:
        self.cur.execute(sql)
        row = self.cur.fetchone()
        assert row is not None  # an aggregate always answers one row
        return row[0]

    def load(self, table: str, columns: Sequence[str], text: str) -> None:
        """Tab-separated lines into ``table`` (``LOAD DATA LOCAL``; ``\\N`` is NULL)."""
        with open(self.file, "w", encoding="utf-8") as f:
            f.write(text)
        self.cur.execute(f"LOAD DATA LOCAL INFILE '{self.file}' INTO TABLE {table} CHARACTER SET utf8mb4 "
                         f"FIELDS TERMINATED BY '\\t' LINES TERMINATED BY '\\n' ({','.join(columns)})")
        done = getattr(self.cur, "_result", None)  # PyMySQL's result: LOAD DATA coerces bad values with a warning
        if done is not None and done.warning_count:
            raise RuntimeError(f"LOAD DATA into {table}: {self.cur.connection.show_warnings()[:3]}")

    def commit(self) -> None:
        self.conn.commit()

    def close(self) -> None:
        try:
            if self.dialect != "sqlite":
                self.cur.execute("SET SESSION unique_checks=1, foreign_key_checks=1")
            self.cur.close()
            self.conn.close()
        finally:
            if self.engine is not self.given:
                self.engine.dispose()


def _statements(head: str, rows: Iterator[str], size: int = STATEMENT_ROWS) -> Iterator[tuple[str, int]]:
    batch: list[str] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield head + ",".join(batch), len(batch)
            batch = []
    if batch:
        yield head + ",".join(batch), len(batch)


def _prefetch(items: Iterator[Any], depth: int = 4) -> Iterator[Any]:
    """``items``, produced by a thread ahead of the consumer."""
    queue: Queue[Any] = Queue(depth)
    done = object()
    failure: list[BaseException] = []
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                queue.put(item)
        except BaseException as exc:  # handed to the consumer, raised there
            failure.append(exc)
        finally:
            queue.put(done)

    thread = threading.Thread(target=produce, name="history-rows", daemon=True)
    thread.start()
    try:
        while (item := queue.get()) is not done:
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            while not queue.empty():
                queue.get_nowait()
            thread.join(0.05)
    if failure:
        raise failure[0]


def check_empty(session: Session) -> None:
    for model, what in ((orm.Reading, "readings"), (orm.PowerReading, "power readings")):
        if session.scalar(select(model.id).limit(1)) is not None:
            raise HistoryRefused(f"the database already holds {what}: history is only generated into a "
                                 "database without readings (use a new database, or restore an empty one)")


def generate(engine: Engine, options: HistoryOptions,
             progress: Callable[[int, int, float], None] | None = None) -> HistoryResult:
    """Load the history of ``options`` into ``engine``'s database (schema created if missing)."""
    init_schema(engine)
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        check_empty(session)
    t_start = time.perf_counter()
    plan = _Plan(options)
    expected = plan.expected_rows()
    start = _utc(plan.start_s)
    with sessions.begin() as session:
        queries.ensure_automates(session, {(a.unit, a.automate): PlantLayout.automate_type(a.unit, a.automate)
                                           for a in plan.automates}, start)
        queries.ensure_meters(session, [m.id for m in plan.meters], start)
    result = HistoryResult(gaps=sum(len(a.gaps) for a in plan.automates))
    with tempfile.TemporaryDirectory(prefix="plant-history-") as tmp:
        loader = _Loader(engine, tmp)
        try:
            result.method = "LOAD DATA LOCAL" if loader.tsv else "INSERT"
            _load(loader, plan, result, expected, t_start, progress)
        finally:
            loader.close()
    with sessions.begin() as session:
        _finish(session, plan, result)
    result.seconds = time.perf_counter() - t_start
    return result


def _load(loader: _Loader, plan: _Plan, result: HistoryResult, expected: int, t_start: float,
          progress: Callable[[int, int, float], None] | None) -> None:
    writer = _Writer(plan, loader.tsv)
    reading_head = f"INSERT INTO readings ({','.join(READING_COLUMNS)}) VALUES "
    power_head = f"INSERT INTO power_readings ({','.join(POWER_COLUMNS)}) VALUES "
    rollups = {(kind, level): rollup_sql(loader.dialect, kind, level)
               for kind in ("readings", "power_readings") for level in orm.ROLLUP_LEVELS}

    def max_ids() -> dict[str, int]:
        return {kind: int(loader.scalar(f"SELECT COALESCE(MAX(id), 0) FROM {kind}"))
                for kind in ("readings", "power_readings")}

    # A chunk's rows are the ids above the previous chunk's: its rollups read them in key order (a
    # range of the clustered index), not through the (source, ts) index, one lookup per row.
    done_ids = max_ids()

    def work() -> Iterator[tuple[str, str, int]]:
        # (table, text, rows) of a chunk: INSERT statements, or the whole chunk's lines for LOAD DATA;
        # then ("", "", 0) at its end.
        for t0, t1 in plan.chunks():
            for table, rows, head in (("readings", writer.reading_rows(t0, t1), reading_head),
                                      ("power_readings", writer.power_rows(t0, t1), power_head)):
                if loader.tsv:
                    lines = list(rows)
                    if lines:
                        yield table, "\n".join(lines) + "\n", len(lines)
                else:
                    for sql, n in _statements(head, rows):
                        yield table, sql, n
            yield "", "", 0

    last_report = time.perf_counter()
    # MariaDB: a chunk's rollups are computed on a second connection while the next chunk loads, so
    # the server works on two cores. (SQLite has one writer at a time.)
    worker = _RollupWorker(loader.engine) if loader.dialect != "sqlite" else None
    try:
        for table, text, n in _prefetch(work()):
            if table:
                t = time.perf_counter()
                if loader.tsv:
                    loader.load(table, READING_COLUMNS if table == "readings" else POWER_COLUMNS, text)
                else:
                    loader.execute(text)
                result.load_s += time.perf_counter() - t
                if table == "readings":
                    result.readings += n
                else:
                    result.power_readings += n
                continue
            new_ids = max_ids()
            statements = [template.format(where=f"id > {done_ids[kind]} AND id <= {new_ids[kind]}")
                          for (kind, _level), template in rollups.items() if new_ids[kind] > done_ids[kind]]
            done_ids = new_ids
            if worker is not None:
                loader.commit()  # the worker reads committed rows
                worker.submit(statements)
            else:
                t = time.perf_counter()
                for sql in statements:
                    loader.execute(sql)
                loader.commit()
                result.rollup_s += time.perf_counter() - t
            now = time.perf_counter()
            if progress is not None and now - last_report >= PROGRESS_EVERY_S:
                last_report = now
                progress(result.rows, expected, now - t_start)
    finally:
        if worker is not None:
            result.rollup_s += worker.close()


class _RollupWorker:
    """Runs each chunk's rollup statements on a connection of its own, in a thread (the driver waits
    on the socket without the GIL), one chunk behind the loader at most."""

    def __init__(self, engine: Engine) -> None:
        self.conn = engine.raw_connection()
        self.cur = self.conn.cursor()
        # A consistent read takes no locks: the loader's inserts after the range are never held up.
        self.cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        self.cur.execute("SET SESSION unique_checks=0, foreign_key_checks=0")
        self.queue: Queue[list[str] | None] = Queue(1)
        self.busy_s = 0.0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="history-rollups", daemon=True)
        self.thread.start()

    def submit(self, statements: list[str]) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(statements)

    def _run(self) -> None:
        while (statements := self.queue.get()) is not None:
            if self.error is not None:
                continue  # keep draining: the loader must never block on a dead worker
            t = time.perf_counter()
            try:
                for sql in statements:
                    self.cur.execute(sql)
                self.conn.commit()
            except BaseException as exc:  # raised in the loader's thread, at its next submit or close
                self.error = exc
            self.busy_s += time.perf_counter() - t

    def close(self) -> float:
        """Wait for the last chunk; the seconds spent on rollups."""
        self.queue.put(None)
        self.thread.join()
        try:
            self.cur.close()
            self.conn.close()
        finally:
            if self.error is not None:
                raise self.error
        return self.busy_s


def _finish(session: Session, plan: _Plan, result: HistoryResult) -> None:
    """What the bridge keeps beside the rows: settled sequences, each meter's newest sample, alarms."""
    now = datetime.now(UTC)
    states = {}
    for a in plan.automates:
        if a.last_s is None:
            continue
        last = _utc(a.last_s)
        # Every seq 0 … newest stored and settled: nothing ahead, no gap open, no boot id known.
        states[(a.unit, a.automate)] = SeqState(confirmed=a.seq - 1, newest=a.seq - 1, newest_ts=last, max_ts=last)
    queries.save_sequences(session, states, now)
    latest = [{"meter_id": m.id, "ts": _utc(m.last_s)} for m in plan.meters if m.last_s is not None]
    queries.upsert(session, orm.PowerReadingLatest.__table__, latest, ["meter_id"], ["ts"])
    for m in plan.meters:
        if m.last_s is not None:
            session.execute(update(orm.Meter).where(orm.Meter.id == m.id).values(last_seen=_utc(m.last_s)))
    if plan.alarms:
        session.execute(insert(orm.Alarm), plan.alarms)
    result.alarms = len(plan.alarms)


# -- command line ---------------------------------------------------------------------------------------

def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "generate-history", help="load a realistic plant history (days to years of readings) into an empty database",
        description="Load a realistic history into the database of DATABASE_URL (MariaDB or SQLite; the schema "
        "is created if missing): units, automates and meters (PLANT_UNITS, PLANT_AUTOMATES, PLANT_METERS / "
        "PLANT_METER_COUNT, or the options), one reading per automate every --period seconds with values inside "
        "the normal ranges (daily cycle, drift, noise), one power reading per meter every --meter-period "
        "seconds, a few tank temperature excursions with their alarms (cleared, most acknowledged), a few "
        "hour-long gaps with their no_data alarms, the bridge's sequences (automate_sequences), "
        "power_readings_latest, and the minute and hour rollups computed from the rows. A database that "
        "already holds readings is refused. Disk: a year of the default plant (5 x 10 automates, 2 meters) is "
        "about 33 M readings and 6 M power readings, plus rollups: plan for 15-20 GB on MariaDB. "
        "Exit status: 0 done, 1 refused or failed, 2 usage.")
    p.add_argument("--days", type=float, required=True, help="how much history, ending at --end")
    p.add_argument("--end", help="end of the history, ISO 8601 (default: now), e.g. 2026-11-21T10:00:00Z")
    p.add_argument("--units", type=int, help="production units (default: PLANT_UNITS or 5)")
    p.add_argument("--automates", type=int, help="automates per unit (default: PLANT_AUTOMATES or 10)")
    p.add_argument("--meters", type=int, help="meters (default: PLANT_METERS / PLANT_METER_COUNT or 2)")
    p.add_argument("--period", type=int, default=60, help="seconds between an automate's readings (60)")
    p.add_argument("--meter-period", type=int, default=10, help="seconds between a meter's readings (10)")
    p.add_argument("--seed", type=int, default=1, help="random seed: the same seed, the same values (1)")
    p.set_defaults(handler=cmd_generate_history)


def options_from_args(args: argparse.Namespace) -> HistoryOptions:
    env_layout = layout_from_env(os.environ)
    meters = env_layout.meters if args.meters is None else default_meter_ids(args.meters)
    layout = PlantLayout(units=env_layout.units if args.units is None else args.units,
                         automates=env_layout.automates if args.automates is None else args.automates,
                         meters=meters)
    if not args.days > 0:
        raise ValidationError("--days must be > 0")
    for name, value in (("--period", args.period), ("--meter-period", args.meter_period)):
        if not 1 <= value <= 3600:
            raise ValidationError(f"{name} must be 1..3600 seconds")
    end = datetime.now(UTC)
    if args.end:
        try:
            end = datetime.fromisoformat(args.end)
        except ValueError:
            raise ValidationError(f"--end {args.end!r} is not an ISO 8601 time") from None
        end = end.replace(tzinfo=UTC) if end.tzinfo is None else end.astimezone(UTC)
    return HistoryOptions(layout, args.days, end, args.period, args.meter_period, args.seed)


def print_progress(rows: int, expected: int, elapsed: float) -> None:
    print(f"  {rows:>12,} rows  {rows / elapsed:>9,.0f} rows/s  {100 * rows / max(expected, 1):5.1f} %", flush=True)


def cmd_generate_history(args: argparse.Namespace) -> int:
    options = options_from_args(args)
    url = database_url_from_env(os.environ)
    engine = create_db_engine(url)
    lay = options.layout
    print(f"generating {options.days:g} days of history ending {options.end:%Y-%m-%d %H:%M} UTC into "
          f"{describe(url)}: {lay.units} units x {lay.automates} automates every {options.period} s, "
          f"{len(lay.meters)} meters every {options.meter_period} s", flush=True)
    try:
        result = generate(engine, options, print_progress)
    except HistoryRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(f"done: {result.readings:,} readings + {result.power_readings:,} power readings = {result.rows:,} rows "
          f"in {result.seconds:.1f} s ({result.rate:,.0f} rows/s; {result.method} {result.load_s:.1f} s, rollups "
          f"{result.rollup_s:.1f} s); {result.alarms} alarms, {result.gaps} gaps", flush=True)
    return 0


def load_history(url: str, days: float, *, env: dict[str, str] | None = None) -> HistoryResult:
    """``days`` of history ending now, with the layout of ``env`` (the demo's)."""
    layout = layout_from_env(os.environ if env is None else env)
    engine = create_db_engine(url)
    try:
        return generate(engine, HistoryOptions(layout, days, datetime.now(UTC)), print_progress)
    finally:
        engine.dispose()


