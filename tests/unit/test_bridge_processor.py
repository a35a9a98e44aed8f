"""The bridge's pure processing step: messages in, rows/alarms/publishes out."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from bridge.processor import Processor, RawMessage
from plantmodel import Topics, format_ts
from plantmodel.shelly import notification, response
from plantmodel.thresholds import ThresholdSet, default_thresholds
from tests.unit.test_model import EXAMPLE

NOW = datetime(2026, 11, 21, 10, 15, 1, tzinfo=UTC)
METER = "shellypro1pm-a8032ab1c2d3"
T = Topics()


def msg(topic: str, payload: object, at: datetime = NOW) -> RawMessage:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return RawMessage(topic, raw, at, 1, 1)


def reading(seq: int = 1, secs: int = 0, **values: object) -> RawMessage:
    ts = datetime(2026, 11, 21, 10, 15, tzinfo=UTC) + timedelta(seconds=secs)
    body = {**EXAMPLE, "seq": seq, "ts": format_ts(ts), **values}
    return msg(T.reading(body["unit"], body["automate"]), body)


def proc() -> Processor:
    return Processor(T, ThresholdSet(default_thresholds()))


def test_valid_reading_is_planned_for_storage() -> None:
    plan = proc().process([reading()])
    assert [r.seq for r, _ in plan.readings] == [1] and plan.rejected == [] and plan.alarms == []


def test_each_bad_message_is_rejected_and_the_rest_flows() -> None:
    batch = [
        reading(seq=1),
        msg(T.reading(3, 7), b"not json"),
        msg(T.reading(3, 7), b'{"unit": 3, "automate": 7, "ph": NaN}'),
        msg(T.reading(3, 8), {**EXAMPLE, "seq": 2}),  # payload says automate 7
        msg("plant/units/3/bogus", {"x": 1}),
        reading(seq=2, secs=1),
    ]
    plan = proc().process(batch)
    assert [r.seq for r, _ in plan.readings] == [1, 2]
    reasons = [reason for _, reason in plan.rejected]
    assert len(reasons) == 4
    assert "not valid JSON" in reasons[0]
    assert "not a number" in reasons[1]
    assert "published on units/3/automates/8" in reasons[2]
    assert "unknown topic" in reasons[3]


def test_future_timestamps_are_rejected() -> None:
    p = Processor(T, ThresholdSet([]), max_future_skew=60)
    plan = p.process([reading(secs=3600)])
    assert plan.readings == [] and "future" in plan.rejected[0][1]


def test_alarm_published_retained_and_not_twice_on_redelivery() -> None:
    p = proc()
    plan = p.process([reading(seq=1, tank_temp_c=4.6)])
    (alarm,) = plan.alarms
    (out,) = plan.publish
    assert out.topic == "plant/alarms/units/3/automates/7/tank_temp_c" and out.retain
    assert json.loads(out.payload)["state"] == "active"
    assert alarm.value == 4.6
    # The broker redelivers the same message (e.g. we crashed before the ack): no new alarm.
    assert p.process([reading(seq=1, tank_temp_c=4.6)]).alarms == []


def test_restore_after_failed_write_replays_identically() -> None:
    p = proc()
    snap = p.snapshot()
    first = p.process([reading(seq=1, tank_temp_c=4.6)])
    p.restore(snap)
    again = p.process([reading(seq=1, tank_temp_c=4.6)])
    assert [a.to_dict() for a in again.alarms] == [a.to_dict() for a in first.alarms]


def test_seq_gaps_are_counted() -> None:
    p = proc()
    assert p.process([reading(seq=1), reading(seq=2, secs=1), reading(seq=6, secs=2)]).gaps == 1


def test_unit_status() -> None:
    plan = proc().process([msg(T.unit_status(3), {"state": "offline", "ts": "2026-11-21T10:00:00.000Z"})])
    assert plan.states[0][:2] == ("units/3", "offline")


def switch(**fields: object) -> dict:
    base = {"id": 0, "source": "init", "output": True, "apower": 1200.0, "voltage": 230.1, "current": 5.3,
            "freq": 50.0, "pf": 0.98, "aenergy": {"total": 1000.0, "by_minute": [0, 0, 0], "minute_ts": 1},
            "ret_aenergy": {"total": 0.0, "by_minute": [0, 0, 0], "minute_ts": 1},
            "temperature": {"tC": 40.0, "tF": 104.0}}
    return {**base, **fields}


def test_shelly_first_seen_asks_for_status_then_merges_partials() -> None:
    p = proc()
    events = f"{METER}/events/rpc"
    partial = json.loads(notification(METER, "NotifyStatus",
                                      {"ts": 1795000000.5, "switch:0": {"id": 0, "apower": 1500.0}}))
    plan = p.process([msg(events, partial)])
    assert plan.samples == []  # nothing stored before a full status
    (ask,) = plan.publish
    req = json.loads(ask.payload)
    assert ask.topic == f"{METER}/rpc" and req["method"] == "Shelly.GetStatus" and req["src"] == f"{METER}/bridge"

    answer = json.loads(response(req["id"], METER, req["src"],
                                 {"switch:0": switch(), "sys": {"unixtime": 1795000001}}))
    plan = p.process([msg(f"{METER}/bridge/rpc", answer)])
    (sample, _), = plan.samples
    assert (sample.apower, sample.voltage, sample.energy_wh, sample.temperature_c) == (1200.0, 230.1, 1000.0, 40.0)

    partial = json.loads(notification(METER, "NotifyStatus", {"ts": 1795000002.25, "switch:0": {
        "id": 0, "apower": 3800.0, "aenergy": {"total": 1001.5}}}))
    plan = p.process([msg(events, partial)])
    (sample, _), = plan.samples
    assert (sample.apower, sample.voltage, sample.energy_wh) == (3800.0, 230.1, 1001.5)
    assert sample.ts == datetime.fromtimestamp(1795000002.25, UTC)
    assert [a.measure for a in plan.alarms] == ["apower"]  # above 3500 W


def test_shelly_online_asks_again_and_bad_frames_are_rejected() -> None:
    p = proc()
    plan = p.process([msg(f"{METER}/online", b"true"), msg(f"{METER}/online", b"maybe"),
                      msg(f"{METER}/events/rpc", {"method": "NotifyStatus"})])
    assert plan.states[0][:2] == (f"meters/{METER}", "online")
    assert [o.topic for o in plan.publish] == [f"{METER}/rpc"]
    assert len(plan.rejected) == 2
