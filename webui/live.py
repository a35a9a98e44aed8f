"""Live feed: MQTT messages become Socket.IO events.

:class:`LiveTranslator` is the pure part (topic + payload -> :class:`LiveUpdate` or
:class:`~plantmodel.thresholds.Alarm`), :class:`LiveFeed` runs the paho client and pushes what the
translator returns. Updates are coalesced per room (see :mod:`webui.push`), items by kind:

    ``readings``  Reading.to_dict()
    ``power``     PowerSample.to_dict() of the meter's merged switch status
    ``status``    {"device": "units/<u>" | "meters/<id>", "state": "online" | "offline", "ts"}

Alarms go at once to room ``alarms`` as event ``alarm`` with the database row's
``queries.alarm_dict`` (so the browser has the id to acknowledge).

:class:`Health` is the web UI's own view of its links (its MQTT client, the database, probed every
few seconds by :meth:`LiveFeed.start`'s probe thread) and of the bridges (:class:`BridgeWatch`:
their retained status, birth or last will, and whether stored readings keep up with live ones);
every change goes to room ``alarms`` (every connected browser) as event ``health``
(:meth:`Health.to_dict`), so the pages stop showing frozen values as live, and an operator sees
when nothing is stored (tiles stay live: the web UI decodes the devices' messages itself).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt
from flask_socketio import SocketIO
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from plantmodel.decode import AlarmEvent, Decoder, OnlineEvent, ReadingEvent, SwitchEvent
from plantmodel.decode import Event as DecodedEvent
from plantmodel.errors import ValidationError
from plantmodel.jsonutil import dumps, loads_object
from plantmodel.mqtt import MqttSettings, connect_async, new_client
from plantmodel.readings import format_ts, utcnow
from plantmodel.shelly import PowerSample, SwitchState, switch_from_sample
from plantmodel.sources import AutomateSource, MeterSource
from plantmodel.status import DeviceStatus
from plantmodel.thresholds import Alarm
from plantmodel.topics import Topics
from store import queries
from store.models import Alarm as AlarmRow
from store.models import Reading, RejectedMessage
from webui.metrics import WebMetrics
from webui.push import ALARMS_ROOM, Coalescer, Views, rooms_for
from webui.services import BridgeReports

log = logging.getLogger(__name__)

DEFAULT_PUSH_INTERVAL = 0.5
HEALTH_EVENT = "health"
# A dead database shows on the pages within this (plus the failing query's own time).
DB_PROBE_INTERVAL = 3.0
MQTT_DOWN = "MQTT broker unreachable"
DB_DOWN = "database unavailable"
BRIDGE_DOWN = "bridge offline: readings are not being stored, no alarm can be raised"
STORING_STALLED = "bridge stuck: devices publish but no reading has been stored"
# Devices publishing readings for this long while the newest stored reading does not move: the
# bridge is stuck (3 report periods of the default WEBUI_REPORT_PERIOD, as a source goes stale).
STALL_AFTER = 3 * 60.0
_LINKS = (("mqtt", MQTT_DOWN), ("database", DB_DOWN), ("bridge", BRIDGE_DOWN), ("storing", STORING_STALLED))


@dataclass(frozen=True, slots=True)
class LiveUpdate:
    """One item of an ``update`` event: ``kind`` is its key there, ``source`` the device it is about
    (``units/3/automates/2``, ``units/3``, ``meters/<id>``): it decides the rooms and what replaces it."""

    kind: str  # "readings" | "power" | "status"
    source: str
    data: dict[str, Any]


Event = LiveUpdate | Alarm


class LiveTranslator:
    """Topic + payload -> events, through the one device decoder (:mod:`plantmodel.decode`). Not
    thread-safe: only paho's network thread calls it.

    It keeps each meter's merged switch status (:class:`SwitchState`, as the bridge does), because
    a Shelly NotifyStatus or a Gen1 value carries only what changed and the page must still show the
    unchanged ones.
    """

    def __init__(self, topics: Topics, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.topics = topics
        self.decoder = Decoder(topics)
        self._clock = clock
        self._meters: dict[str, SwitchState] = {}

    def seed(self, sample: PowerSample) -> None:
        """Start a meter from its stored latest sample, unless live data already arrived."""
        if sample.meter not in self._meters:
            state = self._meters[sample.meter] = SwitchState(sample.meter)
            # Without the errors: a Gen1 meter clears one with a flag of its own, never the list,
            # so a seeded list would stay forever (the alarms page keeps the active ones).
            state.status = switch_from_sample(replace(sample, errors=()))
            state.energy_offset_wh, state.last_ts = sample.energy_offset_wh, sample.ts

    def translate(self, topic: str, payload: bytes) -> list[Event]:
        if not payload:
            return []  # a retained message being cleared, not data
        try:
            events = self.decoder.decode(topic, payload)
        except ValidationError as exc:
            # The bridge records rejects; the live view just skips them.
            log.warning("skipping message on %r: %s", topic, exc.reason)
            return []
        out: list[Event] = []
        for ev in events:
            try:
                out.extend(self._translate(ev))
            except ValidationError as exc:
                log.warning("skipping message on %r: %s", topic, exc.reason)
        return out

    def _translate(self, ev: DecodedEvent) -> list[Event]:
        match ev:
            case ReadingEvent(reading=reading):
                return [LiveUpdate("readings", AutomateSource(reading.unit, reading.automate).key, reading.to_dict())]
            case OnlineEvent(device=device, online=online, ts=ts):
                return [_status(device, "online" if online else "offline", ts or self._clock())]
            case AlarmEvent():
                return [ev.alarm()]
            case SwitchEvent(meter=meter, status=status, full=full, ts=ts):
                state = self._meters.get(meter) or SwitchState(meter)
                # (validated before kept)
                sample, _reset = state.apply(status, ts or self._clock(), full=full, device_time=ts is not None)
                self._meters[meter] = state
                return [LiveUpdate("power", MeterSource(meter).key, sample.to_dict())]
        return []


def _status(device: str, state: str, ts: datetime) -> LiveUpdate:
    return LiveUpdate("status", device, {"device": device, "state": state, "ts": format_ts(ts)})


class Health:
    """Whether the web UI's MQTT client is connected, its database answers, a bridge is online
    (``bridge``) and the readings the devices publish get stored (``storing``): see
    :class:`BridgeWatch`.

    ``None`` means "not known": MQTT never started (tests drive the feed by hand), the database
    not probed yet, no bridge status ever published; only a known failure is a problem.
    ``on_change(health_dict)`` is called, outside the lock, each time a known state changes.
    Thread-safe: paho's thread, the probe thread and the Socket.IO handlers all use it.
    """

    def __init__(self, on_change: Callable[[dict[str, Any]], None] | None = None, *,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self._on_change = on_change
        self._clock = clock
        self._lock = threading.Lock()
        self._state: dict[str, bool | None] = {link: None for link, _ in _LINKS}
        self._reasons: dict[str, str] = {}
        self._since = clock()

    def set_mqtt(self, ok: bool, reason: str = "") -> None:
        self._set("mqtt", ok, reason)

    def set_database(self, ok: bool, reason: str = "") -> None:
        self._set("database", ok, reason)

    def set_bridge(self, ok: bool | None, reason: str = "") -> None:
        self._set("bridge", ok, reason)

    def set_storing(self, ok: bool | None, reason: str = "") -> None:
        self._set("storing", ok, reason)

    def _set(self, link: str, ok: bool | None, reason: str) -> None:
        with self._lock:
            changed = self._state[link] is not ok
            self._state[link] = ok
            self._reasons[link] = reason if ok is False else ""
            if changed:
                self._since = self._clock()
            data = self._dict()
        if changed:
            log.log(logging.WARNING if ok is False else logging.INFO, "health: %s %s%s", link,
                    {True: "up", False: "down", None: "unknown"}[ok], f" ({reason})" if reason and ok is False else "")
            if self._on_change is not None:
                try:
                    self._on_change(data)
                except Exception:  # the push must not break the MQTT callback or the probe
                    log.exception("could not push the health change")

    def to_dict(self) -> dict[str, Any]:
        """``{"ok", "mqtt", "database", "bridge", "storing", "problems": [text], "reasons": {link:
        why}, "since"}``: ``ok`` is false when a link is known to be down; ``since`` is the last change."""
        with self._lock:
            return self._dict()

    @property
    def ok(self) -> bool:
        return bool(self.to_dict()["ok"])

    def _dict(self) -> dict[str, Any]:
        problems = [text for link, text in _LINKS if self._state[link] is False]
        return {"ok": not problems, **self._state,
                "problems": problems, "reasons": {k: v for k, v in self._reasons.items() if v},
                "since": format_ts(self._since)}


_UNSEEN: Any = object()  # no probe yet


class BridgeWatch:
    """What the web UI can tell of the bridges, which store the readings and raise the alarms.

    *Status* (``bridge``): a bridge publishes ``online`` (retained) on connecting, and the broker
    publishes its last will ``offline`` there when it dies (at once when its TCP connection breaks,
    after 1.5 keepalives when it goes silent). Every bridge of a plant (``bridge``, ``bridge-2`` …)
    publishes on the one status topic, so the retained message is the newest event of any of them:
    ``bridge`` is false when that is an ``offline``, unless stored data moved on after it (another
    bridge of the group is still storing: in a shared group any online bridge stores everything).

    *Storing* (``storing``): a bridge that is connected but stuck leaves no last will. ``storing``
    is false when devices have published readings for ``stall_after`` seconds while the newest
    stored row (``MAX(received_at)`` of readings and rejected messages, an index lookup per probe)
    has not moved. Not reported while ``bridge`` is down (that says it already).

    Thread-safe: paho's thread calls :meth:`status` and :meth:`live_reading`, the probe :meth:`stored`.
    """

    def __init__(self, health: Health, *, stall_after: float = STALL_AFTER,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._health = health
        self.stall_after = stall_after
        self._clock = clock
        self._lock = threading.Lock()
        self._online: bool | None = None
        self._offline_ts = ""
        self._baseline: Any = _UNSEEN  # newest stored at the first probe after an offline status
        self._elsewhere = False  # stored data moved on since: another bridge stores
        self._newest: Any = _UNSEEN
        self._pending_since: float | None = None  # first live reading since the newest stored moved
        self._stalled = False

    def status(self, payload: bytes) -> None:
        """A message on the bridge status topic (empty: the retained status was cleared)."""
        if not payload:
            online, ts = None, ""
        else:
            try:
                status = DeviceStatus.from_json(payload)
            except ValidationError as exc:
                log.warning("skipping the bridge status %r: %s", payload[:200], exc.reason)
                return
            online, ts = status.state == "online", format_ts(status.ts)
        with self._lock:
            self._online, self._offline_ts = online, ts
            self._baseline, self._elsewhere = _UNSEEN, False
        self._report()

    def live_reading(self) -> None:
        with self._lock:
            if self._pending_since is None:
                self._pending_since = self._clock()

    def stored(self, newest: datetime | None) -> None:
        """One probe's newest ``received_at`` in the database."""
        now = self._clock()
        with self._lock:
            if self._newest is not _UNSEEN and newest != self._newest:
                self._pending_since = None  # the bridge stores
            self._newest = newest
            if self._online is False:
                if self._baseline is _UNSEEN:
                    self._baseline = newest
                elif newest != self._baseline:
                    self._elsewhere = True
            self._stalled = self._pending_since is not None and now - self._pending_since >= self.stall_after
        self._report(storing=True)

    def _report(self, storing: bool = False) -> None:
        with self._lock:
            online, elsewhere, stalled = self._online, self._elsewhere, self._stalled
            reason = f"last status offline at {self._offline_ts}"
            waited = 0.0 if self._pending_since is None else self._clock() - self._pending_since
        bridge = None if online is None else (online or elsewhere)
        self._health.set_bridge(bridge, reason)
        if storing or bridge is False:
            self._health.set_storing(None if bridge is False else not stalled,
                                     f"nothing stored for {waited:.0f} s while devices publish readings")


