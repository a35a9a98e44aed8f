"""Several bridges sharing the stream (MQTT shared subscription), and the bridge's metrics endpoint."""

from __future__ import annotations

import re
import urllib.request
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from plantmodel import Reading
from store import models as orm
from store import queries
from store.db import create_db_engine, make_sessionmaker
from tests.integration.test_bridge import T0, Spawn, T, count, reading_payload
from tests.mqtt import Client
from tests.processes import Service, wait_for
from tests.servers import MariaDBServer, MosquittoServer, free_port

pytestmark = pytest.mark.integration


def start(spawn: Spawn, name: str, mosquitto: MosquittoServer, url: str, user: str, group: str,
          metrics_port: int) -> Service:
    bridge = spawn(name, ["bridge", "run"], {
        **mosquitto.env(), "DATABASE_URL": url, "MQTT_USERNAME": user, "BRIDGE_SHARE_GROUP": group,
        "BRIDGE_METRICS_PORT": str(metrics_port), "BRIDGE_BATCH_SIZE": "50"})
    wait_for(lambda: "connected to" in bridge.log(), 20, f"{name} to connect", services=[bridge])
    return bridge


def metric(port: int, name: str, labels: str = "") -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    pattern = rf"^{re.escape(name)}{re.escape('{' + labels + '}') if labels else ''} (\S+)$"
    found = re.search(pattern, text, re.MULTILINE)
    assert found is not None, f"{name}{{{labels}}} not in the metrics"
    return float(found.group(1))


