"""MQTT I/O of the simulators: every unit and every meter is its own MQTT client with its own
credentials, last will and birth message, as real devices would be.

One thread (the caller of :meth:`DeviceRunner.run`) ticks the simulators and hands readings to
paho; paho's network threads only run the callbacks (connection state, acks, RPC requests, the
bridge's confirmations).

A unit keeps each reading until the bridge confirms it is committed (:mod:`plantmodel.confirm`),
not merely until the broker acknowledges it: the broker writes its queues to disk only every
``autosave_interval``, so a broker crash loses what it acknowledged since.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import replace
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from devices.buffer import SendWindow, UnconfirmedReadings
from devices.faults import FaultFile, FaultInjector
from devices.settings import DevicesSettings
from devices.shelly import MeterDevice, ShellyPro1PM
from devices.shelly1 import Shelly1PM
from devices.units import UnitSimulator
from plantmodel.confirm import Confirmation
from plantmodel.errors import ValidationError
from plantmodel.layout import PlantLayout
from plantmodel.mqtt import MqttSettings, connect_async, connect_failure, load_credentials, new_client
from plantmodel.readings import Reading, utcnow
from plantmodel.status import DeviceStatus
from plantmodel.topics import Topics

log = logging.getLogger(__name__)

UNIT_MODEL = "ABB-SIM-UNIT"  # what the simulated units say they are (the device registry shows it)
UNIT_FIRMWARE = "sim-1"

WINDOW = 100  # un-acknowledged messages handed to paho per client
SHUTDOWN_FLUSH_S = 5.0  # how long a stop may wait for the units' readings to be confirmed
DROP_LOG_INTERVAL_S = 60.0  # also for bad confirmations: a broken bridge would send one per commit
# CONNACK codes meaning "wrong user or password" (MQTT 3.1.1 and their MQTT 5 equivalents).
_AUTH_REFUSED = {4, 5, 134, 135}
METER_ONLINE = "true"
METER_OFFLINE = "false"


class _Link:
    """One device's MQTT connection: connection-state logging and windowed QoS 1 publishing."""

    def __init__(self, name: str, mqtt_settings: MqttSettings, credentials: dict[str, str],
                 credentials_file: str, wake: threading.Event) -> None:
        self.name = name
        password = credentials.get(name)
        if password is None:
            log.warning("%s: no password for user %r in %s; the broker will likely refuse it",
                        name, name, credentials_file)
        self._settings = mqtt_settings.with_user(name, password or "")
        self._credentials_file = credentials_file
        self._wake = wake
        self.client = new_client(self._settings, client_id=name)
        self.window = SendWindow(WINDOW)
        self.connected = False
        self._stopping = False
        self._unreachable_logged = False
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish

    def start(self) -> None:
        connect_async(self.client, self._settings)

    def publish(self, topic: str, payload: str, *, retain: bool = False) -> mqtt.MQTTMessageInfo | None:
        """QoS 1 publish; None when paho's queue is full (nothing was taken)."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            return None
        # NO_CONN still counts: paho keeps a QoS 1 message and sends it after reconnecting.
        self.window.sent(info.mid)
        return info

    def on_online(self) -> None:
        """Birth message and subscriptions, on every (re)connect (paho's thread)."""

    def goodbye(self) -> mqtt.MQTTMessageInfo | None:
        """Explicit offline message at a clean stop (the broker sends no will then)."""
        return None

    def stop(self, deadline: float) -> None:
        self._stopping = True
        if self.connected:
            info = self.goodbye()
            if info is not None:
                try:
                    info.wait_for_publish(max(0.5, deadline - time.monotonic()))
                except (RuntimeError, ValueError) as exc:
                    log.warning("%s: offline status not sent: %s", self.name, exc)
        self.client.disconnect()
        self.client.loop_stop()

    # -- paho callbacks (network thread) ------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: mqtt.ConnectFlags,
                    reason_code: ReasonCode, properties: Properties | None) -> None:
        if reason_code.is_failure:
            if reason_code.value in _AUTH_REFUSED:
                log.error("%s: broker refused the connection: not authorised (%s) - check the "
                          "password of user %r in %s; retrying", self.name, reason_code, self.name,
                          self._credentials_file)
            else:
                log.error("%s: broker refused the connection: %s; retrying", self.name, reason_code)
            return
        log.info("%s: connected to %s", self.name, self._settings.describe())
        self._unreachable_logged = False
        self.on_online()
        self.connected = True  # after the birth message, so nothing overtakes it
        self._wake.set()

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        # Logged once per outage: paho retries every 1..30 s and would flood the log.
        level = logging.DEBUG if self._unreachable_logged else logging.WARNING
        log.log(level, "%s: cannot connect to the broker %s (%s); retrying", self.name,
                self._settings.describe(), connect_failure())
        self._unreachable_logged = True

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: mqtt.DisconnectFlags,
                       reason_code: ReasonCode, properties: Properties | None) -> None:
        if self.connected and not self._stopping:
            log.warning("%s: connection lost (%s); reconnecting", self.name, reason_code)
        self.connected = False

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason_code: ReasonCode,
                    properties: Properties | None) -> None:
        self.window.acked(mid)
        self._wake.set()  # the sender may hand over more


