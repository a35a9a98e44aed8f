"""The web layer on SQLite: page, JSON endpoints and Socket.IO, with the MQTT feed not started."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask_socketio import SocketIO, SocketIOTestClient
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from plantmodel.readings import Reading
from plantmodel.shelly import PowerSample
from plantmodel.sources import AutomateSource
from plantmodel.thresholds import Alarm
from plantmodel.topics import Topics
from store import queries
from store.db import create_db_engine, init_schema, make_sessionmaker
from webui import create_app, web_state
from webui.settings import WebSettings

TS = datetime(2026, 11, 21, 10, 15, tzinfo=UTC)
METER = "shellypro1pm-a8032ab1c2d3"
ROOT = Path(__file__).resolve().parents[2]


def make_reading(unit: int, automate: int, ts: datetime = TS, **values: float) -> Reading:
    base: dict[str, Any] = dict(tank_temp_c=3.2, ext_temp_c=11.4, milk_kg=4000, product_kg=12, ph=7.0,
                                k_mg_l=40, nacl_g_l=1.3, salmonella_ppm=20, ecoli_ppm=40, listeria_ppm=30)
    return Reading(unit=unit, automate=automate, type="0x0000BA27", seq=1, ts=ts, **{**base, **values})


@pytest.fixture
def make_session(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'plant.db'}")
    init_schema(engine)
    sm = make_sessionmaker(engine)
    rx = TS + timedelta(seconds=1)
    with sm.begin() as session:
        queries.insert_readings(session, [
            (make_reading(1, 1, TS - timedelta(minutes=1), ph=6.9), rx),
            (make_reading(1, 1, TS, ph=7.4), rx),  # the latest, out of range
            (make_reading(1, 2), rx),
            (make_reading(2, 1, tank_temp_c=3.7), rx),
        ])
        queries.insert_power_samples(session, [(PowerSample(
            meter=METER, ts=TS, output=True, apower=812.5, voltage=230.1, current=3.6, freq=50.0, pf=0.98,
            energy_wh=1234.5, ret_energy_wh=0.0, temperature_c=41.2), rx)])
        queries.set_device_state(session, "units/1", "online", TS, rx)
        queries.set_device_state(session, f"meters/{METER}", "offline", TS, rx)
        queries.save_alarm_events(session, [
            Alarm(AutomateSource(1, 1), "ph", 7.4, 7.2, "high", "warning", "active", TS, TS)])
    yield sm
    engine.dispose()


@pytest.fixture
def app(make_session: sessionmaker[Session]) -> Flask:
    return create_app(WebSettings(), sessionmaker=make_session, start_mqtt=False)


def socketio_of(app: Flask) -> SocketIO:
    return app.extensions["socketio"]


def events(client: SocketIOTestClient, name: str) -> list[Any]:
    return [m["args"][0] for m in client.get_received() if m["name"] == name]


def test_page_embeds_the_snapshot_and_serves_its_scripts_locally(app: Flask) -> None:
    http = app.test_client()
    resp = http.get("/")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    match = re.search(r'<script id="snapshot" type="application/json">(.*?)</script>', html, re.S)
    assert match
    snapshot = json.loads(match.group(1))
    assert [(a["unit"], a["automate"]) for u in snapshot["units"] for a in u["automates"]] == [
        (1, 1), (1, 2), (2, 1)]
    assert "//" not in "".join(re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', html))  # no CDN
    for path in ("/static/socket.io.min.js", "/static/dashboard.js", "/static/dashboard.css"):
        assert f'"{path}"' in html
        with http.get(path) as static:  # (a file response must be closed)
            assert static.status_code == 200
            if path.endswith("socket.io.min.js"):
                assert static.get_data(as_text=True).startswith("/*!\n * Socket.IO v4.")


def test_api_latest_returns_the_latest_values(app: Flask) -> None:
    data = app.test_client().get("/api/latest").get_json()
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
    assert data["measures"]["automate"]["ph"] == {"label": "pH", "unit": "pH", "low": 6.8, "high": 7.2,
                                                  "decimals": 1}
    assert data["measures"]["meter"]["current"]["decimals"] == 3


def test_healthz(app: Flask) -> None:
    resp = app.test_client().get("/healthz")
    assert resp.status_code == 200
    assert resp.get_json() == {"status": "ok", "db": True, "mqtt": False}


def test_database_down_gives_503(tmp_path: Path) -> None:
    broken = make_sessionmaker(create_engine(f"sqlite:///{tmp_path}"))  # a directory: cannot open
    http = create_app(WebSettings(), sessionmaker=broken, start_mqtt=False).test_client()
    resp = http.get("/healthz")
    assert resp.status_code == 503
    assert resp.get_json()["db"] is False
    assert http.get("/api/latest").status_code == 503
    assert http.get("/").status_code == 503


def test_socketio_client_gets_the_snapshot_on_connect(app: Flask) -> None:
    client = socketio_of(app).test_client(app)
    assert client.is_connected()
    [snapshot] = events(client, "snapshot")
    assert snapshot == app.test_client().get("/api/latest").get_json()
    client.disconnect()


def test_live_feed_reaches_socketio_clients(app: Flask, make_session: sessionmaker[Session]) -> None:
    other = create_app(WebSettings(), sessionmaker=make_session, start_mqtt=False)
    client = socketio_of(app).test_client(app)
    other_client = socketio_of(other).test_client(other)
    client.get_received(), other_client.get_received()

    reading = make_reading(1, 2, TS + timedelta(minutes=1), milk_kg=4321)
    web_state(app).feed.handle(Topics("plant").reading(1, 2), reading.to_json().encode())
    web_state(app).feed.handle("plant/units/1/automates/2/readings", b"{broken")  # skipped, no crash

    assert events(client, "reading") == [reading.to_dict()]
    assert events(other_client, "reading") == []  # two apps in one process stay separate
    client.disconnect()
    other_client.disconnect()


def test_cli_help_exits_0() -> None:
    result = subprocess.run([sys.executable, "-m", "webui", "--help"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "--port" in result.stdout
