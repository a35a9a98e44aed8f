"""Sessions end when they should: logout, password change, role change, deletion. An old cookie
is refused, the API token goes with a password change, and open Socket.IO connections close."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.webapp import csrf, login, make_web_app, token_for
from webui import sockets, web_state


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return make_web_app(tmp_path)


def cookie_of(client: FlaskClient) -> str:
    cookie = client.get_cookie("session")
    assert cookie is not None
    return cookie.value


def with_cookie(app: Flask, value: str) -> FlaskClient:
    other = app.test_client()
    other.set_cookie("session", value)
    return other


def test_an_old_cookie_is_refused_after_logout(app: Flask) -> None:
    browser = app.test_client()
    login(browser, "viewer")
    stolen = cookie_of(browser)
    assert with_cookie(app, stolen).get("/api/units").status_code == 200
    browser.post("/logout", headers=csrf(browser))
    assert with_cookie(app, stolen).get("/api/units").status_code == 401
    assert with_cookie(app, stolen).get("/").status_code == 302  # to the log-in form
    login(browser, "viewer")  # and logging in again works
    assert browser.get("/api/units").status_code == 200


@pytest.mark.parametrize("change", [{"password": "a-new-password-9"}, {"role": "operator"}])
def test_a_password_or_role_change_ends_the_users_sessions(app: Flask, change: dict[str, str]) -> None:
    victim, admin = app.test_client(), app.test_client()
    login(victim, "viewer")
    login(admin, "admin")
    token = token_for(web_state(app).make_session, "viewer")
    bearer = {"Authorization": f"Bearer {token}"}
    assert victim.get("/api/units").status_code == 200 and admin.get("/api/units", headers=bearer).status_code == 200
    resp = admin.patch("/api/users/viewer", json=change, headers=csrf(admin))
    assert resp.status_code == 200
    assert victim.get("/api/units").status_code == 401
    # A new password also revokes the API token (whoever had the old password may have taken it).
    assert app.test_client().get("/api/units", headers=bearer).status_code == (401 if "password" in change else 200)
    assert admin.get("/api/units").status_code == 200  # the admin's own session is untouched


def test_socket_connections_of_an_ended_session_close_within_seconds(app: Flask,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sockets, "SESSION_CHECK_S", 0.1)
    socketio = app.extensions["socketio"]
    browser, admin = app.test_client(), app.test_client()
    login(browser, "viewer")
    login(admin, "operator")
    token = token_for(web_state(app).make_session, "admin")
    by_cookie = socketio.test_client(app, flask_test_client=browser)
    by_token = socketio.test_client(app, auth={"token": token})
    bystander = socketio.test_client(app, flask_test_client=admin)
    assert by_cookie.is_connected() and by_token.is_connected() and bystander.is_connected()
    browser.post("/logout", headers=csrf(browser))
    app.test_client().delete("/api/me/token", headers={"Authorization": f"Bearer {token}",
                                                       "X-CSRF-Token": "unused-for-bearer"})
    deadline = time.monotonic() + 5
    while (by_cookie.is_connected() or by_token.is_connected()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not by_cookie.is_connected() and not by_token.is_connected()
    assert bystander.is_connected()
    bystander.disconnect()
