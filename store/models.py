"""ORM models: the source of truth of the schema. Alembic's migrations (``store/migrations/``) create
and upgrade every table to match them, and ``schema.sql`` is generated from the migrations
(``python -m store schema-sql``); ``tests/integration/test_schema.py`` fails when the three drift.

The columns of the measures are not written here: each comes from its definition in
:mod:`plantmodel.measures` (one column per automate measure in ``readings``; count, min, max and
sum per measure in the rollup tables), so adding a measure is its definition plus one migration."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Double,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from plantmodel.measures import AUTOMATE_MEASURES, METER_MEASURES

TABLE_ARGS: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_unicode_ci",
}

# BigInteger primary keys do not autoincrement on SQLite: use INTEGER there.
BigId = BigInteger().with_variant(Integer, "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in Python, naive UTC ``DATETIME(3)`` in MariaDB (which has no zone)."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=3))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    pass


class Unit(Base):
    __tablename__ = "units"
    __table_args__ = TABLE_ARGS

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Automate(Base):
    __tablename__ = "automates"
    __table_args__ = (
        ForeignKeyConstraint(["unit_id"], ["units.id"], name="fk_automates_unit"),
        TABLE_ARGS,
    )

    unit_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    automate_no: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    type: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AutomateSequence(Base):
    """The bridge's settled ``seq`` per automate (:class:`plantmodel.sequence.SeqState`), committed with
    the readings: what it confirms to the units, and what it resumes from after a restart."""

    __tablename__ = "automate_sequences"
    __table_args__ = TABLE_ARGS

    unit_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    automate_no: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    confirmed: Mapped[int] = mapped_column(BigInteger)
    newest: Mapped[int] = mapped_column(BigInteger)
    newest_ts: Mapped[datetime | None] = mapped_column(UTCDateTime)
    max_ts: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ahead: Mapped[str] = mapped_column(Text)
    gap_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    boot: Mapped[str | None] = mapped_column(String(32))
    prev_boot: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SourceVersion(Base):
    """One row per source (``units/3/automates/7``, ``meters/<id>``): its lock and version.

    Several bridges share the stream, so readings of one source reach different bridges. A bridge
    locks the rows of the sources in its batch (``SELECT … FOR UPDATE``, in key order) for the
    length of its transaction, and bumps the version of each source it changed: a bridge holding
    an older version reloads that source's state (``automate_sequences``, ``meter_states``, active
    ``alarms``) first. Alarm evaluation is thus serialized per source.
    """

    __tablename__ = "source_versions"
    __table_args__ = TABLE_ARGS

    source: Mapped[str] = mapped_column(String(96), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)


class MeterState(Base):
    """A meter's merged switch status (a Gen2 meter sends only what changed), shared by bridges."""

    __tablename__ = "meter_states"
    __table_args__ = TABLE_ARGS

    meter_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(Text)  # JSON: the switch:0 status as merged so far
    complete: Mapped[bool] = mapped_column(Boolean)  # a full status was part of it
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Energy counted before the device's counter resets, and the newest device time merged.
    # (Nullable: added by later releases; the baseline migration adds them to older databases.)
    energy_offset_wh: Mapped[float | None] = mapped_column(Double)
    last_ts: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Reading(Base):
    __tablename__ = "readings"
    __table_args__ = (
        # Idempotent writes (a redelivered reading is stored once) and the index behind
        # "latest per automate" and "time range per automate".
        UniqueConstraint("unit_id", "automate_no", "ts", name="uq_readings_automate_ts"),
        ForeignKeyConstraint(["unit_id", "automate_no"], ["automates.unit_id", "automates.automate_no"],
                             name="fk_readings_automate"),
        Index("ix_readings_received_at", "received_at"),
        TABLE_ARGS,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    unit_id: Mapped[int] = mapped_column(Integer)
    automate_no: Mapped[int] = mapped_column(Integer)
    seq: Mapped[int] = mapped_column(BigInteger)
    ts: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    stored_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # when the bridge wrote it
    # + one DOUBLE column per automate measure, in definition order (see below); NOT NULL unless the
    # measure was added after readings were stored (``Measure.added_later``: older rows have none)

    if TYPE_CHECKING:
        def __getattr__(self, name: str) -> float: ...  # the measure columns, set below


for _name, _measure in AUTOMATE_MEASURES.items():
    setattr(Reading, _name, mapped_column(_name, Double, nullable=_measure.added_later))


class Meter(Base):
    __tablename__ = "meters"
    __table_args__ = TABLE_ARGS

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime)


