"""The bridge service: paho network thread -> queue -> one worker that writes batches.

``on_message`` only enqueues (it runs on paho's network thread and must never block). The worker
builds a batch, commits it in one transaction, and only then acknowledges each MQTT message
(paho manual ack), so a crash at any point leaves unacknowledged messages with the broker, which
redelivers them to our persistent session; idempotent writes store a redelivered one once.

When the database refuses a batch, *why* decides what happens (:func:`classify`):

- transient (connection lost, server gone, lock wait, deadlock): the whole batch is retried with
  back-off, nothing acknowledged;
- the data (out of range, constraint): the batch is split in halves until the message the
  database refuses is alone; it is recorded in ``rejected_messages`` with the database's reason and
  acknowledged, and everything else is committed: one bad message never stops ingestion;
- anything else is our bug: the batch is split the same way, and the message that triggers it is
  *held*: counted, logged with its traceback, never acknowledged (the broker keeps it).
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

import paho.mqtt.client as mqtt
from sqlalchemy import exc as sa_exc
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from bridge.health import HEALTH_MEASURES, SourceHealth
from bridge.metrics import BridgeMetrics, MetricsServer
from bridge.processor import (
    BatchPlan,
    Lookup,
    MeterStatus,
    Outgoing,
    Processor,
    RawMessage,
    Stored,
    StoredReading,
    StoredSample,
    Wanted,
)
from bridge.settings import BridgeSettings
from plantmodel.decode import source_of_topic
from plantmodel.errors import PlantModelError
from plantmodel.mqtt import connect_async, new_client
from plantmodel.readings import to_ms, utcnow
from plantmodel.sequence import Key
from plantmodel.servicehealth import Check, ServiceHealth, health_app
from plantmodel.sources import AutomateSource, MeterSource, automate_key, parse_source
from plantmodel.status import DeviceStatus
from plantmodel.text import printable
from plantmodel.thresholds import ThresholdSet
from plantmodel.topics import Topics
from store import queries
from store.db import database_check, error_code

log = logging.getLogger(__name__)

# Messages the broker may hand us before we ack (mosquitto.conf: max_inflight_messages 1000);
# the queue holds that many and more, so put() never blocks the network thread in practice.
QUEUE_LIMIT = 5000
STATUS_CHECK_S = 1.0  # how often the worker looks for meters due a full-status refresh
# How far back each health tick looks for new readings and rejections beyond the previous tick:
# a row's received_at is older than its commit (a batch in hand, a retried one), so a window that
# started exactly at the previous tick would miss rows committed late.
HEALTH_OVERLAP = timedelta(seconds=60)
REJECTIONS_CAP = 100_000  # rejections counted per source and tick (the value only has to pass a limit)


@dataclass(slots=True)
class Stats:
    received: int = 0
    readings: int = 0
    samples: int = 0
    rejected: int = 0
    alarms: int = 0
    batches: int = 0
    gaps: int = 0
    lost: int = 0
    duplicates: int = 0
    ignored: int = 0
    db_errors: int = 0
    internal_errors: int = 0  # messages held (not acked) because our code failed on them

    def line(self) -> str:
        return " ".join(f"{k}={getattr(self, k)}" for k in self.__slots__)  # type: ignore[attr-defined]


class Failure(Enum):
    TRANSIENT = "transient"
    DATA = "data"
    BUG = "bug"


# MariaDB error codes: what a retry can fix, and what the data itself causes (PyMySQL raises some of
# the latter, e.g. a failed CHECK constraint, as OperationalError).
MYSQL_TRANSIENT = {1040, 1047, 1053, 1205, 1213, 1290, 1927, 2002, 2003, 2006, 2013, 2055}
MYSQL_DATA = {1048, 1264, 1265, 1292, 1366, 1406, 1452, 3819, 4025}


def classify(exc: BaseException) -> Failure:
    """Why a batch's transaction failed: transient, the data, or (anything else) our bug."""
    if not isinstance(exc, SQLAlchemyError):
        return Failure.BUG
    if isinstance(exc, sa_exc.DisconnectionError | sa_exc.TimeoutError):
        return Failure.TRANSIENT
    if isinstance(exc, sa_exc.DBAPIError):
        code = error_code(exc)
        if exc.connection_invalidated or code in MYSQL_TRANSIENT:
            return Failure.TRANSIENT
        if isinstance(exc, sa_exc.DataError | sa_exc.IntegrityError) or code in MYSQL_DATA:
            return Failure.DATA
        if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
            return Failure.TRANSIENT
    return Failure.BUG


