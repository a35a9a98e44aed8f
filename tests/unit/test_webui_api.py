"""The REST API on SQLite with the Flask test client: auth, shapes, filters, pagination, writes and
every error case (400 bad parameter, 404 unknown id or page, 409 conflict, never a 500)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, url_for
from werkzeug.test import TestResponse

from plantmodel.i18n import format_time
from plantmodel.shelly import PowerSample
from plantmodel.sources import AutomateSource, MeterSource
from plantmodel.thresholds import Alarm
from plantmodel.timezone import plant_zone
from store import history, queries
from tests.webapp import METER, TS, USERS, csrf, login, make_reading, make_web_app, token_for
from webui import web_state

SAMPLE_ARGS = {"unit": 1, "automate": 1, "meter": METER, "alarm_id": 1, "route_id": 1, "username": "viewer",
               "device": "units/1"}


class Api:
    """The test client with a bearer token per role."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.client = app.test_client()
        self.tokens = {name: token_for(web_state(app).make_session, name) for name in USERS}

    def call(self, method: str, url: str, role: str | None = "viewer", **kw: Any) -> TestResponse:
        headers = dict(kw.pop("headers", {}))
        if role is not None:
            headers["Authorization"] = f"Bearer {self.tokens[role]}"
        return self.client.open(url, method=method, headers=headers, **kw)

    def get(self, url: str, role: str | None = "viewer", **kw: Any) -> TestResponse:
        return self.call("GET", url, role, **kw)

    def json(self, url: str, role: str = "viewer") -> Any:
        resp = self.get(url, role)
        assert resp.status_code == 200, (url, resp.status_code, resp.get_data(as_text=True))
        return resp.get_json()


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return make_web_app(tmp_path)


@pytest.fixture
def api(app: Flask) -> Api:
    return Api(app)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Api:
    """One app for the many requests that must be refused (and so change nothing)."""
    return Api(make_web_app(tmp_path_factory.mktemp("shared")))


def error(resp: TestResponse, status: int) -> str:
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True))
    body = resp.get_json()
    assert body["status"] == status
    return body["error"]


