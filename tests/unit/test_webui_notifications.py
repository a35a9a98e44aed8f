"""The notification routes API (admin) and the outbox listing: validation, audit, roles, the page."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from plantmodel.readings import utcnow
from store import models as orm
from tests.webapp import csrf, login, make_web_app
from webui import web_state
from webui.api.notifications import STATUSES


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return make_web_app(tmp_path)


@pytest.fixture
def admin(app: Flask) -> FlaskClient:
    client = app.test_client()
    login(client, "admin")
    return client


def post(client: FlaskClient, body: dict) -> tuple[int, dict]:
    resp = client.post("/api/notification-routes", json=body, headers=csrf(client))
    return resp.status_code, resp.get_json()


def test_create_list_change_delete_and_audit(app: Flask, admin: FlaskClient) -> None:
    status, route = post(admin, {"name": "Quality", "channel": "email", "target": " q@example.com , n@example.fr",
                                 "scope": "units/3"})
    assert status == 201, route
    assert route["target"] == "q@example.com,n@example.fr" and route["min_severity"] == "critical"
    assert route["events"] == ["raise", "clear"] and route["escalate_after_min"] is None and route["enabled"]
    assert route["updated_by"] == "admin"
    assert admin.get("/api/notification-routes").get_json()["items"] == [route]

    resp = admin.patch(f"/api/notification-routes/{route['id']}", json={"escalate_after_min": 20},
                       headers=csrf(admin))
    assert resp.status_code == 200 and resp.get_json()["events"] == ["escalate"]
    resp = admin.patch(f"/api/notification-routes/{route['id']}", json={"enabled": False, "events": ["clear"],
                                                                        "escalate_after_min": None},
                       headers=csrf(admin))
    assert resp.status_code == 200 and resp.get_json()["events"] == ["clear"] and not resp.get_json()["enabled"]
    assert admin.delete(f"/api/notification-routes/{route['id']}", headers=csrf(admin)).status_code == 200
    assert admin.get("/api/notification-routes").get_json()["items"] == []
    assert admin.delete(f"/api/notification-routes/{route['id']}", headers=csrf(admin)).status_code == 404

    with web_state(app).make_session() as s:
        actions = [e.action for e in s.scalars(select(orm.AuditEntry).order_by(orm.AuditEntry.id))
                   if e.action.startswith("notification_route")]
    assert actions == ["notification_route.set"] * 3 + ["notification_route.delete"]


@pytest.mark.parametrize(("body", "reason"), [
    ({"name": "x", "channel": "sms", "target": "0600"}, "channel"),
    ({"name": "x", "channel": "email", "target": "not-an-address"}, "e-mail"),
    ({"name": "x", "channel": "email", "target": "a@example.com;b@example.com"}, "e-mail"),
    ({"name": "x", "channel": "webhook", "target": "ftp://example.com/x"}, "http"),
    ({"name": "x", "channel": "webhook", "target": "https://"}, "http"),
    ({"name": "x", "channel": "webhook", "target": "https://h.example/x", "min_severity": "huge"}, "severity"),
    ({"name": "x", "channel": "webhook", "target": "https://h.example/x", "scope": "units/03"}, "scope"),
    ({"name": "x", "channel": "webhook", "target": "https://h.example/x", "events": ["raise", "boom"]}, "event"),
    ({"name": "x", "channel": "webhook", "target": "https://h.example/x", "events": []}, "event"),
    ({"name": "x", "channel": "webhook", "target": "https://h.example/x", "escalate_after_min": 0}, "escalate"),
    ({"name": "x", "channel": "webhook", "target": "https://h.example/x", "escalate_after_min": 5,
      "events": ["raise"]}, "escalat"),
    ({"name": "x", "channel": "webhook", "target": "https://h.example/x", "enabled": "yes"}, "enabled"),
    ({"name": "x", "channel": "webhook", "target": "https://h.example/x", "colour": "red"}, "unknown field"),
    ({"channel": "webhook", "target": "https://h.example/x"}, "name"),
])
def test_invalid_routes_are_refused(admin: FlaskClient, body: dict, reason: str) -> None:
    status, answer = post(admin, body)
    assert status == 400 and reason in answer["error"], answer
    assert admin.get("/api/notification-routes").get_json()["items"] == []


def test_admin_only(app: Flask) -> None:
    operator = app.test_client()
    login(operator, "operator")
    assert operator.get("/api/notification-routes").status_code == 403
    assert operator.get("/api/notifications").status_code == 403
    assert post(operator, {"name": "x", "channel": "email", "target": "a@example.com"})[0] == 403
    assert operator.get("/admin/notifications").status_code == 403


def test_outbox_listing(app: Flask, admin: FlaskClient) -> None:
    _, route = post(admin, {"name": "Hook", "channel": "webhook", "target": "https://h.example/x"})
    now = utcnow()
    with web_state(app).make_session.begin() as s:
        s.add(orm.Notification(alarm_id=1, route_id=route["id"], event="raise", created_at=now, status="failed",
                               attempts=8, last_error="webhook answered HTTP 500"))
        s.add(orm.Notification(alarm_id=1, route_id=route["id"], event="clear", created_at=now, status="pending",
                               attempts=0, next_attempt_at=now))
    page = admin.get("/api/notifications").get_json()
    assert page["total"] == 2 and [n["event"] for n in page["items"]] == ["clear", "raise"]
    assert page["items"][1]["last_error"] == "webhook answered HTTP 500" and page["items"][1]["route"] == "Hook"
    failed = admin.get("/api/notifications?status=failed").get_json()
    assert [n["status"] for n in failed["items"]] == ["failed"]
    assert admin.get("/api/notifications?status=lost").status_code == 400
    assert admin.get("/api/notifications?status=skipped").get_json()["total"] == 0  # an escalation acked in time
    assert all(len(st) <= orm.Notification.__table__.c.status.type.length for st in STATUSES)  # String(8)


def test_secret_webhook_urls_stay_out_of_the_audit_trail_and_log(app: Flask, admin: FlaskClient,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    """Slack/Teams-style URLs carry their secret in the path (or a log-in in the URL): the admin sees and
    edits the whole URL, the append-only audit trail and the log get only its host and a hash."""
    secret = "https://hooks.slack.com/services/T0001/B0002/XXXXsecretXXXX"
    other = "https://bot:pa55word@teams.example:8443/webhookb2/abc@def/IncomingWebhook/0123/4567"
    caplog.set_level(logging.INFO)
    status, route = post(admin, {"name": "Slack", "channel": "webhook", "target": secret})
    assert status == 201 and route["target"] == secret
    assert admin.get("/api/notification-routes").get_json()["items"][0]["target"] == secret  # admins edit it
    resp = admin.patch(f"/api/notification-routes/{route['id']}", json={"target": other}, headers=csrf(admin))
    assert resp.status_code == 200 and resp.get_json()["target"] == other
    assert admin.delete(f"/api/notification-routes/{route['id']}", headers=csrf(admin)).status_code == 200
    _, mail = post(admin, {"name": "Mail", "channel": "email", "target": "q@example.com"})

    with web_state(app).make_session() as s:
        details = [json.loads(e.details) for e in s.scalars(select(orm.AuditEntry).order_by(orm.AuditEntry.id))
                   if e.action.startswith("notification_route")]
    assert len(details) == 4
    created, changed, deleted, mailed = details
    text = json.dumps(details, ensure_ascii=False) + caplog.text
    for leak in ("XXXXsecretXXXX", "services/T0001", "pa55word", "bot:", "webhookb2", "IncomingWebhook"):
        assert leak not in text, leak
    assert created["new"]["target"].startswith("https://hooks.slack.com/… sha256:")
    assert changed["old"]["target"] == created["new"]["target"]
    assert changed["new"]["target"].startswith("https://teams.example:8443/… sha256:")
    assert deleted["old"]["target"] == changed["new"]["target"]
    assert mailed["new"]["target"] == "q@example.com" and mail["target"] == "q@example.com"  # addresses as they are
    assert "AUDIT" in caplog.text and "hooks.slack.com" in caplog.text


def test_page_renders_for_admins(admin: FlaskClient) -> None:
    resp = admin.get("/admin/notifications")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert 'id="route-form"' in html and "notifications.js" in html
