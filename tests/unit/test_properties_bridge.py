"""Property-based tests (hypothesis) of the bridge's whole decode + plan step on arbitrary traffic.

Whatever arrives — any topic, any bytes, numbers past every limit, deep nesting, NaN, control
characters — ``Processor.process`` must not raise, and every message must end in exactly one of:
stored (a reading, a power sample or a device state), rejected with a readable reason, or a known
no-op (our own publication seen again, valid Shelly chatter, a duplicate, a partial status merged
without a device time). Nothing may be *held*: held means the bridge's own code failed (README, "Bad
messages"), and the broker would redeliver that message forever.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hypothesis import event, example, given
from hypothesis import strategies as st

from bridge.processor import BatchPlan, Processor, RawMessage
from plantmodel.errors import ValidationError
from plantmodel.jsonutil import dumps
from plantmodel.measures import MEASURES
from plantmodel.readings import format_ts
from plantmodel.shelly import (
    NOTIFY_METHODS,
    SWITCH_KEY,
    notification,
    parse_request,
    request,
    response,
    switch_from_sample,
)
from plantmodel.sources import AutomateSource, MeterSource
from plantmodel.text import printable
from plantmodel.thresholds import Alarm, ThresholdSet, default_thresholds
from plantmodel.topics import AlarmTopic, ConfirmTopic, ShellyTopic, Topics
from tests.unit.test_properties_model import (
    ANY_PAYLOAD,
    JSON_TEXT,
    TOPIC_PARTS,
    deep,
    props,
    readings,
    timestamps,
    with_fields,
)
from tests.unit.test_properties_shelly import DEEP_PARTIAL, samples, switch_like

T = Topics()
NOW = datetime(2026, 11, 21, 10, 15, 1, tzinfo=UTC)
METERS = ["shellypro1pm-a8032ab1c2d3", "m-1"]
UNITS, AUTOMATES = st.integers(1, 3), st.integers(1, 3)  # few: so that messages meet in one state
RECENT = timestamps(NOW - timedelta(days=1), NOW + timedelta(minutes=10))  # a little past the skew too
READING_KEYS = ["unit", "automate", "type", "seq", "ts", "ph", "tank_temp_c", "boot"]


def unix_near_now() -> st.SearchStrategy[float]:
    base = NOW.timestamp()
    return st.integers(int((base - 86400) * 1000), int((base + 600) * 1000)).map(lambda ms: ms / 1000)


@st.composite
def reading_payload(draw: st.DrawFn, unit: int, automate: int) -> bytes:
    r = draw(readings(unit, automate))
    data = {**r.to_dict(), "ts": format_ts(draw(RECENT)), "seq": draw(st.integers(0, 20) | st.integers(0, 2**64))}
    if draw(st.booleans()):
        return json.dumps(data).encode()
    overrides = draw(st.dictionaries(st.sampled_from(READING_KEYS), JSON_TEXT | deep(), max_size=2))
    return with_fields(data, overrides, draw(st.sets(st.sampled_from(READING_KEYS), max_size=1))).encode()


@st.composite
def frame_payload(draw: st.DrawFn, meter: str) -> bytes:
    sw = draw(samples().map(switch_from_sample) | switch_like())
    ts = draw(st.none() | unix_near_now())
    if draw(st.booleans()):
        params = {SWITCH_KEY: sw, **({"ts": ts} if ts is not None else {})}
        if draw(st.integers(0, 4)) == 4:
            params = {"ts": ts, "wifi": {"rssi": -60}}  # another component: nothing to store
        return notification(meter, draw(st.sampled_from(NOTIFY_METHODS)), params).encode()
    result = {SWITCH_KEY: sw, "sys": {"unixtime": ts}} if ts is not None else sw
    if draw(st.integers(0, 5)) == 5:
        return json.dumps({"id": 1, "src": meter, "error": {"code": -105, "message": "\x1b[2Jgone"}}).encode()
    return response(draw(st.integers(0, 9)), meter, f"{meter}/bridge", result).encode()


KINDS = ["reading", "shelly", "status", "reading", "shelly", "noise", "reading", "shelly", "rpc", "own"]


@st.composite
def messages(draw: st.DrawFn) -> tuple[str, bytes]:
    """A topic and a payload: half of the time one that fits the topic (and may well be valid)."""
    kind = draw(st.sampled_from(KINDS))
    if kind == "own":
        kind = draw(st.sampled_from(["alarm", "confirm", "bridge"]))
    unit, automate, meter = draw(UNITS), draw(AUTOMATES), draw(st.sampled_from(METERS))
    fitting = draw(st.integers(0, 3)) > 0  # mostly a payload that fits the topic
    if kind == "reading":
        topic = T.reading(unit, automate)
        payload = draw(reading_payload(unit, automate)) if fitting else None
    elif kind == "status":
        topic = T.unit_status(unit)
        payload = json.dumps({"state": draw(st.sampled_from(["online", "offline", "lost"])),
                              "ts": "2026-11-21T10:15:00.000Z"}).encode() if fitting else None
    elif kind == "alarm":
        source = draw(st.sampled_from([AutomateSource(unit, automate), MeterSource(meter)]))
        topic = T.alarm(source, draw(st.sampled_from(list(MEASURES))))
        payload = None
    elif kind == "confirm":
        topic, payload = T.confirmation(unit), None
    elif kind == "bridge":
        topic, payload = T.bridge_status(), None
    elif kind == "shelly":
        suffix = draw(st.sampled_from(["events/rpc", "bridge/rpc", "online", "events/rpc", "status/switch:0",
                                       "bridge/rpc", "events/rpc/x", "status/switch:1", "status"]))
        topic = f"{meter}/{suffix}"
        if fitting and suffix == "online":
            payload = draw(st.sampled_from([b"true", b"false", b"maybe"]))
        elif fitting and suffix == "status/switch:0":
            payload = json.dumps(draw(switch_like())).encode()
        elif fitting:
            payload = draw(frame_payload(meter))
        else:
            payload = None
    elif kind == "rpc":
        topic = f"{meter}/rpc"
        src = draw(st.sampled_from([f"{meter}/bridge", meter, "other/bridge"]))
        payload = request(1, src, "Shelly.GetStatus").encode() if fitting else None
    else:
        topic = draw(st.lists(TOPIC_PARTS, min_size=1, max_size=7).map("/".join) | st.text(max_size=30))
        payload = None
    if payload is None:
        payload = draw(ANY_PAYLOAD)
    return topic, payload if isinstance(payload, bytes) else payload.encode("utf-8", "surrogatepass")


def proc() -> Processor:
    return Processor(T, ThresholdSet(default_thresholds()))


def accounted(plan: BatchPlan) -> int:
    return (len(plan.readings) + len(plan.samples) + len(plan.states) + len(plan.rejected) + plan.duplicates
            + plan.ignored)


def check_plan(plan: BatchPlan, batch: list[RawMessage]) -> None:
    assert plan.held == [], f"held (the bridge's own bug): {plan.held}"
    assert accounted(plan) <= len(batch)
    ids = [id(m) for m, _ in plan.rejected]
    assert len(ids) == len(set(ids)) and set(ids) <= {id(m) for m in batch}
    for _msg, reason in plan.rejected:
        assert isinstance(reason, str) and reason.strip(), "a rejection without a reason"
        assert printable(reason) == reason, f"reason with control characters: {reason!r}"
    # What the bridge keeps of a meter (written as JSON for the other bridges) can be written.
    for meter_status in plan.meter_states.values():
        dumps(meter_status.status)
    # What the bridge publishes parses with the model's own parsers.
    for out in plan.publish:
        parsed = T.parse(out.topic) if not out.topic.endswith("/rpc") else None
        if isinstance(parsed, AlarmTopic):
            alarm = Alarm.from_json(out.payload)
            assert (alarm.source, alarm.measure) == (parsed.source, parsed.measure)
        elif parsed is None:
            parse_request(out.payload)


def silent_ok(topic: str, payload: bytes, plan: BatchPlan) -> bool:
    """A message that leaves no row and no rejection: ours seen again, or a Shelly status merged into
    the meter's state without a device time to store it under."""
    if topic == T.bridge_status():
        return True
    parts = topic.split("/")
    if len(parts) == 2 and parts[1] == "rpc":
        try:
            return parse_request(payload)[1] == Topics.shelly_reply_src(parts[0])
        except ValidationError:
            return False
    try:
        parsed = T.parse(topic)
    except ValidationError:
        return False
    if isinstance(parsed, AlarmTopic | ConfirmTopic):
        return True
    return isinstance(parsed, ShellyTopic) and parsed.meter in plan.meters_seen


