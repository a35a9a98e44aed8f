"""Safe threshold editing (issue 11, item 6 and bug 4): a limit left out inherits live from the wider
scope, ``null`` is an explicit "no limit", deadband and severity default to the wider scope's, and
removing or widening a limit past the normal range needs ``"confirm": true`` (else 409).

The API runs on SQLite with the Flask test client (tests/webapp.py); the storage round trip of the
inherit flags runs on MariaDB and SQLite."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from werkzeug.test import TestResponse

from plantmodel.readings import utcnow
from plantmodel.thresholds import Threshold, ThresholdSet
from store import models as orm
from store import queries
from store.db import create_db_engine, init_schema, make_sessionmaker
from tests.webapp import METER, USERS, make_web_app, token_for
from webui import web_state

TANK = "tank_temp_c"
A2 = "units/1/automates/2"


class Api:
    def __init__(self, app: Flask) -> None:
        self.app = app
        self.client = app.test_client()
        self.tokens = {name: token_for(web_state(app).make_session, name) for name in USERS}

    def call(self, method: str, url: str, role: str = "admin", headers: dict[str, str] | None = None,
             **kw: Any) -> TestResponse:
        return self.client.open(url, method=method,
                                headers={"Authorization": f"Bearer {self.tokens[role]}", **(headers or {})}, **kw)

    def put(self, **body: Any) -> TestResponse:
        return self.call("PUT", "/api/thresholds", json=body)

    def effective(self, scope: str, measure: str = TANK) -> dict[str, Any]:
        resp = self.call("GET", f"/api/thresholds/effective?scope={scope}&measure={measure}", "viewer")
        assert resp.status_code == 200, resp.get_data(as_text=True)
        (item,) = resp.get_json()["items"]
        return item

    def changes(self) -> int:
        return self.call("GET", "/api/thresholds/changes", "viewer").get_json()["total"]


@pytest.fixture
def api(tmp_path: Path) -> Api:
    return Api(make_web_app(tmp_path))


def ok(resp: TestResponse, status: int = 201) -> dict[str, Any]:
    assert resp.status_code == status, resp.get_data(as_text=True)
    return resp.get_json()


def values(fields: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {k: (v["value"], v["from"]) for k, v in fields.items()}


def test_a_limit_left_out_inherits_live_and_deadband_severity_come_from_the_wider_scope(api: Api) -> None:
    ok(api.put(scope="units/1", measure=TANK, low=3.0, high=3.9, deadband=0.3, severity="critical"))
    # Bug 4: "High 5.0 alone" stored "no low limit, deadband 0". Now: low inherited, the wider
    # scope's deadband and severity.
    saved = ok(api.put(scope=A2, measure=TANK, high=3.8))
    assert (saved["low"], saved["inherit_low"], saved["high"], saved["inherit_high"]) == (None, True, 3.8, False)
    assert (saved["deadband"], saved["severity"]) == (0.3, "critical")
    assert values(api.effective(A2)["effective"]) == {
        "low": (3.0, "units/1"), "high": (3.8, A2), "deadband": (0.3, A2), "severity": ("critical", A2)}
    # A change at the wider scope reaches the inheriting one without touching it.
    ok(api.put(scope="units/1", measure=TANK, low=2.8, high=3.9, deadband=0.3, severity="critical"), 200)
    assert values(api.effective(A2)["effective"])["low"] == (2.8, "units/1")
    # The change log carries the flags.
    newest = api.call("GET", "/api/thresholds/changes", "viewer").get_json()["items"][1]
    assert newest["scope"] == A2 and newest["new"]["inherit_low"] is True and newest["new"]["inherit_high"] is False


def test_no_row_anywhere_gives_the_measures_own_deadband_and_severity(api: Api) -> None:
    saved = ok(api.put(scope="units/1", measure="salmonella_ppm", high=30))
    assert (saved["deadband"], saved["severity"], saved["inherit_low"]) == (2.0, "critical", True)
    item = api.effective("units/1", "product_kg")  # no default threshold at all
    assert values(item["inherited"]) == {"low": (None, None), "high": (None, None), "deadband": (2.0, None),
                                         "severity": ("warning", None)}


def test_removing_an_applying_limit_needs_confirmation(api: Api) -> None:
    ok(api.put(scope=A2, measure=TANK, high=3.8))
    before = api.changes()
    # units/1 has no row: A2's low comes from "*". An explicit null at units/1 would remove it.
    resp = api.put(scope="units/1", measure=TANK, low=None)
    assert resp.status_code == 409
    body = resp.get_json()
    assert body["status"] == 409
    assert body["confirm"] == ["removes the low limit 2.5 °C (from *) of Tank temperature at units/1"]
    assert '"confirm": true' in body["error"]
    assert api.changes() == before  # nothing written
    ok(api.put(scope="units/1", measure=TANK, low=None, confirm=True))
    assert values(api.effective(A2)["effective"])["low"] == (None, "units/1")
    with web_state(api.app).make_session() as session:
        entry = session.scalars(select(orm.AuditEntry).where(orm.AuditEntry.action == "threshold.set")
                                .order_by(orm.AuditEntry.id.desc())).first()
        assert entry is not None and entry.actor == "admin"
        details = json.loads(entry.details)
    assert details["confirmed"] == body["confirm"][0] and details["inherit_low"] is False


def test_at_the_default_scope_a_limit_left_out_is_no_limit_and_needs_confirmation(api: Api) -> None:
    assert api.put(scope="*", measure=TANK, high=4.0).get_json()["confirm"] == [
        "removes the low limit 2.5 °C (from *) of Tank temperature at *"]
    saved = ok(api.put(scope="*", measure=TANK, high=4.0, confirm=True), 200)
    assert (saved["low"], saved["inherit_low"]) == (None, False)  # nothing wider to inherit from


def test_widening_past_the_normal_range_needs_confirmation(api: Api) -> None:
    assert api.put(scope="units/1", measure="ph", high=7.5).get_json()["confirm"] == [
        "widens the high limit of pH at units/1 from 7.2 pH to 7.5 pH (from units/1), past the normal high 7.2 pH"]
    ok(api.put(scope="units/1", measure="ph", high=7.1))  # narrower: no question
    ok(api.put(scope="units/1", measure="ph", high=7.15), 200)  # wider, still inside the normal range
    ok(api.put(scope="units/1", measure="product_kg", high=100))  # a new limit where there was none
    resp = api.put(scope="units/1", measure="ph", low=6.0, high=7.1)
    assert resp.status_code == 409 and "widens the low limit" in resp.get_json()["error"]
    ok(api.put(scope="units/1", measure="ph", low=6.0, high=7.1, confirm=True), 200)


def test_deleting_an_override_that_removes_a_limit_needs_confirmation(api: Api) -> None:
    ok(api.put(scope="units/1", measure="product_kg", high=100))
    url = "/api/thresholds?scope=units/1&measure=product_kg"
    resp = api.call("DELETE", url)
    assert resp.status_code == 409 and resp.get_json()["confirm"] == [
        "removes the high limit 100 kg (from units/1) of Finished product at units/1"]
    assert api.call("DELETE", url + "&confirm=maybe").status_code == 400
    assert ok(api.call("DELETE", url + "&confirm=true"), 200)["deleted"]["high"] == 100
    ok(api.put(scope="units/1", measure="ph", high=7.0))
    assert api.call("DELETE", "/api/thresholds?scope=units/1&measure=ph").status_code == 200  # back to 7.2


def test_a_change_leaving_an_inheriting_scope_with_low_above_high_is_refused(api: Api) -> None:
    ok(api.put(scope=A2, measure=TANK, high=3.0))  # low inherited: 2.5 from *
    resp = api.put(scope="units/1", measure=TANK, low=3.5, high=3.9)
    assert resp.status_code == 400
    assert resp.get_json()["error"] == (f"this would leave Tank temperature at {A2} with low 3.5 °C (from units/1) "
                                        f"above high 3 °C (from {A2})")
    # in French: the measure's name and the numbers the French way
    resp = api.call("PUT", "/api/thresholds", json={"scope": "units/1", "measure": TANK, "low": 3.5, "high": 3.9},
                    headers={"Accept-Language": "fr"})
    assert "Température cuve" in resp.get_json()["error"] and "3,5 °C" in resp.get_json()["error"], resp.get_json()


@pytest.mark.parametrize(("body", "message"), [
    ({"scope": "units/1", "measure": TANK, "confirm": "yes"}, "field 'confirm' must be true or false"),
    ({"scope": "units/1", "measure": TANK, "low": "inherit"}, "field 'low' must be a number"),
    ({"scope": "units/1", "measure": TANK, "deadband": None}, "'deadband' must be a number"),
    ({"scope": "units/1", "measure": TANK, "inherit_low": True}, "unknown field 'inherit_low'"),
])
def test_bad_bodies(api: Api, body: dict[str, Any], message: str) -> None:
    resp = api.call("PUT", "/api/thresholds", json=body)
    assert resp.status_code == 400 and message in resp.get_json()["error"]


def test_effective_lists_the_scopes_measures_with_their_origin(api: Api) -> None:
    data = ok(api.call("GET", f"/api/thresholds/effective?scope=meters/{METER}", "viewer"), 200)
    assert data["chain"] == [f"meters/{METER}", "*"]
    measures = [i["measure"] for i in data["items"]]
    assert "apower" in measures and TANK not in measures
    apower = data["items"][measures.index("apower")]
    assert apower["own"] is None and apower["normal"] == {"low": None, "high": 3500}
    assert values(apower["effective"])["high"] == (3500, "*") == values(apower["inherited"])["high"]
    assert values(api.effective("*")["inherited"])["low"] == (None, None)  # nothing wider than "*"
    for url in ("/api/thresholds/effective", "/api/thresholds/effective?scope=units/01",
                "/api/thresholds/effective?scope=units/1&measure=apower",
                "/api/thresholds/effective?scope=*&x=1"):
        assert api.call("GET", url, "viewer").status_code == 400, url
    # The OpenAPI document describes exactly these fields.
    schemas = api.call("GET", "/api/openapi.json", "viewer").get_json()["components"]["schemas"]
    assert set(schemas["EffectiveThreshold"]["properties"]) == set(apower)
    assert set(schemas["ThresholdConfirm"]["properties"]) == set(
        api.put(scope="*", measure=TANK, high=4.0).get_json())


def test_only_admins_change_thresholds(api: Api) -> None:
    resp = api.call("PUT", "/api/thresholds", "operator", json={"scope": "units/1", "measure": TANK})
    assert resp.status_code == 403


def test_inherit_flags_are_stored_and_old_rows_keep_their_meaning(database_url: str) -> None:
    engine = create_db_engine(database_url)
    init_schema(engine)
    sessions = make_sessionmaker(engine)
    try:
        with sessions.begin() as session:
            queries.seed_default_thresholds(session, utcnow())
            queries.upsert_threshold(session, Threshold(TANK, "units/3", None, 3.8, 0.2, inherit_low=True),
                                     utcnow(), "test")
            # A row written before the columns existed: NULL flags, low NULL = no low limit.
            session.add(orm.Threshold(scope="units/4", measure=TANK, low=None, high=3.7, deadband=0.2,
                                      severity="warning", updated_at=utcnow(), updated_by="old"))
        with sessions() as session:
            ts = ThresholdSet(queries.load_thresholds(session))
        assert next(t for t in ts if t.scope == "units/3").inherit_low is True
        three, four = ts.resolve_scope("units/3/automates/1", TANK), ts.resolve_scope("units/4", TANK)
        assert three is not None and (three.low, three.high) == (2.5, 3.8)
        assert four is not None and (four.low, four.high) == (None, 3.7)
    finally:
        engine.dispose()
