"""Our mosquitto.conf, users and ACL on a real Mosquitto: what each client may and may not do."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from broker.config import DEFAULT_CONF, directives
from plantmodel import Topics
from plantmodel.layout import PlantLayout
from plantmodel.mqtt import new_client
from tests.mqtt import Client, settings_for, settle, try_connect
from tests.processes import wait_for
from tests.servers import MosquittoServer, find_binary

pytestmark = pytest.mark.integration


def test_anonymous_and_wrong_passwords_are_refused(mosquitto: MosquittoServer) -> None:
    assert try_connect(mosquitto, None).is_failure
    assert try_connect(mosquitto, "debug", "wrong-password").is_failure
    assert try_connect(mosquitto, "nobody", "x").is_failure
    assert not try_connect(mosquitto, "debug").is_failure


def test_anonymous_mosquitto_sub_is_refused(mosquitto: MosquittoServer) -> None:
    proc = subprocess.run([find_binary("mosquitto_sub"), "-h", "127.0.0.1", "-p", str(mosquitto.port),
                           "-t", "#", "-C", "1", "-W", "3"], capture_output=True, text=True)
    assert proc.returncode != 0 and "not authorised" in (proc.stdout + proc.stderr)


def test_a_unit_publishes_only_in_its_own_subtree(mosquitto: MosquittoServer) -> None:
    spy = Client(mosquitto, mosquitto.debug_user(), ["plant/units/+/automates/#", "plant/alarms/#", "shellypro1pm-x/#"])
    unit1 = Client(mosquitto, "unit-1")
    try:
        unit1.publish("plant/units/1/automates/1/readings", "own")
        unit1.publish("plant/units/2/automates/1/readings", "forged")
        unit1.publish("plant/alarms/units/1/automates/1/ph", "forged alarm")
        unit1.publish("shellypro1pm-x/events/rpc", "forged meter")
        settle()
        assert [p for _, p, retained in spy.received() if not retained] == [b"own"]
    finally:
        spy.close()
        unit1.close()


def test_meter_bridge_webui_and_debug_permissions(mosquitto: MosquittoServer) -> None:
    meter, other = mosquitto.layout.meters[0], mosquitto.layout.meters[1]
    # (Only the topics under test: other tests' services share this broker.)
    spy = Client(mosquitto, mosquitto.debug_user(), [f"{meter}/#", f"{other}/#", "plant/units/#", "plant/alarms/#",
                                                     "shellies/#", "plant/legacy/#"])
    m = Client(mosquitto, meter, [f"{meter}/rpc", f"{other}/rpc", f"shellies/{meter}/relay/0/command",
                                  f"shellies/{other}/relay/0/command"])
    bridge = Client(mosquitto, mosquitto.bridge_user())
    webui = Client(mosquitto, "webui")
    debug = Client(mosquitto, mosquitto.debug_user())
    try:
        m.publish(f"{meter}/online", "true")
        m.publish(f"{meter}/bridge/rpc", "answer")
        m.publish(f"{other}/online", "forged")
        m.publish("plant/units/1/status", "forged")
        bridge.publish(f"{meter}/rpc", "request")
        bridge.publish(f"{other}/rpc", "request-other")
        bridge.publish("plant/alarms/units/1/automates/1/ph", "alarm")
        bridge.publish("plant/units/1/automates/1/readings", "forged by bridge")
        m.publish(f"shellies/{meter}/relay/0/power", "gen1")
        m.publish(f"shellies/{other}/relay/0/power", "forged gen1")
        m.publish("plant/legacy/meters/x/power", "forged power")
        # The web UI: the legacy senders' topics and the meters' commands, nothing else.
        webui.publish("plant/legacy/units/1/automates/1/readings", "legacy reading")
        webui.publish("plant/units/1/automates/1/readings", "forged by webui")
        webui.publish("plant/legacy/meters/x/power", "legacy power")
        webui.publish(f"{meter}/rpc", "switch")
        webui.publish(f"shellies/{other}/relay/0/command", "on")
        webui.publish("plant/units/1/status", "forged by webui")
        webui.publish("plant/alarms/units/1/automates/1/ph", "forged by webui")
        webui.publish(f"{meter}/events/rpc", "forged by webui")
        webui.publish("shellies/x/relay/0/command", "forged by webui")
        debug.publish("plant/units/1/automates/1/readings", "forged by debug")
        settle()
        seen = sorted(p.decode() for _, p, retained in spy.received() if not retained)
        assert seen == ["alarm", "answer", "gen1", "legacy power", "legacy reading", "on", "request",
                        "request-other", "switch", "true"]
        # A meter reads its own RPC and command topics only.
        assert sorted(p for _, p, retained in m.received() if not retained) == [b"request", b"switch"]
    finally:
        for c in (spy, m, bridge, webui, debug):
            c.close()


def test_confirmations_bridge_writes_each_unit_reads_only_its_own(mosquitto: MosquittoServer) -> None:
    t = Topics()
    unit1 = Client(mosquitto, "unit-1", [t.confirmation(1), t.confirmation(2), "plant/confirm/#"])
    spy = Client(mosquitto, mosquitto.debug_user(), ["plant/confirm/#"])
    bridge = Client(mosquitto, mosquitto.bridge_user())
    try:
        bridge.publish(t.confirmation(1), "for unit 1")
        bridge.publish(t.confirmation(2), "for unit 2")
        unit1.publish(t.confirmation(1), "forged by unit 1")
        settle()
        assert sorted(p for _, p, retained in spy.received() if not retained) == [b"for unit 1", b"for unit 2"]
        assert [(topic, p) for topic, p, retained in unit1.received() if not retained] == [
            (t.confirmation(1), b"for unit 1")]
    finally:
        for c in (unit1, spy, bridge):
            c.close()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[MosquittoServer]:
    """A broker of its own: no other test's clients or sessions for the users under test."""
    server = MosquittoServer(tmp_path / "broker", PlantLayout(units=2, automates=1, meters=()))
    server.start()
    yield server
    server.stop()


