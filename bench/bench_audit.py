"""What the audit trail's hash chain costs, and how fast ``audit verify`` reads it.

    .venv/bin/python -m bench.bench_audit [--entries 3000] [--writers 4]

On a throwaway MariaDB: the baseline appends the same entries to a plain copy of ``audit_log``
(no chain: one INSERT per entry, each in its own transaction, as an acknowledgement or a threshold
change writes it); then ``store.audit.append`` (head read under lock, hash, insert) by one writer
and by several at once; then ``store.audit.verify`` over the whole chain. Prints entries/s and
the ratios to the baseline.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

from sqlalchemy import Engine, text

from plantmodel.readings import utcnow
from store import audit as trail
from store.db import create_db_engine, init_schema, make_sessionmaker
from tests.servers import MariaDBServer

DETAILS = {"alarm": 42, "note": "Lot 7 held, probe recalibrated", "disposition": "hold"}


def plain(engine: Engine, n: int) -> float:
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE audit_plain LIKE audit_log"))
        conn.execute(text("ALTER TABLE audit_plain DROP INDEX uq_audit_log_prev_hash"))
    t0 = time.perf_counter()
    for i in range(n):
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO audit_plain (at, actor, address, action, details, prev_hash, hash) "
                              "VALUES (:at, 'operator', '10.0.0.7', 'alarm.acknowledge', :d, '', '')"),
                         {"at": utcnow().replace(tzinfo=None), "d": trail.canonical_details({**DETAILS, "i": i})})
    return time.perf_counter() - t0


def chained(engine: Engine, n: int, writers: int) -> float:
    sessions = make_sessionmaker(engine)

    def write(k: int) -> None:
        for i in range(k):
            with sessions.begin() as session:
                trail.append(session, "alarm.acknowledge", {**DETAILS, "i": i}, at=utcnow(), actor="operator",
                             address="10.0.0.7")

    threads = [threading.Thread(target=write, args=(n // writers,)) for _ in range(writers)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=3000)
    parser.add_argument("--writers", type=int, default=4)
    args = parser.parse_args()
    n = args.entries
    with tempfile.TemporaryDirectory() as tmp:
        db = MariaDBServer(Path(tmp) / "mariadb")
        db.start()
        try:
            engine = create_db_engine(db.create_database("bench_audit"))
            init_schema(engine)
            base = plain(engine, n)
            print(f"baseline, plain INSERT (no chain):  {n / base:7.0f} entries/s")
            one = chained(engine, n, 1)
            print(f"chained, 1 writer:                  {n / one:7.0f} entries/s  ratio {base / one:.2f}")
            n_many = n // args.writers * args.writers
            many = chained(engine, n_many, args.writers)
            print(f"chained, {args.writers} writers at once:         {n_many / many:7.0f} entries/s  "
                  f"ratio {(n_many / many) / (n / base):.2f}")
            with make_sessionmaker(engine)() as session:
                t0 = time.perf_counter()
                result = trail.verify(session)
                took = time.perf_counter() - t0
            assert result.ok and result.entries == n + n_many, result
            print(f"verify {result.entries} entries:            {result.entries / took:7.0f} entries/s "
                  f"({took:.2f} s, intact)")
            engine.dispose()
        finally:
            db.stop()


if __name__ == "__main__":
    main()
