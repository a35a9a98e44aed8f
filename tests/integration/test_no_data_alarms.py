"""No-data and probe-fault alarms, raised by the bridge's timer: the real bridge process between
our Mosquitto and a real database (MariaDB and SQLite)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from plantmodel import Reading, Topics, format_ts
from plantmodel.layout import PlantLayout
from store import models as orm
from store import queries
from store.db import create_db_engine, init_schema, make_sessionmaker
from tests.integration.test_bridge import start_bridge
from tests.mqtt import Client
from tests.processes import Service, wait_for
from tests.servers import MosquittoServer
from tests.unit.test_model import EXAMPLE

pytestmark = pytest.mark.integration
Spawn = Callable[[str, list[str], dict[str, str]], Service]
T = Topics()
PERIOD = 1.0  # s: BRIDGE_REPORT_PERIOD; the default no_data threshold is 2.5 periods
ENV = {"BRIDGE_REPORT_PERIOD": str(PERIOD), "BRIDGE_HEALTH_TICK": "0.2", "PLANT_UNITS": "2",
       "PLANT_AUTOMATES": "2", "PLANT_METER_COUNT": "0"}


def alarms(url: str) -> list[orm.Alarm]:
    engine = create_db_engine(url)
    try:
        with make_sessionmaker(engine)() as session:
            rows = list(session.scalars(select(orm.Alarm).order_by(orm.Alarm.id)))
            session.expunge_all()
            return rows
    finally:
        engine.dispose()


def active(url: str) -> set[tuple[str, str]]:
    return {(a.source, a.measure) for a in alarms(url) if a.state == "active"}


@contextmanager
def reporting(mosquitto: MosquittoServer, plan: dict[int, str]) -> Iterator[dict[int, str]]:
    """Unit 1 publishes for each automate of ``plan`` every PERIOD/3: "valid" or "invalid" (−273 °C)
    readings, or nothing ("silent"); the caller changes ``plan`` while it runs."""
    unit = Client(mosquitto, "unit-1")
    stop = threading.Event()

    def run() -> None:
        seq = 0
        while not stop.wait(PERIOD / 3):
            seq += 1
            for automate, how in list(plan.items()):
                if how == "silent":
                    continue
                body = {**EXAMPLE, "unit": 1, "automate": automate, "seq": seq,
                        "ts": format_ts(datetime.now(UTC)), "boot": "nodata"}
                payload = json.dumps({**body, "tank_temp_c": -273}) if how == "invalid" \
                    else Reading.from_dict(body).to_json()
                with suppress(RuntimeError):  # no broker just now (an outage test): this one is lost
                    unit.publish(T.reading(1, automate), payload)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield plan
    finally:
        stop.set()
        thread.join(5)
        unit.close()


def test_silence_and_rejections_raise_and_clear(mosquitto: MosquittoServer, database_url: str,
                                                spawn: Spawn) -> None:
    engine = create_db_engine(database_url)
    init_schema(engine)
    with make_sessionmaker(engine).begin() as session:  # unit 2 is disabled: it is not expected
        queries.register_device(session, "units/2", {"disabled": True}, datetime.now(UTC), "test")
    engine.dispose()
    bridge = start_bridge(spawn, mosquitto, database_url, mosquitto.bridge_user(), **ENV)
    with reporting(mosquitto, {1: "valid", 2: "invalid"}) as plan:
        wait_for(lambda: {("units/1/automates/2", "no_data"), ("units/1/automates/2", "probe_fault")}
                 <= active(database_url), 30, "no data and probe fault on automate 2", services=[bridge])
        fault = next(a for a in alarms(database_url) if a.measure == "probe_fault")
        assert fault.detail and "tank_temp_c" in fault.detail, fault.detail
        assert fault.severity == "critical" and fault.value >= 3
        plan[2] = "valid"
        wait_for(lambda: not active(database_url), 30, "both cleared by valid data", services=[bridge])
        # Automate 1 always reported; unit 2 is disabled: neither ever raised anything.
        assert {a.source for a in alarms(database_url)} == {"units/1/automates/2"}
        assert {a.measure for a in alarms(database_url)} == {"no_data", "probe_fault"}
        plan[1] = "silent"
        wait_for(lambda: ("units/1/automates/1", "no_data") in active(database_url), 30,
                 "no data on automate 1 once it falls silent", services=[bridge])
        plan[1] = "valid"
        wait_for(lambda: not active(database_url), 30, "cleared again", services=[bridge])
    assert "Traceback" not in bridge.log()


def test_a_restart_raises_no_storm(mosquitto: MosquittoServer, tmp_path: Path, spawn: Spawn) -> None:
    # A longer period: the restart's own time must not count as silence. (SQLite only: this is the
    # bridge's own clock logic; the MariaDB side of these alarms is the test above.)
    database_url = f"sqlite:///{tmp_path / 'plant.db'}"
    env = {**ENV, "BRIDGE_REPORT_PERIOD": "2", "PLANT_UNITS": "1"}
    bridge = start_bridge(spawn, mosquitto, database_url, mosquitto.bridge_user(), **env)
    with reporting(mosquitto, {1: "valid", 2: "valid"}):
        wait_for(lambda: _stored(database_url) >= 4, 30, "readings stored",
                 services=[bridge])
    assert bridge.stop() == 0
    # Everything was silent while the bridge was down for longer than the 2.5 periods' limit… but
    # each source gets its periods again from the start: reporting resumes in time, nothing is raised.
    time.sleep(6)  # three periods of silence: what a storm would be made of
    stored = _stored(database_url)
    bridge = start_bridge(spawn, mosquitto, database_url, mosquitto.bridge_user(), **env)
    time.sleep(2)  # one period after the start, the units report again: well within their 2.5
    with reporting(mosquitto, {1: "valid", 2: "valid"}):
        wait_for(lambda: _stored(database_url) >= stored + 20, 60, "readings after the restart", services=[bridge])
    assert alarms(database_url) == []


def _stored(url: str) -> int:
    engine = create_db_engine(url)
    try:
        with make_sessionmaker(engine)() as session:
            return len(session.scalars(select(orm.Reading.id)).all())
    finally:
        engine.dispose()


def test_a_broker_outage_is_not_the_devices_silence(tmp_path: Path, spawn: Spawn) -> None:
    """The bridge cut from the broker for longer than the no-data limit stores nothing meanwhile
    (the broker holds the messages): that time is excused, so no source raises "no data" during
    the outage or when it ends — a storm about the bridge, none about a probe. (Own broker: the
    session's is shared. SQLite: the excuse is the bridge's own clock logic, not the database's.)"""
    broker = MosquittoServer(tmp_path / "broker", PlantLayout(units=1, automates=2, meters=()))
    broker.start()
    url = f"sqlite:///{tmp_path / 'plant.db'}"
    try:
        bridge = start_bridge(spawn, broker, url, broker.bridge_user(), **{**ENV, "PLANT_UNITS": "1"})
        with reporting(broker, {1: "valid", 2: "valid"}):
            wait_for(lambda: _stored(url) >= 6, 30, "readings stored", services=[bridge])
            broker.stop()
            time.sleep(4 * PERIOD)  # beyond the 2.5 periods' limit, with the bridge's timer running
            assert alarms(url) == [], "no data raised while the bridge, not the devices, was cut off"
            stored = _stored(url)
            broker.start()
            wait_for(lambda: _stored(url) >= stored + 12, 60, "readings after the outage", services=[bridge])
        assert alarms(url) == []
    finally:
        broker.stop()