class UnitLink(_Link):
    """A production unit: readings kept until the bridge confirms them, retained birth / last will
    on its status topic."""

    def __init__(self, sim: UnitSimulator, topics: Topics, buffer_size: int, mqtt_settings: MqttSettings,
                 credentials: dict[str, str], credentials_file: str, wake: threading.Event, *,
                 resend_after: float) -> None:
        super().__init__(PlantLayout.unit_user(sim.unit), mqtt_settings, credentials,
                         credentials_file, wake)
        self.sim = sim
        self.topics = topics
        self.confirm_topic = topics.confirmation(sim.unit)
        self.readings = UnconfirmedReadings(sim.unit, buffer_size, resend_after)
        self._drops_logged = 0
        self._drops_logged_at = float("-inf")
        self._bad_confirmation_logged_at = float("-inf")
        self._confirmations_logged = False
        self._subscribe_mid: int | None = None
        self.client.will_set(topics.unit_status(sim.unit), DeviceStatus.offline().to_json(),
                             qos=1, retain=True)
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe

    def on_online(self) -> None:
        # The birth says what the unit is (the device registry keeps it).
        birth = replace(DeviceStatus.online(), model=UNIT_MODEL, firmware=UNIT_FIRMWARE)
        self.publish(self.topics.unit_status(self.sim.unit), birth.to_json(), retain=True)
        # A clean session forgets subscriptions, so subscribe on every connect; the retained
        # confirmation then tells what the bridge committed while we were away.
        _, self._subscribe_mid = self.client.subscribe(self.confirm_topic, qos=1)
        # Nothing says which sent readings reached the bridge before the connection broke (nor
        # whether the broker survived): send every unconfirmed one again, the bridge's idempotent
        # writes absorb the duplicates.
        resent = self.readings.requeue_all()
        if resent:
            log.info("%s: resending %d sent but unconfirmed readings", self.name, resent)

    def goodbye(self) -> mqtt.MQTTMessageInfo | None:
        return self.publish(self.topics.unit_status(self.sim.unit), DeviceStatus.offline().to_json(),
                            retain=True)

    def enqueue(self, readings: list[Reading]) -> None:
        for r in readings:
            self.readings.add(r, self.topics.reading(r.unit, r.automate))
        self._log_drops()

    def _log_drops(self) -> None:
        dropped = self.readings.dropped
        now = time.monotonic()
        if dropped > self._drops_logged and (self._drops_logged == 0
                                             or now - self._drops_logged_at >= DROP_LOG_INTERVAL_S):
            hint = "" if self.readings.confirmed_any else " (no confirmation from the bridge yet: is it running?)"
            log.warning("%s: buffer full (%d unconfirmed readings), dropped the %d oldest so far%s",
                        self.name, self.readings.maxlen, dropped, hint)
            self._drops_logged, self._drops_logged_at = dropped, now

    def pump(self) -> int:
        """Queue again what the bridge reports missing, then hand queued readings to paho, in
        order, while connected and the window has room."""
        for gap in self.readings.resend_gaps(time.monotonic()):
            if gap.requeued:
                log.info("%s: the bridge misses readings of automate %d between seq %d and %d; resending "
                         "the %d still held", self.name, gap.automate, gap.confirmed + 1, gap.newest, gap.requeued)
            else:  # dropped when the buffer was full: the bridge declares them lost after its timeout
                log.warning("%s: the bridge misses readings of automate %d between seq %d and %d, and "
                            "none of them is held any more", self.name, gap.automate, gap.confirmed + 1,
                            gap.newest)
        sent = 0
        while self.connected and self.window.free > 0:
            item = self.readings.next()
            if item is None:
                break
            if self.publish(item.topic, item.payload) is None:
                self.readings.unsent(item)
                break
            sent += 1
        return sent

    @property
    def unconfirmed(self) -> int:
        """Readings the bridge has not confirmed yet (sent or not)."""
        return len(self.readings)

    def settled(self) -> bool:
        """Nothing left worth waiting for at a stop: every reading confirmed or, while no
        confirmation has come in this run (no bridge running), every reading handed to paho and
        acknowledged by the broker, which is all a stop could achieve before confirmations."""
        if not self.readings:
            return True
        return not self.readings.confirmed_any and not self.readings.queued and not len(self.window)

    # -- paho callbacks (network thread) ------------------------------------------------------
    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            if message.topic == self.confirm_topic:
                self._on_confirmation(bytes(message.payload))
            else:
                log.debug("%s: unexpected message on %s", self.name, message.topic)
        except Exception:  # an exception here would kill paho's network thread
            log.exception("%s: error handling a message on %s", self.name, message.topic)

    def _on_confirmation(self, payload: bytes) -> None:
        if not payload:
            return  # the retained confirmation was cleared: nothing to learn
        try:
            outcome = self.readings.confirm(Confirmation.from_json(payload), time.monotonic())
        except ValidationError as exc:
            now = time.monotonic()
            level = logging.WARNING if now - self._bad_confirmation_logged_at >= DROP_LOG_INTERVAL_S else logging.DEBUG
            if level == logging.WARNING:
                self._bad_confirmation_logged_at = now
            log.log(level, "%s: ignoring a bad confirmation on %s: %s (%r)", self.name, self.confirm_topic,
                    exc.reason, payload[:200])
            return
        if outcome.stale:
            log.debug("%s: confirmation of automates %s predates this start; ignored", self.name,
                      ", ".join(map(str, outcome.stale)))
        if outcome.applied and not self._confirmations_logged:
            self._confirmations_logged = True
            log.info("%s: the bridge confirms committed readings; each is kept until confirmed", self.name)
        log.debug("%s: confirmation forgot %d readings, %d unconfirmed", self.name, outcome.forgotten,
                  len(self.readings))
        self._wake.set()  # a stop may be waiting for this

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reason_codes: list[ReasonCode],
                      properties: Properties | None) -> None:
        if mid == self._subscribe_mid and any(rc.is_failure for rc in reason_codes):
            log.error("%s: the broker refused the subscription to %s (%s): without confirmations every "
                      "reading is kept up to the buffer bound and resent on each reconnect - check the ACL",
                      self.name, self.confirm_topic, ", ".join(str(rc) for rc in reason_codes))


