"""Shelly Pro 1PM simulator: notifications, energy counters, RPC, fault injection and its MQTT wiring."""

from __future__ import annotations

import json
import random
import threading
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from devices.faults import Fault, FaultInjector
from devices.runner import MeterLink
from devices.shelly import ShellyPro1PM
from plantmodel.mqtt import MqttSettings
from plantmodel.readings import utcnow
from plantmodel.shelly import (
    SWITCH_KEY,
    RpcNotification,
    RpcResponse,
    merge,
    parse_rpc_frame,
    request,
    sample_from_switch,
)
from plantmodel.topics import Topics

METER = "shellypro1pm-a8032ab1c2d3"
T0 = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)
EVENTS = Topics.shelly(METER, "events/rpc")
STATUS = Topics.shelly(METER, "status/switch:0")
SWITCH_FIELDS = {"id", "source", "output", "apower", "voltage", "current", "freq", "pf", "aenergy",
                 "ret_aenergy", "temperature"}


def meter(seed: int = 7, **kwargs: Any) -> ShellyPro1PM:
    return ShellyPro1PM(METER, random.Random(seed), start=T0, **kwargs)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def rpc(sim: ShellyPro1PM, method: str, params: dict[str, Any] | None = None, *, req_id: int = 1,
        src: str = f"{METER}/bridge", now: datetime | None = None) -> tuple[str, dict[str, Any]]:
    answer = sim.handle_rpc(request(req_id, src, method, params), now)
    assert answer is not None
    topic, payload = answer
    return topic, json.loads(payload)


def get_status(sim: ShellyPro1PM) -> dict[str, Any]:
    return rpc(sim, "Switch.GetStatus", {"id": 0})[1]["result"]


def notifications(messages: list[tuple[str, str]]) -> list[RpcNotification]:
    out = []
    for topic, payload in messages:
        if topic == EVENTS:
            frame = parse_rpc_frame(payload)
            assert isinstance(frame, RpcNotification)
            out.append(frame)
    return out


def test_long_run_notifies_only_changes_and_keeps_consumers_close() -> None:
    sim = meter()
    view = get_status(sim)  # a consumer: asks once, then overlays NotifyStatus
    sent = 0
    for i in range(1, 3 * 3600):
        messages = sim.tick(at(i))
        for note in notifications(messages):
            assert note.method == "NotifyStatus" and note.src == METER
            assert note.params["ts"] == round(at(i).timestamp(), 2)
            sw = note.switch
            assert sw is not None and sw["id"] == 0 and len(sw) > 1
            for key, value in sw.items():
                if key != "id":
                    assert view[key] != value, f"unchanged {key} resent at tick {i}"
            view = merge(view, sw)
            sent += 1
        actual = get_status(sim)
        # What was not sent differs by less than the notification thresholds.
        assert abs(view["apower"] - actual["apower"]) < max(10.0, 0.05 * abs(view["apower"])) + 1e-6
        assert abs(view["voltage"] - actual["voltage"]) < 1.0 + 1e-6
        assert abs(view["temperature"]["tC"] - actual["temperature"]["tC"]) < 1.0 + 1e-6
        assert view["output"] == actual["output"]
    assert 200 < sent < 3 * 3600 / 2  # on change, not on every tick


def test_nothing_is_sent_when_nothing_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    sim = meter()
    sim.tick(at(1))
    monkeypatch.setattr(sim, "_advance", lambda dt: None)  # freeze the electrical state
    for i in range(2, 50):  # same energy minute: the counters are not due either
        assert sim.tick(at(i)) == []


def test_a_forced_power_sends_only_the_power_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    faults = FaultInjector()
    sim = meter(faults=faults)
    sim.tick(at(1))
    monkeypatch.setattr(sim, "_advance", lambda dt: None)
    faults.set_faults([Fault(f"meters/{METER}", "apower", (3800,))])
    (note,) = notifications(sim.tick(at(2)))
    sw = note.switch
    assert sw is not None and {"id", "apower", "current"} <= set(sw) <= {"id", "apower", "current", "pf"}
    status = get_status(sim)
    assert status["apower"] == 3800
    assert status["current"] == round(3800 / (status["voltage"] * status["pf"]), 3)
    assert sim.tick(at(3)) == []  # the same forced value is not resent
    faults.set_faults([])
    (note,) = notifications(sim.tick(at(4)))
    assert note.switch is not None and note.switch["apower"] < 3500


def test_fault_values_cycle_and_clearing_restores_normal_values() -> None:
    faults = FaultInjector([Fault(f"meters/{METER}", "apower", (3800, 3790))])
    sim = meter(faults=faults)
    published = []
    for i in range(1, 7):
        sim.tick(at(i))
        published.append(get_status(sim)["apower"])
    assert published == [3800, 3790] * 3
    faults.set_faults([])
    for i in range(7, 600):
        sim.tick(at(i))
        assert 0 <= get_status(sim)["apower"] < 3500