class MqttUnavailable(Exception):
    """The web UI cannot publish now (not connected, or paho refused the message)."""


class LiveFeed:
    """Subscribes to the live topics and pushes the translated events to the browsers' rooms.

    ``push`` coalesces updates (tests call ``handle`` and ``push.flush()`` directly); ``views`` is
    kept by the Socket.IO handlers and tells which automate rooms a unit's status goes to.
    """

    def __init__(self, mqtt_settings: MqttSettings, topics: Topics, socketio: SocketIO,
                 make_session: sessionmaker[Session], *, push_interval: float = DEFAULT_PUSH_INTERVAL,
                 metrics: WebMetrics | None = None, db_probe_interval: float = DB_PROBE_INTERVAL,
                 stall_after: float = STALL_AFTER) -> None:
        self._mqtt_settings = mqtt_settings
        self.metrics = metrics if metrics is not None else WebMetrics()
        self.topics = topics
        self._socketio = socketio
        self._make_session = make_session
        self.translator = LiveTranslator(topics)
        self.views = Views()
        self.push = Coalescer(self._emit_to, push_interval)
        self._client: mqtt.Client | None = None
        self.health = Health(self._health_changed)
        self.bridges = BridgeWatch(self.health, stall_after=stall_after)
        self.bridge_reports = BridgeReports()  # each bridge's own health (the services page)
        self._bridge_health_prefix = topics.bridge_health("")
        self._origin = uuid.uuid4().hex  # this process, in the alarm changes it tells the others
        self.db_probe_interval = db_probe_interval
        self._probe_stop = threading.Event()
        self._probe_thread: threading.Thread | None = None
        # Called with every message (topic, payload) on paho's thread, after the translation: the
        # remote switching waits there for the devices' answers.
        self.listeners: list[Callable[[str, bytes], None]] = []

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.is_connected()

    def start(self) -> None:
        """Connect to MQTT (paho's thread then feeds the pushes), start the push thread and the
        database probe."""
        self.push.start()
        self.health.set_mqtt(False, "connecting")  # until the broker accepts us
        self.start_probe()
        # The broker takes the user name as the client id (use_username_as_clientid): two web UIs
        # logged in as one MQTT user would keep disconnecting each other, so each needs its own user.
        client = new_client(self._mqtt_settings, self._mqtt_settings.username)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client
        connect_async(client, self._mqtt_settings)
        log.info("MQTT: connecting to %s as %r", self._mqtt_settings.describe(),
                 self._mqtt_settings.username)

    def stop(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None
            self.metrics.mqtt_disconnected()
        self.stop_probe()
        self.push.stop()

    # -- database probe ------------------------------------------------------------------------------
    def probe_database(self) -> bool:
        """One cheap query; records the result in ``health`` and returns it."""
        try:
            with self._make_session() as session:
                session.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            self.health.set_database(False, str(exc.__class__.__name__))
            return False
        self.health.set_database(True)
        return True

    def probe_storing(self) -> bool:
        """Whether the bridges keep storing (:class:`BridgeWatch`); two index lookups."""
        try:
            with self._make_session() as session:
                newest = max((t for t in (session.scalar(select(func.max(m.received_at)))
                                          for m in (Reading, RejectedMessage)) if t is not None), default=None)
        except SQLAlchemyError as exc:  # the database probe says it
            log.debug("storing probe failed: %s", exc)
            return False
        self.bridges.stored(newest)
        return True

    def start_probe(self) -> None:
        if self._probe_thread is not None and self._probe_thread.is_alive():
            return
        self._probe_stop.clear()
        self._probe_thread = threading.Thread(target=self._probe_loop, name="webui-db-probe", daemon=True)
        self._probe_thread.start()

    def stop_probe(self) -> None:
        self._probe_stop.set()
        if self._probe_thread is not None:
            self._probe_thread.join(timeout=5)
            self._probe_thread = None

    def _probe_loop(self) -> None:
        while True:
            try:
                if self.probe_database():
                    self.probe_storing()
            except Exception:  # a bug must not end the probing: the badge would lie from then on
                log.exception("database probe failed")
            if self._probe_stop.wait(self.db_probe_interval):
                return

    def _health_changed(self, data: dict[str, Any]) -> None:
        self._socketio.emit(HEALTH_EVENT, data, to=ALARMS_ROOM)
        self.metrics.pushed(HEALTH_EVENT)

    def publish(self, topic: str, payload: str, *, qos: int = 1) -> mqtt.MQTTMessageInfo:
        """Publish on the web UI's MQTT connection (legacy HTTP ingest, remote switching); raises
        :class:`MqttUnavailable` when not connected (the caller answers 503)."""
        client = self._client
        if client is None or not client.is_connected():
            raise MqttUnavailable("the web UI is not connected to the MQTT broker")
        info = client.publish(topic, payload, qos=qos)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise MqttUnavailable(f"MQTT publish failed: {mqtt.error_string(info.rc)}")
        return info

    def handle(self, topic: str, payload: bytes) -> None:
        """Translate one message: updates wait in ``push`` for their rooms, alarms go out at once."""
        self.metrics.mqtt_message()
        if topic == self.topics.bridge_status():
            self.bridges.status(payload)
            return
        if topic.startswith(self._bridge_health_prefix):
            self.bridge_reports.received(topic[len(self._bridge_health_prefix):], payload)
            return
        if topic == self.topics.webui_alarm_changes():
            self._alarm_changed_elsewhere(payload)
            return
        for event in self.translator.translate(topic, payload):
            if isinstance(event, Alarm):
                self.alarm_changed(self._alarm_dict(event))
            else:
                if event.kind == "readings":
                    self.bridges.live_reading()
                self.push.add(rooms_for(event.source, self.views.rooms), event.kind, event.source, event.data)

    def alarm_changed(self, alarm: dict[str, Any], *, tell_others: bool = False) -> None:
        """Send one alarm (``queries.alarm_dict``) to every browser, e.g. after an acknowledgement.
        ``tell_others``: a change made here (not one the bridge published, which every process
        receives): the other web UI processes behind the proxy are told on MQTT, by the alarm's id."""
        self._socketio.emit("alarm", alarm, to=ALARMS_ROOM)
        self.metrics.pushed("alarm")
        if tell_others and alarm.get("id") is not None:
            try:
                self.publish(self.topics.webui_alarm_changes(),
                             dumps({"origin": self._origin, "id": alarm["id"]}))
            except MqttUnavailable as exc:  # the others' browsers see it on their next load
                log.warning("other web UI processes not told of alarm %s: %s", alarm["id"], exc)

    def _alarm_changed_elsewhere(self, payload: bytes) -> None:
        """Another process changed an alarm: push it, as the database has it, to our browsers."""
        try:
            data = loads_object(payload, "alarm change")
            alarm_id = data["id"]
            if data.get("origin") == self._origin:
                return  # ours, already pushed
            if isinstance(alarm_id, bool) or not isinstance(alarm_id, int):
                raise ValidationError("field 'id' must be an integer")
        except (ValidationError, KeyError) as exc:
            log.warning("skipping an alarm change %r: %s", payload[:200], exc)
            return
        try:
            with self._make_session() as session:
                row = session.get(AlarmRow, alarm_id)
                alarm = queries.alarm_dict(row) if row is not None else None
        except SQLAlchemyError as exc:
            log.warning("alarm %s changed elsewhere not pushed: %s", alarm_id, exc)
            return
        if alarm is not None:
            self.alarm_changed(alarm)

    def _alarm_dict(self, alarm: Alarm) -> dict[str, Any]:
        # The bridge publishes after its commit, so the row is normally there: it gives the browser
        # the id to acknowledge and who already did.
        try:
            with self._make_session() as session:
                row = queries.find_alarm(session, alarm.source.key, alarm.measure, alarm.raised_at)
                if row is not None:
                    return queries.alarm_dict(row)
        except SQLAlchemyError as exc:
            log.warning("alarm sent without its database row: %s", exc)
        return {"id": None, **alarm.to_dict(),
                "cleared_at": format_ts(alarm.since) if alarm.state == "cleared" else None,
                "acknowledged_at": None, "acknowledged_by": None}

    def _emit_to(self, event: str, data: dict[str, Any], room: str) -> None:
        self._socketio.emit(event, data, to=room)
        self.metrics.pushed(event)

    def seed_meters(self) -> None:
        """Seed the meters' merged state from the database's latest power readings."""
        try:
            with self._make_session() as session:
                samples = [queries.sample_from_row(row) for row in queries.latest_power_readings(session)]
        except (SQLAlchemyError, ValidationError) as exc:
            # Not fatal: the state then builds up from full statuses and partials.
            log.warning("cannot seed meter states from the database: %s", exc)
            return
        for sample in samples:
            self.translator.seed(sample)

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any,
                    reason_code: mqtt.ReasonCode, _properties: Any) -> None:
        if reason_code.is_failure:
            log.warning("MQTT connection refused: %s", reason_code)
            self.health.set_mqtt(False, f"refused: {reason_code}")
            return
        self.seed_meters()  # before subscribing, so the first partials have their base
        # Subscribing here (not once after start) makes every reconnect resubscribe.
        client.subscribe([(t, 1) for t in [*self.topics.live_subscriptions(), self.topics.bridge_status(),
                                           self.topics.bridge_health(), self.topics.webui_alarm_changes()]])
        self.metrics.mqtt_connected()
        self.health.set_mqtt(True)
        log.info("MQTT connected, subscribed to the live topics")

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any,
                       reason_code: mqtt.ReasonCode, _properties: Any) -> None:
        self.metrics.mqtt_disconnected()
        self.health.set_mqtt(False, str(reason_code))
        if reason_code.is_failure:
            log.warning("MQTT disconnected (%s); paho reconnects", reason_code)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        payload = bytes(msg.payload)
        try:
            self.handle(msg.topic, payload)
        except Exception:  # a bug here must not kill paho's network thread
            log.exception("error forwarding the message on %r", msg.topic)
        for listener in self.listeners:
            try:
                listener(msg.topic, payload)
            except Exception:
                log.exception("error in a listener of the message on %r", msg.topic)