class PowerReading(Base):
    __tablename__ = "power_readings"
    __table_args__ = (
        UniqueConstraint("meter_id", "ts", name="uq_power_readings_meter_ts"),
        Index("ix_power_readings_received_at", "received_at"),
        Index("ix_power_readings_ts", "ts"),  # the legacy /api/measurements/ lists every meter by time
        TABLE_ARGS,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    meter_id: Mapped[str] = mapped_column(String(64), ForeignKey("meters.id", name="fk_power_readings_meter"))
    ts: Mapped[datetime] = mapped_column(UTCDateTime)  # the device's own timestamp
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    stored_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # when the bridge wrote it
    output: Mapped[bool | None] = mapped_column(Boolean)
    apower: Mapped[float | None] = mapped_column(Double)
    voltage: Mapped[float | None] = mapped_column(Double)
    current: Mapped[float | None] = mapped_column(Double)
    freq: Mapped[float | None] = mapped_column(Double)
    pf: Mapped[float | None] = mapped_column(Double)
    energy_wh: Mapped[float | None] = mapped_column(Double)
    ret_energy_wh: Mapped[float | None] = mapped_column(Double)
    temperature_c: Mapped[float | None] = mapped_column(Double)
    errors: Mapped[str | None] = mapped_column(String(255))  # the device's error flags, comma-separated
    # What the counter's resets before this row lost: energy_wh + energy_offset_wh = energy counted.
    energy_offset_wh: Mapped[float | None] = mapped_column(Double)


class DeviceState(Base):
    """Last known online/offline state per device (``units/3``, ``meters/<id>``, ``bridge``)."""

    __tablename__ = "device_status"
    __table_args__ = TABLE_ARGS

    device: Mapped[str] = mapped_column(String(96), primary_key=True)
    state: Mapped[str] = mapped_column(String(8))
    ts: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Threshold(Base):
    __tablename__ = "thresholds"
    __table_args__ = (
        UniqueConstraint("scope", "measure", name="uq_thresholds_scope_measure"),
        TABLE_ARGS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(96))
    measure: Mapped[str] = mapped_column(String(32))
    low: Mapped[float | None] = mapped_column(Double)
    high: Mapped[float | None] = mapped_column(Double)
    deadband: Mapped[float] = mapped_column(Double)
    severity: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_by: Mapped[str] = mapped_column(String(64))
    # True: ``low``/``high`` is taken from the wider scope (live). Null/False with ``low`` null: no
    # limit on that side (what every row meant before these columns existed).
    inherit_low: Mapped[bool | None] = mapped_column(Boolean)
    inherit_high: Mapped[bool | None] = mapped_column(Boolean)


class Alarm(Base):
    __tablename__ = "alarms"
    __table_args__ = (
        # A replayed reading can never store the same alarm twice.
        UniqueConstraint("source", "measure", "raised_at", name="uq_alarms_source_measure_raised"),
        Index("ix_alarms_state_source", "state", "source"),
        Index("ix_alarms_raised_at", "raised_at"),
        Index("ix_alarms_acknowledged_at", "acknowledged_at"),  # "open" = active or not acknowledged
        TABLE_ARGS,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(96))
    unit_id: Mapped[int | None] = mapped_column(Integer)
    automate_no: Mapped[int | None] = mapped_column(Integer)
    meter_id: Mapped[str | None] = mapped_column(String(64))
    measure: Mapped[str] = mapped_column(String(32))
    bound: Mapped[str] = mapped_column(String(4))
    severity: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(8))
    value: Mapped[float] = mapped_column(Double)  # the value that raised it
    limit_value: Mapped[float] = mapped_column(Double)
    last_value: Mapped[float] = mapped_column(Double)  # the value that cleared it, or the latest
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime)
    cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))
    # The corrective action (HACCP principle 5): required to acknowledge a critical alarm.
    ack_note: Mapped[str | None] = mapped_column(Text)
    ack_disposition: Mapped[str | None] = mapped_column(String(8))  # hold | release | none
    detail: Mapped[str | None] = mapped_column(String(512))  # e.g. a probe fault's last rejection reason


