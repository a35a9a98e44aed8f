"""The web UI's own health (its MQTT client, its database) and the alarm summary behind the header
counter: the pure parts, and what reaches a Socket.IO client (``hello``, ``health``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask_socketio import SocketIOTestClient
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import sessionmaker

from plantmodel.sources import AutomateSource
from plantmodel.thresholds import Alarm
from store import queries
from store.models import Reading
from tests.processes import wait_for
from tests.webapp import TS, make_web_app, token_for
from webui import web_state
from webui.live import BRIDGE_DOWN, DB_DOWN, MQTT_DOWN, STORING_STALLED, BridgeWatch, Health
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


# -- the bridges: their status (birth / last will) and whether readings get stored ----------------------

OFFLINE = b'{"state": "offline", "ts": "2026-11-21T10:00:00.000Z"}'
ONLINE = b'{"state": "online", "ts": "2026-11-21T10:00:05.000Z"}'
T0 = datetime(2026, 11, 21, 10, tzinfo=UTC)


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def watch(stall_after: float = 180.0) -> tuple[Health, BridgeWatch, _Clock]:
    health, clock = Health(), _Clock()
    return health, BridgeWatch(health, stall_after=stall_after, clock=clock), clock


def test_the_bridges_last_will_turns_health_red_and_its_birth_green() -> None:
    health, bridges, _ = watch()
    assert health.to_dict()["bridge"] is None and health.ok  # no bridge status seen: unknown
    bridges.status(OFFLINE)
    state = health.to_dict()
    assert state["ok"] is False and state["bridge"] is False and state["problems"] == [BRIDGE_DOWN]
    assert BRIDGE_DOWN == "bridge offline: readings are not being stored, no alarm can be raised"
    assert "2026-11-21T10:00:00" in state["reasons"]["bridge"]
    bridges.status(ONLINE)
    assert health.ok and health.to_dict()["bridge"] is True and health.to_dict()["reasons"] == {}
    bridges.status(b"not json")  # skipped, not taken for a state
    assert health.to_dict()["bridge"] is True
    bridges.status(b"")  # the retained status cleared: unknown again
    assert health.to_dict()["bridge"] is None and health.ok


def test_an_offline_status_while_readings_still_get_stored_is_another_bridges() -> None:
    # All bridges share the one status topic: bridge-2's last will while bridge 1 still stores.
    health, bridges, _ = watch()
    bridges.stored(T0)
    bridges.status(OFFLINE)
    bridges.stored(T0)  # the first probe after the will: the baseline
    assert health.to_dict()["bridge"] is False
    bridges.stored(T0 + timedelta(seconds=2))  # stored data moved on after the will: someone stores
    assert health.ok and health.to_dict()["bridge"] is True
    bridges.status(OFFLINE)  # another will: judged afresh
    bridges.stored(T0 + timedelta(seconds=2))
    bridges.stored(T0 + timedelta(seconds=2))
    assert health.to_dict()["bridge"] is False


def test_a_stuck_bridge_shows_when_devices_publish_and_nothing_is_stored() -> None:
    health, bridges, clock = watch(stall_after=180)
    bridges.status(ONLINE)  # connected, so no last will: only the stored data tells
    bridges.stored(T0)
    assert health.to_dict()["storing"] is True
    bridges.live_reading()
    clock.now += 179
    bridges.live_reading()
    bridges.stored(T0)
    assert health.ok
    clock.now += 2
    bridges.stored(T0)  # devices published for 181 s, the newest stored row did not move
    state = health.to_dict()
    assert state["ok"] is False and state["storing"] is False and state["problems"] == [STORING_STALLED]
    assert "181 s" in state["reasons"]["storing"]
    bridges.stored(T0 + timedelta(seconds=1))  # it stores again
    assert health.ok and health.to_dict()["storing"] is True


def test_no_stall_without_live_readings_and_no_double_report_when_offline() -> None:
    health, bridges, clock = watch(stall_after=10)
    bridges.stored(None)  # an empty database
    clock.now += 100
    bridges.stored(None)  # devices silent: nothing to store, nothing wrong
    assert health.ok
    bridges.live_reading()
    clock.now += 11
    bridges.stored(None)
    assert health.to_dict()["problems"] == [STORING_STALLED]  # no bridge ever came (no status at all)
    bridges.status(OFFLINE)  # the will says it better: one problem, not two
    assert health.to_dict()["problems"] == [BRIDGE_DOWN] and health.to_dict()["storing"] is None
    bridges.stored(None)
    assert health.to_dict()["problems"] == [BRIDGE_DOWN]


def test_the_bridge_status_reaches_every_browser(app: Flask, clients: list[SocketIOTestClient]) -> None:
    feed = web_state(app).feed
    client = connect(app, clients)
    client.get_received()
    feed.handle(feed.topics.bridge_status(), OFFLINE)  # as paho hands over the retained will
    [down] = events(client, "health")
    assert down["ok"] is False and down["bridge"] is False and down["problems"] == [BRIDGE_DOWN]
    assert down["mqtt"] is None  # the web UI's own links are not blamed
    feed.handle(feed.topics.bridge_status(), ONLINE)
    [up] = events(client, "health")
    assert up["ok"] is True and up["bridge"] is True
    # A reconnecting browser gets it in hello too.
    feed.handle(feed.topics.bridge_status(), OFFLINE)
    late = connect(app, clients)
    [hello] = events(late, "hello")
    assert hello["health"]["problems"] == [BRIDGE_DOWN]


def test_the_storing_probe_reads_the_newest_stored_row(app: Flask) -> None:
    feed = web_state(app).feed
    seen: list[Any] = []
    feed.bridges.stored = seen.append  # type: ignore[method-assign]
    assert feed.probe_storing() is True
    with web_state(app).make_session() as session:
        newest = session.scalar(select(func.max(Reading.received_at)))
    assert seen == [newest] and newest is not None  # the seeded plant's readings


def test_the_feed_subscribes_to_the_bridge_status(app: Flask) -> None:
    feed = web_state(app).feed
    subscribed: list[str] = []

    class FakeClient:
        def subscribe(self, topics: list[tuple[str, int]]) -> None:
            subscribed.extend(t for t, _ in topics)

    feed._on_connect(FakeClient(), None, None, _ReasonCode("Success", failure=False), None)  # type: ignore[arg-type]
    assert feed.topics.bridge_status() in subscribed
    assert set(feed.topics.live_subscriptions()) <= set(subscribed)
