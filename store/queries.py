"""Queries shared by the bridge and the web UI. Every function takes a Session and leaves the
transaction to its caller (``with sessionmaker.begin() as session: ...``)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    FromClause,
    Table,
    TextClause,
    and_,
    case,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from plantmodel.jsonutil import dumps
from plantmodel.measures import AUTOMATE_MEASURES, METER_MEASURES
from plantmodel.readings import Reading, format_ts
from plantmodel.sequence import Key, SeqState
from plantmodel.shelly import PowerSample
from plantmodel.sources import AutomateSource, MeterSource, Source, parse_source
from plantmodel.thresholds import Alarm, Threshold, default_thresholds
from store import bulk
from store import models as orm
from store.rollups import POWER as ROLLUP_POWER
from store.rollups import READINGS as ROLLUP_READINGS
from store.rollups import add as add_to_rollups

REJECTED_PAYLOAD_MAX = 2048
REJECTED_TOPIC_MAX = 512
REJECTED_REASON_MAX = 512


def insert_ignoring_duplicates(session: Session, table: FromClause, rows: Sequence[dict[str, Any]],
                               key: Sequence[str]) -> None:
    """Batched INSERT that skips rows whose unique ``key`` already exists (idempotent writes).

    Not ``INSERT IGNORE``: that would also turn foreign-key and data errors into warnings.
    """
    _insert(session, table, rows, key, ())


def upsert(session: Session, table: FromClause, rows: Sequence[dict[str, Any]], key: Sequence[str],
           columns: Sequence[str]) -> None:
    """Batched INSERT that overwrites ``columns`` of a row whose unique ``key`` exists."""
    _insert(session, table, rows, key, columns)


def insert_skipping_existing(session: Session, table: FromClause, rows: Sequence[dict[str, Any]],
                             key: Sequence[str]) -> int:
    """INSERT that skips rows whose unique ``key`` exists, for an account without UPDATE on the
    inserted columns (``insert_ignoring_duplicates``' ON DUPLICATE KEY UPDATE needs it): MariaDB's
    INSERT IGNORE, SQLite's ON CONFLICT DO NOTHING. Only where IGNORE can skip nothing but a
    duplicate: a table without foreign keys, values validated first. Returns the rows inserted."""
    if not rows:
        return 0
    table = cast(Table, table)
    if _is_mariadb(session):
        stmt: Any = mysql.insert(table).prefix_with("IGNORE")
    else:
        stmt = sqlite.insert(table).on_conflict_do_nothing(index_elements=list(key))
    return int(cast(CursorResult[Any], session.execute(stmt, list(rows))).rowcount)


def _is_mariadb(session: Session) -> bool:
    return session.get_bind().dialect.name in ("mysql", "mariadb")


def _insert(session: Session, table: FromClause, rows: Sequence[dict[str, Any]], key: Sequence[str],
            columns: Sequence[str]) -> None:
    if not rows:
        return
    table = cast(Table, table)  # a mapped class's __table__ is typed as its FromClause
    dialect = session.get_bind().dialect.name
    if dialect in ("mysql", "mariadb"):
        stmt: Any = mysql.insert(table)
        first_key = table.c[key[0]]
        stmt = stmt.on_duplicate_key_update(
            {c: stmt.inserted[c] for c in columns} if columns else {first_key.name: first_key})  # no-op
    elif dialect == "sqlite":
        stmt = sqlite.insert(table)
        stmt = (stmt.on_conflict_do_update(index_elements=list(key), set_={c: stmt.excluded[c] for c in columns})
                if columns else stmt.on_conflict_do_nothing(index_elements=list(key)))
    else:  # pragma: no cover - only MariaDB and SQLite are supported
        raise NotImplementedError(dialect)
    session.execute(stmt, list(rows))


# -- devices ----------------------------------------------------------------------------------------

def ensure_automates(session: Session, automates: dict[tuple[int, int], str], now: datetime) -> None:
    """Create unknown units and automates ((unit, automate) -> type) before their readings."""
    units = sorted({u for u, _ in automates})
    insert_ignoring_duplicates(session, orm.Unit.__table__, [{"id": u, "created_at": now} for u in units],
                               ["id"])
    insert_ignoring_duplicates(
        session, orm.Automate.__table__,
        # (in key order: two bridges creating the same rows then wait for each other, never deadlock)
        [{"unit_id": u, "automate_no": a, "type": t, "created_at": now} for (u, a), t in sorted(automates.items())],
        ["unit_id", "automate_no"],
    )


def ensure_meters(session: Session, meters: Iterable[str], now: datetime) -> None:
    ids = sorted(set(meters))
    if not ids:
        return
    insert_ignoring_duplicates(session, orm.Meter.__table__,
                               [{"id": m, "first_seen": now, "last_seen": now} for m in ids], ["id"])
    session.execute(update(orm.Meter).where(orm.Meter.id.in_(ids)).values(last_seen=now))


def insert_readings(session: Session, readings: Sequence[tuple[Reading, datetime]],
                    stored_at: datetime | None = None, *, known: set[tuple[int, int]] | None = None,
                    new_only: bool = False, rollups: bool = True) -> None:
    """Store readings (with their receive time, and ``stored_at``: the time of this write); a
    reading already stored is skipped, or with ``new_only`` refused (IntegrityError: the caller
    believed none was stored). ``known``: automates known to exist (no upsert for them).

    Each reading inserted is added, once, to the minute and hour rollups (:mod:`store.rollups`) in
    the same transaction; ``rollups=False`` leaves them out (only for benchmarks of that upkeep)."""
    if not readings:
        return
    types = {(r.unit, r.automate): r.type for r, _ in readings}
    if known is not None:
        types = {k: t for k, t in types.items() if k not in known}
    if types:
        ensure_automates(session, types, min(t for _, t in readings))
    if any(r.seq is None for r, _ in readings):  # the bridge numbers a legacy sender's readings first
        raise ValueError("a reading without a seq cannot be stored")
    if not new_only:
        r_ = orm.Reading
        readings = _unstored(session, r_, (r_.unit_id, r_.automate_no), r_.ts,
                             _first_of_each(((r.unit, r.automate, r.ts), (r, t)) for r, t in readings))
        if not readings:
            return
    # From here on every reading is new: a plain INSERT (a duplicate raises, it is never counted twice).
    values = [[getattr(r, m) for m in AUTOMATE_MEASURES] for r, _ in readings]
    if _is_mariadb(session):
        # The hot path of the bridge: SQL text built in one go (see store.bulk).
        bulk.insert_rows(session, f"INSERT INTO readings (unit_id,automate_no,seq,ts,received_at,stored_at,"
                                  f"{','.join(AUTOMATE_MEASURES)})",
                         bulk.reading_rows([(r.unit, r.automate, r.seq or 0, r.ts, t, stored_at, v)
                                            for (r, t), v in zip(readings, values, strict=True)]))
    else:
        session.execute(insert(orm.Reading), [
            {"unit_id": r.unit, "automate_no": r.automate, "seq": r.seq, "ts": r.ts, "received_at": t,
             "stored_at": stored_at, **dict(zip(AUTOMATE_MEASURES, v, strict=True))}
            for (r, t), v in zip(readings, values, strict=True)])
    if rollups:
        add_to_rollups(session, ROLLUP_READINGS, [((r.unit, r.automate), r.ts, v)
                                                  for (r, _), v in zip(readings, values, strict=True)])


def insert_power_samples(session: Session, samples: Sequence[tuple[PowerSample, datetime]],
                         stored_at: datetime | None = None, *, new_only: bool = False, rollups: bool = True) -> None:
    """Store power samples; one already stored is skipped, or with ``new_only`` refused
    (IntegrityError). The bridge uses ``new_only``: it looked every key up under the meter's lock,
    and a plain INSERT needs no UPDATE right (accounts.sql: stored samples stay as they are).

    In the same transaction: each meter's ``power_readings_latest`` moves to its newest sample, and
    each sample inserted is added, once, to the minute and hour rollups (``rollups=False``: not, for
    benchmarks of that upkeep)."""
    if not samples:
        return
    ensure_meters(session, [s.meter for s, _ in samples], max(t for _, t in samples))
    if not new_only:
        p = orm.PowerReading
        samples = _unstored(session, p, (p.meter_id,), p.ts,
                            _first_of_each(((s.meter, s.ts), (s, t)) for s, t in samples))
        if not samples:
            return
    rows = []
    for s, t in samples:
        row = s.to_dict()
        row["meter_id"] = row.pop("meter")
        del row["energy_total_wh"]  # derived
        row["errors"] = ",".join(s.errors) or None
        row["ts"], row["received_at"], row["stored_at"] = s.ts, t, stored_at
        rows.append(row)
    session.execute(insert(orm.PowerReading), rows)
    _raise_latest(session, samples)
    if rollups:
        add_to_rollups(session, ROLLUP_POWER, [((s.meter,), s.ts, [getattr(s, m) for m in METER_MEASURES])
                                               for s, _ in samples])


def _raise_latest(session: Session, samples: Sequence[tuple[PowerSample, datetime]]) -> None:
    """Move each meter's ``power_readings_latest`` to its newest sample here, never back (a late
    sample, older than the stored one, leaves it)."""
    newest: dict[str, datetime] = {}
    for s, _ in samples:
        if s.meter not in newest or s.ts > newest[s.meter]:
            newest[s.meter] = s.ts
    table = cast(Table, orm.PowerReadingLatest.__table__)
    rows = [{"meter_id": m, "ts": ts} for m, ts in sorted(newest.items())]  # key order: as every writer
    if _is_mariadb(session):
        stmt: Any = mysql.insert(table)
        stmt = stmt.on_duplicate_key_update(ts=func.greatest(table.c.ts, stmt.inserted.ts))
    else:
        stmt = sqlite.insert(table)
        stmt = stmt.on_conflict_do_update(index_elements=["meter_id"], set_={"ts": stmt.excluded.ts},
                                          where=stmt.excluded.ts > table.c.ts)
    session.execute(stmt, rows)


def _first_of_each(items: Iterable[tuple[tuple[Any, ...], Any]]) -> dict[tuple[Any, ...], Any]:
    """key -> the first item of that key (a key given twice is stored once, as the first)."""
    out: dict[tuple[Any, ...], Any] = {}
    for key, item in items:
        out.setdefault(key, item)
    return out


def _unstored(session: Session, model: Any, source: tuple[Any, ...], ts: Any,
              given: dict[tuple[Any, ...], tuple[Any, datetime]]) -> list[tuple[Any, datetime]]:
    """The values of ``given`` (key -> item) whose key is not stored yet. The keys' rows are read
    locked: MariaDB's locking read holds their ranges until the commit, and on SQLite the database's
    write lock is taken first, so no other writer can store one of them before this transaction's
    INSERT (which would then fail, never count a row twice)."""
    if _is_mariadb(session):
        stored = {tuple(row) for row in session.execute(
            select(*source, ts).where(_keys_condition(session, source, ts, given)).with_for_update())}
    else:
        # A write changing nothing takes SQLite's write lock (held to the commit); reads after it see
        # every committed row.
        session.execute(text("UPDATE source_versions SET version = version WHERE 0"))
        stored = {tuple(row) for row in session.execute(
            select(*source, ts).where(_keys_condition(session, source, ts, given)))}
    return [item for key, item in given.items() if key not in stored]


def _keys_condition(session: Session, source: tuple[Any, ...], ts: Any,
                    keys: Iterable[tuple[Any, ...]]) -> ColumnElement[bool] | TextClause:
    """WHERE the row's (``*source``, ``ts``) lies in the time span of its source's ``keys``: one
    indexed range read per source (the caller keeps the exact keys)."""
    spans: dict[tuple[Any, ...], list[datetime]] = {}
    for *src, when in keys:
        spans.setdefault(tuple(src), []).append(when)
    if _is_mariadb(session):
        # Compiling a 500-branch OR cost more than the query (store.bulk formats the literals).
        return text(" OR ".join(
            "(" + " AND ".join(f"{c.key}={bulk.literal(v)}" for c, v in zip(source, src, strict=True))
            + f" AND {ts.key} BETWEEN {bulk.literal(min(t))} AND {bulk.literal(max(t))})"
            for src, t in spans.items()))
    return or_(*(and_(*(c == v for c, v in zip(source, src, strict=True)), ts.between(min(t), max(t)))
                 for src, t in spans.items()))


def stored_readings(session: Session, keys: Iterable[tuple[int, int, datetime]]
                    ) -> dict[tuple[int, int, datetime], tuple[int, int, dict[str, float]]]:
    """(unit, automate, ts) -> (id, seq, measures) of the keys already stored."""
    r = orm.Reading
    return {(row.unit_id, row.automate_no, row.ts): (row.id, row.seq, reading_measures(row))
            for row in _stored(session, r, (r.unit_id, r.automate_no), r.ts, keys)}


def stored_samples(session: Session, keys: Iterable[tuple[str, datetime]]
                   ) -> dict[tuple[str, datetime], tuple[int, PowerSample]]:
    """(meter, ts) -> (id, sample) of the keys already stored."""
    p = orm.PowerReading
    return {(row.meter_id, row.ts): (row.id, sample_from_row(row))
            for row in _stored(session, p, (p.meter_id,), p.ts, keys)}


def _stored(session: Session, model: Any, source: tuple[Any, ...], ts: Any,
            keys: Iterable[tuple[Any, ...]]) -> list[Any]:
    """The rows of ``model`` whose (``*source``, ``ts``) is one of ``keys``: one indexed range read
    per source of the batch (its time span), in one statement."""
    wanted = set(keys)
    if not wanted:
        return []
    cond = _keys_condition(session, source, ts, wanted)
    rows: Iterable[Any] = (session.execute(select(*model.__table__.c).where(cond)) if _is_mariadb(session)
                           else session.scalars(select(model).where(cond)))
    return [row for row in rows if (*(getattr(row, c.key) for c in source), getattr(row, ts.key)) in wanted]


def load_sequences(session: Session) -> dict[Key, SeqState]:
    """Every automate's settled seqs; an automate with readings but no row yet (a database from
    before the table existed) resumes from its newest reading."""
    out: dict[Key, SeqState] = {}
    for row in session.scalars(select(orm.AutomateSequence)):
        out[(row.unit_id, row.automate_no)] = _seq_state(row)
    for reading in _newest_by_ts(session, exclude=set(out)):
        out[(reading.unit_id, reading.automate_no)] = SeqState(
            confirmed=reading.seq, newest=reading.seq, newest_ts=reading.ts, max_ts=reading.ts)
    return out


def lock_sources(session: Session, sources: Iterable[str]) -> dict[str, int]:
    """Lock the version rows of ``sources`` until the end of the caller's transaction (creating
    missing ones at version 0) and return their versions. Rows are taken in key order, so two
    bridges locking overlapping sets wait for each other instead of deadlocking."""
    keys = sorted(set(sources))
    if not keys:
        return {}
    v = orm.SourceVersion
    if not _is_mariadb(session):
        # SQLite has no row locks and ignores FOR UPDATE: a write (changing nothing) as the first
        # statement takes the database's write lock, which serializes bridges just the same.
        session.execute(update(v).where(v.source.in_(keys)).values(version=v.version),
                        execution_options={"synchronize_session": False})
    lock = select(v.source, v.version).order_by(v.source).with_for_update()
    found = {source: version for source, version in session.execute(lock.where(v.source.in_(keys)))}
    missing = [k for k in keys if k not in found]
    if missing:  # new sources: create their rows (another bridge may be creating some: no error)
        create_sources(session, missing)
        found.update({source: version for source, version in session.execute(lock.where(v.source.in_(missing)))})
    return found


def create_sources(session: Session, sources: Iterable[str]) -> None:
    """Create the version rows (0) of these sources where missing."""
    keys = sorted(set(sources))
    if keys:
        insert_ignoring_duplicates(session, orm.SourceVersion.__table__, [{"source": k, "version": 0} for k in keys],
                                   ["source"])


def bump_versions(session: Session, sources: Iterable[str]) -> None:
    """One more version of each source this transaction changed (their rows are locked)."""
    keys = sorted(set(sources))
    if keys:
        v = orm.SourceVersion
        session.execute(update(v).where(v.source.in_(keys)).values(version=v.version + 1),
                        execution_options={"synchronize_session": False})


def source_version_map(session: Session) -> dict[str, int]:
    return {source: version for source, version in
            session.execute(select(orm.SourceVersion.source, orm.SourceVersion.version))}


def sequences_of(session: Session, keys: Iterable[Key]) -> dict[Key, SeqState]:
    """The stored states of these automates (none stored: absent)."""
    wanted = set(keys)
    if not wanted:
        return {}
    s = orm.AutomateSequence
    units = {u for u, _ in wanted}
    return {(row.unit_id, row.automate_no): _seq_state(row)
            for row in session.scalars(select(s).where(s.unit_id.in_(units)))
            if (row.unit_id, row.automate_no) in wanted}


def _seq_state(row: orm.AutomateSequence) -> SeqState:
    return SeqState(confirmed=row.confirmed, newest=row.newest, newest_ts=row.newest_ts, max_ts=row.max_ts,
                    ahead=SeqState.parse_ahead(row.ahead), gap_since=row.gap_since, boot=row.boot,
                    prev_boot=row.prev_boot)


MeterStateRow = tuple[dict[str, Any], bool, float, datetime | None]  # status, complete, energy offset, last ts


def meter_states(session: Session, meters: Iterable[str]) -> dict[str, MeterStateRow]:
    """meter -> (merged switch status, complete, energy offset, newest device time) of those stored."""
    ids = sorted(set(meters))
    if not ids:
        return {}
    m = orm.MeterState
    return {row.meter_id: (json.loads(row.status), row.complete, row.energy_offset_wh or 0.0, row.last_ts)
            for row in session.scalars(select(m).where(m.meter_id.in_(ids)))}


def save_meter_states(session: Session, states: dict[str, MeterStateRow], now: datetime) -> None:
    rows = [{"meter_id": k, "status": dumps(status), "complete": complete, "updated_at": now,
             "energy_offset_wh": offset, "last_ts": last_ts}
            for k, (status, complete, offset, last_ts) in sorted(states.items())]
    upsert(session, orm.MeterState.__table__, rows, ["meter_id"],
           ["status", "complete", "updated_at", "energy_offset_wh", "last_ts"])


# -- the device registry (the bridge's side: what devices say of themselves) ---------------------------

def disabled_devices(session: Session) -> frozenset[str]:
    return frozenset(session.scalars(select(orm.Device.device).where(orm.Device.disabled.is_(True))))


def record_devices(session: Session, seen: dict[str, datetime], info: dict[str, tuple[str | None, int | None,
                   str | None]], known: set[str]) -> None:
    """Create the registry rows of devices heard from for the first time (``known``: rows known to
    exist), and update last_seen, removed_at and what devices said of themselves. ``disabled`` is
    only ever inserted (False), never updated: the bridge's account may not."""
    d = orm.Device
    new = sorted(k for k in set(seen) | set(info) if k not in known)
    if new:
        rows = [{"device": k, "disabled": False, "first_seen": seen.get(k), "last_seen": seen.get(k)} for k in new]
        # The bridge's account may not UPDATE disabled or the key: no ON DUPLICATE KEY UPDATE.
        insert_skipping_existing(session, d.__table__, rows, ["device"])
    for key in sorted(seen):
        # first_seen of an administrator's pre-registered row is set the first time it is heard from.
        session.execute(update(d).where(d.device == key).values(
            last_seen=seen[key], removed_at=None, first_seen=func.coalesce(d.first_seen, seen[key])))
    for key, (model, generation, firmware) in sorted(info.items()):
        values = {k: v for k, v in (("model", model), ("generation", generation), ("firmware", firmware))
                  if v is not None}
        if values:
            session.execute(update(d).where(d.device == key).values(**values))


