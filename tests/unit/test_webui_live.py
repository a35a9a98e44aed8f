"""The web UI's MQTT -> Socket.IO translation and the live feed's routing, without a broker."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from plantmodel import shelly
from plantmodel.mqtt import MqttSettings
from plantmodel.readings import Reading
from plantmodel.shelly import PowerSample
from plantmodel.sources import AutomateSource, MeterSource
from plantmodel.status import DeviceStatus
from plantmodel.thresholds import Alarm
from plantmodel.topics import Topics
from store import queries
from store.db import make_sessionmaker
from tests.webapp import new_database, seed_plant
from webui.live import LiveFeed, LiveTranslator, LiveUpdate

TS = datetime(2026, 11, 21, 10, 15, tzinfo=UTC)
NOW = datetime(2026, 11, 21, 10, 20, tzinfo=UTC)
DEVICE_TS = datetime(2026, 11, 21, 10, 16, 40, 500_000, tzinfo=UTC)  # a Shelly's own clock
METER = "shellypro1pm-a8032ab1c2d3"
TOPICS = Topics("plant")


def make_reading(unit: int = 1, automate: int = 2, **values: float) -> Reading:
    base: dict[str, Any] = dict(tank_temp_c=3.2, ext_temp_c=11.4, milk_kg=4000, product_kg=12, ph=7.0,
                                k_mg_l=40, nacl_g_l=1.3, salmonella_ppm=20, ecoli_ppm=40, listeria_ppm=30)
    return Reading(unit=unit, automate=automate, type="0x0000BA27", seq=5, ts=TS, **{**base, **values})


@pytest.fixture
def tr() -> LiveTranslator:
    translator = LiveTranslator(TOPICS, clock=lambda: NOW)
    translator.seed(PowerSample(meter=METER, ts=TS, output=True, apower=100.0, voltage=230.1, current=0.45,
                                freq=50.0, pf=0.97, energy_wh=1234.5, ret_energy_wh=0.0, temperature_c=41.2))
    return translator


def notify(method: str, switch: dict[str, Any], ts: float = DEVICE_TS.timestamp()) -> bytes:
    return shelly.notification(METER, method, {"ts": ts, "switch:0": switch}).encode()


def test_reading_becomes_one_reading_event(tr: LiveTranslator) -> None:
    reading = make_reading(ph=7.4)
    events = tr.translate(TOPICS.reading(1, 2), reading.to_json().encode())
    assert events == [LiveUpdate("readings", "units/1/automates/2", reading.to_dict())]
    data = events[0].data
    assert (data["unit"], data["automate"], data["ph"], data["ts"]) == (1, 2, 7.4, "2026-11-21T10:15:00.000Z")


def test_unit_status_becomes_status_event(tr: LiveTranslator) -> None:
    events = tr.translate(TOPICS.unit_status(3), DeviceStatus("offline", TS).to_json().encode())
    assert events == [LiveUpdate("status", "units/3", {"device": "units/3", "state": "offline",
                                                       "ts": "2026-11-21T10:15:00.000Z"})]


def test_meter_online_becomes_status_event(tr: LiveTranslator) -> None:
    events = tr.translate(Topics.shelly(METER, "online"), b"false")
    assert events == [LiveUpdate("status", f"meters/{METER}", {"device": f"meters/{METER}", "state": "offline",
                                                               "ts": "2026-11-21T10:20:00.000Z"})]


def test_alarm_becomes_alarm_event(tr: LiveTranslator) -> None:
    alarm = Alarm(AutomateSource(1, 2), "ph", 7.5, 7.2, "high", "warning", "active", TS, TS)
    events = tr.translate(TOPICS.alarm(alarm.source, "ph"), alarm.to_json().encode())
    assert events == [alarm]  # the feed adds the database row's id before sending it


def test_notify_status_partial_merges_into_seeded_state(tr: LiveTranslator) -> None:
    partial = notify("NotifyStatus", {"id": 0, "apower": 250.5})
    [update] = tr.translate(Topics.shelly(METER, "events/rpc"), partial)
    assert (update.kind, update.source) == ("power", f"meters/{METER}")
    data = update.data
    assert data["meter"] == METER
    assert data["apower"] == 250.5
    assert (data["voltage"], data["energy_wh"], data["temperature_c"]) == (230.1, 1234.5, 41.2)  # from the seed
    assert data["ts"] == "2026-11-21T10:16:40.500Z"  # the device's params.ts

    # A nested partial (only aenergy.total) keeps the apower of the previous partial.
    [update] = tr.translate(Topics.shelly(METER, "events/rpc"),
                            notify("NotifyStatus", {"id": 0, "aenergy": {"total": 1300.0}}))
    data = update.data
    assert (data["apower"], data["energy_wh"], data["voltage"]) == (250.5, 1300.0, 230.1)


def test_full_status_replaces_the_state(tr: LiveTranslator) -> None:
    [update] = tr.translate(Topics.shelly(METER, "events/rpc"),
                            notify("NotifyFullStatus", {"id": 0, "output": False, "apower": 0.0}))
    data = update.data
    assert (data["output"], data["apower"], data["voltage"]) == (False, 0.0, None)

    [update] = tr.translate(Topics.shelly(METER, "status/switch:0"), b'{"id":0,"apower":12.0,"voltage":229.0}')
    data = update.data
    assert (data["apower"], data["voltage"], data["output"]) == (12.0, 229.0, None)
    assert data["ts"] == "2026-11-21T10:20:00.000Z"  # no device time in that topic: receive time


def test_rpc_answer_to_the_bridge_updates_the_meter(tr: LiveTranslator) -> None:
    answer = shelly.response(7, "shellypro1pm", f"{METER}/bridge", {
        "switch:0": {"id": 0, "output": True, "apower": 321.0, "voltage": 231.0, "aenergy": {"total": 2000.0}},
        "sys": {"unixtime": int(DEVICE_TS.timestamp())},
    })
    [update] = tr.translate(Topics.shelly(METER, "bridge/rpc"), answer.encode())
    assert update.kind == "power"
    data = update.data
    assert (data["apower"], data["energy_wh"], data["current"]) == (321.0, 2000.0, None)
    assert data["ts"] == "2026-11-21T10:16:40.000Z"


def test_unseeded_meter_starts_from_its_first_partial() -> None:
    tr = LiveTranslator(TOPICS, clock=lambda: NOW)
    [update] = tr.translate(Topics.shelly("shellypro1pm-new", "events/rpc"),
                            shelly.notification("shellypro1pm-new", "NotifyStatus",
                                                {"switch:0": {"apower": 5.0}}).encode())
    data = update.data
    assert (data["meter"], data["apower"], data["voltage"]) == ("shellypro1pm-new", 5.0, None)


@pytest.mark.parametrize(("topic", "payload"), [
    (TOPICS.reading(1, 2), b"{not json"),
    (TOPICS.reading(1, 2), b'{"unit": 1, "automate": 2}'),
    (TOPICS.reading(1, 3), make_reading(1, 2).to_json().encode()),  # published on another automate
    (TOPICS.reading(1, 2), b"\xff\xfe"),
    (TOPICS.unit_status(1), b'{"state": "sleeping", "ts": "2026-11-21T10:15:00.000Z"}'),
    (TOPICS.alarm(AutomateSource(1, 2), "ph"), b"[]"),
    (TOPICS.alarm(MeterSource(METER), "apower"),
     Alarm(AutomateSource(1, 2), "ph", 7.5, 7.2, "high", "warning", "active", TS, TS).to_json().encode()),
    (Topics.shelly(METER, "online"), b"maybe"),
    (Topics.shelly(METER, "events/rpc"), b'{"method": "NotifyStatus"}'),
    (Topics.shelly(METER, "events/rpc"), notify("NotifyStatus", {"apower": 1e9})),  # absurd
    (Topics.shelly(METER, "events/rpc"), notify("NotifyStatus", {"apower": 1.0}, ts=12)),  # bad clock
    ("plant/units/1/automates/2/whatever", b"{}"),
    ("plant/units/0/automates/2/readings", make_reading(1, 2).to_json().encode()),
    ("elsewhere/units/1/status", b"{}"),
])
def test_malformed_or_unknown_message_gives_no_event(tr: LiveTranslator, caplog: pytest.LogCaptureFixture,
                                                      topic: str, payload: bytes) -> None:
    with caplog.at_level(logging.WARNING, logger="webui.live"):
        assert tr.translate(topic, payload) == []
    assert any(r.levelno == logging.WARNING for r in caplog.records)
    # The meter state survived: a later partial still merges into the seed.
    [update] = tr.translate(Topics.shelly(METER, "events/rpc"), notify("NotifyStatus", {"current": 1.5}))
    data = update.data
    assert (data["apower"], data["current"]) == (100.0, 1.5)


def test_empty_payload_and_notify_event_are_silently_ignored(tr: LiveTranslator,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="webui.live"):
        assert tr.translate(TOPICS.alarm(AutomateSource(1, 2), "ph"), b"") == []  # retained alarm cleared
        event = shelly.notification(METER, "NotifyEvent", {"ts": DEVICE_TS.timestamp(), "events": []})
        assert tr.translate(Topics.shelly(METER, "events/rpc"), event.encode()) == []
    assert caplog.records == []


# -- LiveFeed: routing and alarms, with a fake Socket.IO server ------------------------------------------

class FakeSocketIO:
    """Records what the feed emits: (event, data, room)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any], str | None]] = []

    def emit(self, event: str, data: dict[str, Any], to: str | None = None) -> None:
        self.sent.append((event, data, to))

    def take(self) -> list[tuple[str, dict[str, Any], str | None]]:
        sent, self.sent = self.sent, []
        return sent


