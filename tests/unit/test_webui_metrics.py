"""The web UI's /metrics: protected like the API, per-app registry, values that follow the live feed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_socketio import SocketIO, SocketIOTestClient
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from plantmodel.sources import AutomateSource
from plantmodel.thresholds import Alarm
from plantmodel.topics import Topics
from tests.webapp import TS, login, make_reading, make_web_app, token_for
from webui import web_state
from webui.metrics import PUSH_EVENTS, WebMetrics, status_class

TOPICS = Topics("plant")
METRIC_NAMES = (
    "webui_socket_connections", "webui_socket_connects_total", "webui_socket_refused_total", "webui_pushes_total",
    "webui_mqtt_connected", "webui_mqtt_messages_total", "webui_mqtt_reconnects_total", "webui_http_requests_total",
)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return make_web_app(tmp_path)



def bearer(app: Flask, user: str = "admin") -> dict[str, str]:
    # The scraper's token is admin's: a user has one token, and the sockets use viewer's and operator's.
    return {"Authorization": f"Bearer {token_for(web_state(app).make_session, user)}"}


def scrape(http: FlaskClient, headers: dict[str, str]) -> Samples:
    resp = http.get("/metrics", headers=headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    samples: Samples = {}
    for family in text_string_to_metric_families(resp.get_data(as_text=True)):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def socketio_of(app: Flask) -> SocketIO:
    return app.extensions["socketio"]


# -- access ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer abb_not-a-token"}, {"Authorization": "Bearer "}, {"Authorization": "Basic dTpw"},
])
def test_metrics_without_a_valid_token_is_401_and_no_metrics(app: Flask, headers: dict[str, str]) -> None:
    resp = app.test_client().get("/metrics", headers=headers)
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert "log in" in resp.get_json()["error"]
    assert b"webui_" not in resp.data


def test_metrics_with_a_token_serves_every_metric(app: Flask) -> None:
    resp = app.test_client().get("/metrics", headers=bearer(app))
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == CONTENT_TYPE_LATEST
    text = resp.get_data(as_text=True)
    for name in METRIC_NAMES:
        assert f"# TYPE {name} " in text, name
    for event in (*PUSH_EVENTS, "other"):
        assert f'webui_pushes_total{{event="{event}"}} 0.0' in text


def test_a_logged_in_browser_may_read_the_metrics_too(app: Flask) -> None:
    http = app.test_client()
    login(http, "viewer")
    assert http.get("/metrics").status_code == 200


def test_http_answers_are_counted_by_status_class(app: Flask) -> None:
    http = app.test_client()
    headers = bearer(app)
    http.get("/metrics")  # 401
    http.get("/api/latest")  # 401
    http.get("/api/units", headers=headers)  # 200
    http.get("/api/units/999", headers=headers)  # 404
    http.get("/")  # 302 to the log-in form
    samples = scrape(http, headers)  # the scrape itself is counted after it is answered
    assert value(samples, "webui_http_requests_total", status="4xx") == 3
    assert value(samples, "webui_http_requests_total", status="2xx") == 1
    assert value(samples, "webui_http_requests_total", status="3xx") == 1
    assert value(samples, "webui_http_requests_total", status="5xx") == 0
    assert value(scrape(http, headers), "webui_http_requests_total", status="2xx") == 2


# -- Socket.IO -------------------------------------------------------------------------------------------------

def test_socket_connections_go_up_and_down(app: Flask, clients: list[SocketIOTestClient]) -> None:
    http, headers = app.test_client(), bearer(app)
    before = scrape(http, headers)
    assert value(before, "webui_socket_connections") == 0
    sio = socketio_of(app)
    first = sio.test_client(app, auth={"token": token_for(web_state(app).make_session, "viewer")})
    second = sio.test_client(app, auth={"token": token_for(web_state(app).make_session, "operator")})
    clients += [first, second]
    assert first.is_connected() and second.is_connected()
    during = scrape(http, headers)
    assert value(during, "webui_socket_connections") == 2
    assert value(during, "webui_socket_connects_total") == 2
    assert value(during, "webui_pushes_total", event="hello") == 2
    first.disconnect()
    after = scrape(http, headers)
    assert value(after, "webui_socket_connections") == 1
    assert value(after, "webui_socket_connects_total") == 2


def test_refused_sockets_are_counted_not_connected(app: Flask, clients: list[SocketIOTestClient]) -> None:
    client = socketio_of(app).test_client(app, auth={"token": "abb_not-a-token"})
    clients.append(client)
    assert not client.is_connected()
    samples = scrape(app.test_client(), bearer(app))
    assert value(samples, "webui_socket_refused_total") == 1
    assert value(samples, "webui_socket_connections") == 0
    assert value(samples, "webui_socket_connects_total") == 0


# -- the live feed -------------------------------------------------------------------------------------------

def test_mqtt_messages_and_pushes_follow_the_feed(app: Flask, clients: list[SocketIOTestClient]) -> None:
    http, headers = app.test_client(), bearer(app)
    client = socketio_of(app).test_client(app, auth={"token": token_for(web_state(app).make_session, "viewer")})
    clients.append(client)
    assert "error" not in client.emit("watch", {"view": "plant"}, callback=True)
    feed = web_state(app).feed
    reading = make_reading(1, 2)
    feed.handle(TOPICS.reading(1, 2), reading.to_json().encode())
    feed.handle(TOPICS.reading(1, 2), b"not json")  # skipped by the live view, counted all the same
    samples = scrape(http, headers)
    assert value(samples, "webui_mqtt_messages_total") == 2
    assert value(samples, "webui_pushes_total", event="update") == 0  # coalesced: waiting for the flush
    sent = feed.push.flush()  # plant, units/1, units/1/automates/2
    assert sent == 3
    assert value(scrape(http, headers), "webui_pushes_total", event="update") == 3
    alarm = Alarm(AutomateSource(1, 2), "tank_temp_c", 4.6, 4.0, "high", "warning", "active", TS, TS)
    feed.handle(TOPICS.alarm(alarm.source, alarm.measure), alarm.to_json().encode())
    samples = scrape(http, headers)
    assert value(samples, "webui_pushes_total", event="alarm") == 1
    assert value(samples, "webui_mqtt_messages_total") == 3


class FakeClient:
    def subscribe(self, _topics: Any) -> None:
        pass


def test_mqtt_connected_and_reconnects(app: Flask) -> None:
    http, headers = app.test_client(), bearer(app)
    feed = web_state(app).feed
    ok = ReasonCode(PacketTypes.CONNACK, "Success")
    lost = ReasonCode(PacketTypes.DISCONNECT, "Unspecified error")
    assert value(scrape(http, headers), "webui_mqtt_connected") == 0
    feed._on_connect(FakeClient(), None, None, ok, None)  # type: ignore[arg-type]
    samples = scrape(http, headers)
    assert value(samples, "webui_mqtt_connected") == 1 and value(samples, "webui_mqtt_reconnects_total") == 0
    feed._on_disconnect(FakeClient(), None, None, lost, None)  # type: ignore[arg-type]
    assert value(scrape(http, headers), "webui_mqtt_connected") == 0
    feed._on_connect(FakeClient(), None, None, ok, None)  # type: ignore[arg-type]
    samples = scrape(http, headers)
    assert value(samples, "webui_mqtt_connected") == 1 and value(samples, "webui_mqtt_reconnects_total") == 1


# -- one registry per app ------------------------------------------------------------------------------------

def test_two_apps_in_one_process_count_separately(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = make_web_app(tmp_path / "a"), make_web_app(tmp_path / "b")
    web_state(a).feed.handle(TOPICS.reading(1, 2), make_reading(1, 2).to_json().encode())
    assert value(scrape(a.test_client(), bearer(a)), "webui_mqtt_messages_total") == 1
    assert value(scrape(b.test_client(), bearer(b)), "webui_mqtt_messages_total") == 0
    assert web_state(a).metrics.registry is not web_state(b).metrics.registry


def test_labels_stay_bounded() -> None:
    m = WebMetrics()
    m.pushed("update")
    m.pushed("something-new")
    assert m.registry.get_sample_value("webui_pushes_total", {"event": "other"}) == 1
    assert [status_class(c) for c in (101, 200, 302, 404, 503, 999)] == ["1xx", "2xx", "3xx", "4xx", "5xx", "other"]