def active_alarms_of(session: Session, sources: Iterable[str]) -> dict[str, list[Alarm]]:
    keys = sorted(set(sources))
    out: dict[str, list[Alarm]] = {}
    if keys:
        stmt = select(orm.Alarm).where(orm.Alarm.state == "active", orm.Alarm.source.in_(keys))
        for row in session.scalars(stmt):
            out.setdefault(row.source, []).append(alarm_from_row(row))
    return out


def save_sequences(session: Session, states: dict[Key, SeqState], now: datetime) -> None:
    if not states:
        return
    if _is_mariadb(session):
        columns = ("confirmed", "newest", "newest_ts", "max_ts", "ahead", "gap_since", "boot", "prev_boot",
                   "updated_at")
        bulk.insert_rows(
            session, f"INSERT INTO automate_sequences (unit_id,automate_no,{','.join(columns)})",
            bulk.sequence_rows((u, a, st.confirmed, st.newest, st.newest_ts, st.max_ts, st.ahead_json(), st.gap_since,
                                st.boot, st.prev_boot, now) for (u, a), st in sorted(states.items())),
            " ON DUPLICATE KEY UPDATE " + ",".join(f"{c}=VALUES({c})" for c in columns))
        return
    rows = [{"unit_id": u, "automate_no": a, "confirmed": st.confirmed, "newest": st.newest,
             "newest_ts": st.newest_ts, "max_ts": st.max_ts, "ahead": st.ahead_json(),
             "gap_since": st.gap_since, "boot": st.boot, "prev_boot": st.prev_boot, "updated_at": now}
            for (u, a), st in sorted(states.items())]
    upsert(session, orm.AutomateSequence.__table__, rows, ["unit_id", "automate_no"],
           ["confirmed", "newest", "newest_ts", "max_ts", "ahead", "gap_since", "boot", "prev_boot",
            "updated_at"])


