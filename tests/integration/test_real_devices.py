"""Real device output through the real broker (our mosquitto.conf and ACL) and the real bridge:
Shelly Gen2 as shipped (RPC answers, partial NotifyStatus, full status with extra fields, a null
temperature, status/switch:0, errors, a counter reset), Shelly Gen1 plain values and announce, a
disabled device, and the readings of a legacy HTTP sender (no seq)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from plantmodel import Reading, Topics, format_ts
from store import models as orm
from store.db import create_db_engine, make_sessionmaker
from tests.integration.test_bridge import count, start_bridge
from tests.mqtt import Client
from tests.processes import Service, wait_for
from tests.servers import MosquittoServer
from tests.unit.test_model import EXAMPLE

pytestmark = pytest.mark.integration
Spawn = Callable[[str, list[str], dict[str, str]], Service]
T = Topics()


def rows(url: str, model: type, *where: Any, order: Any = None) -> list[Any]:
    engine = create_db_engine(url)
    try:
        with make_sessionmaker(engine)() as session:
            stmt = select(model).where(*where)
            return list(session.scalars(stmt.order_by(order) if order is not None else stmt))
    finally:
        engine.dispose()


def full_status(apower: float, total: float, **extra: Any) -> dict[str, Any]:
    """A Pro 1PM's switch:0 as firmware 1.x sends it (fields we do not store included)."""
    return {"id": 0, "source": "init", "output": True, "apower": apower, "voltage": 231.4, "freq": 50.0,
            "current": round(apower / 231.4, 3), "pf": 0.97,
            "aenergy": {"total": total, "by_minute": [120.5, 118.2, 119.9], "minute_ts": 1764590000},
            "ret_aenergy": {"total": 0.0, "by_minute": [0.0, 0.0, 0.0], "minute_ts": 1764590000},
            "temperature": {"tC": 41.2, "tF": 106.2}, **extra}