class RejectedMessage(Base):
    __tablename__ = "rejected_messages"
    __table_args__ = (
        Index("ix_rejected_messages_received_at", "received_at"),
        Index("ix_rejected_messages_source", "source", "received_at"),
        TABLE_ARGS,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    topic: Mapped[str] = mapped_column(String(512))
    payload: Mapped[str] = mapped_column(Text)  # truncated, undecodable bytes escaped
    payload_bytes: Mapped[int] = mapped_column(Integer)  # size before truncation
    reason: Mapped[str] = mapped_column(String(512))
    source: Mapped[str | None] = mapped_column(String(96))  # the device the topic names, if any


class User(Base):
    """A person (or script) allowed into the web UI and API. Passwords are argon2id hashes; the API
    token is stored as its SHA-256 only, so a database dump does not leak usable tokens."""

    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("username", name="uq_users_username"),
        UniqueConstraint("token_hash", name="uq_users_token_hash"),
        TABLE_ARGS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))  # viewer | operator | admin
    token_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Bumped on logout, password and role changes: a session signed with an older one is refused.
    # (Nullable, null = 0: the baseline migration adds it to older databases.)
    session_version: Mapped[int | None] = mapped_column(Integer)
    # The language the user reads the pages in (plantmodel.i18n.LANGUAGES); null = the browser's, else
    # the plant's (revision 0003).
    language: Mapped[str | None] = mapped_column(String(8))


class ThresholdChange(Base):
    """Audit trail of threshold edits: who changed what, when, from which value to which."""

    __tablename__ = "threshold_changes"
    __table_args__ = (Index("ix_threshold_changes_changed_at", "changed_at"), TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    changed_by: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(96))
    measure: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(8))  # set | delete
    old_value: Mapped[str | None] = mapped_column(Text)  # JSON {low, high, deadband, severity}, null if new
    new_value: Mapped[str | None] = mapped_column(Text)  # JSON, null when deleted


class Device(Base):
    """The device registry: a unit (``units/3``) or meter (``meters/<id>``), created by the bridge on
    first contact with what the device says of itself; ``name``, ``disabled`` and ``removed_at`` are
    the administrators' (accounts.sql grants the columns that way)."""

    __tablename__ = "devices"
    __table_args__ = TABLE_ARGS

    device: Mapped[str] = mapped_column(String(96), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(64))
    generation: Mapped[int | None] = mapped_column(Integer)
    firmware: Mapped[str | None] = mapped_column(String(96))
    disabled: Mapped[bool] = mapped_column(Boolean)
    first_seen: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_seen: Mapped[datetime | None] = mapped_column(UTCDateTime)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_by: Mapped[str | None] = mapped_column(String(64))


class DeviceToken(Base):
    """A legacy HTTP sender's token (``/collector/info``, ``/webhook/``), for one device; SHA-256 only."""

    __tablename__ = "device_tokens"
    __table_args__ = (
        UniqueConstraint("token_hash", name="uq_device_tokens_token_hash"),
        Index("ix_device_tokens_device", "device"),
        TABLE_ARGS,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device: Mapped[str] = mapped_column(String(96))
    token_hash: Mapped[str] = mapped_column(String(64))
    label: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(64))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_by: Mapped[str | None] = mapped_column(String(64))
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SwitchAction(Base):
    """Audit of remote switching: who switched which meter, when, from where, from which state to
    which, and what the device answered."""

    __tablename__ = "switch_actions"
    __table_args__ = (Index("ix_switch_actions_meter", "meter_id", "requested_at"), TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    meter_id: Mapped[str] = mapped_column(String(64))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    requested_by: Mapped[str] = mapped_column(String(64))
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    from_state: Mapped[str | None] = mapped_column(String(8))
    to_state: Mapped[str] = mapped_column(String(8))
    outcome: Mapped[str] = mapped_column(String(16))  # pending | confirmed | error | timeout
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    detail: Mapped[str | None] = mapped_column(String(255))


class AuditEntry(Base):
    """The append-only audit trail (log-ins, acknowledgements, threshold, user and device changes,
    remote switching). Each entry carries the SHA-256 of the previous one (``store/audit.py``), and
    ``prev_hash`` is unique: two writers can never fork the chain. The web UI's account may only
    SELECT and INSERT here (accounts.sql)."""

    __tablename__ = "audit_log"
    __table_args__ = (
        UniqueConstraint("prev_hash", name="uq_audit_log_prev_hash"),
        Index("ix_audit_log_at", "at"),
        TABLE_ARGS,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str | None] = mapped_column(String(64))  # user name; null for the system
    address: Mapped[str | None] = mapped_column(String(64))  # client address, if over HTTP
    action: Mapped[str] = mapped_column(String(48))  # login.ok, alarm.acknowledge, threshold.set, ...
    details: Mapped[str] = mapped_column(Text)  # canonical JSON object
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class NotificationRoute(Base):
    """Who is told about which alarms, how: an e-mail list or a webhook URL, for alarms of at least
    ``min_severity`` within ``scope``. ``escalate_after_min`` set: a second-level contact, told only
    when an alarm is still unacknowledged that many minutes after it was raised."""

    __tablename__ = "notification_routes"
    __table_args__ = TABLE_ARGS

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(8))  # email | webhook
    target: Mapped[str] = mapped_column(String(1024))  # comma-separated addresses, or the URL
    min_severity: Mapped[str] = mapped_column(String(16))
    scope: Mapped[str] = mapped_column(String(96))  # *, units/3, units/3/automates/7, meters/<id>
    events: Mapped[str] = mapped_column(String(32))  # comma-separated: raise, clear
    escalate_after_min: Mapped[int | None] = mapped_column(Integer)
    enabled: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_by: Mapped[str] = mapped_column(String(64))