def set_device_state(session: Session, device: str, state: str, ts: datetime, received_at: datetime) -> None:
    """Record a device's state unless a newer one is stored: a late retained copy, or one another
    bridge handled after this one (one upsert, so that two bridges never race on the row)."""
    t = cast(Table, orm.DeviceState.__table__)
    values = {"device": device, "state": state, "ts": ts, "received_at": received_at}
    if _is_mariadb(session):
        stmt: Any = mysql.insert(t).values(values)
        newer = stmt.inserted.ts >= t.c.ts
        # In order: MariaDB evaluates each assignment with the columns already assigned, so ts last.
        stmt = stmt.on_duplicate_key_update([
            ("state", case((newer, stmt.inserted.state), else_=t.c.state)),
            ("received_at", case((newer, stmt.inserted.received_at), else_=t.c.received_at)),
            ("ts", case((newer, stmt.inserted.ts), else_=t.c.ts)),
        ])
    else:
        stmt = sqlite.insert(t).values(values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["device"], where=stmt.excluded.ts >= t.c.ts,
            set_={"state": stmt.excluded.state, "ts": stmt.excluded.ts, "received_at": stmt.excluded.received_at})
    session.execute(stmt)


def record_rejected(session: Session, topic: str, payload: bytes, reason: str, received_at: datetime,
                    source: str | None = None) -> None:
    """``source``: the device the topic names (an automate's or meter's source key, a unit's key)."""
    text = payload[:REJECTED_PAYLOAD_MAX].decode("utf-8", "backslashreplace")
    session.add(orm.RejectedMessage(
        received_at=received_at, topic=topic[:REJECTED_TOPIC_MAX], payload=text,
        payload_bytes=len(payload), reason=reason[:REJECTED_REASON_MAX], source=source,
    ))


