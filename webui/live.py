"""Live feed: MQTT messages become Socket.IO events.

:class:`LiveTranslator` is the pure part (topic + payload -> events), :class:`LiveFeed` runs the
paho client and emits what the translator returns. Events and their data:

    ``reading``  Reading.to_dict()
    ``power``    PowerSample.to_dict() of the meter's merged switch status
    ``status``   {"device": "units/<u>" | "meters/<id>", "state": "online" | "offline", "ts"}
    ``alarm``    Alarm.to_dict()
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt
from flask_socketio import SocketIO
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from plantmodel.errors import ValidationError
from plantmodel.mqtt import MqttSettings, connect_async, new_client
from plantmodel.readings import Reading, format_ts, utcnow
from plantmodel.shelly import (
    PowerSample,
    RpcNotification,
    merge,
    parse_online,
    parse_rpc_frame,
    parse_switch_status,
    sample_from_switch,
    switch_from_sample,
)
from plantmodel.sources import MeterSource
from plantmodel.status import DeviceStatus
from plantmodel.thresholds import Alarm
from plantmodel.topics import AlarmTopic, ParsedTopic, ReadingTopic, ShellyTopic, Topics, UnitStatusTopic
from store import queries

log = logging.getLogger(__name__)

Event = tuple[str, dict[str, Any]]


class LiveTranslator:
    """Topic + payload -> events. Not thread-safe: only paho's network thread calls it.

    It keeps each meter's merged switch status, because a Shelly NotifyStatus carries only the
    fields that changed and the page must still show the unchanged ones.
    """

    def __init__(self, topics: Topics, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.topics = topics
        self._clock = clock
        self._switch: dict[str, dict[str, Any]] = {}

    def seed(self, sample: PowerSample) -> None:
        """Start a meter from its stored latest sample, unless live data already arrived."""
        self._switch.setdefault(sample.meter, switch_from_sample(sample))

    def translate(self, topic: str, payload: bytes) -> list[Event]:
        if not payload:
            return []  # a retained message being cleared, not data
        try:
            return self._translate(self.topics.parse(topic), payload)
        except ValidationError as exc:
            # The bridge records rejects; the live view just skips them.
            log.warning("skipping message on %r: %s", topic, exc.reason)
            return []

    def _translate(self, parsed: ParsedTopic, payload: bytes) -> list[Event]:
        match parsed:
            case ReadingTopic(source=src):
                reading = Reading.from_json(payload)
                if (reading.unit, reading.automate) != (src.unit, src.automate):
                    raise ValidationError(f"payload is for unit {reading.unit} automate {reading.automate}"
                                          f" but was published on {src.key}")
                return [("reading", reading.to_dict())]
            case UnitStatusTopic(unit=unit):
                status = DeviceStatus.from_json(payload)
                return [("status", {"device": f"units/{unit}", "state": status.state,
                                    "ts": format_ts(status.ts)})]
            case AlarmTopic(source=source, measure=measure):
                alarm = Alarm.from_json(payload)
                if alarm.key != (source.key, measure):
                    raise ValidationError(f"alarm for {alarm.key} published on another topic")
                return [("alarm", alarm.to_dict())]
            case ShellyTopic(meter=meter, kind="online"):
                state = "online" if parse_online(payload) else "offline"
                return [("status", {"device": MeterSource(meter).key, "state": state,
                                    "ts": format_ts(self._clock())})]
            case ShellyTopic(meter=meter, kind="status/switch:0"):
                return self._switch_update(meter, parse_switch_status(payload), full=True, ts=None)
            case ShellyTopic(meter=meter):  # events/rpc, or the answer to the bridge's request
                frame = parse_rpc_frame(payload)
                if isinstance(frame, RpcNotification):
                    sw = frame.switch
                    if frame.method == "NotifyEvent" or sw is None:
                        return []
                    return self._switch_update(meter, sw, full=frame.method == "NotifyFullStatus",
                                               ts=frame.ts)
                sw, ts = frame.switch_status()
                return [] if sw is None else self._switch_update(meter, sw, full=True, ts=ts)
        return []

    def _switch_update(self, meter: str, sw: dict[str, Any], *, full: bool,
                       ts: datetime | None) -> list[Event]:
        merged = merge({} if full else self._switch.get(meter, {}), sw)
        # Validate before keeping it, so one absurd frame cannot poison the meter's state.
        sample = sample_from_switch(meter, ts or self._clock(), merged)
        self._switch[meter] = merged
        return [("power", sample.to_dict())]


class LiveFeed:
    """Subscribes to the live topics and forwards the translated events to every browser."""

    def __init__(self, mqtt_settings: MqttSettings, topics: Topics, socketio: SocketIO,
                 make_session: sessionmaker[Session]) -> None:
        self._mqtt_settings = mqtt_settings
        self.topics = topics
        self._socketio = socketio
        self._make_session = make_session
        self.translator = LiveTranslator(topics)
        self._client: mqtt.Client | None = None

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.is_connected()

    def start(self) -> None:
        # A unique id: two web UIs with the same id would keep disconnecting each other.
        client = new_client(self._mqtt_settings, f"webui-{secrets.token_hex(4)}")
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client
        connect_async(client, self._mqtt_settings)
        log.info("MQTT: connecting to %s:%d as %r", self._mqtt_settings.host, self._mqtt_settings.port,
                 self._mqtt_settings.username)

    def stop(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None

    def handle(self, topic: str, payload: bytes) -> None:
        """Translate one message and emit its events to all Socket.IO clients."""
        for event, data in self.translator.translate(topic, payload):
            self._socketio.emit(event, data)

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
            return
        self.seed_meters()  # before subscribing, so the first partials have their base
        # Subscribing here (not once after start) makes every reconnect resubscribe.
        client.subscribe([(t, 1) for t in self.topics.live_subscriptions()])
        log.info("MQTT connected, subscribed to the live topics")

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any,
                       reason_code: mqtt.ReasonCode, _properties: Any) -> None:
        if reason_code.is_failure:
            log.warning("MQTT disconnected (%s); paho reconnects", reason_code)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            self.handle(msg.topic, msg.payload)
        except Exception:  # a bug here must not kill paho's network thread
            log.exception("error forwarding the message on %r", msg.topic)
