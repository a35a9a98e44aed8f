"""Helpers for tests of the web UI: a fresh app on a SQLite file with known users and data, and
log-in through the real form (CSRF included)."""

from __future__ import annotations

import re
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from plantmodel.readings import Reading, utcnow
from plantmodel.shelly import PowerSample
from plantmodel.sources import AutomateSource
from plantmodel.thresholds import Alarm
from store import queries
from store import users as user_store
from store.db import create_db_engine, init_schema, make_sessionmaker
from webui import create_app
from webui.auth import hash_password
from webui.settings import WebSettings

TS = datetime(2026, 11, 21, 10, 15, tzinfo=UTC)
METER = "shellypro1pm-a8032ab1c2d3"
# name -> (role, password)
USERS = {"viewer": ("viewer", "viewer-pass-1"), "operator": ("operator", "operator-pass-1"),
         "admin": ("admin", "admin-pass-1")}


def make_reading(unit: int, automate: int, ts: datetime = TS, **values: float) -> Reading:
    base: dict[str, Any] = dict(tank_temp_c=3.2, ext_temp_c=11.4, milk_kg=4000, product_kg=12, ph=7.0,
                                k_mg_l=40, nacl_g_l=1.3, salmonella_ppm=20, ecoli_ppm=40, listeria_ppm=30)
    return Reading(unit=unit, automate=automate, type="0x0000BA27", seq=1, ts=ts, **{**base, **values})


@cache
def _hash(password: str) -> str:
    return hash_password(password)  # argon2 is slow on purpose: hash each test password once


def add_user(make_session: sessionmaker[Session], username: str, role: str, password: str) -> None:
    with make_session.begin() as session:
        user_store.add_user(session, username, _hash(password), role, utcnow())


def new_database(path: Path) -> sessionmaker[Session]:
    engine = create_db_engine(f"sqlite:///{path}")
    init_schema(engine)
    return make_sessionmaker(engine)


def seed_plant(make_session: sessionmaker[Session]) -> None:
    """A little plant: unit 1 automates 1-2, unit 2 automate 1, one meter, one active alarm."""
    rx = TS + timedelta(seconds=1)
    with make_session.begin() as session:
        queries.seed_default_thresholds(session, TS)
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


@cache
def _template_database(seed: bool, users: bool) -> Path:
    """Build each kind of test database once per process; every app gets a copy (creating the schema
    and seeding it took most of each web test's set-up)."""
    path = Path(tempfile.mkdtemp(prefix="webapp-template-")) / "plant.db"
    make_session = new_database(path)
    if seed:
        seed_plant(make_session)
    if users:
        for name, (role, password) in USERS.items():
            add_user(make_session, name, role, password)
    make_session.kw["bind"].dispose()
    return path


def make_web_app(tmp_path: Path, *, seed: bool = True, users: bool = True, **settings: Any) -> Flask:
    """A fresh app on ``tmp_path/plant.db`` with the MQTT feed not started. English pages unless
    ``plant_language`` (or a request's Accept-Language, or a user's choice) says otherwise: the test
    client sends no Accept-Language, and most tests read the English source texts."""
    settings.setdefault("plant_language", "en")
    shutil.copyfile(_template_database(seed, users), tmp_path / "plant.db")
    make_session = make_sessionmaker(create_db_engine(f"sqlite:///{tmp_path / 'plant.db'}"))
    app = create_app(WebSettings(database_url=f"sqlite:///{tmp_path / 'plant.db'}", secret_key="test", **settings),
                     sessionmaker=make_session)
    app.config["TESTING"] = True
    return app


def form_csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page has no csrf_token field"
    return match.group(1)


def login(client: FlaskClient, username: str, password: str | None = None) -> Any:
    """Log in through the form; returns the POST's response."""
    if password is None:
        password = USERS[username][1]
    page = client.get("/login")
    return client.post("/login", data={"username": username, "password": password,
                                       "csrf_token": form_csrf(page.get_data(as_text=True))})


def csrf(client: FlaskClient) -> dict[str, str]:
    """The header a logged-in browser sends with a state-changing request."""
    with client.session_transaction() as sess:
        return {"X-CSRF-Token": sess["csrf"]}


def token_for(make_session: sessionmaker[Session], username: str) -> str:
    """Give ``username`` a fresh API token and return it."""
    from webui.auth import new_token

    token, digest = new_token()
    with make_session.begin() as session:
        user = user_store.get_user(session, username)
        assert user is not None
        user.token_hash = digest
    return token