# -- source health (the bridge's no-data / probe-fault timer) -------------------------------------------

def valid_data_since(session: Session, since: datetime) -> dict[str, datetime]:
    """{source key: newest received_at} of the readings and power samples received after ``since``
    (a range on the received_at indexes: the bridge asks for a short recent window each time)."""
    out: dict[str, datetime] = {}
    r, p = orm.Reading, orm.PowerReading
    for unit, automate, at in session.execute(
            select(r.unit_id, r.automate_no, func.max(r.received_at)).where(r.received_at > since)
            .group_by(r.unit_id, r.automate_no)):
        out[f"units/{unit}/automates/{automate}"] = at
    for meter, at in session.execute(select(p.meter_id, func.max(p.received_at)).where(p.received_at > since)
                                     .group_by(p.meter_id)):
        out[f"meters/{meter}"] = at
    return out


def rejected_sources_since(session: Session, since: datetime) -> set[str]:
    """The sources with a rejected message received after ``since``."""
    m = orm.RejectedMessage
    return set(session.scalars(select(m.source).where(m.received_at > since, m.source.is_not(None)).distinct()))


def rejections_after(session: Session, source: str, after: datetime, cap: int) -> tuple[int, str | None]:
    """How many messages of ``source`` were rejected after ``after`` (counted up to ``cap``), and the
    newest one's reason (on the (source, received_at) index)."""
    m = orm.RejectedMessage
    where = (m.source == source, m.received_at > after)
    count = session.scalar(select(func.count()).select_from(select(m.id).where(*where).limit(cap).subquery())) or 0
    reason = session.scalar(select(m.reason).where(*where).order_by(m.received_at.desc(), m.id.desc()).limit(1))
    return int(count), reason


