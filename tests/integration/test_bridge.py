"""The bridge as a real process between our Mosquitto and a real database."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from plantmodel import Reading, Topics, format_ts
from store import models as orm
from store.db import create_db_engine, make_sessionmaker
from tests.mqtt import Client
from tests.processes import Service, wait_for
from tests.servers import MariaDBServer, MosquittoServer
from tests.unit.test_model import EXAMPLE

pytestmark = pytest.mark.integration
Spawn = Callable[[str, list[str], dict[str, str]], Service]
T = Topics()
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def reading_payload(unit: int, automate: int, seq: int, **values: object) -> str:
    body = {**EXAMPLE, "unit": unit, "automate": automate, "seq": seq,
            "ts": format_ts(T0 + timedelta(seconds=seq)), **values}
    return Reading.from_dict(body).to_json()


def start_bridge(spawn: Spawn, mosquitto: MosquittoServer, url: str, user: str, **env: str) -> Service:
    """``user``: from ``mosquitto.bridge_user()``. The broker takes the user name as the client id,
    so a bridge user of its own is a persistent session of its own on the shared broker; its
    password comes from MQTT_CREDENTIALS_FILE."""
    bridge = spawn("bridge", ["bridge", "run"], {**mosquitto.env(), "DATABASE_URL": url,
                                                  "MQTT_USERNAME": user,
                                                  "BRIDGE_THRESHOLDS_POLL": "0.5", **env})
    wait_for(lambda: "connected to" in bridge.log(), 20, "the bridge to connect", services=[bridge])
    return bridge


def count(url: str, model: type, *where: object) -> int:
    engine = create_db_engine(url)
    try:
        with make_sessionmaker(engine)() as session:
            return session.scalar(select(func.count()).select_from(model).where(*where)) or 0
    finally:
        engine.dispose()


def test_readings_rejects_and_redelivery(mosquitto: MosquittoServer, database_url: str, spawn: Spawn) -> None:
    bridge = start_bridge(spawn, mosquitto, database_url, mosquitto.bridge_user())
    unit = Client(mosquitto, "unit-4")
    try:
        for seq in range(1, 101):
            unit.publish(T.reading(4, seq % 10 + 1), reading_payload(4, seq % 10 + 1, seq))
        bad = [
            (T.reading(4, 1), b"not json at all"),
            (T.reading(4, 1), b'{"unit": 4, "automate": 1, "ph": NaN}'),
            (T.reading(4, 1), reading_payload(4, 1, 500).replace('"ph":7.0', '"ph":"7"').encode()),
            (T.reading(4, 2), reading_payload(4, 3, 501).encode()),  # payload for another automate
            ("plant/units/4/whatever", b"{}"),
            (T.reading(4, 1), json.dumps({**json.loads(reading_payload(4, 1, 502)), "ph": 99}).encode()),
        ]
        for topic, payload in bad:
            unit.publish(topic, payload)
        # A redelivered (identical) reading is stored once.
        for seq in range(1, 11):
            unit.publish(T.reading(4, seq % 10 + 1), reading_payload(4, seq % 10 + 1, seq))
        for seq in range(101, 111):
            unit.publish(T.reading(4, seq % 10 + 1), reading_payload(4, seq % 10 + 1, seq))

        wait_for(lambda: count(database_url, orm.Reading) >= 110 and count(database_url, orm.RejectedMessage) >= 6,
                 30, "110 readings and 6 rejects", services=[bridge])
        assert count(database_url, orm.Reading) == 110
        engine = create_db_engine(database_url)
        with make_sessionmaker(engine)() as session:
            rejected = session.scalars(select(orm.RejectedMessage).order_by(orm.RejectedMessage.id)).all()
            row = session.scalar(select(orm.Reading).where(orm.Reading.seq == 57))
        engine.dispose()
        assert rejected[0].reason.startswith("reading is not valid JSON")
        assert rejected[1].reason == "NaN is not a number (JSON has no NaN or Infinity)"
        assert "must be a number" in rejected[2].reason
        assert "published on units/4/automates/2" in rejected[3].reason
        assert "unknown topic" in rejected[4].reason and rejected[4].topic == "plant/units/4/whatever"
        assert "absurd" in rejected[5].reason
        assert rejected[0].payload == "not json at all" and rejected[0].payload_bytes == 15
        expected = Reading.from_json(reading_payload(4, 8, 57))
        assert (row.unit_id, row.automate_no, row.ts) == (4, 8, expected.ts)
        assert {k: getattr(row, k) for k in expected.measures()} == expected.measures()
        assert bridge.alive()
    finally:
        unit.close()
        assert bridge.stop() == 0


def test_queued_while_down_and_killed_mid_stream(mosquitto: MosquittoServer, mariadb: MariaDBServer,
                                                 spawn: Spawn) -> None:
    """Persistent session: the broker queues for a stopped bridge; a bridge killed -9 mid-stream
    loses nothing, because what it did not commit it did not acknowledge."""
    url = mariadb.create_database()
    user = mosquitto.bridge_user()
    start_bridge(spawn, mosquitto, url, user).stop()  # registers the persistent session
    unit = Client(mosquitto, "unit-5")
    n = 3000
    try:
        for seq in range(1, n + 1):
            unit.publish(T.reading(5, seq % 10 + 1), reading_payload(5, seq % 10 + 1, seq))
    finally:
        unit.close()
    bridge = start_bridge(spawn, mosquitto, url, user, BRIDGE_BATCH_SIZE="20")
    wait_for(lambda: count(url, orm.Reading) > 0, 30, "the first rows", interval=0.02, services=[bridge])
    bridge.kill()
    stored_at_kill = count(url, orm.Reading)
    bridge = start_bridge(spawn, mosquitto, url, user)
    wait_for(lambda: count(url, orm.Reading) >= n, 60, f"{n} readings", services=[bridge])
    assert bridge.stop() == 0
    engine = create_db_engine(url)
    with make_sessionmaker(engine)() as session:
        seqs = sorted(session.scalars(select(orm.Reading.seq)))
    engine.dispose()
    print(f"bridge killed with {stored_at_kill} of {n} readings stored")
    assert seqs == list(range(1, n + 1)), f"killed with {stored_at_kill} stored"


def test_nothing_lost_when_killed_while_the_database_is_down(mosquitto: MosquittoServer, spawn: Spawn,
                                                            tmp_path: Path) -> None:
    """The bridge cannot commit, so it must not acknowledge: kill it, bring the database back,
    restart it, and every reading is there."""
    db = MariaDBServer(tmp_path / "mariadb")
    db.start()
    try:
        url = db.create_database()
        user = mosquitto.bridge_user()
        bridge = start_bridge(spawn, mosquitto, url, user)
        unit = Client(mosquitto, "unit-3")
        try:
            unit.publish(T.reading(3, 1), reading_payload(3, 1, 1))
            wait_for(lambda: count(url, orm.Reading) == 1, 20, "the first reading", services=[bridge])
            db.stop()
            for seq in range(2, 202):
                unit.publish(T.reading(3, seq % 10 + 1), reading_payload(3, seq % 10 + 1, seq))
            wait_for(lambda: "database write failed" in bridge.log(), 20, "a failed write", services=[bridge])
            bridge.kill()
        finally:
            unit.close()
        db.start()
        bridge = start_bridge(spawn, mosquitto, url, user)
        wait_for(lambda: count(url, orm.Reading) >= 201, 30, "all 201 readings", services=[bridge])
        assert bridge.stop() == 0
        assert count(url, orm.Reading) == 201
    finally:
        db.stop()