class Notification(Base):
    """The outbox: one row per (alarm, route, event), so an alarm transition notifies each route once
    however often the notifier restarts; delivery is retried with back-off."""

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("alarm_id", "route_id", "event", name="uq_notifications_alarm_route_event"),
        Index("ix_notifications_status_next", "status", "next_attempt_at"),
        TABLE_ARGS,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    alarm_id: Mapped[int] = mapped_column(BigInteger)
    route_id: Mapped[int] = mapped_column(Integer)
    event: Mapped[str] = mapped_column(String(8))  # raise | clear | escalate
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(8))  # pending | sent | failed
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(512))


class NotificationAttempt(Base):
    """Every delivery attempt, successful or not."""

    __tablename__ = "notification_attempts"
    __table_args__ = (Index("ix_notification_attempts_notification", "notification_id"), TABLE_ARGS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    notification_id: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    ok: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(String(512))


class PowerReadingLatest(Base):
    """Each meter's newest stored sample (its device time), kept up to date in the transaction that
    stores samples (``store.queries.insert_power_samples``): the overview finds every meter's latest
    row in one indexed lookup each, however long the history. (An automate's newest reading is
    ``automate_sequences.newest_ts``, which the bridge settles by the unit's own order.)"""

    __tablename__ = "power_readings_latest"
    __table_args__ = TABLE_ARGS

    meter_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime)


# -- rollups ------------------------------------------------------------------------------------------
#
# Per source and per minute / hour bucket, for each measure: how many values (``<m>_n``), their
# minimum, maximum and sum (null while ``<m>_n`` is 0: a meter may lack a field). ``bucket`` is the
# bucket's start in epoch seconds (UTC), an integer, so a chart's wider buckets are a portable
# ``GROUP BY bucket - bucket % width``. Kept up to date with each stored row, in the same
# transaction (store/rollups.py); a row stored twice is only counted once because only rows that
# were actually inserted are added.

ROLLUP_LEVELS: dict[str, int] = {"minute": 60, "hour": 3600}  # name -> bucket width in seconds


def _rollup_table(cls_name: str, table: str, keys: dict[str, Any], measures: dict[str, Any]) -> type[Base]:
    namespace: dict[str, Any] = {"__tablename__": table, "__table_args__": TABLE_ARGS, **keys,
                                 "bucket": mapped_column(BigInteger, primary_key=True, autoincrement=False)}
    for name in measures:
        namespace[f"{name}_n"] = mapped_column(Integer, nullable=False)
        namespace[f"{name}_min"] = mapped_column(Double, nullable=True)
        namespace[f"{name}_max"] = mapped_column(Double, nullable=True)
        namespace[f"{name}_sum"] = mapped_column(Double, nullable=True)
    return type(cls_name, (Base,), namespace)


def _automate_keys() -> dict[str, Any]:
    return {"unit_id": mapped_column(Integer, primary_key=True, autoincrement=False),
            "automate_no": mapped_column(Integer, primary_key=True, autoincrement=False)}


def _meter_keys() -> dict[str, Any]:
    return {"meter_id": mapped_column(String(64), primary_key=True)}


# (level name -> mapped class) for each kind of source
READING_ROLLUPS: dict[str, type[Base]] = {
    level: _rollup_table(f"ReadingRollup{level.title()}", f"readings_{level}", _automate_keys(), AUTOMATE_MEASURES)
    for level in ROLLUP_LEVELS}
POWER_ROLLUPS: dict[str, type[Base]] = {
    level: _rollup_table(f"PowerRollup{level.title()}", f"power_readings_{level}", _meter_keys(), METER_MEASURES)
    for level in ROLLUP_LEVELS}
