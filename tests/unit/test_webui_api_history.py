"""History at scale on SQLite: a month of one-per-minute readings exported as a streamed CSV in
bounded memory, and chart series aggregated into at most ``points`` buckets."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy.orm import Session, sessionmaker

from plantmodel.measures import AUTOMATE_MEASURES
from plantmodel.readings import format_ts, utcnow
from plantmodel.sources import AutomateSource
from plantmodel.thresholds import Alarm
from store import history, queries
from tests.webapp import TS, make_reading, make_web_app, new_database, token_for
from webui import web_state

MONTH_START = datetime(2026, 10, 1, tzinfo=UTC)
MINUTES = 30 * 24 * 60  # 43 200 readings
SPIKE_AT = MONTH_START + timedelta(days=3, hours=5, minutes=17)
SPIKE = 9.9  # tank temperature °C, far above the others (3.0 .. 3.9)


def tank(i: int) -> float:
    return round(3.0 + (i % 10) / 10, 1)


def insert_month(make_session: sessionmaker[Session], unit: int = 3, automate: int = 4) -> None:
    rx = MONTH_START
    chunk = 5000
    for lo in range(0, MINUTES, chunk):
        batch = []
        for i in range(lo, min(lo + chunk, MINUTES)):
            ts = MONTH_START + timedelta(minutes=i)
            batch.append((make_reading(unit, automate, ts, tank_temp_c=SPIKE if ts == SPIKE_AT else tank(i),
                                       milk_kg=3600 + i % 900), rx))
        with make_session.begin() as s:
            queries.insert_readings(s, batch)


@pytest.fixture(scope="module")
def month_app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    app = make_web_app(tmp_path_factory.mktemp("month"))
    make_session = web_state(app).make_session
    insert_month(make_session)
    with make_session.begin() as s:
        queries.save_alarm_events(s, [
            Alarm(AutomateSource(3, 4), "tank_temp_c", SPIKE, 4.0, "high", "warning", "active", SPIKE_AT, SPIKE_AT),
            Alarm(AutomateSource(3, 4), "tank_temp_c", 3.2, 4.0, "high", "warning", "cleared", SPIKE_AT,
                  SPIKE_AT + timedelta(minutes=1)),
        ])
    return app


@pytest.fixture(scope="module")
def bearer(month_app: Flask) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(web_state(month_app).make_session, 'viewer')}"}


def test_month_csv_is_streamed_in_bounded_memory(month_app: Flask, bearer: dict[str, str]) -> None:
    http = month_app.test_client()
    # Warm up: SQLAlchemy's one-off statement compilation is not what this test measures.
    http.get("/api/units/3/automates/4/readings.csv?end=2026-10-01T00:10:00Z", headers=bearer).close()
    size = lines = chunks = 0
    first: list[str] = []
    tail = ""
    # Traced from before the request: the handler and the first chunk (which the test client pulls
    # at once, to get the status) count too.
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        resp = http.get("/api/units/3/automates/4/readings.csv", headers=bearer, buffered=False)
        assert resp.status_code == 200
        assert resp.is_streamed
        for chunk in resp.response:
            text = chunk.decode() if isinstance(chunk, bytes) else chunk
            size += len(text)
            lines += text.count("\n")
            chunks += 1
            if len(first) < 3:
                first = (tail + text).split("\n")[:3]
            tail = (tail + text)[-400:]
        peak = tracemalloc.get_traced_memory()[1] - base
        resp.close()
    finally:
        tracemalloc.stop()

    assert resp.mimetype == "text/csv"
    assert resp.headers["Content-Disposition"] == 'attachment; filename="unit3-automate4-readings.csv"'
    assert lines == MINUTES + 1  # header + every reading
    assert chunks > 10  # handed over piece by piece, not as one string
    assert first[0] == "ts,received_at,stored_at,seq," + ",".join(AUTOMATE_MEASURES)
    assert first[1] == "2026-10-01T00:00:00.000Z,2026-10-01T00:00:00.000Z,,1,3.0,11.4,3600.0,12.0,7.0,40.0,1.3,20.0," \
                       "40.0,30.0"
    assert tail.rstrip("\n").rsplit("\n", 1)[-1].startswith("2026-10-30T23:59:00.000Z,")
    assert size > 4_000_000
    assert peak < size / 3, f"peak {peak} bytes while streaming {size} bytes of CSV"


def test_csv_time_range_and_errors(month_app: Flask, bearer: dict[str, str]) -> None:
    http = month_app.test_client()
    resp = http.get("/api/units/3/automates/4/readings.csv?start=2026-10-02T00:00:00Z&end=2026-10-02T00:02:00Z",
                    headers=bearer)
    rows = resp.get_data(as_text=True).splitlines()
    assert [r[:16] for r in rows[1:]] == ["2026-10-02T00:00", "2026-10-02T00:01", "2026-10-02T00:02"]
    assert http.get("/api/units/3/automates/9/readings.csv", headers=bearer).status_code == 404
    assert http.get("/api/units/3/automates/4/readings.csv?start=x", headers=bearer).status_code == 400
    assert http.get("/api/units/3/automates/4/readings.csv?page=2", headers=bearer).status_code == 400
    assert http.get("/api/units/3/automates/4/readings.csv").status_code == 401
    meter_csv = http.get("/api/meters/shellypro1pm-a8032ab1c2d3/readings.csv", headers=bearer)
    assert meter_csv.get_data(as_text=True).splitlines() == [
        "ts,received_at,stored_at,output,apower,voltage,current,freq,pf,energy_wh,ret_energy_wh,temperature_c",
        "2026-11-21T10:15:00.000Z,2026-11-21T10:15:01.000Z,,true,812.5,230.1,3.6,50.0,0.98,1234.5,0.0,41.2",
    ]


def test_week_series_is_aggregated_into_at_most_points_buckets(month_app: Flask, bearer: dict[str, str]) -> None:
    start, end = MONTH_START + timedelta(days=1), MONTH_START + timedelta(days=8)
    url = f"/api/units/3/automates/4/series?start={format_ts(start)}&end={format_ts(end)}&points=500"
    data = month_app.test_client().get(url, headers=bearer).get_json()
    assert data["aggregated"] is True
    # 7 d / 500 points = 20 min per point: read from the hour rollups, one point per whole hour
    # (aligned on the epoch), the hour starting at ``end`` included (it holds the row at ``end``).
    assert data["bucket_ms"] == 3600 * 1000
    t = data["t"]
    assert len(t) == 7 * 24 + 1 and t == sorted(t)
    assert t[0] == int(start.timestamp() * 1000)
    for name, m in data["measures"].items():
        assert set(m) == {"v", "min", "max"}
        assert len(m["v"]) == len(m["min"]) == len(m["max"]) == len(t)
        for lo, avg, hi in zip(m["min"], m["v"], m["max"], strict=True):
            assert lo <= avg <= hi, name
    tank = data["measures"]["tank_temp_c"]
    spike_ms = int(SPIKE_AT.timestamp() * 1000)
    (i,) = [k for k, b in enumerate(t) if b <= spike_ms < b + data["bucket_ms"]]
    assert tank["max"][i] == SPIKE
    assert tank["v"][i] < SPIKE  # averaged with its bucket's ordinary readings
    assert max(x for j, x in enumerate(tank["max"]) if j != i) == 3.9
    assert min(tank["min"]) == 3.0
    assert data["measures"]["milk_kg"]["min"][0] >= 3600
    assert [(a["state"], a["raised_at"]) for a in data["alarms"]] == [("cleared", format_ts(SPIKE_AT))]
    assert data["limits"]["tank_temp_c"] == {"low": 2.5, "high": 4.0}


def test_series_window_defaults_to_the_last_hour(month_app: Flask, bearer: dict[str, str]) -> None:
    data = month_app.test_client().get("/api/units/3/automates/4/series", headers=bearer).get_json()
    start = datetime.fromisoformat(data["start"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(data["end"].replace("Z", "+00:00"))
    assert end - start == timedelta(hours=1)
    assert abs(end - utcnow()) < timedelta(minutes=5)
    # end alone: the hour before it.
    url = "/api/units/3/automates/4/series?end=2026-10-05T12:00:00Z"
    data = month_app.test_client().get(url, headers=bearer).get_json()
    assert data["start"] == "2026-10-05T11:00:00.000Z" and len(data["t"]) == 61 and not data["aggregated"]
    assert data["measures"]["tank_temp_c"]["v"][0] == tank(4 * 1440 + 11 * 60)


# -- store.history directly ------------------------------------------------------------------------------

@pytest.fixture
def db(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    make_session = new_database(tmp_path / "h.db")
    yield make_session
    make_session.kw["bind"].dispose()


def add(make_session: sessionmaker[Session], minutes_and_tank: list[tuple[float, float]]) -> None:
    with make_session.begin() as s:
        queries.insert_readings(s, [(make_reading(1, 1, TS + timedelta(minutes=m), tank_temp_c=v), TS)
                                    for m, v in minutes_and_tank])


def test_series_buckets_are_exact(db: sessionmaker[Session]) -> None:
    # 10-minute window, 2 points -> 5-minute buckets from the minute rollups, aligned on the epoch
    # (TS is on a 5-minute boundary): [0, 5 min), [5, 10 min), and the bucket of the row exactly at
    # the end, [10, 15 min); the empty middle minutes are simply not there.
    add(db, [(0, 3.0), (1, 4.0), (4, 3.5), (6, 2.0), (10, 2.6)])
    src = history.automate_source(1, 1)
    with db() as s:
        out = history.series(s, src, TS, TS + timedelta(minutes=10), points=2)
        raw = history.series(s, src, TS, TS + timedelta(minutes=10), points=5)
    assert out.aggregated and out.bucket_ms == 300_000
    assert out.t == [history.epoch_ms(TS) + k * 300_000 for k in range(3)]
    assert out.values["tank_temp_c"] == [3.5, 2.0, 2.6]
    assert out.mins["tank_temp_c"] == [3.0, 2.0, 2.6] and out.maxs["tank_temp_c"] == [4.0, 2.0, 2.6]
    assert not raw.aggregated and raw.bucket_ms == 0 and raw.values["tank_temp_c"] == [3.0, 4.0, 3.5, 2.0, 2.6]
    assert raw.measures_dict()["tank_temp_c"] == {"v": [3.0, 4.0, 3.5, 2.0, 2.6]}


def test_pages_and_streams_are_ordered_and_bounded(db: sessionmaker[Session]) -> None:
    add(db, [(m, 3.0) for m in range(25)])
    src = history.automate_source(1, 1)
    start, end = TS + timedelta(minutes=5), TS + timedelta(minutes=14)
    with db() as s:
        assert history.count_rows(s, src, None, None) == 25
        assert history.count_rows(s, src, start, end) == 10
        page = history.rows_page(s, src, start, end, offset=8, limit=5)
        assert [r.ts for r in page] == [TS + timedelta(minutes=13), TS + timedelta(minutes=14)]
        newest = history.rows_page(s, src, None, None, offset=0, limit=1, descending=True)
        assert newest[0].ts == TS + timedelta(minutes=24)
        rows = list(history.stream_rows(s, src, ("ts", "seq"), start, end, batch=3))
        assert [r.ts for r in rows] == [TS + timedelta(minutes=m) for m in range(5, 15)]
        assert history.latest_row(s, src).ts == TS + timedelta(minutes=24)
        assert history.latest_row(s, history.automate_source(1, 2)) is None


def test_acknowledge_once_is_conditional(db: sessionmaker[Session]) -> None:
    with db.begin() as s:
        queries.insert_readings(s, [(make_reading(1, 1), TS)])
        queries.save_alarm_events(s, [Alarm(AutomateSource(1, 1), "ph", 7.4, 7.2, "high", "warning", "active",
                                            TS, TS)])
    with db.begin() as s:
        row, done = history.acknowledge_once(s, 1, "ann", TS)
        assert done and row is not None and row.acknowledged_by == "ann"
    with db.begin() as s:
        row, done = history.acknowledge_once(s, 1, "bob", TS + timedelta(minutes=1))
        assert not done and row is not None and (row.acknowledged_by, row.acknowledged_at) == ("ann", TS)
        assert history.acknowledge_once(s, 2, "bob", TS) == (None, False)