def _settled(info: mqtt.MQTTMessageInfo) -> bool:
    """Acknowledged by the broker, or nothing to wait for: paho refused it, or queued it while
    disconnected (its result then never changes, and paho sends its queue in order, so a newer
    message after it is safe). paho's ``is_published`` raises in those cases."""
    if info.rc != mqtt.MQTT_ERR_SUCCESS:
        return True
    try:
        return info.is_published()
    except (ValueError, RuntimeError):
        return True


class _Unverified(Exception):
    """A batch planned some readings as new without looking them up, and one was stored already."""


LOCK_RETRIES = 20  # quick retries of a batch after lock conflicts, before the usual back-off


def is_lock_conflict(exc: BaseException) -> bool:
    """A deadlock or lock wait timeout (MariaDB 1213, 1205): another transaction held the rows."""
    return error_code(exc) in (1205, 1213)


def is_missing_parent(exc: BaseException) -> bool:
    """A foreign key refused a row (MariaDB 1452, SQLite's FOREIGN KEY constraint)."""
    return error_code(exc) == 1452 or "FOREIGN KEY constraint failed" in str(getattr(exc, "orig", ""))


def is_duplicate_key(exc: BaseException) -> bool:
    """A unique key refused a row (MariaDB 1062, SQLite's UNIQUE constraint)."""
    if not isinstance(exc, sa_exc.IntegrityError):
        return False
    return error_code(exc) == 1062 or "UNIQUE constraint failed" in str(exc.orig)


def database_reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return f"the database refused it: {orig if orig is not None else exc}"[:400]


def lookup_in(session: Session, sessions: sessionmaker[Session] | None = None) -> Lookup:
    """The processor's seam onto what the database already holds, inside the batch's transaction.

    The batch's sources are locked first, so what is read next (stored rows, other bridges' state)
    is what the bridge that last held them committed. ``sessions``: create the version rows of
    sources new to this bridge in a short transaction of their own first, so that the batch's
    locking read only meets existing rows (locking a missing one locks the gap around it too, where
    another bridge creating its own new sources would wait, or deadlock)."""

    def lookup(wanted: Wanted) -> Stored:
        new = [src for src, v in wanted.sources.items() if v is None]
        if new and sessions is not None:
            with sessions.begin() as own:
                queries.create_sources(own, new)
        versions = queries.lock_sources(session, wanted.sources)
        stale = [src for src, v in versions.items() if wanted.sources.get(src) != v]
        automates: list[Key] = []
        meters: list[str] = []
        for src in stale:
            source = parse_source(src)
            if isinstance(source, AutomateSource):
                automates.append((source.unit, source.automate))
            else:
                meters.append(source.meter)
        sequences = queries.sequences_of(session, automates)
        switches = queries.meter_states(session, meters)
        return Stored(
            {k: StoredReading(i, seq, m)
             for k, (i, seq, m) in queries.stored_readings(session, wanted.readings).items()},
            {k: StoredSample(i, smp) for k, (i, smp) in queries.stored_samples(session, wanted.samples).items()},
            versions,
            {k: sequences.get(k) for k in automates},
            {m: MeterStatus(*switches[m]) if m in switches else None for m in meters},
            queries.active_alarms_of(session, stale) if stale else {},
        )

    return lookup


LAST_SEEN_EVERY = timedelta(seconds=30)


class RegistryWrites:
    """Which device registry rows this bridge knows exist, and when it last wrote each one's
    last_seen: that is written at most every LAST_SEEN_EVERY, not with every batch (a row update
    per device per batch, on the hot path, for a figure shown to the minute)."""

    def __init__(self) -> None:
        self.written: dict[str, datetime] = {}

    def due(self, plan: BatchPlan) -> dict[str, datetime]:
        return {k: t for k, t in plan.devices_seen.items()
                if k not in self.written or t - self.written[k] >= LAST_SEEN_EVERY}

    def done(self, seen: dict[str, datetime]) -> None:
        self.written.update(seen)