def test_shelly_gen2_as_shipped(mosquitto: MosquittoServer, database_url: str, spawn: Spawn) -> None:
    meter = mosquitto.layout.meters[0]
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    bridge = start_bridge(spawn, mosquitto, database_url, mosquitto.bridge_user())
    device = Client(mosquitto, meter, [f"{meter}/rpc"])
    try:
        device.publish(f"{meter}/online", "true")
        # The bridge asks for the full status and for what the device is: answer both, as the device does.
        wait_for(lambda: len(device.received(f"{meter}/rpc")) >= 2, 10, "the bridge's two requests",
                 services=[bridge])
        for _topic, payload, _r in device.received(f"{meter}/rpc"):
            req = json.loads(payload)
            if req["method"] == "Shelly.GetDeviceInfo":
                result: dict[str, Any] = {
                    "name": None, "id": meter, "mac": "A8032AB1C2D3", "slot": 0, "model": "SPSW-201XE16EU",
                    "gen": 2, "fw_id": "20230913-114244/1.0.3-gcb84623", "ver": "1.0.3", "app": "Pro1PM",
                    "auth_en": False, "auth_domain": None}
            else:
                assert req["method"] == "Shelly.GetStatus"
                result = {"ble": {}, "cloud": {"connected": False}, "mqtt": {"connected": True},
                          "switch:0": full_status(100.0, 1000.0),
                          "sys": {"mac": "A8032AB1C2D3", "unixtime": int(t0.timestamp()), "uptime": 3600},
                          "wifi": {"sta_ip": "192.0.2.10", "status": "got ip", "rssi": -58}}
            device.publish(f"{req['src']}/rpc", json.dumps({"id": req["id"], "src": meter, "dst": req["src"],
                                                            "result": result}))

        def notify(method: str, seconds: int, switch: dict[str, Any]) -> None:
            device.publish(f"{meter}/events/rpc", json.dumps({
                "src": meter, "dst": f"{meter}/events", "method": method,
                "params": {"ts": (t0 + timedelta(seconds=seconds)).timestamp(), "switch:0": switch}}))

        notify("NotifyStatus", 10, {"id": 0, "apower": 250.0})  # only what changed
        notify("NotifyFullStatus", 20, full_status(300.0, 1010.0, temperature={"tC": None, "tF": None},
                                                   new_field_of_2027={"x": 1}))
        device.publish(f"{meter}/events/rpc", json.dumps({   # a button event: nothing to store
            "src": meter, "dst": f"{meter}/events", "method": "NotifyEvent",
            "params": {"ts": t0.timestamp() + 21, "events": [{"component": "input:0", "event": "single_push"}]}}))
        notify("NotifyStatus", 30, {"id": 0, "errors": ["overtemp"]})
        notify("NotifyStatus", 40, {"id": 0, "aenergy": {"total": 2.5, "by_minute": [0, 0, 0],
                                                         "minute_ts": 1764590100}})  # reboot: counter reset
        device.publish(f"{meter}/status/switch:0", json.dumps(full_status(310.0, 3.0)))  # status_ntf

        wait_for(lambda: count(database_url, orm.PowerReading, orm.PowerReading.meter_id == meter) >= 6, 20,
                 "six power readings", services=[bridge])
        samples = rows(database_url, orm.PowerReading, orm.PowerReading.meter_id == meter,
                       order=orm.PowerReading.received_at)
        assert [s.apower for s in samples] == [100.0, 250.0, 300.0, 300.0, 300.0, 310.0]
        answer, partial, full, errored, reset, status_ntf = samples
        assert answer.ts == t0 and partial.ts == t0 + timedelta(seconds=10)
        assert partial.voltage == 231.4 and partial.energy_wh == 1000.0  # merged onto the last full state
        assert full.temperature_c is None and full.energy_wh == 1010.0  # null tolerated, unknown fields too
        assert errored.errors == "overtemp"
        # The reset: the device's counter as sent, what came before kept as the offset.
        assert (reset.energy_wh, reset.energy_offset_wh) == (2.5, 1010.0)
        # status/switch:0 carries no time: stored under the bridge's receive time (in the same offset).
        assert status_ntf.ts == status_ntf.received_at.replace(microsecond=status_ntf.received_at.microsecond
                                                               // 1000 * 1000)
        assert (status_ntf.energy_wh, status_ntf.energy_offset_wh, status_ntf.errors) == (3.0, 1010.0, None)
        alarms = rows(database_url, orm.Alarm, orm.Alarm.meter_id == meter, orm.Alarm.measure == "overtemp")
        assert [(a.value, a.state) for a in alarms] == [(1.0, "cleared")]  # the full status had no errors
        (registry,) = rows(database_url, orm.Device, orm.Device.device == f"meters/{meter}")
        assert (registry.model, registry.generation, registry.firmware) == ("SPSW-201XE16EU", 2, "1.0.3")
        assert registry.first_seen is not None and not registry.disabled
        assert count(database_url, orm.RejectedMessage) == 0
        assert bridge.alive()
    finally:
        device.close()
        assert bridge.stop() == 0


def test_shelly_gen1_plain_values(mosquitto: MosquittoServer, database_url: str, spawn: Spawn) -> None:
    gen1 = mosquitto.layout.meters[1]  # any meter id may speak Gen1 (shellies/<id>/…)
    bridge = start_bridge(spawn, mosquitto, database_url, mosquitto.bridge_user())
    device = Client(mosquitto, gen1)
    try:
        device.publish(f"shellies/{gen1}/online", "true")
        device.publish(f"shellies/{gen1}/announce", json.dumps({
            "id": gen1, "model": "SHSW-PM", "mac": "A4CF12F45E3B", "ip": "192.0.2.20", "new_fw": False,
            "fw_ver": "20230913-114244/v1.14.0-gcb84623"}))
        for topic, value in (("relay/0", "on"), ("relay/0/power", "42.5"), ("relay/0/energy", "600"),
                             ("temperature", "45.1"), ("input/0", "0")):
            device.publish(f"shellies/{gen1}/{topic}", value)
        # Each value is a row of the merged state at its receive time (values within one millisecond, one row).
        def latest() -> Any:
            found = rows(database_url, orm.PowerReading, orm.PowerReading.meter_id == gen1,
                         order=orm.PowerReading.received_at.desc())
            return found[0] if found else None

        wait_for(lambda: (r := latest()) is not None and r.temperature_c == 45.1, 20, "the temperature",
                 services=[bridge])
        first = latest()
        # 600 W·min = 10 Wh.
        assert (first.output, first.apower, first.energy_wh, first.energy_offset_wh) == (True, 42.5, 10.0, 0.0)
        device.publish(f"shellies/{gen1}/relay/0/energy", "30")  # rebooted: W·min from 0 again
        device.publish(f"shellies/{gen1}/overtemperature", "1")
        device.publish(f"shellies/{gen1}/relay/0/power", "forty")
        wait_for(lambda: (r := latest()) is not None and r.errors == "overtemp"
                 and count(database_url, orm.RejectedMessage) >= 1, 20, "the over-temperature and a reject",
                 services=[bridge])
        last = latest()
        # 30 W·min = 0.5 Wh after a reset, with the 10 Wh counted before kept as the offset.
        assert (last.output, last.apower, last.energy_wh, last.energy_offset_wh, last.temperature_c,
                last.errors) == (True, 42.5, 0.5, 10.0, 45.1, "overtemp")
        (registry,) = rows(database_url, orm.Device, orm.Device.device == f"meters/{gen1}")
        assert (registry.model, registry.generation, registry.firmware) == (
            "SHSW-PM", 1, "20230913-114244/v1.14.0-gcb84623")
        (alarm,) = rows(database_url, orm.Alarm, orm.Alarm.meter_id == gen1)
        assert (alarm.measure, alarm.state) == ("overtemp", "active")
        (rejected,) = rows(database_url, orm.RejectedMessage)
        assert rejected.topic == f"shellies/{gen1}/relay/0/power" and "must be a number" in rejected.reason
        assert bridge.alive()
    finally:
        device.close()
        assert bridge.stop() == 0


def test_a_disabled_device_is_rejected_and_legacy_readings_are_numbered(
        mosquitto: MosquittoServer, database_url: str, spawn: Spawn) -> None:
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    bridge = start_bridge(spawn, mosquitto, database_url, mosquitto.bridge_user())
    unit3, webui = Client(mosquitto, "unit-3"), Client(mosquitto, "webui")

    def reading(unit: int, seconds: int, seq: int | None) -> str:
        data = {**EXAMPLE, "unit": unit, "automate": 2, "ts": format_ts(t0 + timedelta(seconds=seconds))}
        data.pop("seq")
        return Reading.from_dict({**data, **({"seq": seq} if seq is not None else {})}).to_json()

    try:
        unit3.publish(T.reading(3, 2), reading(3, 0, 1))
        wait_for(lambda: count(database_url, orm.Device, orm.Device.device == "units/3") == 1, 20,
                 "unit 3 in the registry", services=[bridge])
        engine = create_db_engine(database_url)
        with make_sessionmaker(engine).begin() as session:
            session.execute(update(orm.Device).where(orm.Device.device == "units/3").values(disabled=True))
        engine.dispose()
        wait_for(lambda: "disabled devices: units/3" in bridge.log(), 10, "the bridge to see it", services=[bridge])
        unit3.publish(T.reading(3, 2), reading(3, 60, 2))
        # What the web UI publishes for a legacy HTTP sender: no seq; the bridge numbers them.
        for seconds in (0, 60, 60):  # (the last one a retry of the same POST)
            webui.publish(T.legacy_reading(1, 2), reading(1, seconds, None))
        wait_for(lambda: count(database_url, orm.RejectedMessage) >= 1
                 and count(database_url, orm.Reading, orm.Reading.unit_id == 1) >= 2, 20,
                 "a reject and two legacy readings", services=[bridge])
        (rejected,) = rows(database_url, orm.RejectedMessage)
        assert rejected.reason == "device units/3 is disabled by an administrator: its data is not stored"
        assert count(database_url, orm.Reading, orm.Reading.unit_id == 3) == 1
        legacy = rows(database_url, orm.Reading, orm.Reading.unit_id == 1, order=orm.Reading.ts)
        assert [r.seq for r in legacy] == [0, 1]
        assert bridge.alive()
    finally:
        unit3.close()
        webui.close()
        assert bridge.stop() == 0
