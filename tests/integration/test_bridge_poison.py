"""A message the model accepts but the database refuses is isolated, recorded with the database's
reason and acknowledged; everything around it is committed and ingestion goes on."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from store import models as orm
from store.db import create_db_engine, init_schema, make_sessionmaker
from tests.integration.test_bridge import T, count, reading_payload, start_bridge
from tests.mqtt import Client
from tests.processes import Service, wait_for
from tests.servers import MariaDBServer, MosquittoServer

pytestmark = pytest.mark.integration
Spawn = Callable[[str, list[str], dict[str, str]], Service]


def test_a_reading_the_database_refuses_is_isolated_and_the_rest_stored(
        mosquitto: MosquittoServer, mariadb: MariaDBServer, spawn: Spawn) -> None:
    url = mariadb.create_database()
    engine = create_db_engine(url)
    init_schema(engine)
    # A value the model lets through but this database refuses (a DBA's constraint; the same
    # happened with seq = 2**63 in a BIGINT before the model checked it): 120 °C is plausible.
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE readings ADD CONSTRAINT ck_poison CHECK (tank_temp_c < 100)"))
    engine.dispose()
    user = mosquitto.bridge_user()
    start_bridge(spawn, mosquitto, url, user).stop()  # the persistent session queues what follows
    unit = Client(mosquitto, "unit-2")
    try:
        for seq in range(0, 60):
            payload = reading_payload(2, 1, seq)
            if seq == 31:
                payload = json.dumps({**json.loads(payload), "tank_temp_c": 120})
            unit.publish(T.reading(2, 1), payload)
    finally:
        unit.close()
    bridge = start_bridge(spawn, mosquitto, url, user)  # 60 queued messages: one batch
    wait_for(lambda: count(url, orm.Reading) >= 59 and count(url, orm.RejectedMessage) >= 1, 30,
             "59 readings and the refused one recorded", services=[bridge])
    engine = create_db_engine(url)
    with make_sessionmaker(engine)() as session:
        seqs = sorted(session.scalars(select(orm.Reading.seq)))
        (rejected,) = session.scalars(select(orm.RejectedMessage)).all()
    engine.dispose()
    assert seqs == [s for s in range(60) if s != 31]
    assert rejected.reason.startswith("the database refused it") and "ck_poison" in rejected.reason
    assert '"tank_temp_c": 120' in rejected.payload
    assert "splitting it" in bridge.log()
    # Acknowledged: a restarted bridge does not get it again, and ingestion goes on.
    bridge.stop()
    unit = Client(mosquitto, "unit-2")
    try:
        unit.publish(T.reading(2, 1), reading_payload(2, 1, 60))
    finally:
        unit.close()
    bridge = start_bridge(spawn, mosquitto, url, user)
    wait_for(lambda: count(url, orm.Reading) >= 60, 20, "the next reading", services=[bridge])
    assert count(url, orm.RejectedMessage) == 1
    assert bridge.stop() == 0
