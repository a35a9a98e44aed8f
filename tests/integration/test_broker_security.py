"""Our mosquitto.conf, users and ACL on a real Mosquitto: what each client may and may not do."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from plantmodel import Topics
from plantmodel.layout import PlantLayout
from tests.mqtt import Client, settle, try_connect
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
    spy = Client(mosquitto, mosquitto.debug_user(), [f"{meter}/#", f"{other}/#", "plant/units/#", "plant/alarms/#"])
    m = Client(mosquitto, meter, [f"{meter}/rpc", f"{other}/rpc"])
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
        webui.publish("plant/units/1/automates/1/readings", "forged by webui")
        debug.publish("plant/units/1/automates/1/readings", "forged by debug")
        settle()
        seen = sorted(p.decode() for _, p, retained in spy.received() if not retained)
        assert seen == ["alarm", "answer", "request", "request-other", "true"]
        # A meter reads its own RPC topic only.
        assert [p for _, p, retained in m.received() if not retained] == [b"request"]
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
