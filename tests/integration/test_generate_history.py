"""``python -m store generate-history`` on MariaDB and SQLite, through the real command line: the rows
it promises (one per period, minus the gaps), values in range, rollups equal to a GROUP BY over the
raw rows, alarms that match the values, settled sequences, and a refusal to load twice."""

from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from plantmodel.measures import AUTOMATE_MEASURES, METER_MEASURES, SOURCE_HEALTH
from store import models as orm
from store import queries
from store.db import create_db_engine, make_sessionmaker
from tests.processes import REPO

pytestmark = pytest.mark.integration

END = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
DAYS, PERIOD, METER_PERIOD, GAP = 2, 60, 30, timedelta(hours=1)
ARGS = ["--days", str(DAYS), "--units", "2", "--automates", "2", "--meters", "2", "--meter-period", str(METER_PERIOD),
        "--end", "2026-11-21T10:00:00Z"]
AUTOMATES = [(1, 1), (1, 2), (2, 1), (2, 2)]


def run_cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url}
    return subprocess.run([sys.executable, "-m", "store", "generate-history", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


@dataclass
class History:
    url: str
    engine: Engine
    output: str
    readings: dict[tuple[int, int], list[Any]]  # per automate, by ts
    power: dict[str, list[Any]]  # per meter, by ts


@pytest.fixture(scope="module", params=["mariadb", "sqlite"])
def history(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Two days of a 2 x 2 automates, 2 meters plant, generated once per database."""
    if request.param == "mariadb":
        url = request.getfixturevalue("mariadb").create_database()
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('history') / 'plant.db'}"
    proc = run_cli(url, *ARGS)
    assert proc.returncode == 0, proc.stderr
    engine = create_db_engine(url)
    with make_sessionmaker(engine)() as session:
        readings: dict[tuple[int, int], list[Any]] = defaultdict(list)
        # Core rows (named tuples): far quicker to read and aggregate than ORM objects
        readings_table, power_table = orm.Reading.__table__, orm.PowerReading.__table__
        for r in session.execute(select(readings_table).order_by(readings_table.c.ts)):
            readings[(r.unit_id, r.automate_no)].append(r)
        power: dict[str, list[Any]] = defaultdict(list)
        for p in session.execute(select(power_table).order_by(power_table.c.ts)):
            power[p.meter_id].append(p)
    yield History(url, engine, proc.stdout, dict(readings), dict(power))
    engine.dispose()


def test_rows_one_per_period_minus_the_gaps(history: History) -> None:
    assert "rows/s" in history.output
    assert sorted(history.readings) == AUTOMATES
    start = END - timedelta(days=DAYS)
    missing_total = 0
    for rows in history.readings.values():
        first, last = rows[0].ts, rows[-1].ts
        assert start <= first < start + timedelta(seconds=PERIOD)
        assert END - timedelta(seconds=PERIOD) <= last < END
        steps = [(b.ts - a.ts).total_seconds() for a, b in itertools.pairwise(rows)]
        # every period, except a silence of exactly an hour now and then
        assert set(steps) <= {PERIOD, PERIOD + GAP.total_seconds()}
        missing = sum(1 for s in steps if s > PERIOD) * int(GAP.total_seconds() / PERIOD)
        assert len(rows) == (last - first).total_seconds() / PERIOD + 1 - missing
        missing_total += missing
    assert missing_total > 0, "no gap at all"
    assert len(history.power) == 2  # meters have no gaps
    for rows in history.power.values():
        assert len(rows) == DAYS * 86400 // METER_PERIOD
        assert {(b.ts - a.ts).total_seconds() for a, b in itertools.pairwise(rows)} == {METER_PERIOD}


def test_values_in_range_on_their_step(history: History) -> None:
    excursions = 0
    for rows in history.readings.values():
        for r in rows:
            assert r.ts < r.received_at < r.stored_at < r.ts + timedelta(seconds=1)
            for name, m in AUTOMATE_MEASURES.items():
                v = getattr(r, name)
                assert m.plausible_min <= v <= m.plausible_max, (name, v)
                assert abs(v / m.step - round(v / m.step)) < 1e-6, (name, v)  # on the probe's step
                if m.low is not None and m.high is not None and not (m.low <= v <= m.high):
                    assert name == "tank_temp_c" and v > m.high, (name, v)  # only the planted excursions
                    excursions += 1
    assert excursions > 0
    for rows in history.power.values():
        energy = [p.energy_wh for p in rows]
        assert energy == sorted(energy), "the energy counter went back"
        for p in rows:
            for name, m in METER_MEASURES.items():
                v = getattr(p, name)
                assert m.plausible_min <= v <= m.plausible_max, (name, v)
            assert 220 < p.voltage < 240 and 49.8 < p.freq < 50.2 and 0 <= p.pf <= 1
            assert 0 <= p.apower < 3500 and p.output is True


def _group(rows_by_key: dict[Any, list[Any]], measures: Any, width: int) -> dict[tuple[Any, int], dict[str, Any]]:
    """{(key, bucket): {measure: (n, min, max, sum)}}, computed here from the raw rows (sorted by ts)."""
    out: dict[tuple[Any, int], dict[str, Any]] = {}
    for key, rows in rows_by_key.items():
        for bucket, group in itertools.groupby(rows, key=lambda r: int(r.ts.timestamp()) // width * width):
            members = list(group)
            agg = out[(key, bucket)] = {}
            for m in measures:
                values = [v for v in (getattr(r, m) for r in members) if v is not None]
                agg[m] = (len(values), min(values), max(values), sum(values)) if values else (0, None, None, None)
    return out


@pytest.mark.parametrize("level", list(orm.ROLLUP_LEVELS))
def test_rollups_equal_a_group_by_over_the_rows(history: History, level: str) -> None:
    width = orm.ROLLUP_LEVELS[level]
    for model, rows, measures, key_of in (
            (orm.READING_ROLLUPS[level], history.readings, AUTOMATE_MEASURES, lambda r: (r.unit_id, r.automate_no)),
            (orm.POWER_ROLLUPS[level], history.power, METER_MEASURES, lambda r: r.meter_id)):
        expected = _group(rows, measures, width)
        with make_sessionmaker(history.engine)() as session:
            stored = {(key_of(r), r.bucket): r for r in session.execute(select(model.__table__))}
        assert stored.keys() == expected.keys(), model.__tablename__
        for k, agg in expected.items():
            row = stored[k]
            for m, (n, lo, hi, total) in agg.items():
                assert getattr(row, f"{m}_n") == n, (k, m)
                assert getattr(row, f"{m}_min") == lo and getattr(row, f"{m}_max") == hi, (k, m)
                # (a sum's last bit depends on the order of addition, which SQL does not fix)
                stored_sum = getattr(row, f"{m}_sum")
                assert (stored_sum is None and total is None) or math.isclose(stored_sum, total, rel_tol=1e-12), (k, m)


def test_alarms_match_the_values(history: History) -> None:
    with make_sessionmaker(history.engine)() as session:
        alarms = list(session.scalars(select(orm.Alarm)))
    tank = AUTOMATE_MEASURES["tank_temp_c"]
    assert {a.measure for a in alarms} == {"tank_temp_c", "no_data"}
    assert any(a.acknowledged_at is not None and a.ack_note for a in alarms)
    for a in alarms:
        assert a.state == "cleared" and a.raised_at < a.cleared_at
        assert a.source == f"units/{a.unit_id}/automates/{a.automate_no}"
        assert a.bound == "high" and a.value > a.limit_value  # outside the normal range
        assert a.acknowledged_at is None or a.acknowledged_at >= a.cleared_at
        rows = history.readings[(a.unit_id, a.automate_no)]
        if a.measure == "tank_temp_c":
            assert a.limit_value == tank.high and a.severity == tank.severity
            during = [r for r in rows if a.raised_at <= r.ts < a.cleared_at]
            assert len(during) >= 20 and during[0].tank_temp_c == a.value
            assert all(r.tank_temp_c > tank.high for r in during)
            clearing = next(r for r in rows if r.ts == a.cleared_at)
            assert clearing.tank_temp_c == a.last_value <= tank.high - tank.deadband
        else:
            assert a.limit_value == SOURCE_HEALTH["no_data"].high
            # silent from before the alarm until it cleared, which the next reading did
            assert not [r for r in rows if a.raised_at - timedelta(seconds=150) < r.ts < a.cleared_at]
            assert any(r.ts == a.cleared_at for r in rows)


def test_sequences_and_latest_as_the_bridge_keeps_them(history: History) -> None:
    with make_sessionmaker(history.engine)() as session:
        seqs = {(s.unit_id, s.automate_no): s for s in session.scalars(select(orm.AutomateSequence))}
        latest_power = {p.meter_id: p.ts for p in session.scalars(select(orm.PowerReadingLatest))}
        latest = queries.latest_readings(session)  # joins on newest_ts: the stored times must match exactly
        meters = {m.id: m for m in session.scalars(select(orm.Meter))}
        automates = {(a.unit_id, a.automate_no) for a in session.scalars(select(orm.Automate))}
    assert automates == set(AUTOMATES)
    assert seqs.keys() == set(AUTOMATES)
    for key, rows in history.readings.items():
        assert [r.seq for r in rows] == list(range(len(rows)))
        s = seqs[key]
        assert s.confirmed == s.newest == len(rows) - 1
        assert s.newest_ts == s.max_ts == rows[-1].ts
        assert s.ahead in ("", "[]") and s.gap_since is None and s.boot is None
    assert [(r.unit_id, r.automate_no, r.seq) for r in latest] == [
        (*k, len(history.readings[k]) - 1) for k in AUTOMATES]
    assert latest_power == {m: rows[-1].ts for m, rows in history.power.items()}
    assert {m: meters[m].last_seen for m in meters} == latest_power


def test_a_second_run_is_refused(history: History) -> None:
    before = sum(len(rows) for rows in history.readings.values())
    proc = run_cli(history.url, *ARGS)
    assert proc.returncode == 1
    assert "already holds readings" in proc.stderr
    with make_sessionmaker(history.engine)() as session:
        assert len(list(session.scalars(select(orm.Reading.id)))) == before


def test_usage_errors(tmp_path: Path) -> None:
    proc = run_cli(f"sqlite:///{tmp_path / 'plant.db'}", "--days", "0")
    assert proc.returncode == 2 and "--days" in proc.stderr
