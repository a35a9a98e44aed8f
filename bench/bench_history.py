"""Years of history: does the web UI stay fast? And what does rollup upkeep cost the ingest?

    .venv/bin/python -m bench.bench_history [--days 365] [--meters 20] [--db mariadb|sqlite|both] [--keep]
    .venv/bin/python -m bench.bench_history --url URL     # measure a database loaded earlier (--keep)

Starts a throwaway MariaDB (tests/servers.py, in a temporary folder; ``local_infile`` and a 1 GB
buffer pool switched on for it) and uses a SQLite file beside it. For each database:

1. loads ``--days`` of generated history (``store.generate``: the default plant, 5 x 10 automates
   every 60 s, and ``--meters`` meters every 10 s: 20 as in the issue's goal) and prints the load rate;
2. through the Flask test client of the web UI (logged in as an admin), the median of 5 calls of:
   ``/api/latest``, the overview page ``/``, ``/api/automates``, one automate's series over 1 h,
   24 h, 7 d, 30 d and 1 y, one meter's over 24 h and 1 y, and one automate's month of CSV
   streamed (rows/s and peak RSS growth), against the goals (< 50 ms latest/overview, < 200 ms a
   series, >= 50 000 rows/s CSV);
3. ingest: ``store.queries.insert_readings(..., new_only=True, rollups=True|False)`` in batches of
   500 for a few seconds each, in two shapes (see :func:`ingest`), printing rows/s and the ratio
   (the baseline: without rollup upkeep). The whole bridge with and without it: bench_ingest.

A year of that plant is about 26 M readings and 63 M power readings: long to load, and tens of GB
of disk; ``--days 3`` checks that everything works. ``--keep`` keeps the data folder (printed) instead of removing it.
"""

from __future__ import annotations

import argparse
import inspect
import resource
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from plantmodel.layout import PlantLayout, default_meter_ids
from plantmodel.readings import Reading, format_ts, utcnow
from store import models as orm
from store import queries
from store import users as user_store
from store.db import create_db_engine, init_schema, make_sessionmaker
from store.generate import HistoryOptions, generate, print_progress
from tests.servers import MariaDBServer
from tests.webapp import login
from webui import create_app
from webui.auth import hash_password
from webui.settings import WebSettings

REPEAT = 5
METER_SERIES = ("24 h", "1 y")
USER, PASSWORD = "bench-admin", "bench-admin-password"
WINDOWS = {"1 h": timedelta(hours=1), "24 h": timedelta(days=1), "7 d": timedelta(days=7),
           "30 d": timedelta(days=30), "1 y": timedelta(days=365)}
BATCH, INGEST_S = 500, 3.0