class MeterLink(_Link):
    """A Shelly meter, Gen2 (Pro 1PM: ``<id>/online``, notifications, RPC answers) or Gen1 (1PM:
    ``shellies/<id>/online``, periodic values, commands): retained ``true`` birth / ``false`` last
    will on the device's online topic, then what the simulator publishes (:class:`MeterDevice`)."""

    def __init__(self, sim: MeterDevice, mqtt_settings: MqttSettings, credentials: dict[str, str],
                 credentials_file: str, wake: threading.Event) -> None:
        super().__init__(sim.id, mqtt_settings, credentials, credentials_file, wake)
        self.sim = sim
        self._lock = threading.Lock()  # ticks (main thread) vs requests and connects (paho thread)
        self.client.will_set(sim.online_topic, METER_OFFLINE, qos=1, retain=True)
        self.client.on_message = self._on_message

    def on_online(self) -> None:
        self.publish(self.sim.online_topic, METER_ONLINE, retain=True)
        for topic in self.sim.subscriptions():  # a clean session forgets them: on every connect
            self.client.subscribe(topic, qos=1)
        with self._lock:
            messages = self.sim.birth(utcnow())
        for topic, payload in messages:
            self.publish(topic, payload)

    def goodbye(self) -> mqtt.MQTTMessageInfo | None:
        return self.publish(self.sim.online_topic, METER_OFFLINE, retain=True)

    def tick(self, now: datetime) -> None:
        with self._lock:
            messages = self.sim.tick(now)
        # Like the real device, a meter does not keep notifications while it is offline.
        if self.connected:
            for topic, payload in messages:
                if self.publish(topic, payload) is None:
                    log.debug("%s: paho queue full, notification dropped", self.name)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            with self._lock:
                answers = self.sim.handle_message(message.topic, bytes(message.payload))
            for topic, payload in answers:
                self.publish(topic, payload)
        except Exception:  # an exception here would kill paho's network thread
            log.exception("%s: error handling a message on %s: %r", self.name, message.topic,
                          message.payload[:200])


