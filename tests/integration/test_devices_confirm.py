"""End-to-end confirmation on the unit side: a unit keeps each reading until the bridge confirms
it, so even a broker crash loses nothing.

Each test has its own Mosquitto (from our conf and ACL) and runs ``python -m devices`` as a process;
the test itself plays the bridge (user ``bridge``, persistent session): it records the readings and
publishes confirmations on ``plant/confirm/units/1`` the way the real bridge does after a commit.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from plantmodel.confirm import AutomateConfirmation, Confirmation
from plantmodel.layout import PlantLayout
from plantmodel.mqtt import new_client
from plantmodel.readings import Reading, utcnow
from tests.mqtt import settings_for
from tests.processes import Service, wait_for
from tests.servers import MosquittoServer

pytestmark = pytest.mark.integration

UNIT = 1
AUTOMATES = (1, 2)
PERIOD = 0.1  # 10 readings per automate per second


class FakeBridge:
    """The bridge's side of the protocol for one unit, kept across its own reconnects."""

    def __init__(self, broker: MosquittoServer) -> None:
        self.broker = broker
        self.topic = broker.topics.confirmation(UNIT)
        self.auto = False  # confirm everything received, on every message (as after each commit)
        self._lock = threading.Lock()
        self._received: list[tuple[float, Reading]] = []  # (monotonic arrival, reading)
        self._client: mqtt.Client | None = None

    def connect(self) -> None:
        subscribed = threading.Event()
        # Persistent session: while it is away the broker queues its readings (in memory until
        # the next autosave, which is what a broker crash loses).
        client = new_client(settings_for(self.broker, "bridge"), "bridge", clean_session=False)

        def on_connect(c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
            if not reason.is_failure:  # a crashed broker may have lost the session: subscribe again
                c.subscribe(f"{self.broker.topics.root}/units/+/automates/+/readings", qos=1)

        client.on_connect = on_connect
        client.on_subscribe = lambda *a: subscribed.set()
        client.on_message = self._on_message
        client.connect_async("127.0.0.1", self.broker.port)
        client.loop_start()
        self._client = client
        if not subscribed.wait(10):
            raise TimeoutError("the fake bridge could not subscribe")

    def disconnect(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self._received.append((time.monotonic(), Reading.from_json(message.payload)))
        if self.auto:
            self.confirm_received()

    # -- what arrived -----------------------------------------------------------------------
    def mark(self) -> int:
        with self._lock:
            return len(self._received)

    def seqs(self, automate: int, since: int = 0) -> list[int]:
        """Every arrival of the automate's readings (duplicates included), in arrival order."""
        with self._lock:
            return [r.seq for _, r in self._received[since:] if r.automate == automate]

    def arrivals(self, automate: int, seq: int) -> list[float]:
        with self._lock:
            return [t for t, r in self._received if r.automate == automate and r.seq == seq]

    def contiguous(self, automate: int) -> int:
        """The highest seq with every seq from 0 up to it received (-1: not even seq 0)."""
        have = set(self.seqs(automate))
        n = 0
        while n in have:
            n += 1
        return n - 1

    # -- confirmations ----------------------------------------------------------------------
    def confirm(self, entries: dict[int, tuple[int, int]], newest_ts: datetime | None = None) -> None:
        """Publish (retained) automate -> (confirmed, newest); ``newest_ts`` and the boot id default
        to those of the received reading ``newest``, as the bridge does (a given ``newest_ts``
        stands for a previous life: no boot id then)."""
        automates = {}
        with self._lock:
            seen = {(r.automate, r.seq): r for _, r in self._received}
        for automate, (confirmed, newest) in entries.items():
            r = seen.get((automate, newest))
            automates[automate] = AutomateConfirmation(
                confirmed, newest, newest_ts if newest_ts is not None else seen[(automate, newest)].ts,
                None if newest_ts is not None or r is None else r.boot)
        assert self._client is not None
        info = self._client.publish(self.topic, Confirmation(UNIT, utcnow(), automates).to_json(),
                                    qos=1, retain=True)
        info.wait_for_publish(5)

    def confirm_received(self) -> None:
        """What the bridge would say having stored everything received: confirmed up to the
        first hole, newest = the highest seq (newest > confirmed reports the hole)."""
        entries = {}
        for a in AUTOMATES:
            seqs = self.seqs(a)
            if seqs:
                entries[a] = (self.contiguous(a), max(seqs))
        if entries and self._client is not None:
            self._client.publish(self.topic, Confirmation(UNIT, utcnow(), {
                a: AutomateConfirmation(c, n, *self._ts_boot(a, n)) for a, (c, n) in entries.items()}).to_json(),
                qos=1, retain=True)

    def _ts_boot(self, automate: int, seq: int) -> tuple[datetime, str | None]:
        with self._lock:
            return next((r.ts, r.boot) for _, r in self._received if r.automate == automate and r.seq == seq)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoServer]:
    server = MosquittoServer(tmp_path / "broker", PlantLayout(units=1, automates=len(AUTOMATES), meters=()))
    acl = server.files.acl.read_text()
    # The protocol needs both ACL rules (broker/credentials.py); fail clearly if they go.
    assert f"topic read {server.topics.confirmation(UNIT)}" in acl and "topic write plant/confirm/#" in acl
    server.start()
    yield server
    server.stop()


@pytest.fixture
def bridge(broker: MosquittoServer) -> Iterator[FakeBridge]:
    fake = FakeBridge(broker)
    fake.connect()
    yield fake
    fake.disconnect()


def start_devices(broker: MosquittoServer, tmp_path: Path, resend_after: float) -> Service:
    env = {**broker.env(), "DEVICES_RESEND_AFTER": str(resend_after), "DEVICES_FAULT_FILE": str(tmp_path / "f.json")}
    return Service("devices", ["devices", "run", "--units-only", "--period", str(PERIOD)], env, tmp_path)


def stop_devices(devices: Service, bridge: FakeBridge) -> tuple[int, str]:
    """Stop the unit with the bridge confirming everything, so the stop does not wait in vain."""
    bridge.auto = True
    bridge.confirm_received()
    return devices.stop(), devices.log()


def test_readings_are_held_until_confirmed_then_forgotten(broker: MosquittoServer, bridge: FakeBridge,
                                                         tmp_path: Path) -> None:
    # A retained confirmation from the unit's previous life: seq went up to 1000 before this start.
    # Taken at face value it would clear this run's seq 0..1000.
    bridge.confirm({a: (1000, 1000) for a in AUTOMATES}, newest_ts=utcnow() - timedelta(minutes=5))
    devices = start_devices(broker, tmp_path, resend_after=5)
    try:
        wait_for(lambda: all(bridge.contiguous(a) >= 5 for a in AUTOMATES), 10, "the first readings",
                 services=[devices])
        # (1) No confirmation yet: after a reconnect the unit sends everything again, from seq 0.
        broker.stop()
        broker.start()
        wait_for(lambda: all(bridge.seqs(a).count(0) == 2 for a in AUTOMATES), 10,
                 "the unit to resend its unconfirmed readings from seq 0", services=[devices])
        time.sleep(0.3)  # let the burst of resent readings arrive
        confirmed = {a: bridge.contiguous(a) for a in AUTOMATES}
        bridge.confirm({a: (c, c) for a, c in confirmed.items()})
        wait_for(lambda: "the bridge confirms committed readings" in devices.log(), 5,
                 "the unit to take the confirmation", services=[devices])
        wait_for(lambda: all(max(bridge.seqs(a)) >= confirmed[a] + 3 for a in AUTOMATES), 5,
                 "a few unconfirmed readings", services=[devices])
        # (2) After the confirmation, a reconnect resends only what is still unconfirmed.
        broker.stop()
        mark = bridge.mark()
        sent_before = {a: max(bridge.seqs(a)) for a in AUTOMATES}
        broker.start()

        def resent() -> bool:
            return all(set(range(confirmed[a] + 1, sent_before[a] + 1)) <= set(bridge.seqs(a, mark))
                       and max(bridge.seqs(a, mark)) > sent_before[a] for a in AUTOMATES)

        wait_for(resent, 10, "the unconfirmed readings again, then new ones", services=[devices])
        for a in AUTOMATES:  # sent in original order: a confirmed one would have come first
            assert min(bridge.seqs(a, mark)) == confirmed[a] + 1, "a confirmed reading was sent again"
    finally:
        code, log = stop_devices(devices, bridge)
    assert code == 0 and "stopping with" not in log  # the stop waited for the last confirmations


def test_broker_crash_loses_nothing(broker: MosquittoServer, bridge: FakeBridge, tmp_path: Path) -> None:
    bridge.auto = True
    devices = start_devices(broker, tmp_path, resend_after=1)
    try:
        wait_for(lambda: all(bridge.contiguous(a) >= 5 for a in AUTOMATES), 10, "the first readings",
                 services=[devices])
        # The bridge goes away: the broker acknowledges the unit's readings and queues them for the
        # bridge's session, in memory until its next autosave (mosquitto.conf autosave_interval)...
        bridge.disconnect()
        last_seen = {a: max(bridge.seqs(a)) for a in AUTOMATES}
        time.sleep(1.0)
        # ...and crashes: those acknowledged readings are gone from the broker.
        assert broker.proc is not None
        broker.proc.kill()
        broker.proc.wait()
        broker.start()  # same data directory
        bridge.connect()
        # Every seq arrives all the same: the unit had not forgotten them (not confirmed).
        wait_for(lambda: all(bridge.contiguous(a) >= last_seen[a] + 30 for a in AUTOMATES), 15,
                 "every seq from 0 up, without a hole, past the crash", services=[devices])
        assert "resending" in devices.log()
    finally:
        code, log = stop_devices(devices, bridge)
    assert code == 0 and "stopping with" not in log


def test_a_reported_gap_is_resent_after_the_delay(broker: MosquittoServer, bridge: FakeBridge,
                                                 tmp_path: Path) -> None:
    resend_after = 2.0
    devices = start_devices(broker, tmp_path, resend_after=resend_after)
    try:
        wait_for(lambda: all(bridge.contiguous(a) >= 10 for a in AUTOMATES), 10, "the first readings",
                 services=[devices])
        # The bridge says it misses automate 1 seq 4 (it has up to 8); automate 2 is complete.
        c2 = bridge.contiguous(2)
        reported = time.monotonic()
        bridge.confirm({1: (3, 8), 2: (c2, c2)})
        missing = range(4, 9)
        wait_for(lambda: all(len(bridge.arrivals(1, s)) == 2 for s in missing), 10,
                 "the missing range resent", services=[devices])
        first = min(bridge.arrivals(1, s)[1] for s in missing)
        assert first - reported >= resend_after - 0.05, "resent before the gap lasted DEVICES_RESEND_AFTER"
        # Still reported missing: not again within the delay...
        time.sleep(max(0.0, first + resend_after - 0.6 - time.monotonic()))
        assert all(len(bridge.arrivals(1, s)) == 2 for s in missing)
        # ...but once per delay for as long as the gap lasts.
        wait_for(lambda: all(len(bridge.arrivals(1, s)) == 3 for s in missing), 5,
                 "the missing range resent once more", services=[devices])
        bridge.confirm({a: (bridge.contiguous(a), bridge.contiguous(a)) for a in AUTOMATES})  # hole filled
        time.sleep(resend_after + 0.5)
        counts = {a: Counter(bridge.seqs(a)) for a in AUTOMATES}
        assert {s: n for s, n in counts[1].items() if n > 1} == dict.fromkeys(missing, 3)  # exactly the range
        assert set(counts[2].values()) == {1}  # no gap there: nothing resent
    finally:
        code, _ = stop_devices(devices, bridge)
    assert code == 0