def rss_mb() -> float:
    """The process's resident memory now (ru_maxrss is a peak: the history load already set it)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def median_ms(call: Callable[[], Any]) -> float:
    times = []
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        call()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def get_ok(client: FlaskClient, url: str) -> Callable[[], None]:
    def call() -> None:
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code, response.get_data(as_text=True)[:200])
        response.get_data()
    return call


def row(label: str, value: str, goal: str, ok: bool | None) -> None:
    verdict = "" if ok is None else ("ok" if ok else "MISSED")
    print(f"  {label:<34} {value:>14}   goal {goal:<14} {verdict}", flush=True)


def web_timings(url: str, sessions: sessionmaker[Session], end: datetime) -> None:
    with sessions.begin() as session:
        if user_store.get_user(session, USER) is None:
            user_store.add_user(session, USER, hash_password(PASSWORD), "admin", utcnow())
    app = create_app(WebSettings(database_url=url, secret_key="bench"), sessionmaker=sessions)
    app.config["TESTING"] = True
    client = app.test_client()
    assert login(client, USER, PASSWORD).status_code in (302, 303)
    for label, path, goal in (("GET /api/latest", "/api/latest", 50), ("GET / (overview)", "/", 50),
                              ("GET /api/automates", "/api/automates", 50)):
        ms = median_ms(get_ok(client, path))
        row(label, f"{ms:8.1f} ms", f"< {goal} ms", ms < goal)
    for label, window in WINDOWS.items():
        path = (f"/api/units/1/automates/1/series?start={format_ts(end - window)}&end={format_ts(end)}")
        ms = median_ms(get_ok(client, path))
        row(f"series unit 1 automate 1, {label}", f"{ms:8.1f} ms", "< 200 ms", ms < 200)
    with sessions() as session:
        meter = queries.meters(session)[0].id
    for label in METER_SERIES:
        window = WINDOWS[label]
        path = f"/api/meters/{meter}/series?start={format_ts(end - window)}&end={format_ts(end)}"
        ms = median_ms(get_ok(client, path))
        row(f"series meter {meter}, {label}", f"{ms:8.1f} ms", "< 200 ms", ms < 200)
    # A month of one automate as CSV, streamed: rows/s, and how much the process grew.
    path = (f"/api/units/1/automates/1/readings.csv?start={format_ts(end - timedelta(days=30))}"
            f"&end={format_ts(end)}")
    rates = []
    rss0 = peak = rss_mb()
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        response = client.get(path, buffered=False)
        assert response.status_code == 200
        lines = 0
        for i, chunk in enumerate(response.response):
            lines += chunk.count(b"\n")
            if i % 64 == 0:
                peak = max(peak, rss_mb())
        response.close()
        rates.append(max(lines - 1, 0) / (time.perf_counter() - t0))
    grown_mb = max(peak, rss_mb()) - rss0
    rate = statistics.median(rates)
    row(f"CSV, a month of one automate ({lines - 1} rows)", f"{rate:8.0f} rows/s", ">= 50000 rows/s", rate >= 50_000)
    row("  peak RSS growth while streaming", f"{grown_mb:8.1f} MB", "", None)


def ingest(sessions: sessionmaker[Session], start: datetime) -> None:
    """The bridge's write (``insert_readings(new_only=True)``), batches of 500, with and without the
    rollup upkeep, in two shapes: ``dense`` (one automate, a reading a second: 60 readings share a
    minute bucket) and ``plant`` (50 automates, a reading a minute each: every reading starts its own
    minute bucket, the upkeep's worst case, what a bridge catching up on a backlog writes)."""
    params = inspect.signature(queries.insert_readings).parameters
    if "rollups" not in params:
        print("  ingest: store.queries.insert_readings has no `rollups` keyword yet: skipped", flush=True)
        return
    for shape in ("dense", "plant"):
        seq = 10_000_000
        rates: dict[bool, float] = {False: 0.0, True: 0.0}
        for rollups in (False, True, False, True):  # alternated, best of two: the first round warms caches up
            rows, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < INGEST_S:
                batch = []
                for _ in range(BATCH):
                    # Automates of their own (units 90+), after the history: every reading is new.
                    if shape == "dense":
                        unit, automate, ts = 90, 1, start + timedelta(seconds=seq)
                    else:
                        unit, automate = 90 + seq % 5, seq // 5 % 10 + 1
                        ts = start + timedelta(minutes=seq // 50)
                    batch.append((Reading(unit, automate, PlantLayout.automate_type(unit, automate), seq, ts, 3.4,
                                          11.2, 4012, 35, 7.0, 41, 1.3, 22, 40, 31), ts))
                    seq += 1
                with sessions.begin() as session:
                    queries.insert_readings(session, batch, utcnow(), new_only=True, rollups=rollups)
                rows += len(batch)
            rate = rows / (time.perf_counter() - t0)
            rates[rollups] = max(rates[rollups], rate)
            print(f"  ingest {shape:5}, batches of {BATCH}, rollups={rollups!s:<5}    {rate:>10.0f} rows/s", flush=True)
        print(f"  -> {shape}: with rollup upkeep {rates[True] / rates[False]:.2f}x the rate without", flush=True)


def bench(name: str, url: str, days: float, meters: int) -> None:
    print(f"\n{name}: {days:g} days of history, {meters} meters", flush=True)
    engine = create_db_engine(url)
    init_schema(engine)
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        newest = session.scalar(select(func.max(orm.AutomateSequence.newest_ts)))
    if newest is not None:  # --url of a database loaded by an earlier run (--keep): measure it again
        end = newest.replace(microsecond=0)
        print(f"  already loaded (newest reading {format_ts(end)}): measuring it", flush=True)
    else:
        end = datetime.now(UTC).replace(microsecond=0)
        layout = PlantLayout(meters=default_meter_ids(meters))
        result = generate(engine, HistoryOptions(layout, days, end), print_progress)
        print(f"  loaded {result.rows:,} rows in {result.seconds:.1f} s = {result.rate:,.0f} rows/s "
              f"({result.method} {result.load_s:.1f} s, rollups {result.rollup_s:.1f} s)", flush=True)
    web_timings(url, sessions, end)
    ingest(sessions, end + timedelta(days=1))
    engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=float, default=365)
    parser.add_argument("--db", choices=("mariadb", "sqlite", "both"), default="both")
    parser.add_argument("--meters", type=int, default=20, help="meters (every 10 s; default 20, the issue's plant)")
    parser.add_argument("--keep", action="store_true", help="keep the data folder")
    parser.add_argument("--url", help="measure this database instead (loaded first if it holds no readings)")
    args = parser.parse_args()
    if args.url:
        bench(args.url.split(":")[0], args.url, args.days, args.meters)
        return 0
    folder = Path(tempfile.mkdtemp(prefix="bench-history-"))
    server = None
    try:
        if args.db in ("mariadb", "both"):
            server = MariaDBServer(folder / "mariadb")
            server.start()
            with server.admin() as conn, conn.cursor() as cur:
                # Its own throwaway server: room for the indexes, and the generator's fast path.
                cur.execute("SET GLOBAL innodb_buffer_pool_size = 1073741824")
                cur.execute("SET GLOBAL local_infile = 1")
            url = server.create_database()
            print(f"MariaDB at {url} (kept with --keep: start it again with mariadbd --datadir …)", flush=True)
            bench("MariaDB", url, args.days, args.meters)
        if args.db in ("sqlite", "both"):
            bench("SQLite", f"sqlite:///{folder / 'plant.db'}", args.days, args.meters)
    finally:
        if server is not None:
            server.stop()
        if args.keep:
            print(f"\ndata kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