def make_meter(meter_id: str, settings: DevicesSettings, rng: random.Random,
               faults: FaultInjector | None = None) -> MeterDevice:
    """The simulator of one layout meter: Gen1 when listed in ``settings.gen1_meters``, else Gen2."""
    if meter_id in settings.gen1_meters:
        return Shelly1PM(meter_id, rng, update_period=settings.gen1_update_period, faults=faults)
    return ShellyPro1PM(meter_id, rng, energy_interval=settings.energy_interval,
                        status_ntf=settings.status_ntf, faults=faults)


class DeviceRunner:
    """Runs the simulated units and meters of a layout until :meth:`stop`."""

    def __init__(self, settings: DevicesSettings) -> None:
        self.settings = settings
        self._stop = threading.Event()
        self._wake = threading.Event()
        self.faults = FaultInjector()
        self._fault_file = FaultFile(settings.fault_file, self.faults)
        credentials = load_credentials(settings.credentials_file)
        if not credentials:
            log.warning("no credentials in %s: devices connect without passwords",
                        settings.credentials_file)
        seeds = random.Random(settings.seed)  # one stream per device, reproducible with a seed
        layout, cred_file = settings.layout, str(settings.credentials_file)
        topics = Topics(settings.topic_root)
        self.units = [
            UnitLink(UnitSimulator(u, layout.automates, random.Random(seeds.getrandbits(64)), self.faults),
                     topics, settings.buffer_size, settings.mqtt, credentials, cred_file, self._wake,
                     resend_after=settings.resend_after)
            for u in range(1, layout.units + 1)
        ] if settings.run_units else []
        self.meters = [
            MeterLink(make_meter(m, settings, random.Random(seeds.getrandbits(64)), self.faults),
                      settings.mqtt, credentials, cred_file, self._wake)
            for m in layout.meters
        ] if settings.run_meters else []

    def stop(self) -> None:
        """Ask :meth:`run` to finish (safe from a signal handler or another thread)."""
        self._stop.set()
        self._wake.set()

    def run(self) -> int:
        s = self.settings
        links: list[_Link] = [*self.units, *self.meters]
        for link in links:
            link.start()
        log.info("started %d units (%d automates each, a report every %gs) and %d meters (%s) "
                 "on %s:%d; faults from %s", len(self.units), s.layout.automates, s.period,
                 len(self.meters), ", ".join(f"{m.name} Gen{m.sim.gen}" for m in self.meters) or "-", s.mqtt.host,
                 s.mqtt.port, s.fault_file)
        next_unit = next_meter = time.monotonic()
        try:
            while not self._stop.is_set():
                self._wake.clear()
                now_m = time.monotonic()
                units_due = bool(self.units) and now_m >= next_unit
                meters_due = bool(self.meters) and now_m >= next_meter
                now = utcnow()
                if units_due or meters_due:
                    self._fault_file.poll()  # at most once per tick
                if units_due:
                    for unit in self.units:
                        unit.enqueue(unit.sim.tick(now))
                    next_unit = _next_due(next_unit, s.period, now_m)
                if meters_due:
                    for meter in self.meters:
                        meter.tick(now)
                    next_meter = _next_due(next_meter, s.meter_period, now_m)
                for unit in self.units:
                    unit.pump()
                due = min(next_unit if self.units else float("inf"),
                          next_meter if self.meters else float("inf"))
                self._wake.wait(max(0.0, min(due - time.monotonic(), 1.0)))
        finally:
            self._shutdown(links)
        return 0

    def _shutdown(self, links: list[_Link]) -> None:
        deadline = time.monotonic() + SHUTDOWN_FLUSH_S
        # A reading is safe only once the bridge confirms it: keep sending (gaps included) and
        # wait for confirmations while there is a connection and time.
        while time.monotonic() < deadline and any(u.connected and not u.settled() for u in self.units):
            self._wake.clear()
            for unit in self.units:
                unit.pump()
            self._wake.wait(0.05)
        for unit in self.units:
            if unit.unconfirmed:
                why = "" if unit.readings.confirmed_any else "; no confirmation came from the bridge in this run"
                log.warning("%s: stopping with %d readings unconfirmed (%d of them never handed to the "
                            "broker)%s", unit.name, unit.unconfirmed, unit.readings.queued, why)
            if unit.readings.dropped:
                log.warning("%s: %d readings were dropped in all (buffer full)", unit.name,
                            unit.readings.dropped)
        for link in links:
            link.stop(deadline)
        log.info("devices stopped")


def _next_due(previous: float, period: float, now: float) -> float:
    # After a stall, skip the missed reports instead of sending a burst.
    nxt = previous + period
    return nxt if nxt > now else now + period