@props(150)
@given(messages())
# Regressions: each of these was *held* (an internal error, redelivered forever) before the fixes.
@example(("plant/units/1/automates/1/readings", b'{"seq":' + b"1" * 5000 + b"}"))
@example(("plant/alarms/units/\u00b2/automates/1/ph", b"{}"))
@example(("m-1/events/rpc", DEEP_PARTIAL.encode()))
@example(("m-1/status/switch:0", b'{"x":' * 600 + b"1" + b"}" * 600))
def test_each_message_ends_in_exactly_one_outcome_and_is_never_held(message: tuple[str, bytes]) -> None:
    topic, payload = message
    msg = RawMessage(topic, payload, NOW, 1, 1)
    plan = proc().process([msg])
    check_plan(plan, [msg])
    n = accounted(plan)
    event("outcome: " + ("reading" if plan.readings else "sample" if plan.samples else "state" if plan.states
                         else "rejected" if plan.rejected else "ignored" if plan.ignored else "silent"))
    assert n == 1 or (n == 0 and silent_ok(topic, payload, plan)), (topic, payload[:200], plan)
    if plan.readings:
        reading, _rx = plan.readings[0]
        assert T.reading(reading.unit, reading.automate) == topic


@props(40)
@given(st.lists(messages(), min_size=2, max_size=8), st.integers(0, 8))
def test_batches_of_anything_are_planned_without_holding(batch: list[tuple[str, bytes]], split: int) -> None:
    """Messages meet in one state (same automates and meters), over two batches."""
    p = proc()
    raws = [RawMessage(t, b, NOW + timedelta(milliseconds=i), i, 1) for i, (t, b) in enumerate(batch)]
    for part in (raws[:split], raws[split:]):
        if part:
            check_plan(p.process(part), part)


@props(20)
@given(st.lists(messages(), min_size=1, max_size=6))
def test_a_batch_redone_after_undo_plans_the_same(batch: list[tuple[str, bytes]]) -> None:
    """The service undoes a batch whose transaction failed and plans it again: same plan."""
    p = proc()
    raws = [RawMessage(t, b, NOW, i, 1) for i, (t, b) in enumerate(batch)]
    first = p.process(raws)
    p.undo()
    again = p.process(raws)
    assert again == first