# -- thresholds ---------------------------------------------------------------------------------------

def seed_default_thresholds(session: Session, now: datetime) -> int:
    """Insert the default thresholds that are missing (never overwrites an edited one). Writes
    nothing when none is missing: the bridge's database account may only read thresholds."""
    present = {(s, m) for s, m in session.execute(select(orm.Threshold.scope, orm.Threshold.measure))}
    rows = [_threshold_row(t, now, "defaults") for t in default_thresholds() if (t.scope, t.measure) not in present]
    if not rows:
        return 0
    before = session.scalar(select(func.count()).select_from(orm.Threshold)) or 0
    insert_ignoring_duplicates(session, orm.Threshold.__table__, rows, ["scope", "measure"])
    after = session.scalar(select(func.count()).select_from(orm.Threshold)) or 0
    return after - before


def threshold_rows(session: Session) -> list[orm.Threshold]:
    return list(session.scalars(select(orm.Threshold).order_by(orm.Threshold.id)))


def get_threshold(session: Session, scope: str, measure: str) -> orm.Threshold | None:
    return session.scalar(select(orm.Threshold).where(orm.Threshold.scope == scope,
                                                      orm.Threshold.measure == measure))


def load_thresholds(session: Session) -> list[Threshold]:
    return [threshold_of_row(r) for r in threshold_rows(session)]


