"""The audit trail on SQLite through the web UI's real routes: what writes an entry (log-ins, failures,
lock-outs, acknowledgements with their corrective action, user and token changes, from the API and the
CLI), that a change never commits without its entry, the admin's API, CSV and page, and
``python -m store audit verify``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from plantmodel.sources import AutomateSource
from plantmodel.thresholds import Alarm
from store import audit as trail
from store import models as orm
from store import queries
from store.__main__ import main as store_main
from tests.webapp import TS, csrf, login, make_web_app
from webui import web_state
from webui.__main__ import main as webui_main


def _sessions(app: Flask) -> sessionmaker[Session]:
    return web_state(app).make_session


def _entries(app: Flask) -> list[orm.AuditEntry]:
    with _sessions(app)() as session:
        rows = list(session.scalars(select(orm.AuditEntry).order_by(orm.AuditEntry.id)))
        session.expunge_all()
    return rows


def _details(entry: orm.AuditEntry) -> dict[str, Any]:
    return dict(json.loads(entry.details))


def _alarm(app: Flask, measure: str, severity: str) -> int:
    """A new active alarm of unit 1 automate 1; its id."""
    with _sessions(app).begin() as session:
        queries.save_alarm_events(session, [
            Alarm(AutomateSource(1, 1), measure, 90.0, 50.0, "high", severity, "active", TS, TS)])
    with _sessions(app)() as session:
        row = queries.find_alarm(session, "units/1/automates/1", measure, TS)
        assert row is not None
        return row.id


def _operator(app: Flask) -> FlaskClient:
    client = app.test_client()
    login(client, "operator")
    return client


# -- log-ins -------------------------------------------------------------------------------------------

def test_log_ins_failures_and_lock_outs_are_on_the_trail_never_the_password(tmp_path: Path) -> None:
    app = make_web_app(tmp_path, login_limit_user="2 per 15 minutes")
    client = app.test_client()
    assert login(client, "viewer").status_code == 302
    assert client.post("/logout", headers=csrf(client)).status_code == 302
    assert login(client, "operator", "wrong-secret-1").status_code == 401
    assert login(client, "operator", "wrong-secret-2").status_code == 401
    assert login(client, "operator", "wrong-secret-3").status_code == 429  # locked
    assert login(client, "nobody\nforged", "x").status_code == 401
    entries = _entries(app)
    assert [(e.action, e.actor) for e in entries] == [
        ("login.ok", "viewer"), ("logout", "viewer"), ("login.failed", "operator"), ("login.failed", "operator"),
        ("login.locked", "operator"), ("login.failed", "nobody\\x0aforged")]
    assert all(e.address == "127.0.0.1" for e in entries)
    assert "wrong-secret" not in repr([(e.details, e.actor) for e in entries])


def test_a_flood_of_locked_log_ins_writes_one_entry_per_address_and_window(tmp_path: Path) -> None:
    """An anonymous flood of refused log-ins (no password needed, no session) must not fill the
    append-only trail: one login.locked per address per window, whatever names are tried."""
    app = make_web_app(tmp_path, login_limit_user="2 per 15 minutes", login_limit_address="3 per 15 minutes")
    client = app.test_client()
    codes = [login(client, f"name-{i % 7}", "wrong").status_code for i in range(40)]
    assert codes[:3] == [401, 401, 401] and set(codes[3:]) == {429}
    locked = [e for e in _entries(app) if e.action == "login.locked"]
    assert len(locked) == 1 and locked[0].address == "127.0.0.1"


# -- acknowledgement with corrective action -----------------------------------------------------------

def test_a_critical_alarm_needs_a_note_and_a_disposition(tmp_path: Path) -> None:
    app = make_web_app(tmp_path)
    alarm_id = _alarm(app, "salmonella_ppm", "critical")
    op = _operator(app)
    url = f"/api/alarms/{alarm_id}/ack"
    for body, why in [(None, "needs a note"), ({}, "needs a note"),
                      ({"note": "   ", "disposition": "hold"}, "needs a note"),
                      # Blank-looking notes: a filler, a blank Braille cell, combining marks, a dash.
                      ({"note": "\u3164", "disposition": "hold"}, "needs a note"),
                      ({"note": "\u2800\u2800", "disposition": "hold"}, "needs a note"),
                      ({"note": "\u0301\u0301", "disposition": "hold"}, "needs a note"),
                      ({"note": "-", "disposition": "hold"}, "needs a note"),
                      ({"note": "Lot 42 held"}, "needs a disposition"),
                      ({"note": "x", "disposition": "maybe"}, "must be one of hold, release, none"),
                      ({"note": "x" * 2001, "disposition": "hold"}, "longer than 2000"),
                      ({"note": "bad\x1b[31m", "disposition": "hold"}, "not printable"),
                      ({"note": "x", "disposition": "hold", "comment": "y"}, "unknown field 'comment'")]:
        resp = op.post(url, json=body, headers=csrf(op)) if body is not None else op.post(url, headers=csrf(op))
        assert resp.status_code == 400, (body, resp.get_json())
        assert why in resp.get_json()["error"], (body, resp.get_json())
    assert not [e for e in _entries(app) if e.action == "alarm.acknowledge"]

    resp = op.post(url, json={"note": "Lot 42 held, probe recalibrated\nQA told", "disposition": "hold"},
                   headers=csrf(op))
    assert resp.status_code == 200, resp.get_json()
    data = resp.get_json()
    assert data["ack_note"] == "Lot 42 held, probe recalibrated\nQA told" and data["ack_disposition"] == "hold"
    assert data["acknowledged_by"] == "operator"
    listed = {a["id"]: a for a in op.get("/api/alarms").get_json()["items"]}[alarm_id]
    assert (listed["ack_note"], listed["ack_disposition"]) == (data["ack_note"], "hold")
    [entry] = [e for e in _entries(app) if e.action == "alarm.acknowledge"]
    assert entry.actor == "operator"
    assert _details(entry) == {"alarm": alarm_id, "source": "units/1/automates/1", "measure": "salmonella_ppm",
                               "severity": "critical", "note": data["ack_note"], "disposition": "hold"}


def test_a_warning_is_acknowledged_with_no_body_as_before(tmp_path: Path) -> None:
    app = make_web_app(tmp_path)
    op = _operator(app)
    with _sessions(app)() as session:
        [seeded] = session.scalars(select(orm.Alarm)).all()  # the seed's ph warning
        seeded_id = seeded.id
    resp = op.post(f"/api/alarms/{seeded_id}/ack", headers=csrf(op))
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["ack_note"] is None
    other = _alarm(app, "nacl_g_l", "warning")
    assert op.post(f"/api/alarms/{other}/ack", json={}, headers=csrf(op)).status_code == 200
    info = _alarm(app, "k_mg_l", "info")
    resp = op.post(f"/api/alarms/{info}/ack", json={"note": "seen", "disposition": "none"}, headers=csrf(op))
    assert resp.get_json()["ack_note"] == "seen"
    # Already acknowledged: 409 saying by whom, whatever the body.
    assert op.post(f"/api/alarms/{other}/ack", json={}, headers=csrf(op)).status_code == 409


def test_an_acknowledgement_never_commits_without_its_audit_entry(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_web_app(tmp_path)
    app.config["PROPAGATE_EXCEPTIONS"] = False  # the 500 page, as in production
    alarm_id = _alarm(app, "salmonella_ppm", "critical")
    op = _operator(app)

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("audit_log unavailable")

    monkeypatch.setattr(trail, "append", broken)
    resp = op.post(f"/api/alarms/{alarm_id}/ack", json={"note": "held", "disposition": "hold"}, headers=csrf(op))
    assert resp.status_code == 500
    with _sessions(app)() as session:
        row = session.get(orm.Alarm, alarm_id)
        assert row is not None and row.acknowledged_at is None and row.ack_note is None


def test_user_and_token_changes_from_the_api_are_entries(tmp_path: Path) -> None:
    app = make_web_app(tmp_path)
    admin = app.test_client()
    login(admin, "admin")
    assert admin.post("/api/users", json={"username": "eve", "password": "a-long-password-1", "role": "viewer"},
                      headers=csrf(admin)).status_code == 201
    resp = admin.patch("/api/users/eve", json={"password": "another-password-2"}, headers=csrf(admin))
    assert resp.status_code == 200
    assert admin.delete("/api/users/eve", headers=csrf(admin)).status_code == 200
    created = admin.post("/api/device-tokens", json={"device": "units/1"}, headers=csrf(admin)).get_json()
    assert admin.delete(f"/api/device-tokens?id={created['id']}", headers=csrf(admin)).status_code == 200
    assert admin.patch("/api/devices/units/1", json={"name": "Ligne 1"}, headers=csrf(admin)).status_code == 201
    actions = [(e.action, _details(e)) for e in _entries(app) if e.action != "login.ok"]
    assert actions == [
        ("user.create", {"username": "eve", "role": "viewer"}),
        ("user.update", {"username": "eve", "password": "changed"}),
        ("user.delete", {"username": "eve", "role": "viewer"}),
        ("device_token.create", {"id": created["id"], "device": "units/1", "label": ""}),
        ("device_token.revoke", {"id": created["id"], "device": "units/1"}),
        ("device.create", {"device": "units/1", "name": "Ligne 1"}),
    ]
    assert "another-password" not in repr(_entries(app))


def test_cli_user_and_token_changes_are_entries_by_the_os_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    app = make_web_app(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'plant.db'}")
    monkeypatch.setattr("getpass.getuser", lambda: "root")
    assert webui_main(["users", "add", "carol", "--role", "operator", "--generate"]) == 0
    assert webui_main(["users", "set-role", "carol", "viewer"]) == 0
    assert webui_main(["users", "delete", "carol"]) == 0
    assert webui_main(["token", "create", "--device", "units/1"]) == 0
    entries = _entries(app)
    assert [(e.actor, e.action, _details(e).get("username")) for e in entries] == [
        ("cli:root", "user.create", "carol"), ("cli:root", "user.update", "carol"),
        ("cli:root", "user.delete", "carol"), ("cli:root", "device_token.create", None)]
    assert entries[1].address is None and _details(entries[1])["role"] == "viewer"
    password = capsys.readouterr().out.split("password: ")[1].split()[0]
    assert password not in repr(entries)


# -- reading the trail --------------------------------------------------------------------------------

def test_admins_read_the_trail_filtered_and_paged(tmp_path: Path) -> None:
    app = make_web_app(tmp_path)
    for _ in range(3):
        login(app.test_client(), "operator", "wrong-password")
    admin = app.test_client()
    login(admin, "admin")
    op = _operator(app)
    assert op.get("/api/audit").status_code == 403
    assert op.get("/api/audit.csv").status_code == 403
    assert op.get("/admin/audit").status_code == 403

    body = admin.get("/api/audit?action=login.failed&per_page=2").get_json()
    assert (body["total"], body["pages"], len(body["items"])) == (3, 2, 2)
    assert all(i["action"] == "login.failed" and i["actor"] == "operator" for i in body["items"])
    assert body["items"][0]["id"] > body["items"][1]["id"]  # newest first
    assert admin.get("/api/audit?action=login.").get_json()["total"] == 5  # prefix: failures and log-ins
    assert admin.get("/api/audit?actor=admin").get_json()["total"] == 1
    assert admin.get("/api/audit?start=2000-01-01T00:00:00Z&end=2000-01-02T00:00:00Z").get_json()["total"] == 0
    assert admin.get("/api/audit?colour=red").status_code == 400
    assert admin.get("/api/audit?page=9").status_code == 404

    lines = admin.get("/api/audit.csv?action=login.failed").get_data(as_text=True).splitlines()
    assert lines[0] == "id,at,actor,address,action,details,hash" and len(lines) == 4
    page = admin.get("/admin/audit?action=login.failed")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'value="login.failed"' in html and "audit.js" in html


# -- verification --------------------------------------------------------------------------------------

def test_verify_cli_on_sqlite_sees_an_edit_and_a_recorded_head(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    app = make_web_app(tmp_path)
    for name in ("viewer", "operator", "admin"):
        login(app.test_client(), name)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'plant.db'}")
    assert store_main(["audit", "verify"]) == 0
    out = capsys.readouterr().out
    head = out.split("head: ")[1].split()[0]
    assert "entries: 3" in out and "intact" in out
    assert store_main(["audit", "verify", "--expect-head", head]) == 0
    assert store_main(["audit", "verify", "--expect-head", "a" * 64]) == 1
    assert "no longer in the chain" in capsys.readouterr().out
    assert store_main(["audit", "verify", "--expect-head", "nothex"]) == 2

    with _sessions(app).begin() as session:
        session.execute(update(orm.AuditEntry).where(orm.AuditEntry.id == 2).values(actor="someone"))
    assert store_main(["audit", "verify"]) == 1
    out = capsys.readouterr().out
    assert "problem: entry 2: its content does not match its hash (edited)" in out and "TAMPERED" in out