def make_feed(make_session: sessionmaker[Session], push_interval: float = 0.5) -> tuple[LiveFeed, FakeSocketIO]:
    sio = FakeSocketIO()
    feed = LiveFeed(MqttSettings(), TOPICS, sio, make_session, push_interval=push_interval)  # type: ignore[arg-type]
    return feed, sio


@pytest.fixture
def db(tmp_path: Path) -> sessionmaker[Session]:
    make_session = new_database(tmp_path / "plant.db")
    seed_plant(make_session)  # among others: the active pH alarm of unit 1 automate 1, raised at TS
    return make_session


def rooms_of(sent: list[tuple[str, dict[str, Any], str | None]]) -> dict[str | None, dict[str, Any]]:
    assert all(event == "update" for event, _, _ in sent), sent
    rooms = {room: data for _, data, room in sent}
    assert len(rooms) == len(sent), "one update per room"
    return rooms


def test_reading_goes_to_plant_its_unit_and_its_automate_only(db: sessionmaker[Session]) -> None:
    feed, sio = make_feed(db)
    r32 = make_reading(3, 2)
    feed.handle(TOPICS.reading(3, 2), r32.to_json().encode())
    assert sio.sent == []  # coalesced until the flush
    feed.push.flush()
    assert rooms_of(sio.take()) == {room: {"readings": [r32.to_dict()]}
                                    for room in ("plant", "units/3", "units/3/automates/2")}


