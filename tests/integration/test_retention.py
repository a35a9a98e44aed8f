"""Retention (``python -m store retention``, store/retention.py) on MariaDB and SQLite: exactly the
rows past their table's retention go (raw readings, rollups, rejected messages), in batches; the
rollups survive their raw rows; alarms and the audit trail are never touched; a dry run deletes
nothing; a purge and the bridge's inserts run side by side; a killed purge leaves a database the
next run finishes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.engine import Engine

from plantmodel.measures import AUTOMATE_MEASURES
from store import models as orm
from store.db import create_db_engine, init_schema, make_sessionmaker
from store.retention import RetentionSettings, plan, purge
from tests.processes import REPO

pytestmark = pytest.mark.integration

DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)
# In a subprocess (the real command line, its own clock), rows stay this far from their cutoff.
CLI_MARGIN = timedelta(minutes=10)
AUTOMATES = [(1, 1), (1, 2), (2, 1)]
METERS = ["shellypro1pm-aaaaaaaaaaaa", "shellypro1pm-bbbbbbbbbbbb"]
RAW_TABLES = ("readings", "power_readings")
ROLLUP_TABLES = ("readings_minute", "readings_hour", "power_readings_minute", "power_readings_hour")
ALL_TABLES = (*RAW_TABLES, *ROLLUP_TABLES, "rejected_messages")
# How many old rows per source: more than one batch of 7 for some, none for others.
OLD_READINGS = {(1, 1): 20, (1, 2): 3, (2, 1): 0}
OLD_SAMPLES = {METERS[0]: 15, METERS[1]: 0}
# Buckets wholly older than 10 years: 9 for the first source, 2 for each other.
ROLLUPS_PURGED = {"readings_minute": 13, "readings_hour": 13, "power_readings_minute": 11, "power_readings_hour": 11}


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_db_engine(database_url)
    init_schema(engine)
    yield engine
    engine.dispose()


def reading_row(unit: int, automate: int, seq: int, ts: datetime) -> dict[str, Any]:
    return {"unit_id": unit, "automate_no": automate, "seq": seq, "ts": ts, "received_at": ts, "stored_at": ts,
            **{m: 1.0 for m in AUTOMATE_MEASURES}}


def rollup_row(model: type[orm.Base], key: dict[str, Any], bucket: int) -> dict[str, Any]:
    row: dict[str, Any] = {**key, "bucket": bucket}
    for col in model.__table__.columns:
        if col.name not in row:
            row[col.name] = 1 if col.name.endswith("_n") else 2.5
    return row


def epoch(t: datetime) -> int:
    return int(t.timestamp())


def now_s() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def seed(engine: Engine, now: datetime, margin: timedelta = SECOND) -> dict[str, set[Any]]:
    """Old and young rows in every purged table (``margin`` before / after its cutoff at ``now``),
    plus alarms, audit entries and a threshold from long ago; returns, per table, the keys that
    must survive a purge at ``now`` with the default settings."""
    keep: dict[str, set[Any]] = {t: set() for t in ALL_TABLES}
    raw_cut, rollup_cut, rejected_cut = now - 730 * DAY, now - 3650 * DAY, now - 90 * DAY
    with make_sessionmaker(engine).begin() as s:
        s.execute(insert(orm.Unit), [{"id": u, "created_at": now} for u in (1, 2)])
        s.execute(insert(orm.Automate), [{"unit_id": u, "automate_no": a, "type": "0x0000BA27", "created_at": now}
                                         for u, a in AUTOMATES])
        s.execute(insert(orm.Meter), [{"id": m, "first_seen": now, "last_seen": now} for m in METERS])
        readings, samples, rejected = [], [], []
        for (u, a), old in OLD_READINGS.items():
            for i in range(old):
                readings.append(reading_row(u, a, i, raw_cut - margin - timedelta(minutes=i)))
            # Younger than the cutoff, by a second to a day: kept.
            for i, ts in enumerate([raw_cut + margin, now - 400 * DAY, now - DAY]):
                readings.append(reading_row(u, a, 1000 + i, ts))
                keep["readings"].add((u, a, ts))
        for m, old in OLD_SAMPLES.items():
            for i in range(old):
                samples.append({"meter_id": m, "ts": raw_cut - margin - timedelta(minutes=i), "received_at": now,
                                "apower": 10.0})
            for ts in (raw_cut + margin, now - DAY):
                samples.append({"meter_id": m, "ts": ts, "received_at": now, "apower": 20.0})
                keep["power_readings"].add((m, ts))
        for i in range(12):
            rejected.append({"received_at": rejected_cut - margin - timedelta(minutes=i), "topic": "plant/x",
                             "payload": "old", "payload_bytes": 3, "reason": "bad"})
        for i in range(3):
            ts = rejected_cut + margin + timedelta(minutes=i)
            rejected.append({"received_at": ts, "topic": "plant/x", "payload": "new", "payload_bytes": 3,
                             "reason": "bad"})
            keep["rejected_messages"].add(ts)
        s.execute(insert(orm.Reading), readings)
        s.execute(insert(orm.PowerReading), samples)
        s.execute(insert(orm.RejectedMessage), rejected)
        for level, width in orm.ROLLUP_LEVELS.items():
            for rollups, keys in ((orm.READING_ROLLUPS, [{"unit_id": u, "automate_no": a} for u, a in AUTOMATES]),
                                  (orm.POWER_ROLLUPS, [{"meter_id": m} for m in METERS])):
                model = rollups[level]
                # Starts before the cutoff (with a margin of a second), ends after it: kept.
                edge = epoch(rollup_cut + margin) // width * width
                last_old = epoch(rollup_cut - margin) // width * width - width  # ends before the cutoff
                rows = []
                for n, key in enumerate(keys):
                    for i in range(9 if n == 0 else 2):  # buckets wholly older than 10 years: purged
                        rows.append(rollup_row(model, key, last_old - width * i))
                    # Kept: the edge bucket, and buckets whose raw rows are past their retention.
                    for bucket in (edge, epoch(now - 3000 * DAY) // width * width,
                                   epoch(raw_cut - 10 * DAY) // width * width, epoch(now - DAY) // width * width):
                        rows.append(rollup_row(model, key, bucket))
                        keep[model.__tablename__].add((*key.values(), bucket))
                s.execute(insert(model), rows)
        s.add_all([
            orm.Alarm(source="units/1/automates/1", unit_id=1, automate_no=1, measure="ph", bound="high",
                      severity="warning", state="cleared", value=8.0, limit_value=7.5, last_value=7.0,
                      raised_at=now - 5000 * DAY, cleared_at=now - 4999 * DAY),
            orm.AuditEntry(at=now - 5000 * DAY, actor="zoë", action="login.ok", details="{}", prev_hash="0" * 64,
                           hash="1" * 64),
            orm.Threshold(scope="*", measure="ph", low=6.0, high=7.5, deadband=0.1, severity="warning",
                          updated_at=now - 5000 * DAY, updated_by="admin"),
        ])
    return keep


def stored(engine: Engine) -> dict[str, set[Any]]:
    with make_sessionmaker(engine)() as s:
        out: dict[str, set[Any]] = {
            "readings": set(s.execute(select(orm.Reading.unit_id, orm.Reading.automate_no, orm.Reading.ts)).all()),
            "power_readings": set(s.execute(select(orm.PowerReading.meter_id, orm.PowerReading.ts)).all()),
            "rejected_messages": set(s.scalars(select(orm.RejectedMessage.received_at)).all()),
        }
        for rollups in (orm.READING_ROLLUPS, orm.POWER_ROLLUPS):
            for model in rollups.values():
                table = model.__table__
                out[table.name] = set(s.execute(select(*table.primary_key.columns)).all())
        return out


def counts(engine: Engine) -> dict[str, int]:
    tables = {t.name: t for t in orm.Base.metadata.sorted_tables}
    with engine.connect() as conn:
        return {name: conn.scalar(select(func.count()).select_from(tables[name])) or 0
                for name in (*ALL_TABLES, "alarms", "audit_log", "thresholds", "automates", "meters")}


def test_purge_deletes_exactly_what_is_past_its_retention_in_batches(engine: Engine) -> None:
    now = now_s()
    keep = seed(engine, now)
    before = counts(engine)
    seen: list[tuple[str, int]] = []
    result = purge(make_sessionmaker(engine), RetentionSettings(batch=7), now,
                   progress=lambda table, n: seen.append((table, n)), pause=0)
    assert stored(engine) == keep  # every young row is there, every old one gone
    after = counts(engine)
    assert {t: before[t] - after[t] for t in ALL_TABLES} == result.deleted
    assert result.deleted["readings"] == sum(OLD_READINGS.values()) == 23
    assert result.deleted["power_readings"] == 15 and result.deleted["rejected_messages"] == 12
    assert {t: result.deleted[t] for t in ROLLUP_TABLES} == ROLLUPS_PURGED
    assert not result.stopped
    # Batches of 7: 20 rows of automate (1, 1) took three, each reported as it went.
    assert [n for t, n in seen if t == "readings"][:3] == [7, 14, 20]
    assert [n for t, n in seen if t == "readings"][-1] == 23
    # Never purged, however old.
    assert {t: after[t] for t in ("alarms", "audit_log", "thresholds", "automates", "meters")} == {
        "alarms": 1, "audit_log": 1, "thresholds": 1, "automates": 3, "meters": 2}
    again = purge(engine, RetentionSettings(batch=7), now, pause=0)
    assert again.total == 0 and stored(engine) == keep


def test_a_shorter_raw_retention_leaves_the_rollups_alone(engine: Engine) -> None:
    now = now_s()
    keep = seed(engine, now)
    result = purge(engine, RetentionSettings(raw_days=1, batch=7), now, pause=0)
    left = stored(engine)
    assert all(ts >= now - DAY for _, _, ts in left["readings"]) and len(left["readings"]) == 3
    assert result.deleted["readings"] == sum(OLD_READINGS.values()) + 2 * len(AUTOMATES)
    assert {t: left[t] for t in ROLLUP_TABLES} == {t: keep[t] for t in ROLLUP_TABLES}


def test_plan_and_dry_run_count_without_deleting(engine: Engine, database_url: str) -> None:
    now = now_s()
    seed(engine, now, CLI_MARGIN)
    before = stored(engine)
    with make_sessionmaker(engine)() as s:
        planned = {p.table: p for p in plan(s, RetentionSettings(), now)}
    assert {t: p.count for t, p in planned.items()} == {
        "readings": 23, "power_readings": 15, "rejected_messages": 12, **ROLLUPS_PURGED}
    assert planned["readings"].cutoff == now - 730 * DAY
    assert planned["readings"].oldest == now - 730 * DAY - CLI_MARGIN - timedelta(minutes=19)
    assert planned["readings_minute"].cutoff == now - 3650 * DAY

    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-m", "store", "retention", "--dry-run"], env=env, cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = {line.split()[0]: line.split() for line in out.stdout.splitlines() if line.strip()}
    assert "dry run, nothing deleted" in out.stdout
    for table, p in planned.items():
        # The CLI's clock is a little later than ours: the same rows are past their cutoff.
        assert lines[table][1] == str(p.count), out.stdout
        assert lines[table][2] == (now - {"rejected_messages": 90, "readings": 730, "power_readings": 730}.get(
            table, 3650) * DAY).strftime("%Y-%m-%d"), out.stdout
    assert "total: 98 row(s) would be purged" in out.stdout
    assert stored(engine) == before


def test_a_real_run_prints_a_summary(engine: Engine, database_url: str) -> None:
    keep = seed(engine, now_s(), CLI_MARGIN)
    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(REPO), "RETENTION_BATCH": "5"}
    out = subprocess.run([sys.executable, "-m", "store", "retention", "--pause", "0"], env=env, cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = {line.split()[0]: line.split() for line in out.stdout.splitlines() if line.strip()}
    assert lines["readings"][1] == "23" and lines["rejected_messages"][1] == "12"
    assert "retention done: 98 row(s) deleted" in out.stdout
    assert stored(engine) == keep
    bad = subprocess.run([sys.executable, "-m", "store", "retention"], env={**env, "RETENTION_RAW_DAYS": "0"},
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "RETENTION_RAW_DAYS=0 must be >= 1" in bad.stderr


def test_purge_and_inserts_run_side_by_side(engine: Engine) -> None:
    """The bridge keeps storing new readings of the very automate being purged: both finish, nothing
    new is lost, nothing old is left."""
    now = now_s()
    seed(engine, now)
    old = [reading_row(1, 2, 10_000 + i, now - 800 * DAY - timedelta(seconds=i)) for i in range(400)]
    with make_sessionmaker(engine).begin() as s:
        s.execute(insert(orm.Reading), old)
    new_count = 150
    errors: list[BaseException] = []

    def bridge() -> None:
        try:
            for i in range(new_count):  # one short transaction per reading, as a steady bridge
                with make_sessionmaker(engine).begin() as s:
                    s.execute(insert(orm.Reading), [reading_row(1, 2, 20_000 + i, now + timedelta(seconds=i))])
        except BaseException as exc:  # reported in the main thread
            errors.append(exc)

    writer = threading.Thread(target=bridge)
    writer.start()
    result = purge(engine, RetentionSettings(batch=7), now, pause=0.001)
    writer.join(timeout=120)
    assert not writer.is_alive() and errors == []
    assert result.deleted["readings"] == sum(OLD_READINGS.values()) + 400
    with make_sessionmaker(engine)() as s:
        left = s.scalars(select(orm.Reading.ts).where(orm.Reading.unit_id == 1, orm.Reading.automate_no == 2)).all()
    assert len([ts for ts in left if ts >= now]) == new_count
    assert min(left) > now - 730 * DAY


def test_a_stopped_or_killed_purge_leaves_whole_batches_and_the_next_run_finishes(engine: Engine,
                                                                                  database_url: str) -> None:
    now = now_s()
    keep = seed(engine, now, CLI_MARGIN)
    stop = threading.Event()
    stopped = purge(engine, RetentionSettings(batch=7), now, pause=0,
                    progress=lambda table, n: stop.set() if n >= 14 else None, stop=stop)
    assert stopped.stopped and stopped.deleted == {"readings": 14}
    assert len(stored(engine)["readings"]) == len(keep["readings"]) + 23 - 14

    # SIGKILL in the middle of a slow run (batches of 2, a pause between them).
    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(REPO), "RETENTION_BATCH": "2"}
    proc = subprocess.Popen([sys.executable, "-m", "store", "retention", "--pause", "0.3"], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while len(stored(engine)["readings"]) > len(keep["readings"]) + 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        running = proc.poll() is None
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert running  # killed in the middle, not after it was done
    left = stored(engine)
    # Whole batches committed before the kill, each on its own: some old rows gone, some still there.
    assert keep["readings"] < left["readings"] and len(left["readings"]) < len(keep["readings"]) + 9
    assert all(keep[t] <= left[t] for t in ALL_TABLES)  # nothing young touched, whatever the moment
    finished = purge(engine, RetentionSettings(batch=7), now, pause=0)
    assert stored(engine) == keep
    assert finished.deleted["readings"] == len(left["readings"]) - len(keep["readings"])
