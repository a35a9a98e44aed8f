"""TLS on the real broker, rendered from our mosquitto.conf: clients verify the certificate and
the host name, plain MQTT does not reach the TLS port, and with TLS on the plain listener serves
loopback only (`python -m broker run --tls`, as a plant would start it)."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from broker.tls import TlsFiles, generate
from plantmodel.mqtt import MqttSettings, connect_async, connect_failure, new_client, tls_context
from tests.processes import REPO
from tests.servers import MosquittoServer, find_binary, free_port, terminate, wait_port

pytestmark = pytest.mark.integration


def attempt(settings: MqttSettings, timeout: float = 5) -> str:
    """Connect once the way our services do; "connected", "refused: <reason>" or the failure."""
    outcome: list[str] = []
    done = threading.Event()
    client = new_client(settings, f"tls-{uuid.uuid4().hex[:6]}")

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        outcome.append("refused: " + str(reason) if reason.is_failure else "connected")
        done.set()

    def on_connect_fail(_c: Any, _u: Any) -> None:
        outcome.append(connect_failure())
        done.set()

    client.on_connect = on_connect
    client.on_connect_fail = on_connect_fail
    connect_async(client, settings)
    done.wait(timeout)
    client.disconnect()
    client.loop_stop()
    return outcome[0] if outcome else "no answer"


def tls_settings(server: MosquittoServer, user: str, *, host: str = "127.0.0.1",
                 ca: Path | None = None) -> MqttSettings:
    return MqttSettings(host, server.tls_port, user, server.users[user], tls=True,
                        ca_file=ca or server.tls_files.ca_cert)


def test_a_client_trusting_the_ca_connects_and_messages_flow(mosquitto: MosquittoServer) -> None:
    received: list[bytes] = []
    got = threading.Event()
    sub_user, pub_user = mosquitto.debug_user(), mosquitto.bridge_user()
    sub = new_client(tls_settings(mosquitto, sub_user, host="localhost"), sub_user)
    sub.on_connect = lambda c, *_: c.subscribe("plant/alarms/tls-test", qos=1)
    sub.on_subscribe = lambda *_: got.set()
    sub.on_message = lambda _c, _u, msg: (received.append(msg.payload), got.set())
    connect_async(sub, tls_settings(mosquitto, sub_user, host="localhost"))
    try:
        assert got.wait(5), "no SUBACK over TLS"
        got.clear()
        assert attempt(tls_settings(mosquitto, pub_user)) == "connected"
        pub = new_client(tls_settings(mosquitto, pub_user), pub_user)
        up = threading.Event()
        pub.on_connect = lambda *_: up.set()
        connect_async(pub, tls_settings(mosquitto, pub_user))
        assert up.wait(5)
        pub.publish("plant/alarms/tls-test", b"over tls", qos=1).wait_for_publish(5)
        pub.disconnect()
        pub.loop_stop()
        assert got.wait(5) and received == [b"over tls"]
    finally:
        sub.disconnect()
        sub.loop_stop()


def test_a_certificate_from_another_ca_is_refused(mosquitto: MosquittoServer, tmp_path: Path) -> None:
    """An attacker's broker (or a man in the middle) with a certificate of its own making."""
    other = TlsFiles(tmp_path / "other")
    generate(other)
    outcome = attempt(tls_settings(mosquitto, mosquitto.debug_user(), ca=other.ca_cert))
    assert "CERTIFICATE_VERIFY_FAILED" in outcome, outcome
    # Nor does the system's trust store know our development CA.
    system = replace(tls_settings(mosquitto, mosquitto.debug_user()), ca_file=None)
    assert "CERTIFICATE_VERIFY_FAILED" in attempt(system)