def test_a_unit_cannot_take_over_the_bridges_session(own_broker: MosquittoServer) -> None:
    """use_username_as_clientid: unit 1's password with the bridge's client id and a clean session
    neither kicks the connected bridge off nor wipes its persistent session and queue."""
    broker, n = own_broker, 50
    topic = "plant/units/1/identity-test"
    bridge = Client(broker, "bridge", [topic], client_id="bridge", clean_session=False)
    bridge.wait_connected()
    spoof = Client(broker, "unit-1", client_id="bridge", clean_session=True)
    try:
        spoof.wait_connected()  # accepted, as unit 1: its password is valid
        settle(1.5)  # longer than paho's 1 s reconnect delay: a ping-pong of take-overs would show
        assert (bridge.disconnects, bridge.connects) == (0, 1), "the unit kicked the bridge off"
    finally:
        spoof.close()
        bridge.close()  # the broker keeps the session (clean_session=False) and queues for it

    unit = Client(broker, "unit-1")
    try:
        for i in range(n):
            unit.publish(topic, f"queued-{i}")
    finally:
        unit.close()
    spoof = Client(broker, "unit-1", client_id="bridge", clean_session=True)
    spoof.wait_connected()
    settle()
    spoof.close()

    bridge = Client(broker, "bridge", [topic], client_id="bridge", clean_session=False)
    try:
        wait_for(lambda: len(bridge.received(topic)) >= n, 10, f"the {n} queued messages")
        settle()
        assert [p for _, p, _ in bridge.received(topic)] == [f"queued-{i}".encode() for i in range(n)]
    finally:
        bridge.close()