def api_rules(app: Flask) -> list[tuple[str, str]]:
    """(method, sample URL) of every /api route."""
    out = []
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            if not rule.rule.startswith("/api"):
                continue
            url = url_for(rule.endpoint, **{a: SAMPLE_ARGS[a] for a in rule.arguments})
            out += [(m, url) for m in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return out


def add_alarms(app: Flask) -> None:
    """Besides the seeded active pH alarm of 1/1 (raised at TS): a cleared and acknowledged one, a
    cleared unacknowledged one, and a meter alarm."""
    make_session = web_state(app).make_session
    t1, t2, t3 = TS - timedelta(hours=3), TS - timedelta(hours=2), TS - timedelta(hours=1)
    with make_session.begin() as s:
        queries.save_alarm_events(s, [
            Alarm(AutomateSource(1, 2), "tank_temp_c", 4.5, 4.0, "high", "warning", "active", t1, t1),
            Alarm(AutomateSource(1, 2), "tank_temp_c", 3.5, 4.0, "high", "warning", "cleared", t1,
                  t1 + timedelta(minutes=5)),
            Alarm(AutomateSource(2, 1), "listeria_ppm", 60, 54, "high", "critical", "active", t2, t2),
            Alarm(AutomateSource(2, 1), "listeria_ppm", 50, 54, "high", "critical", "cleared", t2,
                  t2 + timedelta(minutes=1)),
            Alarm(MeterSource(METER), "apower", 3900, 3500, "high", "warning", "active", t3, t3),
        ])
        row = queries.find_alarm(s, "units/1/automates/2", "tank_temp_c", t1)
        assert row is not None
        history.acknowledge_once(s, row.id, "operator", TS)


# -- auth -------------------------------------------------------------------------------------------

def test_every_api_route_needs_a_login_and_answers_401_json(api: Api) -> None:
    rules = api_rules(api.app)
    assert len(rules) >= 30
    for method, url in rules:
        resp = api.call(method, url, role=None)
        assert error(resp, 401).startswith("log in"), (method, url)
        resp = api.call(method, url, role=None, headers={"Authorization": "Bearer abb_not-a-real-token"})
        assert resp.status_code == 401, (method, url)


def test_roles_viewer_cannot_ack_operator_cannot_edit_thresholds_or_users(api: Api) -> None:
    assert "operator role" in error(api.call("POST", "/api/alarms/1/ack", "viewer"), 403)
    body = {"scope": "units/1", "measure": "ph", "low": 6.5, "high": 7.5}
    assert "admin role" in error(api.call("PUT", "/api/thresholds", "operator", json=body), 403)
    assert error(api.call("DELETE", "/api/thresholds?scope=units/1&measure=ph", "operator"), 403)
    assert error(api.get("/api/users", "operator"), 403)
    assert error(api.call("POST", "/api/users", "operator", json={}), 403)
    assert error(api.call("PATCH", "/api/users/viewer", "operator", json={"role": "admin"}), 403)
    assert error(api.call("DELETE", "/api/users/viewer", "operator"), 403)
    # Nothing was written by the refused calls.
    assert api.json("/api/alarms")["items"][0]["acknowledged_at"] is None
    assert api.json("/api/thresholds/changes")["total"] == 0


def test_cookie_auth_writes_need_the_csrf_header_token_auth_does_not(api: Api) -> None:
    http = api.app.test_client()
    assert login(http, "operator").status_code == 302
    assert http.get("/api/me").get_json() == {"username": "operator", "role": "operator", "language": None}
    assert "CSRF" in error(http.post("/api/alarms/1/ack"), 403)
    assert error(http.post("/api/alarms/1/ack", headers={"X-CSRF-Token": "wrong"}), 403)
    resp = http.post("/api/alarms/1/ack", headers=csrf(http))
    assert resp.status_code == 200
    assert resp.get_json()["acknowledged_by"] == "operator"
    # A token is not exposed to CSRF: no header needed (it failed with 409 = it got through auth).
    assert "already acknowledged" in error(api.call("POST", "/api/alarms/1/ack", "operator"), 409)


def test_me_and_token_rotation(api: Api) -> None:
    http = api.app.test_client()
    login(http, "viewer")
    assert error(http.post("/api/me/token"), 403)  # cookie auth: CSRF needed
    token = http.post("/api/me/token", headers=csrf(http)).get_json()["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert http.get("/api/me", headers=bearer).get_json() == {"username": "viewer", "role": "viewer", "language": None}
    assert api.get("/api/me", role=None, headers=bearer).status_code == 200  # without the cookie too
    # Rotating with the token itself: the old one stops working, the new one works.
    new = api.call("POST", "/api/me/token", role=None, headers=bearer).get_json()["token"]
    assert new != token
    assert api.get("/api/me", role=None, headers=bearer).status_code == 401
    new_bearer = {"Authorization": f"Bearer {new}"}
    users = {u["username"]: u for u in api.json("/api/users", "admin")["items"]}
    assert users["viewer"]["has_token"] is True
    assert api.call("DELETE", "/api/me/token", role=None, headers=new_bearer).get_json() == {"revoked": True}
    assert api.get("/api/me", role=None, headers=new_bearer).status_code == 401


# -- units, automates, meters ---------------------------------------------------------------------------

def test_units_and_automates(api: Api) -> None:
    units = api.json("/api/units")["items"]
    assert units == [
        {"unit": 1, "name": None, "state": "online", "automates": [{"automate": 1, "type": "0x0000BA27"},
                                                                   {"automate": 2, "type": "0x0000BA27"}]},
        {"unit": 2, "name": None, "state": None, "automates": [{"automate": 1, "type": "0x0000BA27"}]},
    ]
    assert api.json("/api/units/2") == units[1]
    assert error(api.get("/api/units/9"), 404) == "unit 9 is unknown"
    assert error(api.get("/api/units/99999999999999999999999"), 404)  # no integer overflow in the driver

    everything = api.json("/api/automates")["items"]
    assert [(a["unit"], a["automate"]) for a in everything] == [(1, 1), (1, 2), (2, 1)]
    one = api.json("/api/units/1/automates/1")
    assert one == everything[0] == api.json("/api/units/1/automates")["items"][0]
    assert one["type"] == "0x0000BA27"
    assert one["latest"]["ts"] == "2026-11-21T10:15:00.000Z" and one["latest"]["ph"] == 7.4
    assert len(api.json("/api/units/2/automates")["items"]) == 1
    assert error(api.get("/api/units/1/automates/7"), 404) == "unit 1 has no automate 7"
    assert error(api.get("/api/units/8/automates/1"), 404) == "unit 8 is unknown"
    assert error(api.get("/api/units/8/automates"), 404)


def test_meters(api: Api) -> None:
    (meter,) = api.json("/api/meters")["items"]
    assert meter["meter"] == METER and meter["state"] == "offline"
    assert meter["first_seen"] == meter["last_seen"] == "2026-11-21T10:15:01.000Z"
    assert meter["latest"]["apower"] == 812.5 and meter["latest"]["ts"] == "2026-11-21T10:15:00.000Z"
    assert api.json(f"/api/meters/{METER}") == meter
    assert error(api.get("/api/meters/shellyplus-unknown"), 404) == "meter 'shellyplus-unknown' is unknown"
    assert error(api.get("/api/meters/bad%20id!"), 404)


def add_power(app: Flask, count: int, meter: str = METER) -> None:
    with web_state(app).make_session.begin() as s:
        queries.insert_power_samples(s, [(PowerSample(
            meter=meter, ts=TS + timedelta(minutes=i + 1), output=True, apower=100.0 + i, voltage=230.0,
            current=0.5, freq=50.0, pf=0.9, energy_wh=2000.0 + i, ret_energy_wh=None, temperature_c=None),
            TS + timedelta(minutes=i + 1, seconds=1)) for i in range(count)])


def test_meter_readings_and_series(api: Api) -> None:
    add_power(api.app, 5)
    page = api.json(f"/api/meters/{METER}/readings?order=desc&per_page=2")
    assert page["total"] == 6 and page["pages"] == 3
    assert [r["apower"] for r in page["items"]] == [104.0, 103.0]
    assert page["items"][0]["received_at"] == "2026-11-21T10:20:01.000Z"
    assert page["items"][0]["ret_energy_wh"] is None
    series = api.json(f"/api/meters/{METER}/series?start=2026-11-21T10:00:00Z&end=2026-11-21T11:00:00Z")
    assert series["source"] == f"meters/{METER}" and series["aggregated"] is False
    assert series["measures"]["apower"]["v"] == [812.5, 100.0, 101.0, 102.0, 103.0, 104.0]
    assert series["measures"]["temperature_c"]["v"][1] is None
    assert series["limits"]["apower"] == {"low": None, "high": 3500.0}
    assert series["t"][0] == int(TS.timestamp() * 1000)


# -- readings ----------------------------------------------------------------------------------------------

def add_readings(app: Flask, count: int) -> None:
    """``count`` more readings of 1/2, one a minute after TS, with ph = 7.0 + i/100."""
    rx = TS + timedelta(hours=1)
    with web_state(app).make_session.begin() as s:
        queries.insert_readings(s, [(make_reading(1, 2, TS + timedelta(minutes=i + 1), ph=round(7.0 + i / 100, 2)),
                                     rx) for i in range(count)])


def test_readings_pagination_order_and_time_range(api: Api) -> None:
    add_readings(api.app, 24)  # 25 readings of 1/2 in all
    base = "/api/units/1/automates/2/readings"
    first = api.json(f"{base}?per_page=10")
    assert (first["page"], first["per_page"], first["total"], first["pages"]) == (1, 10, 25, 3)
    assert first["items"][0]["ts"] == "2026-11-21T10:15:00.000Z"  # oldest first by default
    assert set(first["items"][0]) == {"unit", "automate", "type", "seq", "ts", "received_at", "stored_at",
                                      "tank_temp_c", "ext_temp_c", "milk_kg", "product_kg", "ph", "k_mg_l",
                                      "nacl_g_l", "salmonella_ppm", "ecoli_ppm", "listeria_ppm"}
    last = api.json(f"{base}?per_page=10&page=3")
    assert len(last["items"]) == 5 and last["items"][-1]["ts"] == "2026-11-21T10:39:00.000Z"
    newest = api.json(f"{base}?order=desc&per_page=1")
    assert newest["items"][0]["ph"] == 7.23
    window = api.json(f"{base}?start=2026-11-21T10:20:00Z&end=2026-11-21T11:25:00%2B01:00")
    assert [r["ts"][11:16] for r in window["items"]] == ["10:20", "10:21", "10:22", "10:23", "10:24", "10:25"]
    assert api.json(f"{base}?start=2027-01-01T00:00:00")["total"] == 0  # naive = UTC; empty page 1 is fine
    assert "page 4 is out of range" in error(api.get(f"{base}?per_page=10&page=4"), 404)
    assert error(api.get(f"{base}?start=2027-01-01T00:00:00&page=2"), 404)
    assert error(api.get("/api/units/1/automates/9/readings"), 404)
    assert api.json(f"{base}?per_page=1000")["per_page"] == 1000


@pytest.mark.parametrize(("query", "names"), [
    ("start=yesterday", "start='yesterday'"),
    ("end=2026-13-01T00:00:00Z", "end="),
    ("start=", "start=''"),
    ("start=2026-11-21T11:00:00Z&end=2026-11-21T10:00:00Z", "is after end"),
    ("start=0001-01-01T00:00:00%2B01:00", "start="),
    ("page=0", "page=0 must be >= 1"),
    ("page=two", "page='two' is not an integer"),
    ("page=1_0", "page='1_0'"),
    ("per_page=1001", "per_page=1001 must be <= 1000"),
    ("per_page=", "per_page=''"),
    ("order=newest", "order='newest' must be one of asc, desc"),
    ("limit=5", "unknown parameter 'limit'"),
    ("page=1&page=2", "'page' given more than once"),
])
def test_bad_reading_parameters_are_400_naming_the_problem(shared: Api, query: str, names: str) -> None:
    assert names in error(shared.get(f"/api/units/1/automates/1/readings?{query}"), 400)


def test_no_route_answers_500_to_garbage(api: Api) -> None:
    garbage = ["start=garbage", "page=-1", "per_page=x", "points=0", "x=1", "start=2026-01-01&start=2026-01-02"]
    for method, url in api_rules(api.app):
        for q in garbage:
            resp = api.call(method, f"{url}?{q}", "admin")
            assert resp.status_code == 400, (method, url, q, resp.status_code)


def test_unknown_api_paths_and_methods_are_json(api: Api) -> None:
    assert error(api.get("/api/nope"), 404)
    assert error(api.call("POST", "/api/units"), 405)


# -- series ------------------------------------------------------------------------------------------

def test_series_raw_limits_and_alarms(api: Api) -> None:
    data = api.json("/api/units/1/automates/1/series?start=2026-11-21T10:00:00Z&end=2026-11-21T10:30:00Z")
    assert data["source"] == "units/1/automates/1"
    assert (data["start"], data["end"]) == ("2026-11-21T10:00:00.000Z", "2026-11-21T10:30:00.000Z")
    assert data["aggregated"] is False and data["bucket_ms"] == 0
    assert data["t"] == [int(TS.timestamp() * 1000) - 60_000, int(TS.timestamp() * 1000)]
    assert data["measures"]["ph"] == {"v": [6.9, 7.4]}
    assert list(data["measures"]) == list(data["limits"])  # every measure, in the model's order
    assert data["limits"]["ph"] == {"low": 6.8, "high": 7.2}
    assert data["limits"]["product_kg"] == {"low": None, "high": None}
    assert [(a["measure"], a["state"], a["id"]) for a in data["alarms"]] == [("ph", "active", 1)]
    before = api.json("/api/units/1/automates/1/series?start=2026-11-21T09:00:00Z&end=2026-11-21T10:00:00Z")
    assert before["t"] == [] and before["alarms"] == []


def test_series_limits_follow_the_most_specific_threshold(api: Api) -> None:
    # Wider than the normal range, then a low limit removed: both need "confirm" (issue 11, item 6).
    body = {"scope": "units/1", "measure": "ph", "low": 6.0, "high": 8.0, "confirm": True}
    assert api.call("PUT", "/api/thresholds", "admin", json=body).status_code == 201
    body = {"scope": "units/1/automates/2", "measure": "ph", "low": None, "high": 7.1, "confirm": True}
    assert api.call("PUT", "/api/thresholds", "admin", json=body).status_code == 201
    window = "start=2026-11-21T10:00:00Z&end=2026-11-21T10:30:00Z"
    assert api.json(f"/api/units/1/automates/1/series?{window}")["limits"]["ph"] == {"low": 6.0, "high": 8.0}
    assert api.json(f"/api/units/1/automates/2/series?{window}")["limits"]["ph"] == {"low": None, "high": 7.1}
    assert api.json(f"/api/units/2/automates/1/series?{window}")["limits"]["ph"] == {"low": 6.8, "high": 7.2}


@pytest.mark.parametrize(("query", "names"), [
    ("points=0", "points=0 must be >= 1"),
    ("points=5001", "points=5001 must be <= 5000"),
    ("points=many", "points='many'"),
    ("start=9000-01-01T00:00:00Z", "is after end (now"),
    ("page=1", "unknown parameter 'page'"),
])
def test_bad_series_parameters(shared: Api, query: str, names: str) -> None:
    assert names in error(shared.get(f"/api/units/1/automates/1/series?{query}"), 400)


# -- alarms ----------------------------------------------------------------------------------------

def test_alarm_list_filters_and_pagination(api: Api) -> None:
    add_alarms(api.app)

    def keys(q: str) -> list[tuple[str, str]]:
        return [(a["source"], a["measure"]) for a in api.json(f"/api/alarms?{q}")["items"]]

    meter_key = (f"meters/{METER}", "apower")
    # Newest raised first; default state=all.
    assert keys("") == [("units/1/automates/1", "ph"), meter_key, ("units/2/automates/1", "listeria_ppm"),
                        ("units/1/automates/2", "tank_temp_c")]
    assert keys("state=open") == [("units/1/automates/1", "ph"), meter_key, ("units/2/automates/1", "listeria_ppm")]
    assert keys("state=active") == [("units/1/automates/1", "ph"), meter_key]
    assert keys("state=cleared") == [("units/2/automates/1", "listeria_ppm"), ("units/1/automates/2", "tank_temp_c")]
    assert keys("unit=1") == [("units/1/automates/1", "ph"), ("units/1/automates/2", "tank_temp_c")]
    assert keys("unit=1&automate=2") == [("units/1/automates/2", "tank_temp_c")]
    assert keys(f"meter={METER}") == [meter_key]
    assert keys("measure=listeria_ppm") == [("units/2/automates/1", "listeria_ppm")]
    assert keys("start=2026-11-21T08:00:00Z&end=2026-11-21T09:30:00Z") == [meter_key,
                                                                           ("units/2/automates/1", "listeria_ppm")]
    page = api.json("/api/alarms?per_page=3&page=2")
    assert (page["total"], page["pages"], page["page"]) == (4, 2, 2)
    assert [a["measure"] for a in page["items"]] == ["tank_temp_c"]
    acked = page["items"][0]
    assert acked["acknowledged_by"] == "operator" and acked["acknowledged_at"] == "2026-11-21T10:15:00.000Z"
    assert acked["cleared_at"] is not None and acked["state"] == "cleared"
    assert error(api.get("/api/alarms?per_page=3&page=3"), 404)


@pytest.mark.parametrize(("query", "status", "names"), [
    ("automate=1", 400, "automate needs unit"),
    ("state=closed", 400, "state='closed' must be one of open, active, cleared, all"),
    ("measure=temperature", 400, "measure='temperature' is unknown"),
    ("measure=", 400, "'measure' is empty"),
    (f"meter={METER}&measure=ph", 400, "not a meter measure"),
    ("unit=1&measure=apower", 400, "not an automate measure"),
    (f"unit=1&meter={METER}", 400, "exclude each other"),
    ("unit=one", 400, "unit='one'"),
    ("unit=99999999999", 400, "unit=99999999999 must be <="),
    ("start=2026-11-22&end=2026-11-21", 400, "is after end"),
    ("severity=critical", 400, "unknown parameter 'severity'"),
    ("unit=9", 404, "unit 9 is unknown"),
    ("unit=1&automate=9", 404, "unit 1 has no automate 9"),
    ("meter=nope", 404, "meter 'nope' is unknown"),
])
def test_bad_alarm_filters(shared: Api, query: str, status: int, names: str) -> None:
    assert names in error(shared.get(f"/api/alarms?{query}"), status)


def test_acknowledge_pushes_the_alarm_and_refuses_a_second_time(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    pushed: list[dict[str, Any]] = []
    monkeypatch.setattr(web_state(api.app).feed, "alarm_changed", lambda alarm, **_kw: pushed.append(alarm))
    resp = api.call("POST", "/api/alarms/1/ack", "operator")
    assert resp.status_code == 200
    alarm = resp.get_json()
    assert alarm["id"] == 1 and alarm["acknowledged_by"] == "operator" and alarm["acknowledged_at"]
    assert alarm["state"] == "active"  # acknowledged, still active: it stays open until cleared
    assert pushed == [alarm]
    assert api.json("/api/alarms?state=open")["items"][0]["acknowledged_by"] == "operator"

    message = error(api.call("POST", "/api/alarms/1/ack", "admin"), 409)
    acked = datetime.fromisoformat(alarm["acknowledged_at"].replace("Z", "+00:00"))
    zone = plant_zone(web_state(api.app).settings.plant_tz)
    assert "already acknowledged by operator at " + format_time(acked, zone, "en", seconds=True) in message
    assert error(api.call("POST", "/api/alarms/999/ack", "operator"), 404) == "alarm 999 is unknown"
    assert error(api.call("POST", "/api/alarms/99999999999999999999/ack", "operator"), 404)
    assert len(pushed) == 1  # refused acknowledgements push nothing


def test_acknowledge_reaches_browsers_through_the_live_feed(api: Api) -> None:
    emitted: list[tuple[str, Any, Any]] = []
    socketio = web_state(api.app).socketio
    original = socketio.emit

    def spy(event: str, data: Any = None, **kw: Any) -> None:
        emitted.append((event, data, kw.get("to")))

    socketio.emit = spy  # type: ignore[method-assign]
    try:
        assert api.call("POST", "/api/alarms/1/ack", "operator").status_code == 200
    finally:
        socketio.emit = original  # type: ignore[method-assign]
    assert [(e, d["id"], d["acknowledged_by"]) for e, d, _ in emitted] == [("alarm", 1, "operator")]


# -- thresholds ---------------------------------------------------------------------------------------

def test_thresholds_set_replace_delete_and_audit(api: Api) -> None:
    items = api.json("/api/thresholds")["items"]
    assert items[0]["scope"] == "*" and items[0]["measure"] == "tank_temp_c"
    assert {"scope": "*", "measure": "apower", "low": None, "high": 3500.0, "deadband": 175.0,
            "inherit_low": False, "inherit_high": False, "severity": "warning",
            "updated_at": "2026-11-21T10:15:00.000Z", "updated_by": "defaults"} in items

    body = {"scope": "units/1/automates/2", "measure": "tank_temp_c", "low": 2.0, "high": 4.5, "confirm": True}
    resp = api.call("PUT", "/api/thresholds", "admin", json=body)
    assert resp.status_code == 201
    created = resp.get_json()
    assert created["deadband"] == 0.2 and created["severity"] == "warning"  # the measure's defaults
    assert created["updated_by"] == "admin"
    body.update(high=5.0, deadband=0.5, severity="critical")
    replaced = api.call("PUT", "/api/thresholds", "admin", json=body)
    assert replaced.status_code == 200 and replaced.get_json()["high"] == 5.0
    assert api.json("/api/thresholds")["items"][-1] == replaced.get_json()
    meter_body = {"scope": f"meters/{METER}", "measure": "apower", "low": None, "high": 2000}
    assert api.call("PUT", "/api/thresholds", "admin", json=meter_body).status_code == 201

    assert "no threshold for ph" in error(
        api.call("DELETE", "/api/thresholds?scope=units/1&measure=ph", "admin"), 404)
    resp = api.call("DELETE", "/api/thresholds?scope=units/1/automates/2&measure=tank_temp_c", "admin")
    assert resp.status_code == 200 and resp.get_json()["deleted"]["high"] == 5.0

    changes = api.json("/api/thresholds/changes")
    assert changes["total"] == 4
    newest = changes["items"][0]
    assert newest["action"] == "delete" and newest["changed_by"] == "admin"
    assert newest["old"] == {"low": 2.0, "high": 5.0, "deadband": 0.5, "severity": "critical",
                             "inherit_low": False, "inherit_high": False}
    assert newest["new"] is None
    oldest = changes["items"][-1]
    assert oldest["action"] == "set" and oldest["old"] is None and oldest["new"]["high"] == 4.5
    assert changes["items"][2]["old"]["high"] == 4.5 and changes["items"][2]["new"]["high"] == 5.0
    assert len(api.json("/api/thresholds/changes?per_page=3&page=2")["items"]) == 1
    assert error(api.get("/api/thresholds/changes?per_page=3&page=3"), 404)
    # The default can be edited (not deleted).
    assert api.call("PUT", "/api/thresholds", "admin", json={"scope": "*", "measure": "ph", "low": 6.7,
                                                              "high": 7.3, "confirm": True}).status_code == 200


@pytest.mark.parametrize(("body", "names"), [
    ({"scope": "units/1", "measure": "ph", "low": 7.5, "high": 6.5}, "low 7.5 is above high 6.5"),
    ({"scope": "units/1", "measure": "pH", "low": 6, "high": 7}, "measure 'pH' is unknown"),
    ({"scope": "units/1", "measure": "apower", "low": 0, "high": 7}, "'apower' is not an automate measure"),
    ({"scope": f"meters/{METER}", "measure": "ph", "low": 0, "high": 7}, "'ph' is not a meter measure"),
    ({"scope": "units/03", "measure": "ph", "low": 6, "high": 7}, "must be written 'units/3'"),
    ({"scope": "units/x", "measure": "ph", "low": 6, "high": 7}, "scope 'units/x'"),
    ({"scope": "units/²", "measure": "ph", "low": 6, "high": 7}, "scope 'units/²'"),
    ({"scope": "plant", "measure": "ph", "low": 6, "high": 7}, "scope 'plant'"),
    ({"scope": "units/1/automates/9", "measure": "ph", "low": 6, "high": 7}, "no such device"),
    ({"scope": "units/7", "measure": "ph", "low": 6, "high": 7}, "no such device"),
    ({"scope": "meters/other", "measure": "apower", "low": 0, "high": 7}, "no such device"),
    ({"scope": "units/1", "measure": "ph", "high": 7, "confirm": 1}, "field 'confirm' must be true or false"),
    ({"scope": "units/1", "measure": "ph", "low": "6", "high": 7}, "field 'low' must be a number"),
    ({"scope": "units/1", "measure": "ph", "low": True, "high": 7}, "field 'low' must be a number"),
    ({"scope": "units/1", "measure": "ph", "low": 6, "high": 7, "deadband": -1}, "deadband must be >= 0"),
    ({"scope": "units/1", "measure": "ph", "low": 6, "high": 7, "deadband": None}, "'deadband' must be a number"),
    ({"scope": "units/1", "measure": "ph", "low": 6, "high": 7, "severity": "fatal"}, "severity must be one of"),
    ({"scope": "units/1", "measure": "ph", "low": 6, "high": 7, "hysteresis": 1}, "unknown field 'hysteresis'"),
    ({"scope": 1, "measure": "ph", "low": 6, "high": 7}, "field 'scope' must be a string"),
    ([1, 2], "must be a JSON object"),
])
def test_bad_threshold_bodies(shared: Api, body: Any, names: str) -> None:
    assert names in error(shared.call("PUT", "/api/thresholds", "admin", json=body), 400)
    assert shared.json("/api/thresholds/changes")["total"] == 0


def test_threshold_body_must_be_json_and_delete_parameters_are_checked(api: Api) -> None:
    assert "JSON object" in error(api.call("PUT", "/api/thresholds", "admin", data="scope=*"), 400)
    nan = '{"scope": "*", "measure": "ph", "low": NaN, "high": 7}'
    assert "'low' is not a finite number" in error(
        api.call("PUT", "/api/thresholds", "admin", data=nan, content_type="application/json"), 400)
    assert "'measure' is required" in error(api.call("DELETE", "/api/thresholds?scope=units/1", "admin"), 400)
    assert "cannot be deleted" in error(api.call("DELETE", "/api/thresholds?scope=*&measure=ph", "admin"), 400)
    assert "unknown" in error(api.call("DELETE", "/api/thresholds?scope=units/1&measure=x", "admin"), 400)
    assert error(api.call("DELETE", "/api/thresholds?scope=units/01&measure=ph", "admin"), 400)


# -- users ------------------------------------------------------------------------------------------

def test_user_administration(api: Api) -> None:
    users = api.json("/api/users", "admin")["items"]
    assert [u["username"] for u in users] == ["admin", "operator", "viewer"]
    assert set(users[0]) == {"username", "role", "created_at", "last_login_at", "has_token", "language"}

    resp = api.call("POST", "/api/users", "admin", json={"username": "marie", "password": "long-enough-1",
                                                          "role": "operator"})
    assert resp.status_code == 201
    assert resp.get_json()["role"] == "operator" and resp.get_json()["has_token"] is False
    assert login(api.app.test_client(), "marie", "long-enough-1").status_code == 302
    assert "already exists" in error(api.call("POST", "/api/users", "admin", json={
        "username": "marie", "password": "long-enough-1", "role": "viewer"}), 409)

    resp = api.call("PATCH", "/api/users/marie", "admin", json={"role": "admin"})
    assert resp.get_json()["role"] == "admin"
    assert api.call("DELETE", "/api/users/marie", "admin").get_json()["deleted"]["username"] == "marie"
    assert error(api.call("DELETE", "/api/users/marie", "admin"), 404) == "user 'marie' is unknown"


@pytest.mark.parametrize(("body", "names"), [
    ({"username": "bob", "password": "short", "role": "viewer"}, "at least 8 characters"),
    ({"username": "bob", "password": "long-enough-1", "role": "root"}, "role 'root' is not one of"),
    ({"username": "bob smith", "password": "long-enough-1", "role": "viewer"}, "user name 'bob smith'"),
    ({"username": "bob", "password": "long-enough-1"}, "field 'role' is required"),
    ({"username": "bob", "password": 12345678, "role": "viewer"}, "field 'password' must be a string"),
    ({"username": "bob", "password": "long-enough-1", "role": "viewer", "token": "x"}, "unknown field 'token'"),
])
def test_bad_user_bodies(shared: Api, body: dict[str, Any], names: str) -> None:
    assert names in error(shared.call("POST", "/api/users", "admin", json=body), 400)


def test_the_last_admin_and_yourself_are_protected(api: Api) -> None:
    assert "last admin" in error(api.call("PATCH", "/api/users/admin", "admin", json={"role": "viewer"}), 409)
    assert "your own account" in error(api.call("DELETE", "/api/users/admin", "admin"), 409)
    assert "nothing to change" in error(api.call("PATCH", "/api/users/viewer", "admin", json={}), 400)
    assert error(api.call("PATCH", "/api/users/nobody", "admin", json={"role": "viewer"}), 404)
    assert "at least 8" in error(api.call("PATCH", "/api/users/viewer", "admin", json={"password": "x"}), 400)
    resp = api.call("PATCH", "/api/users/viewer", "admin", json={"password": "a-new-password"})
    assert resp.status_code == 200
    assert login(api.app.test_client(), "viewer", "a-new-password").status_code == 302
    # With a second admin, the first may step down; the role change applies to its next request.
    api.call("PATCH", "/api/users/operator", "admin", json={"role": "admin"})
    assert api.call("PATCH", "/api/users/admin", "admin", json={"role": "viewer"}).status_code == 200
    assert error(api.get("/api/users", "admin"), 403)


# -- legacy Shelly collector API ----------------------------------------------------------------------

def test_legacy_measurements_drf_pages(api: Api) -> None:
    add_power(api.app, 249)  # 250 with the seeded one
    first = api.json("/api/measurements/")
    assert first["count"] == 250 and len(first["results"]) == 100
    assert first["next"] == "http://localhost/api/measurements/?page=2" and first["previous"] is None
    assert first["results"][0] == {"meter": METER, "power": 348.0, "voltage": 230.0, "current": 0.5,
                                   "energy": 2248.0, "timestamp": "2026-11-21T14:24:00.000Z"}
    second = api.json(f"/api/measurements/?page=2&meter={METER}")
    assert second["previous"] == f"http://localhost/api/measurements/?meter={METER}"
    assert second["next"] == f"http://localhost/api/measurements/?meter={METER}&page=3"
    third = api.json("/api/measurements/?page=3")
    assert len(third["results"]) == 50 and third["next"] is None
    assert third["results"][-1]["power"] == 812.5  # the oldest, last
    assert error(api.get("/api/measurements/?page=4"), 404)
    window = api.json("/api/measurements/?start=2026-11-21T10:16:00Z&end=2026-11-21T10:18:00Z")
    assert [r["power"] for r in window["results"]] == [102.0, 101.0, 100.0]

    latest = api.json("/api/measurements/latest/")
    assert isinstance(latest, list) and len(latest) == 10
    assert [r["power"] for r in latest] == [348.0 - i for i in range(10)]
    assert api.json(f"/api/measurements/latest/?meter={METER}") == latest
    assert error(api.get("/api/measurements/latest/?meter=unknown-meter"), 404)
    assert error(api.get("/api/measurements/?page_size=5"), 400)
    assert error(api.get("/api/measurements/?start=bad"), 400)
    assert error(api.get("/api/measurements/?page=0"), 400)