def lock_thresholds_for_edit(session: Session) -> list[Threshold]:
    """The thresholds, read with a lock (MariaDB) as the first statement of an edit's transaction:
    edits queue up, so two admins checking their change against the same old set can never both
    commit and leave, between them, a scope whose inherited low is above its high."""
    return [threshold_of_row(r) for r in session.scalars(select(orm.Threshold).with_for_update())]


def threshold_of_row(r: orm.Threshold) -> Threshold:
    # NULL flags (rows from before inheritance existed) mean "not inherited": their meaning is kept.
    return Threshold(r.measure, r.scope, r.low, r.high, r.deadband, r.severity,
                     inherit_low=bool(r.inherit_low), inherit_high=bool(r.inherit_high))


def thresholds_version(session: Session) -> tuple[int, datetime | None]:
    """Cheap change detector the bridge polls: (row count, newest update)."""
    count, newest = session.execute(
        select(func.count(), func.max(orm.Threshold.updated_at))
    ).one()
    return int(count), newest


def upsert_threshold(session: Session, threshold: Threshold, now: datetime, by: str) -> None:
    """Create or replace one threshold and write the audit row (who, when, old, new)."""
    row = get_threshold(session, threshold.scope, threshold.measure)
    values = {**_threshold_row(threshold, now, by), "inherit_low": threshold.inherit_low,
              "inherit_high": threshold.inherit_high}
    old = None if row is None else _threshold_json(row)
    if row is None:
        session.add(orm.Threshold(**values))
    else:
        for k, v in values.items():
            setattr(row, k, v)
    session.add(orm.ThresholdChange(
        changed_at=now, changed_by=by, scope=threshold.scope, measure=threshold.measure, action="set",
        old_value=old, new_value=dumps({"low": threshold.low, "high": threshold.high,
                                        "deadband": threshold.deadband, "severity": threshold.severity,
                                        "inherit_low": threshold.inherit_low,
                                        "inherit_high": threshold.inherit_high})))


def delete_threshold(session: Session, scope: str, measure: str, now: datetime, by: str) -> bool:
    row = get_threshold(session, scope, measure)
    if row is None:
        return False
    session.add(orm.ThresholdChange(changed_at=now, changed_by=by, scope=scope, measure=measure,
                                    action="delete", old_value=_threshold_json(row), new_value=None))
    session.delete(row)  # the count drops, so the bridge's change detector sees it
    return True


def _threshold_json(row: orm.Threshold) -> str:
    return dumps({"low": row.low, "high": row.high, "deadband": row.deadband, "severity": row.severity,
                  "inherit_low": bool(row.inherit_low), "inherit_high": bool(row.inherit_high)})


def _threshold_row(t: Threshold, now: datetime, by: str) -> dict[str, Any]:
    return {"scope": t.scope, "measure": t.measure, "low": t.low, "high": t.high,
            "deadband": t.deadband, "severity": t.severity, "updated_at": now, "updated_by": by}


# -- alarms -----------------------------------------------------------------------------------------

def save_alarm_events(session: Session, events: Sequence[Alarm]) -> None:
    """Persist alarm transitions: 'active' inserts a row, 'cleared' closes the open one."""
    for ev in events:
        if ev.state == "active":
            # cleared_at and acknowledged_* left out (NULL by default): MariaDB wants UPDATE rights on
            # every column an INSERT … ON DUPLICATE KEY UPDATE names, and the bridge's account must
            # not be able to acknowledge (accounts.sql).
            row = {
                "source": ev.source.key, "measure": ev.measure, "bound": ev.bound, "severity": ev.severity,
                "state": "active", "value": ev.value, "limit_value": ev.limit, "last_value": ev.value,
                "raised_at": ev.raised_at, "detail": ev.detail, **_source_columns(ev.source),
            }
            insert_ignoring_duplicates(session, orm.Alarm.__table__, [row], ["source", "measure", "raised_at"])
        else:
            session.execute(
                update(orm.Alarm)
                .where(orm.Alarm.source == ev.source.key, orm.Alarm.measure == ev.measure,
                       orm.Alarm.raised_at == ev.raised_at)
                .values(state="cleared", cleared_at=ev.since, last_value=ev.value)
            )


def _source_columns(source: Source) -> dict[str, Any]:
    if isinstance(source, AutomateSource):
        return {"unit_id": source.unit, "automate_no": source.automate, "meter_id": None}
    assert isinstance(source, MeterSource)
    return {"unit_id": None, "automate_no": None, "meter_id": source.meter}


def alarm_from_row(row: orm.Alarm) -> Alarm:
    return Alarm(
        source=parse_source(row.source), measure=row.measure, value=row.value, limit=row.limit_value,
        bound=row.bound, severity=row.severity, state=row.state, raised_at=row.raised_at,
        since=row.cleared_at if row.state == "cleared" and row.cleared_at else row.raised_at, detail=row.detail,
    )


