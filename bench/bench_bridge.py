"""Bridge drain rate: how fast a backlog queued at the broker (the bridge was down) reaches MariaDB.

    .venv/bin/python -m bench.bench_bridge [--readings 20000]

Starts our Mosquitto and a throwaway MariaDB, queues the backlog for the bridge's persistent
session, then times the real bridge process draining it, with BRIDGE_BATCH_SIZE=1 (baseline:
one commit and one ack per message) and with the default 500. Prints readings/s and the ratio.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from plantmodel import Reading, Topics
from plantmodel.layout import PlantLayout
from store import models as orm
from store.db import create_db_engine, make_sessionmaker
from tests.mqtt import Client
from tests.processes import Service, wait_for
from tests.servers import MariaDBServer, MosquittoServer


def drain(broker: MosquittoServer, db: MariaDBServer, n: int, batch: int, tmp: Path) -> float:
    # A bridge user of its own per run: its own persistent session (the broker takes the user name
    # as the client id), so each run drains only its backlog.
    url = db.create_database()
    env = {**broker.env(), "DATABASE_URL": url, "MQTT_USERNAME": broker.bridge_user(), "BRIDGE_BATCH_SIZE": str(batch)}
    bridge = Service(f"bridge-{batch}", ["bridge", "run"], env, tmp)
    wait_for(lambda: "connected to" in bridge.log(), 20, "bridge", services=[bridge])
    bridge.stop()  # the broker now queues for this persistent session
    topics, start = Topics(), datetime.now(UTC) - timedelta(days=1)
    unit = Client(broker, "unit-1")
    for i in range(n):
        a = i % 10 + 1
        r = Reading(1, a, PlantLayout.automate_type(1, a), i, start + timedelta(milliseconds=i),
                    3.4, 11.2, 4012, 35, 7.0, 41, 1.3, 22, 40, 31)
        info = unit.client.publish(topics.reading(1, a), r.to_json(), qos=1)
        if i % 500 == 499 or i == n - 1:  # stay inside the client's bounded queue (1000)
            info.wait_for_publish(30)
    unit.close()
    engine = create_db_engine(url)

    def stored() -> int:
        with make_sessionmaker(engine)() as s:
            return s.scalar(select(func.count()).select_from(orm.Reading)) or 0

    t0 = time.perf_counter()
    bridge = Service(f"bridge-{batch}", ["bridge", "run"], env, tmp)
    wait_for(lambda: stored() >= n, 600, f"{n} readings", interval=0.1, services=[bridge])
    elapsed = time.perf_counter() - t0
    bridge.stop()
    engine.dispose()
    rate = n / elapsed
    print(f"  batch {batch:>4}: {n} readings drained in {elapsed:6.2f} s (incl. start-up) = {rate:7.0f}/s", flush=True)
    return rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readings", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        broker = MosquittoServer(Path(tmp) / "broker", PlantLayout())
        db = MariaDBServer(Path(tmp) / "mariadb")
        broker.start()
        db.start()
        try:
            print("Bridge drain, MariaDB (throwaway server):")
            base = drain(broker, db, max(args.readings // 10, 1000), 1, Path(tmp))
            rate = drain(broker, db, args.readings, 500, Path(tmp))
            print(f"  -> batch 500 drains {rate / base:.1f}x faster than one commit per message")
        finally:
            db.stop()
            broker.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
