"""The device registry, web side: ``/api/devices`` (everyone reads, only admins name, disable, remove
and restore; pre-registration), validation, the audit, the columns the web UI's account may write,
names in every item and page that shows an id, and removed devices left out of the lists."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import delete, event
from werkzeug.test import TestResponse

from plantmodel.shelly import PowerSample
from plantmodel.sources import MeterSource
from plantmodel.thresholds import Alarm
from store import models as orm
from store import queries
from tests.webapp import METER, TS, USERS, csrf, login, make_web_app, token_for
from webui import web_state

METER_KEY = f"meters/{METER}"
METER2 = "shellypro1pm-0000000000b2"
ROLES = ("viewer", "operator", "admin")


class Api:
    def __init__(self, app: Flask) -> None:
        self.app = app
        self.client = app.test_client()
        self.tokens = {name: token_for(web_state(app).make_session, name) for name in USERS}

    def call(self, method: str, url: str, role: str = "viewer", **kw: Any) -> TestResponse:
        return self.client.open(url, method=method, headers={"Authorization": f"Bearer {self.tokens[role]}"}, **kw)

    def json(self, url: str, role: str = "viewer") -> Any:
        resp = self.call("GET", url, role)
        assert resp.status_code == 200, (url, resp.status_code, resp.get_data(as_text=True))
        return resp.get_json()

    def patch(self, device: str, body: Any, role: str = "admin") -> TestResponse:
        return self.call("PATCH", f"/api/devices/{device}", role, json=body)

    def post(self, device: str, action: str, role: str = "admin", **kw: Any) -> TestResponse:
        return self.call("POST", f"/api/devices/{device}/{action}", role, **kw)


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    app = make_web_app(tmp_path)
    with web_state(app).make_session.begin() as s:
        # A second meter (for the lists), and a meter alarm besides the seeded pH alarm of unit 1 automate 1.
        queries.insert_power_samples(s, [(PowerSample(
            meter=METER2, ts=TS, output=False, apower=5.0, voltage=229.0, current=0.1, freq=50.0, pf=0.9,
            energy_wh=10.0, ret_energy_wh=0.0, temperature_c=30.0), TS)])
        queries.save_alarm_events(s, [Alarm(MeterSource(METER), "apower", 3900, 3500, "high", "warning", "active",
                                            TS - timedelta(hours=1), TS - timedelta(hours=1))])
    return app


@pytest.fixture
def api(app: Flask) -> Api:
    return Api(app)


def error(resp: TestResponse, status: int) -> str:
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True))
    body = resp.get_json()
    assert body["status"] == status
    return str(body["error"])


def ok(resp: TestResponse, status: int = 200) -> dict[str, Any]:
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True))
    return dict(resp.get_json())


def browser(app: Flask, user: str) -> FlaskClient:
    client = app.test_client()
    assert login(client, user).status_code == 302
    return client


def page(client: FlaskClient, url: str) -> str:
    resp = client.get(url)
    assert resp.status_code == 200, (url, resp.status_code)
    return resp.get_data(as_text=True)


def embedded(html: str, element_id: str) -> Any:
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', html, re.S)
    assert match, element_id
    return json.loads(match.group(1))


def name_devices(api: Api) -> None:
    ok(api.patch("units/1", {"name": "Ligne 1"}), 201)
    ok(api.patch(METER_KEY, {"name": "Baratte"}), 201)


# -- reading and roles ------------------------------------------------------------------------------------

def test_every_role_reads_the_registry_with_every_field(api: Api) -> None:
    created = ok(api.patch("units/2", {"name": "Ligne 2"}), 201)
    for role in ROLES:
        items = api.json("/api/devices", role)["items"]
        assert created in items
        assert api.json("/api/devices/units/2", role) == created
    assert created == {
        "device": "units/2", "kind": "unit", "name": "Ligne 2", "model": None, "generation": None, "firmware": None,
        "disabled": False, "first_seen": None, "last_seen": None, "removed_at": None,
        "updated_at": created["updated_at"], "updated_by": "admin", "state": None}


def test_the_list_orders_units_by_number_then_meters(api: Api) -> None:
    for device in ("meters/b-meter", "units/10", "meters/a-meter", "units/2", "units/1"):
        ok(api.patch(device, {"disabled": False}), 201)
    keys = [d["device"] for d in api.json("/api/devices")["items"]]
    wanted = ["units/1", "units/2", "units/10", "meters/a-meter", "meters/b-meter"]
    assert [k for k in keys if k in wanted] == wanted
    kinds = {d["device"]: d["kind"] for d in api.json("/api/devices")["items"]}
    assert kinds["units/10"] == "unit" and kinds["meters/a-meter"] == "meter"


def test_state_comes_from_the_device_status(api: Api) -> None:
    name_devices(api)
    assert api.json("/api/devices/units/1")["state"] == "online"
    assert api.json(f"/api/devices/{METER_KEY}")["state"] == "offline"


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_only_admins_write(api: Api, role: str) -> None:
    ok(api.patch("units/1", {"name": "Ligne 1"}), 201)
    assert "admin role" in error(api.patch("units/1", {"name": "Other"}, role), 403)
    assert error(api.patch("units/5", {"disabled": True}, role), 403)
    assert error(api.post("units/1", "remove", role), 403)
    assert error(api.post("units/1", "restore", role), 403)
    # Nothing was written.
    assert api.json("/api/devices/units/1")["name"] == "Ligne 1"
    assert error(api.call("GET", "/api/devices/units/5"), 404)
    assert api.json("/api/devices/units/1")["removed_at"] is None


def test_a_browser_writes_with_the_csrf_header_only(app: Flask) -> None:
    client = browser(app, "admin")
    assert "CSRF" in error(client.patch("/api/devices/units/1", json={"name": "X"}), 403)
    resp = client.patch("/api/devices/units/1", json={"name": "X"}, headers=csrf(client))
    assert ok(resp, 201)["name"] == "X"


def test_logged_out_is_401(app: Flask) -> None:
    client = app.test_client()
    for method, url in [("GET", "/api/devices"), ("GET", "/api/devices/units/1"), ("PATCH", "/api/devices/units/1"),
                        ("POST", "/api/devices/units/1/remove"), ("POST", "/api/devices/units/1/restore")]:
        assert client.open(url, method=method).status_code == 401, (method, url)


# -- writing --------------------------------------------------------------------------------------------------

def test_pre_registration_then_changes(api: Api) -> None:
    # Unit 7 never connected: an admin names and disables it ahead.
    created = ok(api.patch("units/7", {"name": "  Ligne 7  ", "disabled": True}), 201)
    assert (created["name"], created["disabled"], created["first_seen"], created["last_seen"]) == \
        ("Ligne 7", True, None, None)
    assert created["updated_by"] == "admin" and created["updated_at"]
    # Only what is sent changes.
    assert ok(api.patch("units/7", {"disabled": False})) | {"updated_at": None} == \
        created | {"disabled": False, "updated_at": None}
    assert ok(api.patch("units/7", {"name": "Ligne sept"}))["disabled"] is False
    cleared = ok(api.patch("units/7", {"name": None}))
    assert cleared["name"] is None
    # A meter too.
    assert ok(api.patch("meters/shellyplus1pm-aabbccddeeff", {"disabled": True}), 201)["kind"] == "meter"


def test_what_the_bridge_recorded_is_kept(api: Api) -> None:
    with web_state(api.app).make_session.begin() as s:
        s.add(orm.Device(device=METER_KEY, model="SPSW-201XE16EU", generation=2, firmware="1.4.4", disabled=False,
                         first_seen=TS, last_seen=TS + timedelta(hours=1)))
    item = ok(api.patch(METER_KEY, {"name": "Baratte", "disabled": True}))
    assert (item["model"], item["generation"], item["firmware"]) == ("SPSW-201XE16EU", 2, "1.4.4")
    assert (item["first_seen"], item["last_seen"]) == ("2026-11-21T10:15:00.000Z", "2026-11-21T11:15:00.000Z")
    assert (item["name"], item["disabled"]) == ("Baratte", True)


@pytest.mark.parametrize("device, message", [
    ("units/0", "is not units/"),
    ("units/03", "is not units/"),
    ("units/10000", "is not units/"),
    ("units/x", "is not units/"),
    ("units/%C2%B2", "is not units/"),
    ("units/1/automates/2", "an automate is part of its unit"),
    ("units", "is not units/"),
    ("meters/bad%20id!", "is not units/"),
    ("meters/a/b", "is not units/"),
    ("*", "is not units/"),
    ("plant/units/1", "is not units/"),
])
def test_device_keys_are_validated(api: Api, device: str, message: str) -> None:
    assert message in error(api.patch(device, {"name": "x"}), 400)
    assert message in error(api.call("GET", f"/api/devices/{device}"), 400)
    assert message in error(api.post(device, "remove"), 400)


@pytest.mark.parametrize("body, message", [
    ({}, "nothing to change"),
    ({"name": ""}, "is empty"),
    ({"name": "   "}, "is empty"),
    ({"name": "x" * 65}, "longer than 64"),
    ({"name": "a\nb"}, "not printable"),
    ({"name": "\x1b[31mred"}, "not printable"),
    ({"name": "abc\u202edcba"}, "not printable"),
    ({"name": "a\u2028b"}, "not printable"),
    ({"name": "\u00a0\u00a0"}, "is empty"),
    ({"name": 5}, "must be a string or null"),
    ({"disabled": "true"}, "must be true or false"),
    ({"disabled": 1}, "must be true or false"),
    ({"disabled": None}, "must be true or false"),
    ({"name": "x", "model": "y"}, "unknown field 'model'"),
    ([], "JSON object"),
])
def test_bodies_are_validated(api: Api, body: Any, message: str) -> None:
    assert message in error(api.patch("units/1", body), 400)
    assert error(api.call("GET", "/api/devices/units/1"), 404)  # nothing was created


def test_names_up_to_64_printable_characters(api: Api) -> None:
    for name in ("x" * 64, "Ligne 2 — beurre doux", "Äöü 日本 🧈", "a"):
        assert ok(api.patch("units/1", {"name": name}), 200 if name != "x" * 64 else 201)["name"] == name


def test_unknown_query_parameters_and_bodies_are_refused(api: Api) -> None:
    assert error(api.call("GET", "/api/devices?x=1"), 400)
    assert error(api.call("PATCH", "/api/devices/units/1?x=1", "admin", json={"name": "a"}), 400)
    assert error(api.post("units/1", "remove", json={"now": True}), 400)
    assert ok(api.post("units/1", "remove", json={}))["removed_at"]


def test_remove_and_restore(api: Api) -> None:
    name_devices(api)
    removed = ok(api.post("units/1", "remove"))
    assert removed["removed_at"] and removed["updated_by"] == "admin" and removed["name"] == "Ligne 1"
    # Removing again keeps the first time.
    assert ok(api.post("units/1", "remove"))["removed_at"] == removed["removed_at"]
    restored = ok(api.post("units/1", "restore"))
    assert restored["removed_at"] is None and restored["name"] == "Ligne 1"
    assert ok(api.post("units/1", "restore"))["removed_at"] is None


def test_remove_a_known_device_without_a_registry_row_creates_it(api: Api) -> None:
    with web_state(api.app).make_session.begin() as s:
        s.execute(delete(orm.Device).where(orm.Device.device.in_(["units/2", METER_KEY])))
    assert error(api.call("GET", "/api/devices/units/2"), 404)
    assert error(api.post("units/2", "restore"), 404)  # nothing to restore
    item = ok(api.post("units/2", "remove"))
    assert item["removed_at"] and item["first_seen"] is None and item["disabled"] is False
    # A device the plant never heard of and nobody registered: nothing to remove.
    assert "not in the registry" in error(api.post("units/99", "remove"), 404)
    assert "not in the registry" in error(api.post("meters/nobody", "remove"), 404)


def test_every_change_is_audited(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="webui.audit")
    ok(api.patch("units/3", {"name": "Ligne\u00a03", "disabled": True}), 201)
    ok(api.patch("units/3", {"name": None}))
    ok(api.post("units/3", "remove"))
    ok(api.post("units/3", "restore"))
    api.patch("units/3", {"name": "x"}, "operator")  # refused: not logged
    lines = [r.getMessage() for r in caplog.records if r.name == "webui.audit"]
    assert len(lines) == 4
    assert all(line.startswith("AUDIT user='admin' from=127.0.0.1 action=device.") for line in lines)
    # (repr: the log line shows the no-break space as \xa0)
    assert "action=device.create device='units/3' name='Ligne\\xa03' disabled='True'" in lines[0]
    assert "action=device.update device='units/3' name='None' old_name='Ligne\\xa03'" in lines[1]
    assert "action=device.remove device='units/3'" in lines[2]
    assert "action=device.restore device='units/3'" in lines[3]


def test_the_web_ui_writes_only_the_columns_its_account_may(api: Api) -> None:
    """accounts.sql: plant_datavision may INSERT (device, name, disabled, updated_at, updated_by) and
    UPDATE (name, disabled, removed_at, updated_at, updated_by) of devices, and never DELETE."""
    statements: list[str] = []
    engine = web_state(api.app).make_session.kw["bind"]

    def capture(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if re.search(r"\bdevices\b", statement) and not statement.lstrip().upper().startswith("SELECT"):
            statements.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        ok(api.patch("units/8", {"name": "Ligne 8"}), 201)
        ok(api.patch("units/8", {"disabled": True}))
        ok(api.post("units/8", "remove"))
        ok(api.post("units/8", "restore"))
        with web_state(api.app).make_session.begin() as s:
            s.execute(delete(orm.Device).where(orm.Device.device == "units/2"))
        statements.clear()  # (that delete was the test's own)
        ok(api.post("units/2", "remove"))  # a known unit without a row: inserted, then removed
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert statements
    insertable = {"device", "name", "disabled", "updated_at", "updated_by"}
    updatable = {"name", "disabled", "removed_at", "updated_at", "updated_by"}
    for sql in statements:
        assert not sql.upper().startswith("DELETE"), sql
        if sql.upper().startswith("INSERT"):
            columns = re.search(r"INSERT INTO devices \(([^)]*)\)", sql)
            assert columns, sql
            assert {c.strip() for c in columns.group(1).split(",")} <= insertable, sql
            conflict = re.search(r"DO UPDATE SET (.*?)( WHERE|$)", sql)
            if conflict:
                assert {a.split("=")[0].strip() for a in conflict.group(1).split(",")} <= updatable, sql
        else:
            assignments = re.search(r"UPDATE devices SET (.*?) WHERE", sql)
            assert assignments, sql
            assert {a.split("=")[0].strip() for a in assignments.group(1).split(",")} <= updatable, sql


def test_a_row_the_bridge_creates_meanwhile_is_updated(app: Flask) -> None:
    """The bridge inserts the row between the web UI's UPDATE (no row yet) and its INSERT: the INSERT
    fails on the key, inside a savepoint, and the UPDATE is made again in the same transaction."""
    make_session = web_state(app).make_session
    with make_session.begin() as s:
        s.add(orm.Device(device="units/5", disabled=False, model="unit", first_seen=TS, last_seen=TS))
    with make_session.begin() as s:
        real, calls = s.execute, []

        def execute(stmt: Any, *args: Any, **kw: Any) -> Any:
            result = real(stmt, *args, **kw)
            calls.append(stmt)
            return SimpleNamespace(rowcount=0) if len(calls) == 1 else result  # first: as if no row yet

        s.execute = execute  # type: ignore[method-assign]
        queries.register_device(s, "units/5", {"name": "Ligne 5"}, TS, "admin")
    assert len(calls) == 2  # UPDATE, (INSERT refused), UPDATE
    with make_session() as s:
        row = queries.get_device(s, "units/5")
        assert row is not None and (row.name, row.model, row.first_seen) == ("Ligne 5", "unit", TS)


# -- names wherever ids are ------------------------------------------------------------------------------------

def test_names_in_every_api_item(api: Api) -> None:
    name_devices(api)
    units = api.json("/api/units")["items"]
    assert [(u["unit"], u["name"]) for u in units] == [(1, "Ligne 1"), (2, None)]
    assert api.json("/api/units/1")["name"] == "Ligne 1" and api.json("/api/units/2")["name"] is None
    automates = api.json("/api/automates")["items"]
    assert [(a["unit"], a["automate"], a["name"]) for a in automates] == \
        [(1, 1, "Ligne 1"), (1, 2, "Ligne 1"), (2, 1, None)]
    assert [a["name"] for a in api.json("/api/units/1/automates")["items"]] == ["Ligne 1", "Ligne 1"]
    assert api.json("/api/units/1/automates/2")["name"] == "Ligne 1"
    assert api.json("/api/units/2/automates/1")["name"] is None
    meters = {m["meter"]: m["name"] for m in api.json("/api/meters")["items"]}
    assert meters == {METER: "Baratte", METER2: None}
    assert api.json(f"/api/meters/{METER}")["name"] == "Baratte"
    alarms = {a["source"]: a["name"] for a in api.json("/api/alarms")["items"]}
    assert alarms == {"units/1/automates/1": "Ligne 1", METER_KEY: "Baratte"}
    series = api.json("/api/units/1/automates/1/series?start=2026-11-21T10:00:00Z&end=2026-11-21T10:30:00Z")
    assert [a["name"] for a in series["alarms"]] == ["Ligne 1"]
    acked = ok(api.call("POST", f"/api/alarms/{series['alarms'][0]['id']}/ack", "operator"))
    assert acked["name"] == "Ligne 1"


def test_alarm_dict_names_the_unit_or_meter(api: Api) -> None:
    name_devices(api)
    with web_state(api.app).make_session() as s:
        names = {a["source"]: a["name"] for a in map(queries.alarm_dict, queries.open_alarms(s))}
    assert names == {"units/1/automates/1": "Ligne 1", METER_KEY: "Baratte"}
    ok(api.patch("units/1", {"name": None}))
    with web_state(api.app).make_session() as s:
        assert queries.alarm_dict(queries.open_alarms(s)[-1])["name"] is None  # (read afresh per session)


def test_the_openapi_document_describes_the_device_item(api: Api) -> None:
    doc = api.json("/api/openapi.json")
    item = ok(api.patch("units/1", {"name": "Ligne 1"}), 201)
    assert set(doc["components"]["schemas"]["Device"]["properties"]) == set(item)
    assert set(doc["paths"]["/api/devices/{device}"]) == {"get", "patch"}
    for path in ("/api/units", "/api/automates", "/api/meters"):
        params = [p.get("$ref", "") for p in doc["paths"][path]["get"]["parameters"]]
        assert params == ["#/components/parameters/removed"], path


# -- removed devices leave the lists ---------------------------------------------------------------------------

def test_removed_devices_leave_the_lists_not_their_details_or_data(api: Api) -> None:
    name_devices(api)
    ok(api.post("units/1", "remove"))
    ok(api.post(METER_KEY, "remove"))
    assert [u["unit"] for u in api.json("/api/units")["items"]] == [2]
    assert [(a["unit"], a["automate"]) for a in api.json("/api/automates")["items"]] == [(2, 1)]
    assert [m["meter"] for m in api.json("/api/meters")["items"]] == [METER2]
    # ?removed=1 shows them; removed=0 is the default; anything else is refused.
    assert [u["unit"] for u in api.json("/api/units?removed=1")["items"]] == [1, 2]
    assert [m["meter"] for m in api.json("/api/meters?removed=1")["items"]] == sorted([METER, METER2])
    assert len(api.json("/api/automates?removed=1")["items"]) == 3
    assert [u["unit"] for u in api.json("/api/units?removed=0")["items"]] == [2]
    assert "removed" in error(api.call("GET", "/api/units?removed=yes"), 400)
    # Details and data stay.
    assert api.json("/api/units/1")["name"] == "Ligne 1"
    assert api.json(f"/api/meters/{METER}")["name"] == "Baratte"
    assert api.json("/api/units/1/automates/1/readings")["total"] == 2
    assert api.json(f"/api/meters/{METER}/readings")["total"] == 1
    assert {a["source"] for a in api.json("/api/alarms")["items"]} == {"units/1/automates/1", METER_KEY}
    assert {d["device"] for d in api.json("/api/devices")["items"] if d["removed_at"]} == {"units/1", METER_KEY}
    # Restored: back in the lists.
    ok(api.post("units/1", "restore"))
    assert [u["unit"] for u in api.json("/api/units")["items"]] == [1, 2]


def test_the_overview_and_the_meters_menu_leave_removed_devices_out(app: Flask, api: Api) -> None:
    name_devices(api)
    ok(api.post(METER_KEY, "remove"))
    ok(api.patch("units/2", {"disabled": True}), 201)
    client = browser(app, "viewer")
    html = page(client, "/")
    registry = embedded(html, "registry")
    assert registry["names"] == {"units/1": "Ligne 1", METER_KEY: "Baratte"}
    assert registry["hidden"] == [METER_KEY]
    assert registry["disabled"] == ["units/2"]
    assert 'id="removed-note"' in html and 'href="/?removed=1"' in html
    nav = re.search(r'<details class="menu" id="nav-meters">(.*?)</details>', html, re.S)
    assert nav and f"/meters/{METER2}" in nav.group(1) and f"/meters/{METER}\"" not in nav.group(1)
    shown = page(client, "/?removed=1")
    assert embedded(shown, "registry")["hidden"] == [] and 'id="removed-note"' not in shown


# -- pages -----------------------------------------------------------------------------------------------------

def test_pages_show_names_with_the_id_and_the_id_alone_without(app: Flask, api: Api) -> None:
    name_devices(api)
    client = browser(app, "viewer")
    unit = page(client, "/units/1")
    assert re.search(r"<h1>Ligne 1 <small class=\"device-id\">unit 1</small>", unit)
    assert "<title>Ligne 1 — Au Bon Beurre</title>" in unit
    assert re.search(r"<h1>Unit 2 <small>", page(client, "/units/2"))
    automate = page(client, "/units/1/automates/2")
    assert re.search(r"<h1>Ligne 1 · automate 2 <small class=\"device-id\">unit 1</small>", automate)
    assert '<option value="1" selected>Ligne 1 (unit 1)</option>' in automate
    assert '<option value="2">Unit 2</option>' in automate
    assert re.search(r"<h1>Unit 2 · automate 1\s", page(client, "/units/2/automates/1"))
    meter = page(client, f"/meters/{METER}")
    assert f'<h1>Baratte <small class="meter-id">{METER}</small>' in meter
    assert f'<span class="meter-id">{METER2}</span>' in page(client, f"/meters/{METER2}")
    nav = re.search(r'<details class="menu" id="nav-meters">(.*?)</details>', meter, re.S)
    assert nav and f'Baratte <small class="device-id">{METER}</small>' in nav.group(1)
    alarms = page(client, "/alarms")
    assert re.search(r'<td data-label="Source"><a href="/units/1/automates/1">Ligne 1 · automate 1 '
                     r'<small class="device-id">unit 1 automate 1</small></a>', alarms)
    assert re.search(rf'<a href="/meters/{METER}">Baratte <small class="device-id">meter {METER}</small></a>', alarms)
    assert '<option value="1">Ligne 1 (1)</option>' in alarms and '<option value="2">2</option>' in alarms
    assert f'<option value="{METER}">Baratte ({METER})</option>' in alarms
    assert embedded(alarms, "alarms-config")["names"] == {"units/1": "Ligne 1", METER_KEY: "Baratte"}


def test_names_are_escaped_in_pages(app: Flask, api: Api) -> None:
    ok(api.patch("units/1", {"name": "<b>Ligne</b> & \"1\""}), 201)
    client = browser(app, "viewer")
    for url in ("/units/1", "/units/1/automates/1", "/alarms"):
        html = page(client, url)
        assert "<b>Ligne</b>" not in html, url
        assert "&lt;b&gt;Ligne&lt;/b&gt;" in html or "\\u003cb\\u003eLigne" in html, url


@pytest.fixture
def admin(app: Flask) -> Iterator[FlaskClient]:
    yield browser(app, "admin")


def test_the_devices_page_is_for_admins(app: Flask, admin: FlaskClient) -> None:
    for user in ("viewer", "operator"):
        client = browser(app, user)
        assert client.get("/admin/devices").status_code == 403
        assert 'href="/admin/devices"' not in page(client, "/")
    html = page(admin, "/admin/devices")
    for element in ('id="devices"', 'id="register-form"', 'id="devices-error"', 'id="devices-message"',
                    'src="/static/devices.js"', '<a href="/admin/devices" aria-current="page">Devices</a>'):
        assert element in html
    assert 'href="/admin/devices"' in page(admin, "/")
    assert "<script>" not in html and "style=" not in html  # strict CSP: no inline script or style
    with admin.get("/static/devices.js") as resp:
        assert resp.status_code == 200
    assert app.test_client().get("/admin/devices").status_code == 302  # logged out: to the log-in form
