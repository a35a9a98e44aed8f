"""The web UI's MQTT -> Socket.IO translation, without a broker."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from plantmodel import shelly
from plantmodel.readings import Reading
from plantmodel.shelly import PowerSample
from plantmodel.sources import AutomateSource, MeterSource
from plantmodel.status import DeviceStatus
from plantmodel.thresholds import Alarm
from plantmodel.topics import Topics
from webui.live import LiveTranslator

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
    assert events == [("reading", reading.to_dict())]
    data = events[0][1]
    assert (data["unit"], data["automate"], data["ph"], data["ts"]) == (1, 2, 7.4, "2026-11-21T10:15:00.000Z")


def test_unit_status_becomes_status_event(tr: LiveTranslator) -> None:
    events = tr.translate(TOPICS.unit_status(3), DeviceStatus("offline", TS).to_json().encode())
    assert events == [("status", {"device": "units/3", "state": "offline", "ts": "2026-11-21T10:15:00.000Z"})]


def test_meter_online_becomes_status_event(tr: LiveTranslator) -> None:
    events = tr.translate(Topics.shelly(METER, "online"), b"false")
    assert events == [("status", {"device": f"meters/{METER}", "state": "offline",
                                  "ts": "2026-11-21T10:20:00.000Z"})]


def test_alarm_becomes_alarm_event(tr: LiveTranslator) -> None:
    alarm = Alarm(AutomateSource(1, 2), "ph", 7.5, 7.2, "high", "warning", "active", TS, TS)
    events = tr.translate(TOPICS.alarm(alarm.source, "ph"), alarm.to_json().encode())
    assert events == [("alarm", alarm.to_dict())]
    assert events[0][1]["state"] == "active" and events[0][1]["unit"] == 1


def test_notify_status_partial_merges_into_seeded_state(tr: LiveTranslator) -> None:
    partial = notify("NotifyStatus", {"id": 0, "apower": 250.5})
    [(event, data)] = tr.translate(Topics.shelly(METER, "events/rpc"), partial)
    assert event == "power"
    assert data["meter"] == METER
    assert data["apower"] == 250.5
    assert (data["voltage"], data["energy_wh"], data["temperature_c"]) == (230.1, 1234.5, 41.2)  # from the seed
    assert data["ts"] == "2026-11-21T10:16:40.500Z"  # the device's params.ts

    # A nested partial (only aenergy.total) keeps the apower of the previous partial.
    [(_, data)] = tr.translate(Topics.shelly(METER, "events/rpc"),
                               notify("NotifyStatus", {"id": 0, "aenergy": {"total": 1300.0}}))
    assert (data["apower"], data["energy_wh"], data["voltage"]) == (250.5, 1300.0, 230.1)


def test_full_status_replaces_the_state(tr: LiveTranslator) -> None:
    [(_, data)] = tr.translate(Topics.shelly(METER, "events/rpc"),
                               notify("NotifyFullStatus", {"id": 0, "output": False, "apower": 0.0}))
    assert (data["output"], data["apower"], data["voltage"]) == (False, 0.0, None)

    [(_, data)] = tr.translate(Topics.shelly(METER, "status/switch:0"), b'{"id":0,"apower":12.0,"voltage":229.0}')
    assert (data["apower"], data["voltage"], data["output"]) == (12.0, 229.0, None)
    assert data["ts"] == "2026-11-21T10:20:00.000Z"  # no device time in that topic: receive time


def test_rpc_answer_to_the_bridge_updates_the_meter(tr: LiveTranslator) -> None:
    answer = shelly.response(7, "shellypro1pm", f"{METER}/bridge", {
        "switch:0": {"id": 0, "output": True, "apower": 321.0, "voltage": 231.0, "aenergy": {"total": 2000.0}},
        "sys": {"unixtime": int(DEVICE_TS.timestamp())},
    })
    [(event, data)] = tr.translate(Topics.shelly(METER, "bridge/rpc"), answer.encode())
    assert event == "power"
    assert (data["apower"], data["energy_wh"], data["current"]) == (321.0, 2000.0, None)
    assert data["ts"] == "2026-11-21T10:16:40.000Z"


def test_unseeded_meter_starts_from_its_first_partial() -> None:
    tr = LiveTranslator(TOPICS, clock=lambda: NOW)
    [(_, data)] = tr.translate(Topics.shelly("shellypro1pm-new", "events/rpc"),
                               shelly.notification("shellypro1pm-new", "NotifyStatus",
                                                   {"switch:0": {"apower": 5.0}}).encode())
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
    [(_, data)] = tr.translate(Topics.shelly(METER, "events/rpc"), notify("NotifyStatus", {"current": 1.5}))
    assert (data["apower"], data["current"]) == (100.0, 1.5)


def test_empty_payload_and_notify_event_are_silently_ignored(tr: LiveTranslator,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="webui.live"):
        assert tr.translate(TOPICS.alarm(AutomateSource(1, 2), "ph"), b"") == []  # retained alarm cleared
        event = shelly.notification(METER, "NotifyEvent", {"ts": DEVICE_TS.timestamp(), "events": []})
        assert tr.translate(Topics.shelly(METER, "events/rpc"), event.encode()) == []
    assert caplog.records == []