def alarm_dict(row: orm.Alarm) -> dict[str, Any]:
    """What the web UI and API show of one alarm row: ``Alarm.to_dict()`` plus its database id,
    ``cleared_at``, ``acknowledged_at`` and ``acknowledged_by`` (null until acknowledged), and
    ``name``: the registry's name of its unit or meter (null if none; read once per session)."""
    return {
        "id": row.id, **alarm_from_row(row).to_dict(),
        "cleared_at": None if row.cleared_at is None else format_ts(row.cleared_at),
        "acknowledged_at": None if row.acknowledged_at is None else format_ts(row.acknowledged_at),
        "acknowledged_by": row.acknowledged_by,
        # The corrective action recorded with the acknowledgement (null until then, or when none was given).
        "ack_note": row.ack_note, "ack_disposition": row.ack_disposition,
        "name": _cached_names(Session.object_session(row)).get(device_of_source(row.source)),
    }


def find_alarm(session: Session, source: str, measure: str, raised_at: datetime) -> orm.Alarm | None:
    return session.scalar(select(orm.Alarm).where(
        orm.Alarm.source == source, orm.Alarm.measure == measure, orm.Alarm.raised_at == raised_at))


def open_alarms(session: Session) -> list[orm.Alarm]:
    """What needs an operator's attention: active alarms, and cleared ones nobody acknowledged yet."""
    stmt = (select(orm.Alarm)
            .where((orm.Alarm.state == "active") | orm.Alarm.acknowledged_at.is_(None))
            .order_by(orm.Alarm.raised_at))
    return list(session.scalars(stmt))


def active_alarms(session: Session) -> list[Alarm]:
    rows = session.scalars(select(orm.Alarm).where(orm.Alarm.state == "active").order_by(orm.Alarm.raised_at))
    return [alarm_from_row(r) for r in rows]


# -- device registry (web UI: names, disable, remove) ----------------------------------------------------
# The web UI's account may INSERT only (device, name, disabled, updated_at, updated_by) and UPDATE only
# (name, disabled, removed_at, updated_at, updated_by) of ``devices`` (accounts.sql): these functions
# write nothing else. The bridge fills model, generation, firmware, first_seen and last_seen.

_NAMES_CACHE = "device_names"  # Session.info key: {device: name} read once per session


def device_of_source(source: str) -> str:
    """The registry key a source key belongs to: an automate's is its unit's (``units/3/automates/7``
    -> ``units/3``); a unit's or meter's key is its own."""
    parts = source.split("/")
    return "/".join(parts[:2]) if len(parts) == 4 and parts[0] == "units" else source


def device_rows(session: Session) -> list[orm.Device]:
    return list(session.scalars(select(orm.Device).order_by(orm.Device.device)))


def get_device(session: Session, device: str) -> orm.Device | None:
    return session.scalar(select(orm.Device).where(orm.Device.device == device)
                          .execution_options(populate_existing=True))


def device_names(session: Session) -> dict[str, str]:
    """{device key: name} of the named devices."""
    return {d: n for d, n in session.execute(select(orm.Device.device, orm.Device.name)
                                             .where(orm.Device.name.is_not(None))) if n is not None}


def removed_devices(session: Session) -> set[str]:
    """The keys of the removed devices (hidden from the lists)."""
    return set(session.scalars(select(orm.Device.device).where(orm.Device.removed_at.is_not(None))))


def _cached_names(session: Session | None) -> dict[str, str]:
    if session is None:
        return {}
    names = session.info.get(_NAMES_CACHE)
    if names is None:
        names = session.info[_NAMES_CACHE] = device_names(session)
    return cast(dict[str, str], names)


def register_device(session: Session, device: str, changes: dict[str, Any], now: datetime, by: str) -> None:
    """Set ``changes`` (``name`` and/or ``disabled``) of a device, creating its row if missing (an
    administrator may name or disable a device before it ever connects: first_seen stays NULL)."""
    assert set(changes) <= {"name", "disabled"}, changes
    values = {**changes, "updated_at": now, "updated_by": by}
    _write_device(session, device, values, values)


def set_device_removed(session: Session, device: str, removed: bool, now: datetime, by: str) -> None:
    """Remove (hide from the lists) or restore a device, creating its row if missing. Its data stays."""
    _write_device(session, device, {"removed_at": now if removed else None, "updated_at": now, "updated_by": by},
                  {"updated_at": now, "updated_by": by})


def _write_device(session: Session, device: str, values: dict[str, Any], inserted: dict[str, Any]) -> None:
    """UPDATE the device's row with ``values``; without a row, INSERT one (``inserted``) first. Not an
    upsert: MariaDB wants UPDATE rights on every column an INSERT … ON DUPLICATE KEY UPDATE names, the
    key included, and the web UI's account has none on ``device``."""
    d = orm.Device
    stmt = update(d).where(d.device == device).values(**values)
    opts = {"synchronize_session": False}
    if cast(Any, session.execute(stmt, execution_options=opts)).rowcount:
        session.info.pop(_NAMES_CACHE, None)
        return
    try:
        with session.begin_nested():
            session.execute(insert(d).values({"device": device, "name": None, "disabled": False, **inserted}))
    except IntegrityError:
        pass  # the bridge created it meanwhile: update it
    session.execute(stmt, execution_options=opts)
    session.info.pop(_NAMES_CACHE, None)