def test_a_unit_cannot_pose_as_another_unit(own_broker: MosquittoServer) -> None:
    """Unit 1's password with client id ``unit-2`` neither disconnects unit 2 nor makes the broker
    publish unit 2's last will."""
    broker, t = own_broker, Topics()
    spy = Client(broker, broker.debug_user(), [t.unit_status(2)])
    unit2 = Client(broker, "unit-2", client_id="unit-2", will=(t.unit_status(2), '{"state":"offline"}'))
    spoof = None
    try:
        unit2.wait_connected()
        spoof = Client(broker, "unit-1", client_id="unit-2", clean_session=True)
        spoof.wait_connected()
        settle(1.5)  # longer than paho's 1 s reconnect delay
        assert (unit2.disconnects, unit2.connects) == (0, 1), "unit 1 kicked unit 2 off"
        assert spy.received() == [], "the broker published unit 2's last will"
    finally:
        for c in (spoof, unit2, spy):
            if c is not None:
                c.close()


# -- message size (mosquitto.conf "Message size") --------------------------------------------------

def conf_int(name: str) -> int:
    return int(dict(directives(DEFAULT_CONF.read_text()))[name])


class Publisher:
    """A unit's client that records why it was disconnected (paho 2.x, callback API v2)."""

    def __init__(self, broker: MosquittoServer, user: str) -> None:
        self.reasons: list[str] = []
        self.client = new_client(settings_for(broker, user), user)
        self.client.on_disconnect = lambda _c, _u, _f, reason, _p: self.reasons.append(str(reason))
        connected = threading.Event()
        self.client.on_connect = lambda _c, _u, _f, reason, _p: connected.set()
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        assert connected.wait(5), "no CONNACK"

    def publish(self, topic: str, payload: bytes) -> mqtt.MQTTMessageInfo:
        return self.client.publish(topic, payload, qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_an_oversized_message_is_refused_and_its_publisher_disconnected(own_broker: MosquittoServer) -> None:
    """The issue's 20 MB message: refused on its length header (max_packet_size), never delivered,
    and the publisher is disconnected; the broker says so in its log. paho resends an unacknowledged
    message at each reconnect, so the client is disconnected again each time."""
    broker, topic = own_broker, Topics().reading(1, 1)
    spy = Client(broker, broker.debug_user(), ["#"])
    unit = Publisher(broker, "unit-1")
    try:
        big = unit.publish(topic, b"x" * 20_000_000)
        wait_for(lambda: len(unit.reasons) >= 2, 10, "the broker to disconnect the publisher (twice: paho resends)")
        assert not big.is_published(), "the broker acknowledged the oversized message"
        assert unit.reasons[0] == "Unspecified error"  # MQTT 3.1.1: the broker just closes the connection
        unit.close()

        unit = Publisher(broker, "unit-1")  # a fresh client: nothing left to resend
        unit.publish(topic, b"normal").wait_for_publish(5)
        wait_for(lambda: spy.received(topic), 5, "the normal message")
        settle()
        assert [(len(p), p[:6]) for _, p, _ in spy.received(topic)] == [(6, b"normal")]
        assert unit.reasons == []
    finally:
        unit.close()
        spy.close()
    broker.stop()  # flushes its log (stdout to a file is buffered)
    assert "Client unit-1 disconnected due to oversize packet." in broker.log.read_text()


def test_a_message_up_to_the_limit_is_delivered_one_byte_more_is_dropped(own_broker: MosquittoServer) -> None:
    """message_size_limit is exact on the payload. Just above it (the packet still under
    max_packet_size) the broker acknowledges and drops the message: MQTT 3.1.1 has no way to refuse
    a PUBLISH but to disconnect. Legitimate messages stay far below (tests/unit/test_broker_config.py)."""
    broker, topic, limit = own_broker, Topics().reading(1, 1), conf_int("message_size_limit")
    spy = Client(broker, broker.debug_user(), ["#"])
    unit = Publisher(broker, "unit-1")
    try:
        for size in (limit, limit + 1, limit + 500, limit - 1):
            info = unit.publish(topic, bytes([size % 256]) * size)
            info.wait_for_publish(5)
            assert info.is_published(), f"{size} bytes: no PUBACK"
        wait_for(lambda: len(spy.received(topic)) >= 2, 10, "the messages under the limit")
        settle()
        assert [len(p) for _, p, _ in spy.received(topic)] == [limit, limit - 1]
        assert unit.reasons == [], "the publisher was disconnected"
    finally:
        unit.close()
        spy.close()