def test_the_host_name_is_checked(mosquitto: MosquittoServer) -> None:
    """A valid certificate of our CA for another host does not pass: the context our clients use
    checks the name (the broker's certificate names localhost, 127.0.0.1 and ::1)."""
    ctx = tls_context(tls_settings(mosquitto, "debug"))
    with (socket.create_connection(("127.0.0.1", mosquitto.tls_port), timeout=5) as raw,
          pytest.raises(ssl.SSLCertVerificationError, match="match")):
        ctx.wrap_socket(raw, server_hostname="mosquitto.attacker.example")
    with (socket.create_connection(("127.0.0.1", mosquitto.tls_port), timeout=5) as raw,
          ctx.wrap_socket(raw, server_hostname="localhost") as tls):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_old_tls_versions_and_plain_mqtt_are_refused_on_the_tls_port(mosquitto: MosquittoServer) -> None:
    ctx = ssl.create_default_context(cafile=str(mosquitto.tls_files.ca_cert))
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with (socket.create_connection(("127.0.0.1", mosquitto.tls_port), timeout=5) as raw,
          pytest.raises(ssl.SSLError, match="ALERT_PROTOCOL_VERSION")):  # the broker's refusal
        ctx.wrap_socket(raw, server_hostname="localhost")
    user = mosquitto.debug_user()
    plain = MqttSettings("127.0.0.1", mosquitto.tls_port, user, mosquitto.users[user])
    assert attempt(plain, timeout=1.5) != "connected"


def test_mosquitto_sub_over_tls(mosquitto: MosquittoServer) -> None:
    """What an engineer runs: the README's mosquitto_sub line with --cafile."""
    user = mosquitto.debug_user()
    proc = subprocess.run([find_binary("mosquitto_sub"), "-h", "localhost", "-p", str(mosquitto.tls_port),
                           "--cafile", str(mosquitto.tls_files.ca_cert), "-u", user, "-P", mosquitto.users[user],
                           "-t", "plant/#", "-W", "1"], capture_output=True, text=True, timeout=10)
    # -W 1: exits after 1 s without messages (27 = timed out), having connected and subscribed.
    assert proc.returncode in (0, 27), proc.stderr
    assert "Error" not in proc.stderr


def test_broker_run_with_tls_keeps_plain_mqtt_on_loopback(tmp_path: Path) -> None:
    """`python -m broker run --tls --bind <address>`: TLS listens there, plain MQTT only on
    127.0.0.1. 127.0.0.2 plays the plant network's address (Linux answers all of 127/8)."""
    plain_port, tls_port = free_port(), free_port()
    env = {**os.environ, "SECRETS_DIR": str(tmp_path / "secrets"), "BROKER_DIR": str(tmp_path / "broker"),
           "BROKER_TLS_NAMES": "127.0.0.2,localhost", "MOSQUITTO_BIN": find_binary("mosquitto"),
           "PLANT_UNITS": "1", "PLANT_METER_COUNT": "1"}
    log = (tmp_path / "broker.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "broker", "run", "--tls", "--bind", "127.0.0.2",
                             "--port", str(plain_port), "--tls-port", str(tls_port)],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(plain_port, 15, proc)
        users = json.loads((tmp_path / "secrets" / "credentials.json").read_text())["users"]
        ca = tmp_path / "secrets" / "tls" / "ca.crt"
        over_tls = MqttSettings("127.0.0.2", tls_port, "debug", users["debug"], tls=True, ca_file=ca)
        assert attempt(over_tls) == "connected"
        # No MQTT broker answers plain MQTT there. (Checked as MQTT, not as a refused TCP connect: in
        # one full-suite run the bare connect succeeded — a TCP self-connect on a port in the
        # ephemeral range, or another test's listener — while the broker was not listening there.)
        plain_there = MqttSettings("127.0.0.2", plain_port, "bridge", users["bridge"])
        assert attempt(plain_there, timeout=3) != "connected"
        plain_here = MqttSettings("127.0.0.1", plain_port, "bridge", users["bridge"])
        assert attempt(plain_here) == "connected"
        with pytest.raises(ConnectionRefusedError):  # and TLS is not on loopback's plain port either
            socket.create_connection(("127.0.0.1", tls_port), timeout=3).close()
    finally:
        terminate(proc, 10)
        log.close()
    out = (tmp_path / "broker.log").read_text()
    assert "making development ones" in out and f"TLS on 127.0.0.2:{tls_port}" in out