def write_plan(session: Session, plan: BatchPlan, known: set[Key] | None = None,
               registry: RegistryWrites | None = None, topics: Topics | None = None) -> dict[str, datetime]:
    """Everything of one batch, in the caller's transaction. ``known``: automates that exist;
    ``topics``: the tree, to attribute each rejected message to the device its topic names.
    Returns the registry's last_seen it wrote (for ``registry.done`` after the commit)."""
    now = utcnow()  # stored_at: the write, just before the commit
    # Meters seen without a sample yet (e.g. just came online); insert_power_samples ensures the rest.
    queries.ensure_meters(session, plan.meters_seen - {s.meter for s, _ in plan.samples}, now)
    queries.insert_readings(session, plan.readings, now, known=known, new_only=True)
    queries.insert_power_samples(session, plan.samples, now, new_only=True)
    for device, state, ts, rx in plan.states:
        queries.set_device_state(session, device, state, ts, rx)
    queries.save_alarm_events(session, plan.alarms)
    for msg, reason in plan.rejected:
        queries.record_rejected(session, msg.topic, msg.payload, reason, msg.received_at,
                                None if topics is None else source_of_topic(topics, msg.topic))
    queries.save_sequences(session, plan.sequences, now)
    queries.save_meter_states(session, {m: (st.status, st.complete, st.energy_offset_wh, st.last_ts)
                                        for m, st in plan.meter_states.items()}, now)
    registry = registry or RegistryWrites()
    seen = registry.due(plan)
    queries.record_devices(session, seen, {k: (i.model, i.generation, i.firmware) for k, i in plan.device_info.items()},
                           set(registry.written))
    queries.bump_versions(session, plan.versions)  # (the processor counts on +1)
    return seen


