"""The web UI's own health (its MQTT client, its database) and the alarm summary behind the header
counter: the pure parts, and what reaches a Socket.IO client (``hello``, ``health``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask_socketio import SocketIOTestClient
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from plantmodel.sources import AutomateSource
from plantmodel.thresholds import Alarm
from store import queries
from tests.processes import wait_for
from tests.webapp import TS, make_web_app, token_for
from webui import web_state
from webui.live import DB_DOWN, MQTT_DOWN, Health
from webui.snapshot import alarm_summary


def alarm(unit: int | None, severity: str, state: str = "active", acked: bool = False,
          meter: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"severity": severity, "state": state,
                            "acknowledged_at": "2026-11-21T10:20:00Z" if acked else None}
    if meter is not None:
        data["meter"] = meter
    else:
        data.update(unit=unit, automate=1)
    return data


# -- alarm summary ----------------------------------------------------------------------------------

def test_summary_counts_active_alarms_acknowledged_or_not() -> None:
    summary = alarm_summary([
        alarm(5, "critical", acked=True),  # acknowledged but still active: still counted
        alarm(5, "warning"),
        alarm(2, "warning"),
        alarm(2, "critical", state="cleared"),  # cleared, not acknowledged: not active
        alarm(None, "critical", meter="m1"),
    ])
    assert summary == {
        "active": 4, "critical": 2, "acknowledged": 1,
        "units": {"5": {"active": 2, "critical": 1}, "2": {"active": 1, "critical": 0}},
        "meters": {"m1": {"active": 1, "critical": 1}},
    }


def test_summary_of_nothing_is_zero() -> None:
    assert alarm_summary([]) == {"active": 0, "critical": 0, "acknowledged": 0, "units": {}, "meters": {}}


# -- Health ---------------------------------------------------------------------------------------------

def test_health_pushes_each_change_once() -> None:
    pushed: list[dict[str, Any]] = []
    health = Health(pushed.append)
    assert health.ok and health.to_dict()["mqtt"] is None  # unknown is no problem
    health.set_mqtt(True)
    health.set_mqtt(True)  # no change: no push
    health.set_database(True)
    health.set_mqtt(False, "connection lost")
    health.set_mqtt(False, "still lost")
    assert [(p["mqtt"], p["database"], p["ok"]) for p in pushed] == [
        (True, None, True), (True, True, True), (False, True, False)]
    assert pushed[-1]["problems"] == [MQTT_DOWN]
    assert pushed[-1]["reasons"] == {"mqtt": "connection lost"}
    health.set_database(False, "OperationalError")
    assert health.to_dict()["problems"] == [MQTT_DOWN, DB_DOWN]
    health.set_mqtt(True)
    health.set_database(True)
    assert pushed[-1]["ok"] is True and pushed[-1]["problems"] == [] and pushed[-1]["reasons"] == {}


def test_a_failing_push_does_not_break_the_caller() -> None:
    def broken(_data: dict[str, Any]) -> None:
        raise RuntimeError("socket gone")

    health = Health(broken)
    health.set_mqtt(False, "x")  # must not raise (paho's callback thread calls this)
    assert not health.ok


# -- through the app -------------------------------------------------------------------------------------

@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return make_web_app(tmp_path)


@pytest.fixture
def clients() -> Iterator[list[SocketIOTestClient]]:
    opened: list[SocketIOTestClient] = []
    yield opened
    for client in opened:
        if client.is_connected():
            client.disconnect()


def connect(app: Flask, clients: list[SocketIOTestClient], user: str = "viewer") -> SocketIOTestClient:
    socketio = app.extensions["socketio"]
    client = socketio.test_client(app, auth={"token": token_for(web_state(app).make_session, user)})
    clients.append(client)
    assert client.is_connected()
    return client


def events(client: SocketIOTestClient, name: str) -> list[Any]:
    return [m["args"][0] for m in client.get_received() if m["name"] == name]


def test_hello_carries_the_summary_and_health_follows(app: Flask, clients: list[SocketIOTestClient]) -> None:
    with web_state(app).make_session.begin() as session:  # a critical one beside the seeded warning
        queries.save_alarm_events(session, [
            Alarm(AutomateSource(2, 1), "salmonella_ppm", 40, 37, "high", "critical", "active", TS, TS)])
    client = connect(app, clients)
    received = client.get_received()
    [hello] = [m["args"][0] for m in received if m["name"] == "hello"]
    assert hello["summary"]["active"] == 2 and hello["summary"]["critical"] == 1
    assert hello["summary"]["units"] == {"1": {"active": 1, "critical": 0}, "2": {"active": 1, "critical": 1}}
    [health] = [m["args"][0] for m in received if m["name"] == "health"]
    assert health == hello["health"]
    assert health["ok"] is True  # MQTT not started in these tests: unknown, not down


def test_mqtt_loss_and_return_reach_every_browser(app: Flask, clients: list[SocketIOTestClient]) -> None:
    feed = web_state(app).feed
    viewer, operator = connect(app, clients), connect(app, clients, "operator")
    for c in (viewer, operator):
        c.get_received()
    # paho's callbacks, as on a real disconnect and reconnect
    feed._on_disconnect(None, None, None, _ReasonCode("Unspecified error", failure=True), None)
    for c in (viewer, operator):
        [down] = events(c, "health")
        assert down["ok"] is False and down["mqtt"] is False and down["problems"] == [MQTT_DOWN]
    feed.health.set_mqtt(True)
    for c in (viewer, operator):
        [up] = events(c, "health")
        assert up["ok"] is True and up["mqtt"] is True


def test_database_probe_reports_a_dead_database_and_its_return(app: Flask, tmp_path: Path,
                                                               clients: list[SocketIOTestClient]) -> None:
    feed = web_state(app).feed
    client = connect(app, clients)
    client.get_received()
    assert feed.probe_database() is True
    [up] = events(client, "health")
    assert up["database"] is True
    good: sessionmaker[Any] = feed._make_session
    # A database that does not answer: SQLite cannot open a directory.
    feed._make_session = sessionmaker(create_engine(f"sqlite:///{tmp_path}"))
    try:
        assert feed.probe_database() is False
        [down] = events(client, "health")
        assert down["database"] is False and down["problems"] == [DB_DOWN]
    finally:
        feed._make_session = good
    assert feed.probe_database() is True
    [back] = events(client, "health")
    assert back["ok"] is True


def test_the_probe_thread_runs_with_the_feed_and_stops_with_it(app: Flask) -> None:
    feed = web_state(app).feed
    feed.db_probe_interval = 0.05
    feed.start_probe()
    try:
        wait_for(lambda: feed.health.to_dict()["database"] is True, 5, "the first probe")
    finally:
        feed.stop_probe()
    assert feed._probe_thread is None


class _ReasonCode:
    """Enough of paho's ReasonCode for the feed's callbacks."""

    def __init__(self, text: str, *, failure: bool) -> None:
        self.text = text
        self.is_failure = failure

    def __str__(self) -> str:
        return self.text
