"""Every change to users, tokens, thresholds and alarms leaves one AUDIT line naming who, from
where and what (README "Security": what is logged)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy import select

from store.models import AuditEntry
from tests.webapp import csrf, login, make_web_app
from webui import web_state


def test_changes_are_logged_with_who_and_what(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    app = make_web_app(tmp_path)
    admin = app.test_client()
    login(admin, "admin")
    caplog.set_level(logging.INFO, logger="webui.audit")
    assert admin.post("/api/users", json={"username": "eve", "password": "a-long-password-1", "role": "viewer"},
                      headers=csrf(admin)).status_code == 201
    assert admin.patch("/api/users/eve", json={"role": "admin", "password": "another-password-2"},
                       headers=csrf(admin)).status_code == 200
    assert admin.put("/api/thresholds", json={"scope": "*", "measure": "ph", "low": 6.0, "high": 7.0, "confirm": True},
                     headers=csrf(admin)).status_code == 200
    assert admin.post("/api/me/token", headers=csrf(admin)).status_code == 200
    assert admin.delete("/api/users/eve", headers=csrf(admin)).status_code == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "webui.audit"]
    assert len(lines) == 5, lines
    assert all(line.startswith("AUDIT user='admin' from=127.0.0.1 action=") for line in lines)
    assert "action=user.create username='eve' role='viewer'" in lines[0]
    assert "action=user.update username='eve' role='admin' password='changed'" in lines[1]
    assert "another-password" not in " ".join(lines)  # never the secret itself
    assert "action=threshold.set scope='*' measure='ph' low='6.0' high='7.0'" in lines[2]
    assert "action=token.create" in lines[3] and "action=user.delete username='eve'" in lines[4]
    # Each line carries its entry's hash: the log keeps the chain's heads outside the database.
    with web_state(app).make_session() as session:
        hashes = session.scalars(select(AuditEntry.hash).order_by(AuditEntry.id)).all()
    assert [line.rsplit(" hash=", 1)[1] for line in lines] == hashes[-5:]


def test_a_refused_change_is_not_logged_as_done(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    app = make_web_app(tmp_path)
    viewer = app.test_client()
    login(viewer, "viewer")
    caplog.set_level(logging.INFO, logger="webui.audit")
    resp = viewer.put("/api/thresholds", json={"scope": "*", "measure": "salmonella", "low": None, "high": None},
                      headers=csrf(viewer))
    assert resp.status_code == 403
    assert not [r for r in caplog.records if r.name == "webui.audit"]