def test_unit_status_reaches_the_watched_automate_rooms_of_that_unit_only(db: sessionmaker[Session]) -> None:
    feed, sio = make_feed(db)
    feed.views.set("a", "units/3/automates/2")
    feed.views.set("b", "units/3/automates/5")
    feed.views.set("c", "units/4/automates/2")  # another unit: must not get unit 3's status
    feed.views.set("d", "units/3")
    feed.handle(TOPICS.unit_status(3), DeviceStatus("offline", TS).to_json().encode())
    feed.push.flush()
    status = {"device": "units/3", "state": "offline", "ts": "2026-11-21T10:15:00.000Z"}
    assert rooms_of(sio.take()) == {room: {"status": [status]} for room in (
        "plant", "units/3", "units/3/automates/2", "units/3/automates/5")}


def test_meter_power_and_status_go_to_plant_and_the_meter_room(db: sessionmaker[Session]) -> None:
    feed, sio = make_feed(db)
    feed.views.set("a", "units/1")
    feed.handle(Topics.shelly(METER, "online"), b"true")
    feed.handle(Topics.shelly(METER, "events/rpc"), notify("NotifyStatus", {"id": 0, "apower": 250.5}))
    feed.push.flush()
    rooms = rooms_of(sio.take())
    assert set(rooms) == {"plant", f"meters/{METER}"}
    data = rooms[f"meters/{METER}"]
    assert list(data) == ["power", "status"]  # readings omitted: there were none
    assert (data["power"][0]["meter"], data["power"][0]["apower"]) == (METER, 250.5)
    assert data["status"][0]["device"] == f"meters/{METER}" and data["status"][0]["state"] == "online"


def test_zero_push_interval_sends_at_once(db: sessionmaker[Session]) -> None:
    feed, sio = make_feed(db, push_interval=0)
    feed.handle(TOPICS.reading(3, 2), make_reading(3, 2).to_json().encode())
    assert {room for _, _, room in sio.take()} == {"plant", "units/3", "units/3/automates/2"}
    assert feed.push.pending() == 0


def test_alarm_from_mqtt_carries_its_database_id_and_goes_out_at_once(db: sessionmaker[Session]) -> None:
    feed, sio = make_feed(db)
    with db() as session:
        [row] = queries.open_alarms(session)
        expected = queries.alarm_dict(row)
    alarm = Alarm(AutomateSource(1, 1), "ph", 7.4, 7.2, "high", "warning", "active", TS, TS)
    feed.handle(TOPICS.alarm(alarm.source, "ph"), alarm.to_json().encode())
    assert sio.take() == [("alarm", expected, "alarms")]  # no flush needed
    assert isinstance(expected["id"], int) and expected["acknowledged_by"] is None


def test_alarm_without_database_row_is_sent_with_a_null_id(db: sessionmaker[Session],
                                                           tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cleared = Alarm(MeterSource(METER), "apower", 3000.0, 3500.0, "high", "warning", "cleared", TS, NOW)
    feed, sio = make_feed(db)
    feed.handle(TOPICS.alarm(cleared.source, "apower"), cleared.to_json().encode())  # not in the database
    broken = make_sessionmaker(create_engine(f"sqlite:///{tmp_path}"))  # a directory: cannot open
    down, down_sio = make_feed(broken)
    with caplog.at_level(logging.WARNING, logger="webui.live"):
        down.handle(TOPICS.alarm(cleared.source, "apower"), cleared.to_json().encode())
    assert any("without its database row" in r.getMessage() for r in caplog.records)
    for sent in (sio.take(), down_sio.take()):
        [(event, data, room)] = sent
        assert (event, room) == ("alarm", "alarms")
        assert data == {"id": None, **cleared.to_dict(), "cleared_at": "2026-11-21T10:20:00.000Z",
                        "acknowledged_at": None, "acknowledged_by": None}


def test_alarm_changed_goes_to_the_alarms_room(db: sessionmaker[Session]) -> None:
    feed, sio = make_feed(db)
    feed.alarm_changed({"id": 7, "acknowledged_by": "operator"})
    assert sio.take() == [("alarm", {"id": 7, "acknowledged_by": "operator"}, "alarms")]
