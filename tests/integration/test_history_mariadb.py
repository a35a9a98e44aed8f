"""store.history and the REST API on a real MariaDB: range queries, pages, server-side streaming,
bucketed series, alarm filters and writes behave as on SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from plantmodel.readings import format_ts
from plantmodel.sources import AutomateSource
from plantmodel.thresholds import Alarm
from store import history, queries
from store.db import create_db_engine, init_schema, make_sessionmaker
from tests.servers import MariaDBServer
from tests.webapp import METER, USERS, add_user, make_reading, seed_plant, token_for
from webui import create_app
from webui.settings import WebSettings

pytestmark = pytest.mark.integration

START = datetime(2026, 10, 1, tzinfo=UTC)
DAYS = 3
ROWS = DAYS * 24 * 60
SPIKE_AT = START + timedelta(days=1, hours=7, minutes=4)  # an even minute: no milliseconds


def tank(i: int) -> float:
    return round(3.0 + (i % 10) / 10, 1)


@pytest.fixture(scope="module")
def make_session(mariadb: MariaDBServer) -> Iterator[sessionmaker[Session]]:
    engine = create_db_engine(mariadb.create_database("history"))
    init_schema(engine)
    sm = make_sessionmaker(engine)
    seed_plant(sm)
    for name, (role, password) in USERS.items():
        add_user(sm, name, role, password)
    for lo in range(0, ROWS, 2000):
        batch = []
        for i in range(lo, min(lo + 2000, ROWS)):
            # Milliseconds in the timestamps: DATETIME(3) must keep them for range boundaries.
            ts = START + timedelta(minutes=i, milliseconds=250 if i % 2 else 0)
            batch.append((make_reading(3, 4, ts, tank_temp_c=9.9 if ts == SPIKE_AT else tank(i)), ts))
        with sm.begin() as s:
            queries.insert_readings(s, batch)
    with sm.begin() as s:
        queries.save_alarm_events(s, [
            Alarm(AutomateSource(3, 4), "tank_temp_c", 9.9, 4.0, "high", "warning", "active", SPIKE_AT, SPIKE_AT),
            Alarm(AutomateSource(3, 4), "tank_temp_c", 3.1, 4.0, "high", "warning", "cleared", SPIKE_AT,
                  SPIKE_AT + timedelta(minutes=1)),
        ])
    yield sm
    engine.dispose()


@pytest.fixture(scope="module")
def app(make_session: sessionmaker[Session]) -> Flask:
    url = make_session.kw["bind"].url.render_as_string(hide_password=False)
    app = create_app(WebSettings(database_url=url, secret_key="test"), sessionmaker=make_session)
    app.config["TESTING"] = True
    return app


@pytest.fixture(scope="module")
def headers(make_session: sessionmaker[Session]) -> dict[str, dict[str, str]]:
    return {name: {"Authorization": f"Bearer {token_for(make_session, name)}"} for name in USERS}


def test_ranges_pages_and_streams(make_session: sessionmaker[Session]) -> None:
    src = history.automate_source(3, 4)
    start = START + timedelta(minutes=1, milliseconds=250)  # exactly a stored timestamp
    end = START + timedelta(minutes=11, milliseconds=250)
    with make_session() as s:
        assert history.count_rows(s, src, None, None) == ROWS
        assert history.count_rows(s, src, start, end) == 11  # both ends inclusive, to the millisecond
        assert history.count_rows(s, src, start + timedelta(milliseconds=1), end) == 10
        page = history.rows_page(s, src, start, end, offset=10, limit=5)
        assert [r.ts for r in page] == [end]
        newest = history.rows_page(s, src, None, None, offset=0, limit=2, descending=True)
        assert newest[0].ts == START + timedelta(minutes=ROWS - 1, milliseconds=250)
        # A server-side cursor: fetched in batches, and the session is usable right after.
        rows = history.stream_rows(s, src, ("ts", "tank_temp_c"), None, None, batch=500)
        count = sum(1 for _ in rows)
        assert count == ROWS
        assert history.latest_row(s, src).ts == newest[0].ts
        # A download abandoned half-way (client gone) must not leave the connection unusable.
        partial = history.stream_rows(s, src, ("ts",), None, None, batch=100)
        assert next(partial)[0] == START
        partial.close()
        assert s.execute(text("SELECT 1")).scalar() == 1


def test_series_buckets(make_session: sessionmaker[Session]) -> None:
    src = history.automate_source(3, 4)
    with make_session() as s:
        out = history.series(s, src, START, START + timedelta(days=DAYS), points=300)
        raw = history.series(s, src, START, START + timedelta(minutes=30), points=300)
    # 3 d / 300 points = 14.4 min: from the minute rollups, the smallest whole number of minutes above.
    assert out.aggregated and len(out.t) <= 300 and out.bucket_ms == 15 * 60 * 1000
    spike = history.epoch_ms(SPIKE_AT)
    (i,) = [k for k, b in enumerate(out.t) if b <= spike < b + out.bucket_ms]
    assert out.maxs["tank_temp_c"][i] == 9.9
    for lo, v, hi in zip(out.mins["ph"], out.values["ph"], out.maxs["ph"], strict=True):
        assert lo <= v <= hi
    assert not raw.aggregated and len(raw.t) == 31
    assert raw.values["tank_temp_c"][:3] == [tank(0), tank(1), tank(2)]


def test_alarm_filters_and_acknowledgement(make_session: sessionmaker[Session]) -> None:
    with make_session() as s:
        total, rows = history.alarms_page(s, history.AlarmFilter(state="all", unit=3, automate=4), offset=0, limit=10)
        assert total == 1 and rows[0].state == "cleared"
        total, _ = history.alarms_page(s, history.AlarmFilter(state="open"), offset=0, limit=10)
        assert total == 2  # the seeded active pH alarm and the unacknowledged cleared one
        overlapping = history.alarms_overlapping(s, "units/3/automates/4", SPIKE_AT + timedelta(seconds=30),
                                                 SPIKE_AT + timedelta(hours=1))
        assert len(overlapping) == 1
        assert history.alarms_overlapping(s, "units/3/automates/4", SPIKE_AT + timedelta(minutes=2),
                                          SPIKE_AT + timedelta(hours=1)) == []
        alarm_id = rows[0].id
    now = datetime(2026, 11, 21, 12, tzinfo=UTC)
    with make_session.begin() as s:
        row, done = history.acknowledge_once(s, alarm_id, "ann", now)
        assert done and row is not None and row.acknowledged_at == now
    with make_session.begin() as s:
        row, done = history.acknowledge_once(s, alarm_id, "bob", now)
        assert not done and row is not None and row.acknowledged_by == "ann"


def test_api_on_mariadb(app: Flask, headers: dict[str, dict[str, str]]) -> None:
    http = app.test_client()

    def get(url: str, role: str = "viewer") -> Any:
        resp = http.get(url, headers=headers[role])
        assert resp.status_code == 200, (url, resp.get_data(as_text=True))
        return resp.get_json()

    page = get("/api/units/3/automates/4/readings?per_page=1000&page=2&order=desc")
    assert page["total"] == ROWS and page["pages"] == 5 and len(page["items"]) == 1000
    assert page["items"][0]["ts"] == format_ts(START + timedelta(minutes=ROWS - 1001, milliseconds=250))

    series = get(f"/api/units/3/automates/4/series?start={format_ts(START)}&end={format_ts(START + timedelta(days=3))}"
                 "&points=1000")
    assert series["aggregated"] and len(series["t"]) <= 1000
    assert [a["state"] for a in series["alarms"]] == ["cleared"]
    assert series["limits"]["tank_temp_c"] == {"low": 2.5, "high": 4.0}

    resp = http.get("/api/units/3/automates/4/readings.csv", headers=headers["viewer"], buffered=False)
    assert resp.is_streamed
    body = b"".join(resp.response).decode()
    resp.close()
    lines = body.splitlines()
    assert len(lines) == ROWS + 1
    assert lines[1].startswith("2026-10-01T00:00:00.000Z,2026-10-01T00:00:00.000Z,,1,3.0,")
    assert lines[-1].startswith(format_ts(START + timedelta(minutes=ROWS - 1, milliseconds=250)))

    alarms = get("/api/alarms?unit=3&automate=4&measure=tank_temp_c")
    assert alarms["total"] == 1 and alarms["items"][0]["state"] == "cleared"
    (ph,) = get("/api/alarms?unit=1&measure=ph&state=active")["items"]
    ack = http.post(f"/api/alarms/{ph['id']}/ack", headers=headers["operator"])
    assert ack.status_code == 200 and ack.get_json()["acknowledged_by"] == "operator"
    assert http.post(f"/api/alarms/{ph['id']}/ack", headers=headers["admin"]).status_code == 409

    body = {"scope": "units/3/automates/4", "measure": "tank_temp_c", "low": 2.0, "high": 4.2, "confirm": True}
    assert http.put("/api/thresholds", json=body, headers=headers["admin"]).status_code == 201
    assert get("/api/units/3/automates/4/series")["limits"]["tank_temp_c"] == {"low": 2.0, "high": 4.2}
    resp = http.delete("/api/thresholds?scope=units/3/automates/4&measure=tank_temp_c", headers=headers["admin"])
    assert resp.status_code == 200
    changes = get("/api/thresholds/changes")
    assert [c["action"] for c in changes["items"][:2]] == ["delete", "set"]

    legacy = get(f"/api/measurements/?meter={METER}")
    assert legacy["count"] == 1 and legacy["results"][0]["power"] == 812.5
    assert http.get("/api/units/3/automates/4/readings?start=nope", headers=headers["viewer"]).status_code == 400
