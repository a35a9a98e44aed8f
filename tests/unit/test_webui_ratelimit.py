"""Failed log-ins are limited per user name and per address, with a temporary lock-out; a right
password costs nothing."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from tests.webapp import USERS, form_csrf, make_web_app
from webui.ratelimit import LOCKED
from webui.settings import WebSettings, check_limit


def attempt(client: FlaskClient, username: str, password: str, address: str) -> int:
    page = client.get("/login", environ_base={"REMOTE_ADDR": address})
    resp = client.post("/login", environ_base={"REMOTE_ADDR": address},
                       data={"username": username, "password": password,
                             "csrf_token": form_csrf(page.get_data(as_text=True))})
    if resp.status_code == 429:
        assert LOCKED in resp.get_data(as_text=True)
    return resp.status_code


def test_a_user_name_under_attack_is_locked_from_every_address(tmp_path: Path) -> None:
    client = make_web_app(tmp_path, login_limit_user="3 per minute", login_limit_address="100 per minute").test_client()
    good = USERS["viewer"][1]
    assert attempt(client, "viewer", good, "10.0.0.1") == 302  # right passwords never count
    assert attempt(client, "viewer", good, "10.0.0.1") == 302
    assert [attempt(client, "viewer", "wrong", f"10.0.0.{i}") for i in range(2, 5)] == [401, 401, 401]
    assert attempt(client, "viewer", good, "10.0.0.9") == 429  # locked, even with the right password
    assert attempt(client, "VIEWER", "wrong", "10.0.0.9") == 429  # user names compare case-blind here
    assert attempt(client, "operator", USERS["operator"][1], "10.0.0.2") == 302  # other users go on


def test_an_address_guessing_many_users_is_locked(tmp_path: Path) -> None:
    client = make_web_app(tmp_path, login_limit_user="100 per minute", login_limit_address="4 per minute").test_client()
    assert [attempt(client, f"user{i}", "wrong", "10.0.0.66") for i in range(4)] == [401] * 4
    assert attempt(client, "admin", USERS["admin"][1], "10.0.0.66") == 429
    assert attempt(client, "admin", USERS["admin"][1], "10.0.0.67") == 302  # another address is not


def test_limits_are_checked_at_start() -> None:
    assert check_limit("5 per 15 minutes") == "5 per 15 minutes"
    with pytest.raises(ValueError, match="is not a rate limit"):
        check_limit("often")
    with pytest.raises(ValueError, match="is not a rate limit"):
        WebSettings.from_env({"WEBUI_LOGIN_LIMIT_USER": "lots"})


def test_a_locked_out_name_cannot_forge_log_lines(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The name comes from whoever posts the form, before any log-in: a newline in it would write a
    fake AUDIT line for a SIEM or `grep AUDIT` to trust."""
    client = make_web_app(tmp_path, login_limit_user="100 per minute", login_limit_address="1 per minute").test_client()
    forged = "x\nAUDIT user='admin' from=10.0.0.5 action=user.delete username='boss'\x1b[2J"
    assert attempt(client, "nobody", "wrong", "10.9.9.9") == 401
    caplog.set_level(logging.WARNING, logger="webui.ratelimit")
    assert attempt(client, forged, "wrong", "10.9.9.9") == 429
    (line,) = [r.getMessage() for r in caplog.records if r.name == "webui.ratelimit"]
    assert "\n" not in line and "\x1b" not in line
    assert line.startswith("log-in locked for ") and "x\\\\x0aAUDIT" in line