class Bridge:
    def __init__(self, settings: BridgeSettings, sessions: sessionmaker[Session],
                 client_factory: Callable[..., mqtt.Client] = new_client, *, leaving: bool = False) -> None:
        """``leaving``: retire this bridge from its group: subscribe to nothing (unsubscribe), store
        what its session still holds, and let :meth:`drained` tell when that is done."""
        self.settings = settings
        self.leaving = leaving
        self._last_message = time.monotonic()
        self._busy = False  # a batch is in hand
        self.sessions = sessions
        self.topics = Topics(settings.topic_root)
        self.stats = Stats()
        self._queue: queue.Queue[RawMessage] = queue.Queue(QUEUE_LIMIT)
        self._stop = threading.Event()
        self._connected = threading.Event()
        # Broker outages (monotonic s): written by paho's thread, excused by the worker's no-data timer.
        self._down_since: float | None = None
        self._down_total = 0.0
        self._down_excused = 0.0
        self._thresholds_version: object = None
        self._link = 0  # counts disconnects: which connection a message came on
        self._known_automates: set[Key] = set()  # committed: no upsert of their rows per batch
        self._registry = RegistryWrites()
        # latest-only topic -> (the one handed to paho, the newer one waiting for it)
        self._latest: dict[str, tuple[mqtt.MQTTMessageInfo, Outgoing | None]] = {}
        # A Gen2 meter on a steady load sends nothing: asked for its full status at least once a
        # meter period, a healthy one always has a valid message within its no-data periods.
        self.processor = Processor(self.topics, ThresholdSet([]), max_future_skew=settings.max_future_skew,
                                   rpc_retry=settings.rpc_retry, gap_timeout=settings.gap_timeout,
                                   status_refresh=min(settings.status_refresh, settings.meter_period),
                                   max_age_days=settings.retention_raw_days)
        self.health = SourceHealth(utcnow(), timedelta(seconds=settings.report_period),
                                   timedelta(seconds=settings.meter_period))
        self._health_seen: datetime | None = None  # how far the health timer has read the database
        # The broker ties the client id to the user (use_username_as_clientid): say it ourselves too.
        self.client = client_factory(settings.mqtt, settings.mqtt.username, clean_session=False,
                                     manual_ack=True, max_inflight=1000, max_queued=10_000)
        self.client.will_set(self.topics.bridge_status(), DeviceStatus.offline().to_json(), qos=1, retain=True)
        self.metrics = BridgeMetrics(queue_depth=self._queue.qsize, active_alarms=self.processor.alarms.count,
                                     mqtt_user=settings.mqtt.username, share_group=settings.share_group)
        self._metrics_server: MetricsServer | None = None
        # The received time of the oldest message taken from the queue and not yet committed (or
        # held), and when the last batch committed: the ingest lag and commit age of /healthz.
        self._in_hand_since: datetime | None = None
        self._last_commit: datetime | None = None
        self._health_thread = threading.Thread(target=self._run_health_reports, name="bridge-health", daemon=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self._worker = threading.Thread(target=self._run_worker, name="bridge-worker", daemon=True)

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        if self.settings.metrics_port:
            try:
                self._metrics_server = self.metrics.serve(self.settings.metrics_host, self.settings.metrics_port,
                                                          lambda fallback: health_app(self.self_health, fallback))
            except OSError as exc:
                raise PlantModelError(f"cannot serve metrics on {self.settings.metrics_host}:"
                                      f"{self.settings.metrics_port} (BRIDGE_METRICS_HOST/PORT; 0 = none): "
                                      f"{exc.strerror or exc}") from None
        with self.sessions.begin() as session:
            added = queries.seed_default_thresholds(session, utcnow())
            if added:
                log.info("seeded %d default thresholds", added)
        self._reload_thresholds(force=True)
        self._reload_disabled()
        with self.sessions() as session:
            # Versions first: a state another bridge commits meanwhile is then newer than its
            # version says, and reloaded at its first lock (never the reverse: older state taken
            # for current). Each statement sees the latest commits (READ COMMITTED on MariaDB).
            versions = queries.source_version_map(session)
            self.processor.alarms.load(queries.active_alarms(session))
            self.processor.load_sequences(queries.load_sequences(session), utcnow(), versions)
        log.info("%d active alarm(s) and %d automates' sequences loaded", len(self.processor.alarms.active()),
                 len(self.processor.sequences.states))
        if self.settings.partition is not None:
            units, meters = self.settings.partition_of()
            log.info("partition %d/%d: units %s; meters %s", *self.settings.partition,
                     ", ".join(map(str, units)) or "none", ", ".join(meters) or "none")
        self.health.started = utcnow()  # every source gets its N periods from here
        self._worker.start()
        self._health_thread.start()
        connect_async(self.client, self.settings.mqtt)

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the batch in hand, then disconnect (unacked messages stay with the broker)."""
        self._stop.set()
        self._worker.join(timeout)
        deadline = time.monotonic() + 2.0  # the newest confirmations still waiting for their turn
        while any(w is not None for _, w in self._latest.values()) and time.monotonic() < deadline:
            self._publish_waiting()
            time.sleep(0.05)
        # Before the goodbye: a report in the making must not land after it (and stay for good).
        self._health_thread.join(10)
        if self._connected.is_set():
            self.client.publish(self.topics.bridge_status(), DeviceStatus.offline().to_json(), qos=1,
                                retain=True).wait_for_publish(2)
            # A bridge that stops on purpose leaves the services page (a killed one goes stale there).
            self.client.publish(self.topics.bridge_health(self.settings.mqtt.username), b"", qos=1,
                                retain=True).wait_for_publish(2)
        self.client.disconnect()
        self.client.loop_stop()
        if self._metrics_server is not None:
            self._metrics_server.shutdown()

    def subscriptions(self, shared: bool | None = None) -> list[str]:
        """Shared (``$share/<group>/…``: the bridges of the group split the stream) or plain; with
        a partition, the partition's units and meters only, in a group of its own."""
        group = self.settings.share_group or "bridges"
        if shared is None:
            shared = bool(self.settings.share_group)
        if self.settings.partition is not None:
            k, n = self.settings.partition
            group = f"{group}-{k}of{n}"
            topics = self.topics.partition_subscriptions(*self.settings.partition_of())
        else:
            topics = self.topics.bridge_subscriptions()
        return [f"$share/{group}/{t}" for t in topics] if shared else topics

    def _stale_subscriptions(self) -> list[str]:
        """The other forms a previous configuration of this persistent session may have left."""
        group = self.settings.share_group or "bridges"
        current = set(self.subscriptions())
        return [t for t in ("#", f"$share/{group}/#") if t not in current]

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def drained(self, quiet: float) -> bool:
        """Connected, nothing in hand, and no message for ``quiet`` seconds."""
        return (self._connected.is_set() and not self._busy and self._queue.empty()
                and time.monotonic() - self._last_message >= quiet)

    # -- paho callbacks (network thread) ---------------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            log.error("broker refused the connection as %r: %s", self.settings.mqtt.username, reason)
            return
        # Subscribing here means a reconnect resubscribes too.
        if self.leaving:  # what the session holds still comes; nothing new is dealt to it
            client.unsubscribe(self.subscriptions(True) + self.subscriptions(False) + self._stale_subscriptions())
            log.info("leaving: unsubscribed; storing what the session still holds")
        else:
            client.subscribe([(t, 1) for t in self.subscriptions()])
            stale = self._stale_subscriptions()
            if stale:  # a persistent session keeps what a previous configuration subscribed: drop it
                client.unsubscribe(stale)
        client.publish(self.topics.bridge_status(), DeviceStatus.online().to_json(), qos=1, retain=True)
        down_since = self._down_since
        if down_since is not None:  # (the worker applies it to the no-data clocks: it owns them)
            self._down_total += time.monotonic() - down_since
            self._down_since = None
        self._connected.set()
        self.metrics.mqtt_connected()
        log.info("connected to %s as %s", self.settings.mqtt.describe(), self.settings.mqtt.username)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        # Message ids belong to a connection: one received before this disconnect must never be
        # acknowledged on the next connection, where the broker (restarted from an older save,
        # say) may have given that id to a message we have not stored. Those are stored, not
        # acknowledged; the broker redelivers them and the idempotent writes absorb the copy.
        self._link += 1
        if self._down_since is None:
            self._down_since = time.monotonic()
        self._connected.clear()
        self.metrics.mqtt_disconnected()
        if not self._stop.is_set():
            log.warning("disconnected from broker (%s); reconnecting", reason)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self._last_message = time.monotonic()
        self._queue.put(RawMessage(msg.topic, bytes(msg.payload), utcnow(), msg.mid, msg.qos, self._link))

    # -- worker ----------------------------------------------------------------------------------------
    def _run_worker(self) -> None:
        next_poll = time.monotonic()
        next_stats = time.monotonic() + 60
        next_status = time.monotonic() + STATUS_CHECK_S
        next_health = time.monotonic() + self.settings.health_tick
        while not self._stop.is_set():
            self._busy = False
            try:
                batch = self._collect()
                now = time.monotonic()
                if now >= next_poll:
                    next_poll = now + self.settings.thresholds_poll
                    try:
                        self._reload_thresholds()
                        self._reload_disabled()
                    except SQLAlchemyError as exc:
                        log.warning("cannot check thresholds and disabled devices: %s", exc)
                if batch:
                    try:
                        self._handle(batch)
                    finally:
                        self._in_hand_since = None  # handled, or held by the broker for a redelivery
                    self._busy = False
                self._publish_waiting()
                if now >= next_status and self._connected.is_set():
                    next_status = now + STATUS_CHECK_S
                    for out in self.processor.status_requests(utcnow()):
                        self._publish(out)
                if now >= next_health and not self.leaving and self._connected.is_set():
                    # Between batches (the worker owns the processor's state); a batch in hand
                    # goes first, and a tick is a few indexed reads unless an alarm changes. Not
                    # while cut from the broker: the silence would be ours, not the devices'.
                    next_health = now + self.settings.health_tick
                    self._excuse_outages()
                    self._watch_health()
                if now >= next_stats:
                    next_stats = now + 60
                    log.info("stats %s", self.stats.line())
            except Exception:  # the worker must outlive our bugs: what it did not commit it did not ack
                self.stats.internal_errors += 1
                self.metrics.internal_error()
                log.exception("internal error in the bridge worker; continuing")
                self._stop.wait(1.0)

    # -- own health ------------------------------------------------------------------------------------
    def ingest_lag(self, now: datetime) -> float | None:
        """Seconds the oldest received, uncommitted message has waited (None: nothing waits)."""
        oldest = self._in_hand_since
        try:
            head = self._queue.queue[0].received_at  # a peek; the worker may take it meanwhile
        except IndexError:
            head = None
        waiting = [t for t in (oldest, head) if t is not None]
        return max(0.0, (now - min(waiting)).total_seconds()) if waiting else None

    def self_health(self) -> ServiceHealth:
        """Broker connected, database reachable (one ``SELECT 1``), ingest lag within
        ``BRIDGE_MAX_INGEST_LAG``; with the lag, the last commit's age and the queue depth."""
        now = utcnow()
        connected = self._connected.is_set()
        broker = Check(connected, "" if connected else f"not connected to {self.settings.mqtt.describe()}")
        database = database_check(self.sessions)
        lag = self.ingest_lag(now)
        limit = self.settings.max_ingest_lag
        ingest = Check(True) if lag is None or lag <= limit else Check(
            False, f"a message has waited {lag:.0f} s for its commit (limit {limit:g} s)")
        last = self._last_commit
        return ServiceHealth("bridge", self.settings.mqtt.username or "bridge", now,
                             {"broker": broker, "database": database, "ingest": ingest},
                             {"ingest_lag_s": lag, "last_commit_age_s": (now - last).total_seconds() if last else None,
                              "queue_depth": float(self._queue.qsize()), "report_every_s": self.settings.health_report})

    def _run_health_reports(self) -> None:
        """Publish :meth:`self_health`, retained, every ``BRIDGE_HEALTH_REPORT`` (the services page)."""
        while not self._stop.wait(0 if not self._connected.is_set() else self.settings.health_report):
            if not self._connected.wait(1.0):
                continue
            try:
                health = self.self_health()
                if health.problems:
                    log.warning("health: %s", "; ".join(health.problems))
                if self._stop.is_set():
                    return  # stopping: stop() publishes the goodbye
                self.client.publish(self.topics.bridge_health(self.settings.mqtt.username), health.to_json(),
                                    qos=1, retain=True)
            except Exception:  # a bug here must not end the reports: the page would show a stale bridge
                log.exception("health report failed")

    def _collect(self) -> list[RawMessage]:
        try:
            first = self._queue.get(timeout=0.5)
        except queue.Empty:
            return []
        self._busy = True  # from here until it is handled: `bridge leave` must not stop meanwhile
        self._in_hand_since = first.received_at  # the ingest lag counts from the first one taken
        batch = [first]
        deadline = time.monotonic() + self.settings.batch_wait
        while len(batch) < self.settings.batch_size:
            remaining = deadline - time.monotonic()
            try:
                batch.append(self._queue.get(timeout=remaining) if remaining > 0
                             else self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _handle(self, batch: list[RawMessage]) -> None:
        # (part, reason, verify): reason set = record the part as rejected with the database's
        # reason; verify = look up every reading's key (a guess that a row was new proved wrong).
        work: deque[tuple[list[RawMessage], str | None, bool]] = deque([(batch, None, False)])
        delay = 0.5
        lock_retries = 0
        while work:
            part, reason, verify = work[0]
            try:
                plan = self._commit(part, reason, verify)
            except _Unverified:
                work[0] = (part, reason, True)  # another writer stored one of them: redo, looking all up
                continue
            except Exception as exc:
                failure = classify(exc)
                if failure is Failure.TRANSIENT:
                    # Nothing acked, nothing published: retry the same part.
                    self.stats.db_errors += 1
                    self.metrics.db_error()
                    if is_lock_conflict(exc) and lock_retries < LOCK_RETRIES:
                        # Another bridge holds rows this batch needs (a deadlock victim, usually on
                        # new sources): nothing is down, so retry at once, with a little jitter.
                        lock_retries += 1
                        log.info("lock conflict with another writer (%s); retrying", exc.__class__.__name__)
                        if self._stop.wait(random.uniform(0.005, 0.05)):
                            return
                        continue
                    log.error("database write failed (%s); retrying in %.1f s", exc.__class__.__name__, delay)
                    log.debug("database error", exc_info=True)
                    if self._stop.wait(delay):
                        return  # shutting down: the broker keeps the unacked messages for us
                    delay = min(delay * 2, 30)
                    continue
                if failure is Failure.DATA and self._known_automates and is_missing_parent(exc):
                    # An automate this bridge created is gone (a restore, a DBA's cleanup): forget
                    # what it knows and create it again, rather than reject its readings.
                    log.warning("an automate known to exist is missing; creating it again")
                    self._known_automates.clear()
                    continue
                work.popleft()
                if len(part) > 1:
                    mid = len(part) // 2
                    work.extendleft([(part[mid:], reason, True), (part[:mid], reason, True)])
                    log.warning("the database refused a batch of %d (%s); splitting it to isolate the cause",
                                len(part), failure.value)
                elif failure is Failure.DATA and reason is None:
                    work.appendleft((part, database_reason(exc), True))
                else:
                    self._hold(part[0], exc)
                continue
            work.popleft()
            delay = 0.5
            self._done(part, plan)

    def _commit(self, part: list[RawMessage], reason: str | None, verify: bool = True) -> BatchPlan:
        t0 = time.perf_counter()
        plan: BatchPlan | None = None
        try:
            with self.sessions.begin() as session:
                plan = self.processor.process(part, lookup_in(session, self.sessions), reject_reason=reason,
                                              verify=verify)
                seen = write_plan(session, plan, self._known_automates, self._registry, self.topics)
        except BaseException as exc:
            self.processor.undo()  # the batch's effect on our state is undone with it
            if plan is not None and plan.unverified and is_duplicate_key(exc):
                log.info("a reading believed new was stored already (another bridge?); redoing the batch "
                         "with every key looked up")
                raise _Unverified from exc
            raise
        self.metrics.observe_batch(len(part), time.perf_counter() - t0)
        self._last_commit = utcnow()
        self.metrics.observe_device_times([r.ts for r, _ in plan.readings] + [s.ts for s, _ in plan.samples],
                                          self._last_commit)
        self._known_automates.update((r.unit, r.automate) for r, _ in plan.readings)
        self._registry.done(seen)
        for reset in plan.resets:
            self.metrics.counter_reset(reset.meter)
        return plan

    def _hold(self, msg: RawMessage, exc: BaseException) -> None:
        self.stats.internal_errors += 1
        self.metrics.internal_error()
        log.error("message on %s held, not acknowledged: the bridge fails on it (%s: %s); it stays with the "
                  "broker until the bridge reconnects", printable(msg.topic), type(exc).__name__, exc, exc_info=exc)

    def _done(self, part: list[RawMessage], plan: BatchPlan) -> None:
        held = {id(m) for m, _ in plan.held}
        for msg in part:
            # (checked per message: a reconnect may happen while this loop runs)
            if msg.qos > 0 and id(msg) not in held and msg.link == self._link:
                self.client.ack(msg.mid, msg.qos)
        self._count(part, plan)
        for out in plan.publish:
            try:
                self._publish(out)
            except Exception:  # committed and acked: a failed publish must not stop the others
                self.stats.internal_errors += 1
                self.metrics.internal_error()
                log.exception("could not publish on %s", printable(out.topic))

    def _publish(self, out: Outgoing) -> None:
        if out.latest_only:
            # At most one in flight per topic; a newer one waits for it, replacing any waiting: a
            # backlog drain would otherwise queue a confirmation per unit per batch, past paho's
            # bounded queue, while only the newest matters.
            sent = self._latest.get(out.topic)
            if sent is not None and not _settled(sent[0]):
                self._latest[out.topic] = (sent[0], out)
                return
        info = self.client.publish(out.topic, out.payload, qos=1, retain=out.retain)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):  # NO_CONN: queued, sent later
            log.warning("could not publish on %s: %s", out.topic, mqtt.error_string(info.rc))
        if out.latest_only:
            self._latest[out.topic] = (info, None)

    def _publish_waiting(self) -> None:
        """Send the latest-only messages whose predecessor has been acknowledged by the broker."""
        for topic, (info, waiting) in list(self._latest.items()):
            if waiting is not None and _settled(info):
                del self._latest[topic]
                self._publish(waiting)

    def _count(self, batch: list[RawMessage], plan: BatchPlan) -> None:
        s = self.stats
        s.received += len(batch)
        s.readings += len(plan.readings)
        s.samples += len(plan.samples)
        s.rejected += len(plan.rejected)
        s.alarms += len(plan.alarms)
        s.gaps += plan.gaps
        s.lost += sum(lost.last - lost.first + 1 for lost in plan.lost)
        s.duplicates += plan.duplicates
        s.ignored += plan.ignored
        s.internal_errors += len(plan.held)
        s.batches += 1
        m = self.metrics
        m.received(len(batch))
        m.stored(len(plan.readings), len(plan.samples))
        m.duplicates(plan.duplicates)
        m.ignored(plan.ignored)
        m.internal_error(len(plan.held))
        m.gaps(plan.gaps)
        m.lost(sum(lost.last - lost.first + 1 for lost in plan.lost))
        for alarm in plan.alarms:
            m.alarm_transition(alarm.state)
        for msg, reason in plan.rejected:
            m.rejected(reason)
            log.warning("rejected message on %s: %s", printable(msg.topic), printable(reason))

    # -- no-data / probe-fault timer ----------------------------------------------------------------
    def _excuse_outages(self) -> None:
        """Time the bridge spent cut from the broker is not the devices' silence."""
        total = self._down_total
        if total > self._down_excused:
            self.health.pause(timedelta(seconds=total - self._down_excused))
            self._down_excused = total

    def _watch_health(self) -> None:
        """One tick: read what is new in the database, then raise or clear no-data and probe-fault
        alarms. The database being down (or busy) only skips the tick: the next one retries, and
        its window starts where the last successful one ended."""
        now = to_ms(utcnow())  # an alarm's raised_at is its key: stored to the millisecond
        try:
            with self.sessions() as session:
                expected, in_scope = self._expected_sources(session)
                window = (self._health_seen or self.health.started) - HEALTH_OVERLAP
                for src, at in queries.valid_data_since(session, window).items():
                    self.health.saw_valid(src, at)
                faulty = (queries.rejected_sources_since(session, window) | set(self.health.rejections)
                          | {a.source.key for a in self.processor.alarms.active() if a.measure in HEALTH_MEASURES})
                for src in sorted(faulty & expected):
                    count, reason = queries.rejections_after(session, src, self.health.counting_from(src),
                                                             REJECTIONS_CAP)
                    self.health.set_rejections(src, count, reason)
        except SQLAlchemyError as exc:
            log.warning("no-data / probe-fault check skipped, the database did not answer: %s", exc)
            return
        self._health_seen = now
        # What no longer is expected (disabled, removed) but still has a health alarm: cleared.
        ended = {a.source.key for a in self.processor.alarms.active()
                 if a.measure in HEALTH_MEASURES and a.source.key not in expected and in_scope(a.source.key)}

        def health(src: str, active: Any) -> tuple[dict[str, float], dict[str, str]]:
            return (self.health.quiet(), {}) if src in ended else self.health.values(src, now, active)

        try:
            with self.sessions.begin() as session:
                plan = self.processor.watch(now, sorted(expected | ended), health, lookup_in(session, self.sessions))
                if plan.alarms:
                    write_plan(session, plan, self._known_automates, self._registry, self.topics)
        except SQLAlchemyError as exc:
            self.processor.undo()
            self.stats.db_errors += 1
            self.metrics.db_error()
            log.warning("no-data / probe-fault alarms not written (%s); retrying at the next tick",
                        exc.__class__.__name__)
            return
        except BaseException:
            self.processor.undo()
            raise
        self.stats.alarms += len(plan.alarms)
        for alarm in plan.alarms:
            self.metrics.alarm_transition(alarm.state)
        for out in plan.publish:
            self._publish(out)

    def _expected_sources(self, session: Session) -> tuple[set[str], Callable[[str], bool]]:
        """The sources that should report (this bridge's partition of the layout, and the automates
        and meters the database knows), minus those of disabled or removed devices; and whether a
        source is this bridge's to watch at all."""
        units, meters = self.settings.partition_of()
        partitioned = self.settings.partition is not None
        unit_set, meter_set = set(units), set(meters)
        keys = {automate_key(u, a) for u in units for a in range(1, self.settings.layout.automates + 1)}
        keys |= {f"meters/{m}" for m in meters}
        for row in queries.automates(session):
            if not partitioned or row.unit_id in unit_set:
                keys.add(automate_key(row.unit_id, row.automate_no))
        if not partitioned:  # a meter outside the layout is in no partition's subscriptions
            keys |= {MeterSource(row.id).key for row in queries.meters(session)}
        off = queries.disabled_devices(session) | queries.removed_devices(session)

        def in_scope(src: str) -> bool:
            if not partitioned:
                return True
            source = parse_source(src)
            return source.unit in unit_set if isinstance(source, AutomateSource) else source.meter in meter_set

        return {k for k in keys if queries.device_of_source(k) not in off}, in_scope

    def _reload_disabled(self) -> None:
        with self.sessions() as session:
            disabled = queries.disabled_devices(session)
        if disabled != self.processor.disabled:
            log.info("disabled devices: %s", ", ".join(sorted(disabled)) or "none")
        self.processor.set_disabled(disabled)

    def _reload_thresholds(self, force: bool = False) -> None:
        with self.sessions() as session:
            version = queries.thresholds_version(session)
            if not force and version == self._thresholds_version:
                return
            thresholds = ThresholdSet(queries.load_thresholds(session))
        self._thresholds_version = version
        self.processor.set_thresholds(thresholds)
        log.info("loaded %d thresholds", len(thresholds))


