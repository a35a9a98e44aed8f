"""Database write throughput: the bridge's batched, idempotent insert vs one INSERT + COMMIT per row.

    .venv/bin/python -m bench.bench_writes [--rows 20000] [--database-url URL]

Without --database-url it starts a throwaway MariaDB (like the tests) and also measures SQLite.
Prints rows/s for each and the ratio against the one-row-per-commit baseline of the same run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from plantmodel import Reading
from plantmodel.layout import PlantLayout
from store import queries
from store.db import create_db_engine, init_schema, make_sessionmaker


def make_readings(n: int, start: datetime) -> list[tuple[Reading, datetime]]:
    out = []
    for i in range(n):
        unit, automate = i % 5 + 1, i // 5 % 10 + 1
        out.append((Reading(unit, automate, PlantLayout.automate_type(unit, automate), i,
                            start + timedelta(milliseconds=i), 3.4, 11.2, 4012, 35, 7.0, 41, 1.3, 22, 40, 31), start))
    return out


def measure(label: str, url: str, rows: int, batch: int) -> float:
    engine = create_db_engine(url)
    init_schema(engine)
    sessions = make_sessionmaker(engine)
    data = make_readings(rows, datetime.now(UTC) + timedelta(days=batch))  # distinct keys per run
    t0 = time.perf_counter()
    for i in range(0, rows, batch):
        with sessions.begin() as session:
            queries.insert_readings(session, data[i:i + batch])
    elapsed = time.perf_counter() - t0
    engine.dispose()
    rate = rows / elapsed
    print(f"  {label:<34} batch {batch:>4}: {rows:>6} rows in {elapsed:6.2f} s = {rate:>8.0f} rows/s", flush=True)
    return rate


def compare(name: str, url: str, rows: int, new_db: Callable[[], str]) -> None:
    print(f"{name}:")
    # Baseline on fewer rows: it is slow, and rows/s is what we compare.
    base = measure("1 reading per transaction", url, max(rows // 10, 500), 1)
    for batch in (50, 500):
        rate = measure("bridge batched insert", new_db(), rows, batch)
        print(f"  -> batch {batch}: {rate / base:.1f}x the one-row baseline")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--database-url", help="measure this database only (it must be empty or disposable)")
    args = parser.parse_args()
    if args.database_url:
        compare("given database", args.database_url, args.rows, lambda: args.database_url)
        return 0
    from tests.servers import MariaDBServer

    with tempfile.TemporaryDirectory() as tmp:
        server = MariaDBServer(Path(tmp) / "mariadb")
        server.start()
        try:
            compare("MariaDB (throwaway server, innodb_flush_log_at_trx_commit=2)", server.create_database(),
                    args.rows, server.create_database)
        finally:
            server.stop()
        n = iter(range(100))
        compare("SQLite (WAL)", f"sqlite:///{tmp}/base.db", args.rows, lambda: f"sqlite:///{tmp}/b{next(n)}.db")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
