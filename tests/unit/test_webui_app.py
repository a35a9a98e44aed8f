"""The web app's plumbing on SQLite: the snapshot API, health check, database outage and the CLI."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import create_engine

from plantmodel.mqtt import MqttSettings
from store.db import make_sessionmaker
from tests.webapp import METER, login, make_web_app
from webui import create_app, web_state
from webui.__main__ import main as webui_main
from webui.settings import WebSettings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return make_web_app(tmp_path)


def test_api_latest_returns_the_latest_values(app: Flask) -> None:
    http = app.test_client()
    login(http, "viewer")
    data = http.get("/api/latest").get_json()
    unit1 = data["units"][0]
    assert unit1["unit"] == 1
    a1 = unit1["automates"][0]
    assert (a1["automate"], a1["type"], a1["reading"]["ph"], a1["reading"]["ts"]) == (
        1, "0x0000BA27", 7.4, "2026-11-21T10:15:00.000Z")
    assert data["units"][1]["automates"][0]["reading"]["tank_temp_c"] == 3.7
    [meter] = data["meters"]
    assert (meter["meter"], meter["power"]["apower"], meter["power"]["energy_wh"]) == (METER, 812.5, 1234.5)
    assert data["devices"] == {"units/1": {"state": "online", "ts": "2026-11-21T10:15:00.000Z"},
                               f"meters/{METER}": {"state": "offline", "ts": "2026-11-21T10:15:00.000Z"}}
    [alarm] = data["alarms"]
    assert (alarm["source"], alarm["measure"], alarm["value"], alarm["state"]) == (
        "units/1/automates/1", "ph", 7.4, "active")
    assert data["measures"]["automate"]["ph"] == {"label": "pH", "short": "pH", "unit": "pH", "low": 6.8,
                                                  "high": 7.2, "decimals": 1, "key": True}
    assert data["measures"]["meter"]["current"]["decimals"] == 3


def test_healthz_needs_no_login(app: Flask) -> None:
    resp = app.test_client().get("/healthz")
    assert resp.status_code == 200
    # The live feed was never started (unit tests): its broker link is unknown, not down. Nothing
    # else (host, process, reasons) is told to anyone who asks.
    assert resp.get_json() == {"status": "ok", "db": True, "mqtt": None}


def test_database_down_gives_503_not_500(tmp_path: Path) -> None:
    broken = make_sessionmaker(create_engine(f"sqlite:///{tmp_path}"))  # a directory: cannot open
    http = create_app(WebSettings(plant_language="en"), sessionmaker=broken).test_client()
    resp = http.get("/healthz")
    assert resp.status_code == 503
    assert resp.get_json()["db"] is False
    # Even finding out who is asking needs the database: a clear 503, not a crash.
    resp = http.get("/api/latest", headers={"Authorization": "Bearer abb_whatever"})
    assert resp.status_code == 503
    assert resp.get_json() == {"error": "database unavailable"}


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["users", "--help"], ["users", "add", "--help"],
                                  ["assets", "--help"], ["serve", "--help"], ["translations", "--help"]])
def test_cli_help_exits_0(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    # In-process (a subprocess per case cost seconds of imports under CI load): argparse's own exit.
    with pytest.raises(SystemExit) as exit_:
        webui_main(argv)
    assert exit_.value.code == 0
    assert "usage: python -m webui" in capsys.readouterr().out


def test_the_factory_starts_nothing(tmp_path: Path) -> None:
    """Building the app opens no connection and starts no thread: the server that serves it starts
    the live feed (``python -m webui run``), so importing and building it is safe anywhere."""
    before = {t.ident for t in threading.enumerate()}
    app = create_app(WebSettings(database_url=f"sqlite:///{tmp_path / 'plant.db'}", secret_key="test",
                                 mqtt=MqttSettings("127.0.0.1", 1, "webui", "x")))
    started = [t for t in threading.enumerate() if t.ident not in before]
    # Only Flask-Limiter's in-memory storage's expiry timer (the library's): no MQTT loop, no push
    # thread, no database probe.
    assert all(isinstance(t, threading.Timer) for t in started), started
    assert not (tmp_path / "plant.db").exists()  # not even the database file
    assert not web_state(app).feed.connected


@pytest.mark.parametrize(("proxies", "address"), [(0, "127.0.0.1"), (1, "203.0.113.7")])
def test_the_client_address_behind_a_trusted_proxy(tmp_path: Path, proxies: int, address: str) -> None:
    """Behind nginx (WEBUI_TRUSTED_PROXIES=1) the audit trail and the per-address log-in limit see
    the client's address from X-Forwarded-For; without a trusted proxy the header is ignored (a
    client could otherwise pick the address it is limited by)."""
    app = make_web_app(tmp_path, trusted_proxies=proxies)
    http = app.test_client()
    http.environ_base = {"HTTP_X_FORWARDED_FOR": "203.0.113.7", "REMOTE_ADDR": "127.0.0.1"}
    assert login(http, "admin").status_code == 302
    entries = http.get("/api/audit?action=login.ok").get_json()["items"]
    assert entries[0]["address"] == address, entries[0]
