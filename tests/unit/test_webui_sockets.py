"""The Socket.IO protocol with Flask-SocketIO's test client: log-in, hello, watch, rooms, coalescing,
alarms. The MQTT feed is not started: tests feed ``handle`` and call ``push.flush()`` themselves."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask_socketio import SocketIO, SocketIOTestClient
from sqlalchemy.exc import OperationalError

from plantmodel.readings import Reading
from plantmodel.shelly import PowerSample
from plantmodel.sources import AutomateSource
from plantmodel.status import DeviceStatus
from plantmodel.thresholds import Alarm, Threshold
from plantmodel.topics import Topics
from store import history, queries
from tests.webapp import METER, TS, login, make_reading, make_web_app, token_for
from webui import web_state
from webui.live import LiveFeed
from webui.snapshot import load_snapshot

TOPICS = Topics("plant")


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return make_web_app(tmp_path)



def socketio_of(app: Flask) -> SocketIO:
    return app.extensions["socketio"]


def feed_of(app: Flask) -> LiveFeed:
    return web_state(app).feed


def received(client: SocketIOTestClient, name: str) -> list[Any]:
    return [m["args"][0] for m in client.get_received() if m["name"] == name]


def connect(app: Flask, clients: list[SocketIOTestClient], user: str = "viewer",
            view: dict[str, Any] | None = None) -> SocketIOTestClient:
    client = socketio_of(app).test_client(app, auth={"token": token_for(web_state(app).make_session, user)})
    clients.append(client)
    assert client.is_connected()
    client.get_received()  # the hello
    if view is not None:
        answer = client.emit("watch", view, callback=True)
        assert "error" not in answer, answer
    return client


def publish(app: Flask, reading: Reading) -> None:
    feed_of(app).handle(TOPICS.reading(reading.unit, reading.automate), reading.to_json().encode())


def readings_in(updates: list[dict[str, Any]]) -> list[tuple[int, int, int]]:
    return [(r["unit"], r["automate"], r["seq"]) for u in updates for r in u.get("readings", [])]


# -- connecting ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("auth", [None, {}, {"token": "abb_not-a-token"}, {"token": 42}, "token"])
def test_connect_without_valid_credentials_is_refused(app: Flask, clients: list[SocketIOTestClient],
                                                      auth: Any) -> None:
    client = socketio_of(app).test_client(app, auth=auth)
    clients.append(client)
    assert not client.is_connected()


def test_connect_with_a_flask_client_that_is_not_logged_in_is_refused(app: Flask) -> None:
    http = app.test_client()
    http.get("/login")  # a session cookie, but no user in it
    assert not socketio_of(app).test_client(app, flask_test_client=http).is_connected()


def test_logged_in_browser_connects_and_gets_hello(app: Flask, clients: list[SocketIOTestClient]) -> None:
    http = app.test_client()
    assert login(http, "operator").status_code == 302
    client = socketio_of(app).test_client(app, flask_test_client=http)
    clients.append(client)
    assert client.is_connected()
    [hello] = received(client, "hello")
    assert hello["user"] == {"username": "operator", "role": "operator", "language": None}
    assert hello["periods"] == {"automate": 60.0, "meter": 60.0}
    assert hello["stale_after"] == 3
    with web_state(app).make_session() as session:
        expected = [queries.alarm_dict(row) for row in queries.open_alarms(session)]
    assert hello["alarms"] == expected
    [alarm] = hello["alarms"]
    assert isinstance(alarm["id"], int)
    assert (alarm["source"], alarm["measure"], alarm["acknowledged_by"]) == ("units/1/automates/1", "ph", None)


def test_token_connects_and_hello_names_its_user(app: Flask, clients: list[SocketIOTestClient]) -> None:
    token = token_for(web_state(app).make_session, "admin")
    client = socketio_of(app).test_client(app, auth={"token": token})
    clients.append(client)
    assert client.is_connected()
    [hello] = received(client, "hello")
    assert hello["user"] == {"username": "admin", "role": "admin", "language": None}


def test_hello_periods_come_from_the_settings(tmp_path: Path, clients: list[SocketIOTestClient]) -> None:
    app = make_web_app(tmp_path, report_period=5.0, meter_period=2.0)
    client = socketio_of(app).test_client(app, auth={"token": token_for(web_state(app).make_session, "viewer")})
    clients.append(client)
    [hello] = received(client, "hello")
    assert hello["periods"] == {"automate": 5.0, "meter": 2.0}


# -- watch: snapshots -------------------------------------------------------------------------------------

def test_watch_plant_returns_the_plant_snapshot(app: Flask, clients: list[SocketIOTestClient]) -> None:
    client = connect(app, clients)
    answer = client.emit("watch", {"view": "plant"}, callback=True)
    assert answer == {"room": "plant", "snapshot": load_snapshot(web_state(app).make_session)}
    assert len(answer["snapshot"]["units"]) == 2 and answer["snapshot"]["meters"]


def test_watch_unit_returns_that_unit_only(app: Flask, clients: list[SocketIOTestClient]) -> None:
    client = connect(app, clients)
    answer = client.emit("watch", {"view": "unit", "unit": 1}, callback=True)
    assert answer["room"] == "units/1"
    snap = answer["snapshot"]
    assert [(a["unit"], a["automate"]) for u in snap["units"] for a in u["automates"]] == [(1, 1), (1, 2)]
    assert snap["units"][0]["automates"][0]["reading"]["ph"] == 7.4
    assert snap["meters"] == []
    assert snap["devices"] == {"units/1": {"state": "online", "ts": "2026-11-21T10:15:00.000Z"}}
    assert [(a["source"], a["measure"]) for a in snap["alarms"]] == [("units/1/automates/1", "ph")]
    assert set(snap) == {"units", "meters", "devices", "alarms", "measures"}

    other = client.emit("watch", {"view": "unit", "unit": 2}, callback=True)["snapshot"]
    assert [u["unit"] for u in other["units"]] == [2]
    assert (other["devices"], other["alarms"]) == ({}, [])  # unit 1's status and alarm stay out


def test_watch_automate_returns_that_automate_only(app: Flask, clients: list[SocketIOTestClient]) -> None:
    client = connect(app, clients)
    answer = client.emit("watch", {"view": "automate", "unit": 1, "automate": 2}, callback=True)
    assert answer["room"] == "units/1/automates/2"
    snap = answer["snapshot"]
    assert [(a["unit"], a["automate"]) for u in snap["units"] for a in u["automates"]] == [(1, 2)]
    assert snap["alarms"] == []  # the alarm is automate 1's
    assert snap["devices"] == {"units/1": {"state": "online", "ts": "2026-11-21T10:15:00.000Z"}}
    snap1 = client.emit("watch", {"view": "automate", "unit": 1, "automate": 1}, callback=True)["snapshot"]
    assert [a["measure"] for a in snap1["alarms"]] == ["ph"]


def test_watch_meter_returns_last10_state_and_resolved_limits(app: Flask,
                                                             clients: list[SocketIOTestClient]) -> None:
    make_session = web_state(app).make_session
    base = PowerSample(meter=METER, ts=TS, output=True, apower=812.5, voltage=230.1, current=3.6, freq=50.0,
                       pf=0.98, energy_wh=1234.5, ret_energy_wh=0.0, temperature_c=41.2)
    later = [replace(base, ts=TS + timedelta(minutes=i), apower=800.0 + i) for i in range(1, 13)]
    with make_session.begin() as session:
        queries.insert_power_samples(session, [(s, s.ts) for s in later])
        queries.upsert_threshold(session, Threshold("apower", f"meters/{METER}", None, 1000.0, 50.0), TS, "admin")
        queries.upsert_threshold(session, Threshold("voltage", "*", 207.0, 253.0), TS, "admin")
    client = connect(app, clients)
    answer = client.emit("watch", {"view": "meter", "meter": METER}, callback=True)
    assert answer["room"] == f"meters/{METER}"
    snap = answer["snapshot"]
    assert set(snap) == {"meter", "power", "state", "last10", "limits"}
    assert (snap["meter"], snap["state"]) == (METER, "offline")
    assert [s["apower"] for s in snap["last10"]] == [812.0 - i for i in range(10)]  # newest first
    assert snap["power"] == snap["last10"][0] == later[-1].to_dict()
    # The meter's own apower threshold wins over the default 3500 W; voltage comes from "*".
    assert snap["limits"] == {"apower": {"low": None, "high": 1000.0}, "voltage": {"low": 207.0, "high": 253.0}}


@pytest.mark.parametrize(("payload", "error"), [
    (None, "watch needs an object"),
    ("plant", "watch needs an object"),
    ([], "watch needs an object"),
    ({}, "unknown view None"),
    ({"view": "garden"}, "unknown view 'garden'"),
    ({"view": "unit"}, "needs 'unit'"),
    ({"view": "unit", "unit": "1"}, "'unit' must be an integer"),
    ({"view": "unit", "unit": True}, "'unit' must be an integer"),
    ({"view": "unit", "unit": 0}, "unit 0 is out of range"),
    ({"view": "automate", "unit": 1, "automate": 0}, "no such automate: unit 1 automate 0"),
    ({"view": "automate", "unit": 1}, "needs 'automate'"),
    ({"view": "automate", "unit": 1, "automate": 1.5}, "'automate' must be an integer"),
    ({"view": "plant", "unit": 1}, "takes no 'unit'"),
    ({"view": "meter", "meter": "../x"}, "invalid meter id"),
    ({"view": "meter", "meter": 5}, "invalid meter id"),
    ({"view": "unit", "unit": 9}, "unit 9 is unknown"),
    ({"view": "automate", "unit": 1, "automate": 9}, "unit 1 has no automate 9"),
    ({"view": "meter", "meter": "shellypro1pm-unknown"}, "meter shellypro1pm-unknown is unknown"),
])
def test_bad_watch_gives_an_error_and_keeps_the_current_view(app: Flask, clients: list[SocketIOTestClient],
                                                             payload: Any, error: str) -> None:
    client = connect(app, clients, view={"view": "unit", "unit": 1})
    answer = client.emit("watch", payload, callback=True)
    assert set(answer) == {"error"} and error in answer["error"], answer
    assert client.is_connected()
    assert feed_of(app).views.rooms() == {"units/1"}
    publish(app, make_reading(1, 2, TS + timedelta(minutes=1)))
    feed_of(app).push.flush()
    assert readings_in(received(client, "update")) == [(1, 2, 1)]  # still on unit 1


def test_watch_with_database_down_gives_an_error(app: Flask, clients: list[SocketIOTestClient],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    client = connect(app, clients, view={"view": "plant"})

    def down(*_args: Any) -> None:
        raise OperationalError("SELECT", {}, Exception("gone"))

    monkeypatch.setattr("webui.sockets.unit_snapshot", down)
    assert client.emit("watch", {"view": "unit", "unit": 1}, callback=True) == {"error": "database unavailable"}
    assert feed_of(app).views.rooms() == {"plant"}
    publish(app, make_reading(2, 1, TS + timedelta(minutes=1)))
    feed_of(app).push.flush()
    assert readings_in(received(client, "update")) == [(2, 1, 1)]  # still on plant, not on unit 1


# -- rooms ----------------------------------------------------------------------------------------------

def test_updates_reach_the_rooms_that_watch_them_only(app: Flask, clients: list[SocketIOTestClient]) -> None:
    unit1 = connect(app, clients, view={"view": "unit", "unit": 1})
    unit2 = connect(app, clients, view={"view": "unit", "unit": 2})
    plant = connect(app, clients, view={"view": "plant"})
    automate = connect(app, clients, view={"view": "automate", "unit": 1, "automate": 1})
    idle = connect(app, clients)  # connected, no view
    publish(app, make_reading(1, 2, TS + timedelta(minutes=1)))
    publish(app, make_reading(2, 1, TS + timedelta(minutes=1)))
    publish(app, make_reading(1, 1, TS + timedelta(minutes=1)))
    feed_of(app).push.flush()

    [u1] = received(unit1, "update")
    assert readings_in([u1]) == [(1, 2, 1), (1, 1, 1)]  # unit 2's reading stays out
    assert readings_in(received(unit2, "update")) == [(2, 1, 1)]
    [p] = received(plant, "update")
    assert sorted(readings_in([p])) == [(1, 1, 1), (1, 2, 1), (2, 1, 1)]
    assert readings_in(received(automate, "update")) == [(1, 1, 1)]
    assert idle.get_received() == []


def test_changing_view_leaves_the_previous_room(app: Flask, clients: list[SocketIOTestClient]) -> None:
    client = connect(app, clients, view={"view": "unit", "unit": 1})
    assert client.emit("watch", {"view": "unit", "unit": 2}, callback=True)["room"] == "units/2"
    publish(app, make_reading(1, 2, TS + timedelta(minutes=1)))
    publish(app, make_reading(2, 1, TS + timedelta(minutes=1)))
    feed_of(app).push.flush()
    assert readings_in(received(client, "update")) == [(2, 1, 1)]

    assert client.emit("watch", {"view": "none"}, callback=True) == {"room": None, "snapshot": None}
    publish(app, make_reading(2, 1, TS + timedelta(minutes=2)))
    feed_of(app).push.flush()
    assert received(client, "update") == []
    assert feed_of(app).views.rooms() == set()


def test_unit_status_reaches_automate_watchers_of_that_unit(app: Flask, clients: list[SocketIOTestClient]) -> None:
    mine = connect(app, clients, view={"view": "automate", "unit": 1, "automate": 2})
    other = connect(app, clients, view={"view": "automate", "unit": 2, "automate": 1})
    feed_of(app).handle(TOPICS.unit_status(1), DeviceStatus("offline", TS).to_json().encode())
    feed_of(app).push.flush()
    assert received(mine, "update") == [
        {"status": [{"device": "units/1", "state": "offline", "ts": "2026-11-21T10:15:00.000Z"}]}]
    assert received(other, "update") == []


def test_meter_updates_reach_the_meter_room_not_the_units(app: Flask, clients: list[SocketIOTestClient]) -> None:
    meter = connect(app, clients, view={"view": "meter", "meter": METER})
    unit = connect(app, clients, view={"view": "unit", "unit": 1})
    feed_of(app).handle(Topics.shelly(METER, "online"), b"true")
    feed_of(app).push.flush()
    [update] = received(meter, "update")
    assert update["status"][0]["device"] == f"meters/{METER}"
    assert received(unit, "update") == []


def test_fifty_readings_within_one_interval_give_one_update_with_the_latest(
        app: Flask, clients: list[SocketIOTestClient]) -> None:
    client = connect(app, clients, view={"view": "automate", "unit": 1, "automate": 2})
    base = make_reading(1, 2)
    for i in range(1, 51):
        publish(app, replace(base, seq=i, ts=TS + timedelta(seconds=i)))
    assert received(client, "update") == []  # nothing before the flush
    feed_of(app).push.flush()
    [update] = received(client, "update")
    assert readings_in([update]) == [(1, 2, 50)]
    assert update["readings"][0]["ts"] == "2026-11-21T10:15:50.000Z"


def test_zero_push_interval_sends_without_a_flush(tmp_path: Path, clients: list[SocketIOTestClient]) -> None:
    app = make_web_app(tmp_path, push_interval=0)
    client = connect(app, clients, view={"view": "unit", "unit": 1})
    publish(app, make_reading(1, 2, TS + timedelta(minutes=1)))
    assert readings_in(received(client, "update")) == [(1, 2, 1)]


def test_disconnect_forgets_the_view(app: Flask, clients: list[SocketIOTestClient]) -> None:
    client = connect(app, clients, view={"view": "unit", "unit": 1})
    assert feed_of(app).views.rooms() == {"units/1"}
    client.disconnect()
    assert len(feed_of(app).views) == 0


# -- alarms ---------------------------------------------------------------------------------------------

def test_alarms_reach_every_client_at_once_with_their_id(app: Flask, clients: list[SocketIOTestClient]) -> None:
    watching = [connect(app, clients, view=v) for v in (
        {"view": "unit", "unit": 2}, {"view": "plant"}, {"view": "meter", "meter": METER})]
    idle = connect(app, clients)
    alarm = Alarm(AutomateSource(1, 1), "ph", 7.4, 7.2, "high", "warning", "active", TS, TS)
    feed_of(app).handle(TOPICS.alarm(alarm.source, "ph"), alarm.to_json().encode())  # no flush: not coalesced
    with web_state(app).make_session() as session:
        row = queries.find_alarm(session, "units/1/automates/1", "ph", TS)
        assert row is not None
        expected = queries.alarm_dict(row)
    for client in [*watching, idle]:
        assert received(client, "alarm") == [expected]

    with web_state(app).make_session.begin() as session:
        acked, _ = history.acknowledge_once(session, expected["id"], "operator", TS + timedelta(minutes=1))
        assert acked is not None
        data = queries.alarm_dict(acked)
    feed_of(app).alarm_changed(data)
    for client in [*watching, idle]:
        [got] = received(client, "alarm")
        assert (got["id"], got["acknowledged_by"]) == (expected["id"], "operator")