# -- latest values (web UI) ------------------------------------------------------------------------------

def latest_readings(session: Session) -> list[orm.Reading]:
    """The newest reading of every automate, by the unit's own order (``seq``), as the bridge
    settled it: a reading stamped in the future does not hide the ones that follow it. Automates
    the bridge has no sequence for yet fall back to the newest timestamp.

    Two steps, so that it stays one unique-index lookup per automate however long the history: the
    settled ``newest_ts`` of each automate first, then those readings by their keys. (As one join,
    SQLite's planner may walk every reading and probe the sequences.)"""
    s, r = orm.AutomateSequence, orm.Reading
    keys = [tuple(row) for row in session.execute(
        select(s.unit_id, s.automate_no, s.newest_ts).where(s.newest_ts.is_not(None)))]
    by_seq = _rows_at(session, r, (r.unit_id, r.automate_no), r.ts, keys)
    rows = by_seq + _newest_by_ts(session, exclude={(row.unit_id, row.automate_no) for row in by_seq})
    return sorted(rows, key=lambda row: (row.unit_id, row.automate_no))


def _rows_at(session: Session, model: Any, source: tuple[Any, ...], ts: Any, keys: Sequence[tuple[Any, ...]],
             chunk: int = 200) -> list[Any]:
    """The rows of ``model`` at exactly these (``*source``, ``ts``) keys (those that exist): an OR of
    equalities on the unique (source, ts) index, which both planners read as one index lookup per key."""
    out: list[Any] = []
    for i in range(0, len(keys), chunk):
        cond = or_(*(and_(*(c == v for c, v in zip(source, key[:-1], strict=True)), ts == key[-1])
                     for key in keys[i:i + chunk]))
        out.extend(session.scalars(select(model).where(cond)))
    return out


def _newest_by_ts(session: Session, exclude: set[Key]) -> list[orm.Reading]:
    """The reading with the newest timestamp of each automate not in ``exclude``: one indexed
    lookup per such automate (normally none: the bridge keeps a sequence for each)."""
    rows = []
    for a in automates(session):
        if (a.unit_id, a.automate_no) not in exclude:
            row = session.scalar(select(orm.Reading)
                                 .where(orm.Reading.unit_id == a.unit_id, orm.Reading.automate_no == a.automate_no)
                                 .order_by(orm.Reading.ts.desc()).limit(1))
            if row is not None:
                rows.append(row)
    return rows


def latest_power_readings(session: Session) -> list[orm.PowerReading]:
    """The newest sample (by device time) of every meter: ``power_readings_latest`` names it, then
    one unique-index lookup per meter. A meter without a row there (samples stored before the table
    existed) falls back to its newest row by time, one indexed lookup too."""
    p, latest = orm.PowerReading, orm.PowerReadingLatest
    keys = [tuple(row) for row in session.execute(select(latest.meter_id, latest.ts))]
    rows = _rows_at(session, p, (p.meter_id,), p.ts, keys)
    found = {row.meter_id for row in rows}
    for meter_id in session.scalars(select(orm.Meter.id)):
        if meter_id not in found:
            row = session.scalar(select(p).where(p.meter_id == meter_id).order_by(p.ts.desc()).limit(1))
            if row is not None:
                rows.append(row)
    return sorted(rows, key=lambda row: row.meter_id)


def automates(session: Session) -> list[orm.Automate]:
    stmt = select(orm.Automate).order_by(orm.Automate.unit_id, orm.Automate.automate_no)
    return list(session.scalars(stmt))


def meters(session: Session) -> list[orm.Meter]:
    return list(session.scalars(select(orm.Meter).order_by(orm.Meter.id)))


def device_states(session: Session) -> list[orm.DeviceState]:
    return list(session.scalars(select(orm.DeviceState).order_by(orm.DeviceState.device)))


def reading_measures(row: orm.Reading) -> dict[str, float]:
    return {name: getattr(row, name) for name in AUTOMATE_MEASURES}


def reading_from_row(row: orm.Reading, automate_type: str) -> Reading:
    measures: dict[str, Any] = reading_measures(row)
    return Reading(unit=row.unit_id, automate=row.automate_no, type=automate_type, seq=row.seq,
                   ts=row.ts, **measures)


def sample_from_row(row: orm.PowerReading) -> PowerSample:
    return PowerSample(meter=row.meter_id, ts=row.ts, output=row.output, apower=row.apower,
                       voltage=row.voltage, current=row.current, freq=row.freq, pf=row.pf,
                       energy_wh=row.energy_wh, ret_energy_wh=row.ret_energy_wh,
                       temperature_c=row.temperature_c,
                       errors=tuple(row.errors.split(",")) if row.errors else (),
                       energy_offset_wh=row.energy_offset_wh or 0.0)


def close_abandoned_switches(session: Session, before: datetime) -> int:
    """Mark the remote switches still ``pending`` since before ``before`` (their web UI stopped while
    waiting for the answer) as errors: the audit then never shows an outcome as still to come."""
    a = orm.SwitchAction
    result = session.execute(update(a).where(a.outcome == "pending", a.requested_at < before).values(
        outcome="error", detail="no outcome recorded: the web UI stopped while waiting for the answer"),
        execution_options={"synchronize_session": False})
    return int(getattr(result, "rowcount", 0) or 0)