def test_two_bridges_share_the_stream_one_is_killed_nothing_lost_or_doubled_one_alarm(
        mosquitto: MosquittoServer, mariadb: MariaDBServer, spawn: Spawn, tmp_path: Path) -> None:
    """Two bridges, one shared subscription: each stores part of the stream. Automate 1's tank
    temperature jitters at its limit (4.6, 3.95 within the deadband …) and its readings reach both
    bridges in turn: one alarm, not two. One bridge is SIGKILLed mid-stream and restarted: every
    reading is stored exactly once."""
    url = mariadb.create_database()
    group = f"g{uuid.uuid4().hex[:8]}"
    users = [mosquitto.bridge_user(), mosquitto.bridge_user()]
    ports = [free_port(), free_port()]
    a = start(spawn, "bridge-a", mosquitto, url, users[0], group, ports[0])
    b = start(spawn, "bridge-b", mosquitto, url, users[1], group, ports[1])
    unit = Client(mosquitto, "unit-2")
    n = 1200
    try:
        for i in range(n):
            automate, seq = i % 4 + 1, i // 4  # each automate counts its own readings
            temp = (4.6 if seq % 2 == 0 else 3.95) if automate == 1 else 3.4
            unit.publish(T.reading(2, automate), reading_payload(2, automate, seq, tank_temp_c=temp, boot="b1"))
            if i == n // 2:
                wait_for(lambda: count(url, orm.Reading) > 0, 30, "the first rows", services=[a, b])
                a.kill()
        a = start(spawn, "bridge-a", mosquitto, url, users[0], group, ports[0])
        wait_for(lambda: count(url, orm.Reading) >= n, 60, f"{n} readings", services=[a, b])
    finally:
        unit.close()

    engine = create_db_engine(url)
    with make_sessionmaker(engine)() as session:
        seqs = sorted(session.scalars(select(orm.Reading.seq * 4 + orm.Reading.automate_no - 1)))
        alarms = list(session.scalars(select(orm.Alarm)))
        sequences = {s.automate_no: s.confirmed for s in session.scalars(select(orm.AutomateSequence))}
        stored_at = list(session.scalars(select(orm.Reading.stored_at)))
    engine.dispose()
    assert seqs == list(range(n))  # nothing lost, nothing twice
    assert [(x.source, x.measure, x.state) for x in alarms] == [("units/2/automates/1", "tank_temp_c", "active")]
    assert sequences == {a: n // 4 - 1 for a in range(1, 5)}  # every seq settled: no gap left open
    assert all(t is not None for t in stored_at)
    # Both took part (b from the start; a after its restart).
    assert metric(ports[1], "bridge_rows_stored_total", 'kind="reading"') > 0
    assert metric(ports[0], "bridge_rows_stored_total", 'kind="reading"') > 0
    assert a.stop() == 0 and b.stop() == 0


def metric_text(port: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()


def test_metrics_endpoint_names_and_values(mosquitto: MosquittoServer, mariadb: MariaDBServer, spawn: Spawn) -> None:
    url = mariadb.create_database()
    user = mosquitto.bridge_user()
    port = free_port()
    bridge = start(spawn, "bridge", mosquitto, url, user, user, port)
    text = metric_text(port)
    for name in ("bridge_messages_received_total", "bridge_rows_stored_total", "bridge_messages_rejected_total",
                 "bridge_batch_size", "bridge_queue_depth", "bridge_commit_seconds", "bridge_ingest_age_seconds",
                 "bridge_db_errors_total", "bridge_mqtt_reconnects_total", "bridge_mqtt_connected",
                 "bridge_active_alarms"):
        assert f"\n{name}" in text, name
    assert metric(port, "bridge_mqtt_connected") == 1
    before = metric(port, "bridge_messages_received_total")
    unit = Client(mosquitto, "unit-3")
    try:
        for seq in range(20):
            unit.publish(T.reading(3, 1), reading_payload(3, 1, seq, ph=7.9 if seq == 19 else 7.0))
        unit.publish(T.reading(3, 1), b"not json")
    finally:
        unit.close()
    wait_for(lambda: metric(port, "bridge_messages_received_total") >= before + 21, 20, "21 messages counted",
             services=[bridge])
    assert metric(port, "bridge_rows_stored_total", 'kind="reading"') == 20
    assert metric(port, "bridge_messages_rejected_total", 'reason="malformed"') == 1
    assert metric(port, "bridge_active_alarms") == 1
    assert metric(port, "bridge_ingest_age_seconds_count") == 20
    assert metric(port, "bridge_batch_size_count") >= 1
    assert bridge.stop() == 0


def test_a_reading_another_writer_stored_meanwhile_is_a_duplicate_or_a_conflict_never_lost(
        mosquitto: MosquittoServer, mariadb: MariaDBServer, spawn: Spawn) -> None:
    """Readings above everything a bridge has settled are written without being looked up first.
    When another writer stored one meanwhile, the unique key refuses it and the bridge redoes the
    batch with every key looked up: the same reading is a duplicate, another one a conflict."""
    url = mariadb.create_database()
    user = mosquitto.bridge_user()
    bridge = start(spawn, "bridge", mosquitto, url, user, user, 0)
    unit = Client(mosquitto, "unit-4")
    try:
        for seq in range(5):
            unit.publish(T.reading(4, 1), reading_payload(4, 1, seq, boot="b1"))
        wait_for(lambda: count(url, orm.Reading) >= 5, 20, "5 readings", services=[bridge])
        # Another bridge stores seq 5 as the unit sent it, and a different seq 6, then bumps the version.
        engine = create_db_engine(url)
        with make_sessionmaker(engine).begin() as session:
            queries.lock_sources(session, ["units/4/automates/1"])
            queries.insert_readings(session, [
                (Reading.from_json(reading_payload(4, 1, 5, boot="b1")), T0),
                (Reading.from_json(reading_payload(4, 1, 6, ph=7.2, boot="b1")), T0)])
            queries.bump_versions(session, ["units/4/automates/1"])
        engine.dispose()
        unit.publish(T.reading(4, 1), reading_payload(4, 1, 5, boot="b1"))
        unit.publish(T.reading(4, 1), reading_payload(4, 1, 6, boot="b1"))  # ph 7.0: not what is stored
        unit.publish(T.reading(4, 1), reading_payload(4, 1, 7, boot="b1"))
        wait_for(lambda: count(url, orm.Reading) >= 8 and count(url, orm.RejectedMessage) >= 1, 20,
                 "seq 7 stored and seq 6 rejected", services=[bridge])
    finally:
        unit.close()
    assert "redoing the batch with every key looked up" in bridge.log()
    engine = create_db_engine(url)
    with make_sessionmaker(engine)() as session:
        (rejected,) = session.scalars(select(orm.RejectedMessage)).all()
        seq6 = session.scalar(select(orm.Reading).where(orm.Reading.seq == 6))
    engine.dispose()
    assert "conflicts with the stored reading" in rejected.reason and f"id {seq6.id}" in rejected.reason
    assert seq6.ph == 7.2 and count(url, orm.Reading) == 8
    assert bridge.stop() == 0 and "internal_errors=0" in bridge.log()


def test_a_retired_bridge_leaves_the_group_after_storing_its_share(
        mosquitto: MosquittoServer, mariadb: MariaDBServer, spawn: Spawn) -> None:
    """A stopped bridge's session keeps taking its turn of the stream. ``bridge leave`` stores what
    it holds and unsubscribes: from then on the other bridge gets everything."""
    url = mariadb.create_database()
    group = f"g{uuid.uuid4().hex[:8]}"
    users = [mosquitto.bridge_user(), mosquitto.bridge_user()]
    a = start(spawn, "bridge-a", mosquitto, url, users[0], group, 0)
    b = start(spawn, "bridge-b", mosquitto, url, users[1], group, 0)
    assert b.stop() == 0  # b's session stays in the group
    unit = Client(mosquitto, "unit-5")
    try:
        for seq in range(200):
            unit.publish(T.reading(5, 1), reading_payload(5, 1, seq, boot="b1"))
        wait_for(lambda: count(url, orm.Reading) >= 80, 20, "a's share", services=[a])
        assert count(url, orm.Reading) < 200  # the rest waits for b
        leave = spawn("bridge-b-leave", ["bridge", "leave"], {
            **mosquitto.env(), "DATABASE_URL": url, "MQTT_USERNAME": users[1], "BRIDGE_SHARE_GROUP": group,
            "BRIDGE_METRICS_PORT": "0"})
        wait_for(lambda: not leave.alive(), 40, "bridge leave to finish", services=[leave])
        assert leave.proc.returncode == 0 and "left the group" in leave.log()
        assert count(url, orm.Reading) == 200
        for seq in range(200, 300):
            unit.publish(T.reading(5, 1), reading_payload(5, 1, seq, boot="b1"))
        wait_for(lambda: count(url, orm.Reading) >= 300, 20, "all of it through a", services=[a])
    finally:
        unit.close()
    assert a.stop() == 0


def test_partitioned_bridges_share_no_source(mosquitto: MosquittoServer, mariadb: MariaDBServer,
                                             spawn: Spawn) -> None:
    """BRIDGE_PARTITION=k/n: each bridge takes its units (and meters) only, so the two never wait for
    each other's locks; together they store everything."""
    url = mariadb.create_database()
    group = f"g{uuid.uuid4().hex[:8]}"
    users = [mosquitto.bridge_user(), mosquitto.bridge_user()]
    bridges = []
    for k, user in enumerate(users, start=1):
        bridge = spawn(f"bridge-{k}", ["bridge", "run"], {
            **mosquitto.env(), "DATABASE_URL": url, "MQTT_USERNAME": user, "BRIDGE_SHARE_GROUP": group,
            "BRIDGE_PARTITION": f"{k}/2", "BRIDGE_METRICS_PORT": "0"})
        wait_for(lambda b=bridge: "connected to" in b.log(), 20, f"bridge {k}", services=[bridge])  # type: ignore[misc]
        bridges.append(bridge)
    units = [Client(mosquitto, f"unit-{u}") for u in (1, 2, 3)]
    try:
        for seq in range(50):
            for u, unit in enumerate(units, start=1):
                unit.publish(T.reading(u, 1), reading_payload(u, 1, seq, boot="b1"))
        wait_for(lambda: count(url, orm.Reading) >= 150, 30, "150 readings", services=bridges)
    finally:
        for unit in units:
            unit.close()
    engine = create_db_engine(url)
    with make_sessionmaker(engine)() as session:
        seqs = orm.AutomateSequence
        confirmed = {u: c for u, c in session.execute(select(seqs.unit_id, seqs.confirmed))}
    engine.dispose()
    assert confirmed == {1: 49, 2: 49, 3: 49}
    for k, bridge in enumerate(bridges, start=1):
        assert bridge.stop() == 0
        mine = {1, 3} if k == 1 else {2}
        assert f"readings={50 * len(mine)} " in bridge.log()  # its own units' readings, all of them


def test_an_automate_deleted_under_the_bridge_is_created_again(mosquitto: MosquittoServer, mariadb: MariaDBServer,
                                                              spawn: Spawn) -> None:
    """The bridge remembers which automates exist (no upsert per batch); if one disappears (a
    restore, a DBA's cleanup), its next readings are stored all the same, not rejected."""
    url = mariadb.create_database()
    user = mosquitto.bridge_user()
    bridge = start(spawn, "bridge", mosquitto, url, user, user, 0)
    unit = Client(mosquitto, "unit-3")
    try:
        unit.publish(T.reading(3, 2), reading_payload(3, 2, 0, boot="b1"))
        wait_for(lambda: count(url, orm.Reading) >= 1, 20, "the first reading", services=[bridge])
        engine = create_db_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.delete(orm.Reading.__table__))
            conn.execute(sa.delete(orm.Automate.__table__))
        engine.dispose()
        unit.publish(T.reading(3, 2), reading_payload(3, 2, 1, boot="b1"))
        wait_for(lambda: count(url, orm.Reading) >= 1, 20, "the next reading", services=[bridge])
    finally:
        unit.close()
    assert count(url, orm.RejectedMessage) == 0 and count(url, orm.Automate) == 1
    assert "creating it again" in bridge.log()
    assert bridge.stop() == 0