def test_energy_total_is_monotonic_and_by_minute_rolls() -> None:
    sim = meter(energy_interval=60)
    prev = get_status(sim)["aenergy"]
    rolls = 0
    last_roll_total = 0.0
    for i in range(1, 2 * 3600):
        messages = sim.tick(at(i))
        energy = get_status(sim)["aenergy"]
        assert energy["total"] >= prev["total"]
        if energy["minute_ts"] != prev["minute_ts"]:
            rolls += 1
            assert energy["minute_ts"] == prev["minute_ts"] + 60
            assert energy["minute_ts"] == at(i).timestamp()  # on the minute boundary
            assert energy["by_minute"][1:] == prev["by_minute"][:2]
            # Every rollover is notified, with the whole counter.
            (note,) = notifications(messages)
            assert note.switch is not None and note.switch["aenergy"] == energy
            if rolls > 1:  # a whole minute since the last rollover: by_minute[0] is its energy
                assert energy["by_minute"][0] == pytest.approx(
                    (energy["total"] - last_roll_total) * 1000, abs=1.0)
            last_roll_total = energy["total"]
        else:
            assert energy["by_minute"] == prev["by_minute"]
        prev = energy
    assert rolls == 2 * 60 - 1
    assert get_status(sim)["aenergy"]["total"] > get_status(meter(energy_interval=60))["aenergy"]["total"]


def test_load_is_an_ev_charger_within_realistic_bounds() -> None:
    sim = meter(seed=3)
    powers = []
    for i in range(1, 4 * 3600, 5):
        sim.tick(at(i))
        s = get_status(sim)
        powers.append(s["apower"])
        assert 228 <= s["voltage"] <= 232 and 49.95 <= s["freq"] <= 50.05 and 0 <= s["pf"] <= 1
        assert 0 < s["apower"] < 3500
        assert s["current"] == round(s["apower"] / (s["voltage"] * s["pf"]), 3)
        assert s["temperature"]["tF"] == round(s["temperature"]["tC"] * 9 / 5 + 32, 1)
        sample_from_switch(METER, at(i), s)  # what the bridge stores accepts it
    assert min(powers) < 3 and max(powers) > 1500  # idle and charging both happen


def test_switch_status_has_every_field() -> None:
    status = get_status(meter())
    assert set(status) == SWITCH_FIELDS
    assert set(status["aenergy"]) == set(status["ret_aenergy"]) == {"total", "by_minute", "minute_ts"}
    assert len(status["aenergy"]["by_minute"]) == 3 and set(status["temperature"]) == {"tC", "tF"}


def test_status_ntf_off_by_default_and_on_when_asked() -> None:
    off, on = meter(), meter(status_ntf=True)
    assert off.status_ntf is False
    for i in range(1, 600):
        m_off, m_on = off.tick(at(i)), on.tick(at(i))
        assert all(t == EVENTS for t, _ in m_off)
        assert [t for t, _ in m_on] == ([EVENTS, STATUS] if m_on else [])
        if m_on:
            full = json.loads(m_on[1][1])
            assert set(full) == SWITCH_FIELDS and full == get_status(on)


def test_get_status_answer_goes_to_src_with_the_request_id() -> None:
    sim = meter()
    topic, answer = rpc(sim, "Switch.GetStatus", {"id": 0}, req_id=42)
    assert topic == f"{METER}/bridge/rpc"
    frame = parse_rpc_frame(json.dumps(answer))
    assert isinstance(frame, RpcResponse) and frame.id == 42 and frame.src == METER
    assert answer["dst"] == f"{METER}/bridge"
    status, ts = frame.switch_status()
    assert status == sim.status and ts is None


def test_shelly_get_status_carries_sys_time() -> None:
    sim = meter()
    topic, answer = rpc(sim, "Shelly.GetStatus", req_id=3, src="dashboard-1", now=at(125.7))
    assert topic == "dashboard-1/rpc" and answer["id"] == 3
    assert answer["result"]["sys"]["unixtime"] == int(at(125.7).timestamp())
    assert answer["result"]["sys"]["uptime"] == 125
    frame = parse_rpc_frame(json.dumps(answer))
    assert isinstance(frame, RpcResponse)
    status, ts = frame.switch_status()
    assert status == answer["result"][SWITCH_KEY] and ts == at(125)


def test_get_device_info() -> None:
    _, answer = rpc(meter(), "Shelly.GetDeviceInfo")
    info = answer["result"]
    assert info["id"] == METER and info["gen"] == 2 and info["mac"] == "A8032AB1C2D3"


def test_unknown_method_is_an_error_answer() -> None:
    topic, answer = rpc(meter(), "Switch.Explode", req_id=9, src="tool/x")
    assert topic == "tool/x/rpc" and answer["id"] == 9 and "result" not in answer
    assert answer["error"]["code"] == -114 and "Switch.Explode" in answer["error"]["message"]


