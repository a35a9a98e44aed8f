"""Our mosquitto.conf, users and ACL on a real Mosquitto: what each client may and may not do."""

from __future__ import annotations

import subprocess

import pytest

from tests.mqtt import Client, settle, try_connect
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
    spy = Client(mosquitto, "debug", ["plant/units/+/automates/#", "plant/alarms/#", "shellypro1pm-x/#"])
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
    spy = Client(mosquitto, "debug", [f"{meter}/#", f"{other}/#", "plant/units/#", "plant/alarms/#"])
    m = Client(mosquitto, meter, [f"{meter}/rpc", f"{other}/rpc"])
    bridge = Client(mosquitto, "bridge")
    webui = Client(mosquitto, "webui")
    debug = Client(mosquitto, "debug")
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
