"""The web UI behind Debian's nginx with our ``deploy/nginx/webui.conf.template``, for real on loopback:
``nginx -t``, HTTP redirected to HTTPS, a log-in over HTTPS (certificate checked against the
development CA), the security headers through the proxy, static files served by nginx itself, and
a live Socket.IO update through it on a WebSocket. Two web UI processes (one database, each its own
MQTT connection) sit behind it, as the template's ``least_conn`` upstream spreads them: WebSockets
land on both and each gets the live updates, and a log-in works across both."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
import socketio

from plantmodel import Reading, Topics
from plantmodel.layout import PlantLayout
from plantmodel.readings import utcnow
from store import models as orm
from store.db import create_db_engine, init_schema, make_sessionmaker
from tests.mqtt import Client
from tests.processes import Service, wait_for
from tests.servers import MosquittoServer, NginxServer, free_port
from tests.webapp import add_user, token_for

pytestmark = pytest.mark.integration

PASSWORD = "proxy-pass-1"


@dataclass
class Proxied:
    https: str
    http: str
    ca: str
    token: str
    broker: MosquittoServer
    webuis: list[str]  # each web UI process's own address (http://127.0.0.1:port), nginx bypassed
    operator_token: str  # an operator's, to acknowledge
    alarm_id: int  # an active alarm, not acknowledged


@pytest.fixture(scope="module")
def proxied(mosquitto: MosquittoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxied]:
    tmp = tmp_path_factory.mktemp("nginx")
    db = tmp / "plant.db"
    engine = create_db_engine(f"sqlite:///{db}")
    init_schema(engine)
    sessions = make_sessionmaker(engine)
    add_user(sessions, "proxied", "viewer", PASSWORD)
    token = token_for(sessions, "proxied")
    add_user(sessions, "shift-lead", "operator", PASSWORD)
    operator_token = token_for(sessions, "shift-lead")
    with sessions.begin() as session:
        alarm = orm.Alarm(source="units/1/automates/1", unit_id=1, automate_no=1, meter_id=None, measure="ph",
                          bound="high", severity="warning", state="active", value=7.5, limit_value=7.2,
                          last_value=7.5, raised_at=utcnow())
        session.add(alarm)
        session.flush()
        alarm_id = alarm.id
    engine.dispose()
    web_ports = [free_port(), free_port()]
    env = {**mosquitto.env(), "DATABASE_URL": f"sqlite:///{db}", "WEBUI_HTTPS": "1", "WEBUI_PUSH_INTERVAL": "0",
           "WEBUI_TRUSTED_PROXIES": "1"}
    # Each process its own MQTT user (the broker takes the user name as the client id: two under one
    # would keep disconnecting each other): webui and a numbered one (BROKER_WEBUIS).
    webs = [Service(f"webui-{i}", ["webui", "serve", "--port", str(port)],
                    {**env, "MQTT_USERNAME": user}, tmp)
            for i, (port, user) in enumerate(zip(web_ports, ["webui", "webui-4"], strict=True), 1)]
    nginx = NginxServer(tmp / "nginx", web_ports, mosquitto.tls_files)
    check = nginx.check()
    assert check.returncode == 0, check.stderr
    nginx.start()
    try:
        for web in webs:
            wait_for(lambda web=web: "MQTT connected" in web.log(), 30, web.name, services=webs)
        yield Proxied(nginx.https, nginx.http, str(mosquitto.tls_files.ca_cert), token, mosquitto,
                      [f"http://127.0.0.1:{port}" for port in web_ports], operator_token, alarm_id)
    finally:
        nginx.stop()
        for web in webs:
            assert web.stop() == 0, web.log()[-2000:]


def metric(proxied: Proxied, pattern: str) -> list[float]:
    """Per web UI process, the sum of the samples of its ``/metrics`` (read from the process itself,
    not through nginx) whose line matches ``pattern`` (a metric name with its labels, a regex)."""
    values = []
    for web in proxied.webuis:
        resp = requests.get(web + "/metrics", headers={"Authorization": f"Bearer {proxied.token}"}, timeout=10)
        assert resp.status_code == 200, resp.text[:300]
        values.append(sum(float(v) for v in re.findall(rf"^(?:{pattern}) (\S+)$", resp.text, re.M)))
    return values


HTTP_ANSWERS = r'webui_http_requests_total\{status="[1-5]xx"\}'


def served_by(proxied: Proxied, send: Callable[[], requests.Response]) -> tuple[requests.Response, int]:
    """``send()`` through nginx and the index of the web UI process that answered it (by its HTTP
    answer counter; a process's own /metrics read counts on it once, after it)."""
    before = metric(proxied, HTTP_ANSWERS)
    resp = send()
    after = metric(proxied, HTTP_ANSWERS)
    served = [i for i, (b, a) in enumerate(zip(before, after, strict=True)) if a - b - 1 > 0]
    assert len(served) == 1, (before, after)
    return resp, served[0]


def test_http_is_redirected_to_https(proxied: Proxied) -> None:
    resp = requests.get(proxied.http + "/alarms?x=1", allow_redirects=False, timeout=10)
    assert resp.status_code == 301
    assert resp.headers["Location"] == proxied.https + "/alarms?x=1"


def test_log_in_over_https_with_the_security_headers(proxied: Proxied) -> None:
    http = requests.Session()
    http.trust_env = False  # REQUESTS_CA_BUNDLE would override the CA below
    http.verify = proxied.ca  # the development CA: the certificate's names are checked
    page, by_page = served_by(proxied, lambda: http.get(proxied.https + "/login", timeout=10))
    assert page.status_code == 200
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf
    resp, by_post = served_by(proxied, lambda: http.post(
        proxied.https + "/login", data={"username": "proxied", "password": PASSWORD, "csrf_token": csrf.group(1)},
        allow_redirects=False, timeout=10))
    assert resp.status_code == 302, resp.text[:300]
    assert "Secure" in resp.headers["Set-Cookie"] and "HttpOnly" in resp.headers["Set-Cookie"]
    home, by_home = served_by(proxied, lambda: http.get(proxied.https + "/", timeout=10))
    assert home.status_code == 200 and 'id="page-config"' in home.text
    # Spread over both processes (least_conn, none busy: in turn): the form one process gave, the
    # session cookie another signed, are good on any (one SECRET_KEY, nothing kept in memory).
    assert {by_page, by_post, by_home} == {0, 1}
    for header in ("Content-Security-Policy", "X-Frame-Options", "Strict-Transport-Security",
                   "X-Content-Type-Options"):
        assert header in home.headers, header
    assert home.headers.get("Server") == "nginx"  # server_tokens off: no version


def test_static_files_are_served_by_nginx(proxied: Proxied) -> None:
    resp = requests.get(proxied.https + "/static/common.js", verify=proxied.ca, timeout=10)
    assert resp.status_code == 200 and "window.Plant" in resp.text
    # nginx's own answer: its cache header, none of the web UI's page headers
    assert "max-age=3600" in resp.headers.get("Cache-Control", "")
    assert "Content-Security-Policy" not in resp.headers


def test_a_body_over_the_limit_is_refused_by_nginx(proxied: Proxied) -> None:
    resp = requests.post(proxied.https + "/api/thresholds", data=b"x" * (2 * 1024 * 1024), verify=proxied.ca,
                         headers={"Authorization": f"Bearer {proxied.token}"}, timeout=10)
    assert resp.status_code == 413


def watching(proxied: Proxied, on_update: Callable[[dict[str, Any]], None]) -> socketio.Client:
    """A python-socketio client through nginx on a WebSocket only, as the browsers (common.js: a
    long-polling session's requests could reach either process), watching the plant.

    One more try when the connection drops before the ``watch`` is answered: through nginx and TLS,
    about 1 connection in 50 made just after another client disconnected is closed by the server
    stack right after its open packet (seen with one web UI process and the old polling-then-upgrade
    transport too: not the spreading under test; a browser reconnects by itself)."""
    for attempt in (1, 2):
        http = requests.Session()
        http.trust_env = False
        http.verify = proxied.ca
        client = socketio.Client(http_session=http, ssl_verify=False, reconnection=False)
        client.on("update", on_update)
        try:
            client.connect(proxied.https, auth={"token": proxied.token}, transports=["websocket"], wait_timeout=5)
            ack = client.call("watch", {"view": "plant"}, timeout=5)
        except (socketio.exceptions.ConnectionError, socketio.exceptions.TimeoutError):
            client.disconnect()
            if attempt == 2:
                raise
            continue
        assert not (isinstance(ack, dict) and ack.get("error")), ack
        assert client.transport() == "websocket"
        return client
    raise AssertionError("unreachable")


def publish_reading(proxied: Proxied, automate: int, milk_kg: int) -> None:
    unit = Client(proxied.broker, "unit-1")
    try:
        reading = Reading(1, automate, PlantLayout.automate_type(1, automate), 500_000 + automate, utcnow(), 3.4,
                          11.2, milk_kg, 35, 7.0, 41, 1.3, 22, 40, 31)
        unit.client.publish(Topics().reading(1, automate), reading.to_json(), qos=1)
    finally:
        unit.close()


def test_a_live_update_arrives_through_nginx_on_a_websocket(proxied: Proxied) -> None:
    seen: list[dict[str, Any]] = []
    got = threading.Event()

    def on_update(data: dict[str, Any]) -> None:
        for reading in data.get("readings") or []:
            if reading.get("milk_kg") == 3777:
                seen.append(reading)
                got.set()

    client = watching(proxied, on_update)
    try:
        publish_reading(proxied, 1, 3777)
        assert got.wait(15), "no update through nginx"
    finally:
        client.disconnect()
    assert seen[0]["unit"] == 1 and seen[0]["automate"] == 1


def test_websockets_spread_over_both_processes_and_each_gets_live_updates(proxied: Proxied) -> None:
    clients: list[socketio.Client] = []
    seen: list[threading.Event] = []
    try:
        for _ in range(4):
            got = threading.Event()

            def on_update(data: dict[str, Any], got: threading.Event = got) -> None:
                if any(r.get("milk_kg") == 3888 for r in data.get("readings") or []):
                    got.set()

            clients.append(watching(proxied, on_update))
            seen.append(got)
        # Each process counts the Socket.IO clients it holds (webui_socket_connections): with
        # least_conn both hold two; with ip_hash one would hold all four.
        counts: list[float] = []

        def spread() -> bool:
            counts[:] = metric(proxied, "webui_socket_connections")
            return sum(counts) == len(clients) and min(counts) >= 1

        deadline = time.monotonic() + 5
        while not spread() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert spread(), f"Socket.IO clients per web UI process: {counts} (all on one: no spreading)"
        # Each process has its own MQTT subscription: every client gets the reading, wherever it is.
        publish_reading(proxied, 2, 3888)
        missing = [i for i, got in enumerate(seen) if not got.wait(15)]
        assert not missing, f"clients {missing} got no update (clients per process: {counts})"
    finally:
        for client in clients:
            client.disconnect()


def test_an_acknowledgement_on_one_process_reaches_the_browsers_of_both(proxied: Proxied) -> None:
    """The acknowledging process pushes the alarm to its own browsers and tells the others on MQTT
    (``plant/webui/alarms``): an operator on another process sees it at once, not on a reload."""
    clients: list[socketio.Client] = []
    acked: list[threading.Event] = []
    try:
        for _ in range(4):
            got = threading.Event()
            client = watching(proxied, lambda _data: None)

            def on_alarm(data: dict[str, Any], got: threading.Event = got) -> None:
                if data.get("id") == proxied.alarm_id and data.get("acknowledged_by") == "shift-lead":
                    got.set()

            client.on("alarm", on_alarm)
            clients.append(client)
            acked.append(got)
        counts = metric(proxied, "webui_socket_connections")
        assert min(counts) >= 1, counts  # browsers on both processes
        http = requests.Session()
        http.trust_env = False
        resp = http.post(f"{proxied.https}/api/alarms/{proxied.alarm_id}/ack", json={},
                         headers={"Authorization": f"Bearer {proxied.operator_token}"}, verify=proxied.ca, timeout=10)
        assert resp.status_code == 200, resp.text
        missing = [i for i, got in enumerate(acked) if not got.wait(10)]
        assert not missing, f"clients {missing} never saw the acknowledgement (clients per process: {counts})"
    finally:
        for client in clients:
            client.disconnect()