@pytest.mark.parametrize("payload", [
    b"garbage", b"\xff\xfe", "[]", '{"id": 1, "method": "Switch.GetStatus"}',
    '{"id": 1, "src": "x"}', '{"id": 1, "src": "x", "method": "Switch.GetStatus", "params": [1]}',
    '{"id": 1, "src": "a/#", "method": "Switch.GetStatus"}',
])
def test_malformed_request_is_logged_and_ignored(payload: bytes | str,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    sim = meter()
    assert sim.handle_rpc(payload) is None
    assert "ignoring" in caplog.text


def test_switch_set_off_and_on() -> None:
    sim = meter()
    sim.tick(at(1))
    _, answer = rpc(sim, "Switch.Set", {"id": 0, "on": False}, req_id=5)
    assert answer["result"] == {"was_on": True} and answer["id"] == 5
    status = get_status(sim)
    assert status["output"] is False and status["apower"] == 0 and status["current"] == 0
    (note,) = notifications(sim.tick(at(2)))
    assert note.switch is not None and note.switch["output"] is False
    total = get_status(sim)["aenergy"]["total"]
    for i in range(3, 400):
        sim.tick(at(i))
        assert get_status(sim)["apower"] == 0
    assert get_status(sim)["aenergy"]["total"] == total  # no load, no energy
    _, answer = rpc(sim, "Switch.Set", {"id": 0, "on": True})
    assert answer["result"] == {"was_on": False} and get_status(sim)["output"] is True


def test_switching_on_again_starts_the_charger_idle() -> None:
    sim = meter()
    i = 1
    while get_status(sim)["apower"] < 1000:  # wait for a charging session
        i += 1
        sim.tick(at(i))
    rpc(sim, "Switch.Set", {"id": 0, "on": False})
    sim.tick(at(i + 1))
    rpc(sim, "Switch.Set", {"id": 0, "on": True})
    sim.tick(at(i + 2))
    assert 0 < get_status(sim)["apower"] < 5


@pytest.mark.parametrize(("params", "code"), [({"id": 0}, -103), ({"id": 0, "on": "yes"}, -103),
                                              ({"id": 1, "on": True}, -105), ({"on": True}, -105)])
def test_switch_set_bad_arguments(params: dict[str, Any], code: int) -> None:
    sim = meter()
    _, answer = rpc(sim, "Switch.Set", params)
    assert answer["error"]["code"] == code and sim.output is True


def test_status_ntf_also_follows_a_switch_change() -> None:
    sim = meter(status_ntf=True)
    sim.tick(at(1))
    rpc(sim, "Switch.Set", {"id": 0, "on": False})
    messages = sim.tick(at(2))
    assert [t for t, _ in messages] == [EVENTS, STATUS]
    full = json.loads(messages[1][1])
    assert full["output"] is False and full["source"] == "MQTT" and full == get_status(sim)


# -- the MeterDevice interface and its MQTT wiring (MeterLink) ---------------------------------------

class FakeClient:
    """The publish / subscribe seam of paho: records what a link hands over."""

    def __init__(self) -> None:
        self.published: list[tuple[str, str, int, bool]] = []
        self.subscribed: list[tuple[str, int]] = []

    def subscribe(self, topic: str, qos: int = 0) -> tuple[int, int]:
        self.subscribed.append((topic, qos))
        return mqtt.MQTT_ERR_SUCCESS, 1000 + len(self.subscribed)

    def publish(self, topic: str, payload: str, qos: int = 0, retain: bool = False) -> Any:
        self.published.append((topic, payload, qos, retain))
        return SimpleNamespace(rc=mqtt.MQTT_ERR_SUCCESS, mid=len(self.published))


def test_gen2_device_interface() -> None:
    sim = meter()
    assert sim.gen == 2 and sim.online_topic == f"{METER}/online"
    assert sim.subscriptions() == [f"{METER}/rpc"] and sim.birth(at(0)) == []
    ((topic, payload),) = sim.handle_message(f"{METER}/rpc", request(4, "tool/x", "Switch.GetStatus", {"id": 0}))
    assert topic == "tool/x/rpc" and json.loads(payload)["result"] == sim.status
    assert sim.handle_message(f"{METER}/rpc", b"garbage") == []
    assert sim.handle_message(f"{METER}/other", request(4, "tool/x", "Switch.GetStatus")) == []


def test_meter_link_gen2_birth_rpc_and_notifications() -> None:
    sim = ShellyPro1PM(METER, random.Random(3))
    link = MeterLink(sim, MqttSettings(), {METER: "pw"}, "creds", threading.Event())
    assert link.client._will_topic == f"{METER}/online".encode() and link.client._will_retain
    fake = FakeClient()
    link.client = fake  # type: ignore[assignment]
    link.on_online()
    assert fake.published == [(f"{METER}/online", "true", 1, True)]
    assert fake.subscribed == [(f"{METER}/rpc", 1)]
    link._on_message(None, None, SimpleNamespace(  # type: ignore[arg-type]
        topic=f"{METER}/rpc", payload=request(8, "tool/x", "Switch.Set", {"id": 0, "on": False}).encode()))
    topic, payload, _qos, retain = fake.published[-1]
    assert topic == "tool/x/rpc" and json.loads(payload)["result"] == {"was_on": True} and not retain
    link.connected = True
    link.tick(utcnow() + timedelta(seconds=1))
    assert fake.published[-1][0] == EVENTS
    assert link.goodbye() is not None and fake.published[-1] == (f"{METER}/online", "false", 1, True)
