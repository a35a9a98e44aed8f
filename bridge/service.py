"""The bridge service: paho network thread -> queue -> one worker that writes batches.

``on_message`` only enqueues (it runs on paho's network thread and must never block). The worker
builds a batch, commits it in one transaction, and only then acknowledges each MQTT message
(paho manual ack), so a crash at any point leaves unacknowledged messages with the broker, which
redelivers them to our persistent session; idempotent writes store a redelivered one once.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from bridge.processor import BatchPlan, Outgoing, Processor, RawMessage
from bridge.settings import BridgeSettings
from plantmodel.mqtt import connect_async, new_client
from plantmodel.readings import utcnow
from plantmodel.status import DeviceStatus
from plantmodel.thresholds import ThresholdSet
from plantmodel.topics import Topics
from store import queries

log = logging.getLogger(__name__)

# Messages the broker may hand us before we ack (mosquitto.conf: max_inflight_messages 1000);
# the queue holds that many and more, so put() never blocks the network thread in practice.
QUEUE_LIMIT = 5000


@dataclass(slots=True)
class Stats:
    received: int = 0
    readings: int = 0
    samples: int = 0
    rejected: int = 0
    alarms: int = 0
    batches: int = 0
    gaps: int = 0
    db_errors: int = 0

    def line(self) -> str:
        return " ".join(f"{k}={getattr(self, k)}" for k in self.__slots__)  # type: ignore[attr-defined]


def write_plan(session: Session, plan: BatchPlan) -> None:
    """Everything of one batch, in the caller's transaction."""
    # Meters seen without a sample yet (e.g. just came online); insert_power_samples ensures the rest.
    queries.ensure_meters(session, plan.meters_seen - {s.meter for s, _ in plan.samples}, utcnow())
    queries.insert_readings(session, plan.readings)
    queries.insert_power_samples(session, plan.samples)
    for device, state, ts, rx in plan.states:
        queries.set_device_state(session, device, state, ts, rx)
    queries.save_alarm_events(session, plan.alarms)
    for msg, reason in plan.rejected:
        queries.record_rejected(session, msg.topic, msg.payload, reason, msg.received_at)


class Bridge:
    def __init__(self, settings: BridgeSettings, sessions: sessionmaker[Session],
                 client_factory: Callable[..., mqtt.Client] = new_client) -> None:
        self.settings = settings
        self.sessions = sessions
        self.topics = Topics(settings.topic_root)
        self.stats = Stats()
        self._queue: queue.Queue[RawMessage] = queue.Queue(QUEUE_LIMIT)
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._thresholds_version: object = None
        self.processor = Processor(self.topics, ThresholdSet([]), max_future_skew=settings.max_future_skew,
                                   rpc_retry=settings.rpc_retry)
        self.client = client_factory(settings.mqtt, settings.client_id, clean_session=False,
                                     manual_ack=True, max_inflight=1000, max_queued=10_000)
        self.client.will_set(self.topics.bridge_status(), DeviceStatus.offline().to_json(), qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self._worker = threading.Thread(target=self._run_worker, name="bridge-worker", daemon=True)

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        with self.sessions.begin() as session:
            added = queries.seed_default_thresholds(session, utcnow())
            if added:
                log.info("seeded %d default thresholds", added)
        self._reload_thresholds(force=True)
        with self.sessions() as session:
            self.processor.alarms.load(queries.active_alarms(session), queries.last_alarm_times(session))
        log.info("%d active alarm(s) loaded", len(self.processor.alarms.active()))
        self._worker.start()
        connect_async(self.client, self.settings.mqtt)

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the batch in hand, then disconnect (unacked messages stay with the broker)."""
        self._stop.set()
        self._worker.join(timeout)
        if self._connected.is_set():
            self.client.publish(self.topics.bridge_status(), DeviceStatus.offline().to_json(), qos=1,
                                retain=True).wait_for_publish(2)
        self.client.disconnect()
        self.client.loop_stop()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    # -- paho callbacks (network thread) ---------------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            log.error("broker refused the connection as %r: %s", self.settings.mqtt.username, reason)
            return
        # Subscribing here means a reconnect resubscribes too.
        client.subscribe([(t, 1) for t in self.topics.bridge_subscriptions()])
        client.publish(self.topics.bridge_status(), DeviceStatus.online().to_json(), qos=1, retain=True)
        self._connected.set()
        log.info("connected to %s:%d as %s", self.settings.mqtt.host, self.settings.mqtt.port,
                 self.settings.mqtt.username)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self._connected.clear()
        if not self._stop.is_set():
            log.warning("disconnected from broker (%s); reconnecting", reason)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self._queue.put(RawMessage(msg.topic, bytes(msg.payload), utcnow(), msg.mid, msg.qos))

    # -- worker ----------------------------------------------------------------------------------------
    def _run_worker(self) -> None:
        next_poll = time.monotonic()
        next_stats = time.monotonic() + 60
        while not self._stop.is_set():
            batch = self._collect()
            now = time.monotonic()
            if now >= next_poll:
                next_poll = now + self.settings.thresholds_poll
                try:
                    self._reload_thresholds()
                except SQLAlchemyError as exc:
                    log.warning("cannot check thresholds: %s", exc)
            if batch:
                self._handle(batch)
            if now >= next_stats:
                next_stats = now + 60
                log.info("stats %s", self.stats.line())

    def _collect(self) -> list[RawMessage]:
        try:
            first = self._queue.get(timeout=0.5)
        except queue.Empty:
            return []
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
        delay = 0.5
        while True:
            snap = self.processor.snapshot()
            plan = self.processor.process(batch)
            try:
                with self.sessions.begin() as session:
                    write_plan(session, plan)
                break
            except SQLAlchemyError as exc:
                # Nothing acked, nothing published: undo the batch's effect on our state and retry.
                self.processor.restore(snap)
                self.stats.db_errors += 1
                log.error("database write failed (%s); retrying in %.1f s", exc.__class__.__name__, delay)
                log.debug("database error", exc_info=True)
                if self._stop.wait(delay):
                    return  # shutting down: the broker keeps the unacked messages for us
                delay = min(delay * 2, 30)
        for msg in batch:
            if msg.qos > 0:
                self.client.ack(msg.mid, msg.qos)
        for out in plan.publish:
            self._publish(out)
        self._count(batch, plan)

    def _publish(self, out: Outgoing) -> None:
        info = self.client.publish(out.topic, out.payload, qos=1, retain=out.retain)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):  # NO_CONN: queued, sent later
            log.warning("could not publish on %s: %s", out.topic, mqtt.error_string(info.rc))

    def _count(self, batch: list[RawMessage], plan: BatchPlan) -> None:
        s = self.stats
        s.received += len(batch)
        s.readings += len(plan.readings)
        s.samples += len(plan.samples)
        s.rejected += len(plan.rejected)
        s.alarms += len(plan.alarms)
        s.gaps += plan.gaps
        s.batches += 1
        for msg, reason in plan.rejected:
            log.warning("rejected message on %s: %s", msg.topic, reason)

    def _reload_thresholds(self, force: bool = False) -> None:
        with self.sessions() as session:
            version = queries.thresholds_version(session)
            if not force and version == self._thresholds_version:
                return
            thresholds = ThresholdSet(queries.load_thresholds(session))
        self._thresholds_version = version
        self.processor.set_thresholds(thresholds)
        log.info("loaded %d thresholds", len(thresholds))


