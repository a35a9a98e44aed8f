"""Property-based tests (hypothesis) of the Shelly Gen2 parsers: RPC frames, ``online``, switch
status, RPC requests, the merge of partial statuses and the sample taken from a merged status.

Frames the simulator and the bridge build parse back to what they were built from; anything else is
parsed, or refused with a :class:`~plantmodel.errors.ValidationError` — and a refused frame leaves a
meter's merged state exactly as it was.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from plantmodel.errors import ValidationError
from plantmodel.measures import METER_MEASURES
from plantmodel.shelly import (
    NOTIFY_METHODS,
    SWITCH_KEY,
    PowerSample,
    RpcNotification,
    RpcResponse,
    SwitchState,
    merge,
    notification,
    parse_online,
    parse_request,
    parse_rpc_frame,
    parse_switch_status,
    request,
    response,
    sample_from_switch,
    switch_from_sample,
    unix_to_dt,
)
from tests.unit.test_properties_model import (
    ANY_PAYLOAD,
    JSON_TEXT,
    METER_IDS,
    assert_reason,
    deep,
    json_values,
    obj_text,
    props,
    refused,
    with_fields,
)

UNIX_MIN, UNIX_MAX = 946_684_800, 7_258_118_400  # 2000 .. 2200, what unix_to_dt accepts


def unix_times() -> st.SearchStrategy[float]:
    # Milliseconds, as devices send them (and as stored).
    return st.integers(UNIX_MIN * 1000, UNIX_MAX * 1000).map(lambda ms: ms / 1000)


def opt_measure(name: str) -> st.SearchStrategy[float | None]:
    m = METER_MEASURES[name]
    return st.none() | st.floats(m.plausible_min, m.plausible_max, allow_nan=False)


@st.composite
def samples(draw: st.DrawFn) -> PowerSample:
    return PowerSample(
        meter=draw(METER_IDS), ts=unix_to_dt(draw(unix_times())), output=draw(st.none() | st.booleans()),
        **{name: draw(opt_measure(name)) for name in METER_MEASURES},
    )


TRICKY = st.sampled_from([0, 0.0, False, True, "", "1", [], [1], {}, None, {"total": "1"}, {"total": 1e300},
                          {"total": -1}, {"tC": None}, 1e300, -0.0, 2**63])
SWITCH_KEYS = ["id", "output", "apower", "voltage", "current", "freq", "pf", "aenergy", "ret_aenergy",
               "temperature", "source", "errors"]


@st.composite
def switch_like(draw: st.DrawFn) -> dict[str, Any]:
    """A switch status: a valid one with fields replaced by anything JSON can carry."""
    sw = switch_from_sample(draw(samples()))
    for key in draw(st.sets(st.sampled_from(SWITCH_KEYS), max_size=2)):
        sw[key] = draw(TRICKY | json_values | st.fixed_dictionaries({"total": json_values, "tC": json_values}))
    if draw(st.integers(0, 9)) == 5:  # a field nested deeper than any real status
        depth = draw(st.sampled_from([40, 300, 900]))
        sw["deep"] = json.loads('{"a":' * depth + "1" + "}" * depth)
    return sw


# -- building and parsing frames ----------------------------------------------------------------------

@props(50)
@given(samples(), st.sampled_from(NOTIFY_METHODS), unix_times())
def test_notification_round_trips(sample: PowerSample, method: str, ts: float) -> None:
    params = {"ts": ts, SWITCH_KEY: switch_from_sample(sample)}
    frame = parse_rpc_frame(notification(sample.meter, method, params).encode())
    assert isinstance(frame, RpcNotification)
    assert (frame.src, frame.method, frame.params) == (sample.meter, method, params)
    assert frame.ts == unix_to_dt(ts) and frame.switch == params[SWITCH_KEY]
    # The switch status gives back the sample it was made from.
    assert sample_from_switch(sample.meter, sample.ts, frame.switch) == sample


@props(60)
@given(samples(), st.integers(0, 2**31) | st.text(max_size=8) | st.none(), st.booleans(), unix_times())
def test_response_round_trips(sample: PowerSample, req_id: Any, full: bool, unixtime: float) -> None:
    sw = switch_from_sample(sample)
    result = {SWITCH_KEY: sw, "sys": {"unixtime": unixtime}} if full else sw
    frame = parse_rpc_frame(response(req_id, sample.meter, f"{sample.meter}/bridge", result))
    assert isinstance(frame, RpcResponse)
    assert (frame.id, frame.src, frame.result, frame.error) == (req_id, sample.meter, result, None)
    got, ts = frame.switch_status()
    if full:
        assert got == sw and ts == unix_to_dt(unixtime)
    else:
        assert ts is None and (got == sw if ("apower" in sw or "output" in sw) else got is None)


@props(60)
@given(st.integers(0, 2**31), METER_IDS, st.text(min_size=1, max_size=20),
       st.none() | st.dictionaries(st.text(max_size=5), json_values, max_size=3))
def test_request_round_trips(req_id: int, src: str, method: str, params: dict[str, Any] | None) -> None:
    assert parse_request(request(req_id, src, method, params)) == (req_id, src, method, params or {})


FRAME_KEYS = ["src", "dst", "method", "params", "id", "result", "error"]


@st.composite
def mutated_frames(draw: st.DrawFn) -> str:
    sample = draw(samples())
    if draw(st.booleans()):
        base = {"src": sample.meter, "dst": f"{sample.meter}/events", "method": draw(st.sampled_from(NOTIFY_METHODS)),
                "params": {"ts": draw(unix_times() | st.floats() | st.integers()), SWITCH_KEY: draw(switch_like())}}
    else:
        base = {"id": 1, "src": sample.meter, "dst": f"{sample.meter}/bridge",
                "result": {SWITCH_KEY: draw(switch_like()), "sys": {"unixtime": draw(unix_times())}}}
    overrides = draw(st.dictionaries(st.sampled_from(FRAME_KEYS), JSON_TEXT | deep(), max_size=2))
    return with_fields(base, overrides, draw(st.sets(st.sampled_from(FRAME_KEYS), max_size=1)))


def frame_switch(frame: RpcNotification | RpcResponse) -> tuple[dict[str, Any] | None, datetime | None, bool]:
    """(switch status, device time, full?) as the bridge reads a frame; may raise ValidationError."""
    if isinstance(frame, RpcNotification):
        return frame.switch, frame.ts, frame.method == "NotifyFullStatus"
    sw, ts = frame.switch_status()
    return sw, ts, True


DEEP_PARTIAL = ('{"src":"m-1","method":"NotifyStatus","params":{"ts":1795000000,"switch:0":{"n":'
                + '{"a":' * 900 + "1" + "}" * 900 + "}}}")


@props(90)
@given(mutated_frames() | ANY_PAYLOAD)
@example(DEEP_PARTIAL)  # RecursionError in the merge's deepcopy
@example('{"src":"m-1","method":"NotifyFullStatus","params":{"ts":1795000000,"switch:0":{"apower":1,"x":1e400}}}')
def test_any_frame_parses_or_is_refused_and_a_refusal_keeps_the_state(payload: bytes | str) -> None:
    state = SwitchState("shellypro1pm-a8032ab1c2d3")
    state.apply_full({"output": True, "apower": 10.0, "aenergy": {"total": 5.0, "by_minute": [1, 2]}},
                     datetime(2026, 11, 21, tzinfo=UTC))
    before = copy.deepcopy((state.status, state.complete))
    try:
        frame = parse_rpc_frame(payload)
        assert isinstance(frame, RpcNotification | RpcResponse) and isinstance(frame.src, str) and frame.src
        sw, ts, full = frame_switch(frame)
        assert ts is None or (ts.tzinfo == UTC and 2000 <= ts.year <= 2200)
        if sw is None:
            return
        at = ts or datetime(2026, 11, 21, tzinfo=UTC)
        sample = state.apply_full(sw, at) if full else state.apply_partial(sw, at)
    except ValidationError as exc:
        assert_reason(exc)
        assert (state.status, state.complete) == before, "a refused frame changed the meter's state"
        return
    for name, m in METER_MEASURES.items():
        value = getattr(sample, name)
        assert value is None or m.plausible_min <= value <= m.plausible_max
    # What the state keeps can be stored (the bridge writes it as JSON for the other bridges).
    json.dumps(state.status, allow_nan=False)


@props(120)
@given(ANY_PAYLOAD | st.sampled_from([b"true", b"false", b" true\n", b"True", b"1", b"\xfftrue", "false",
                                      b"true\x00", "\u2028true"]))
def test_online_is_true_false_or_refused(payload: bytes | str) -> None:
    try:
        online = parse_online(payload)
    except ValidationError as exc:
        assert_reason(exc)
        return
    text = payload.decode() if isinstance(payload, bytes) else payload
    assert online is (text.strip() == "true") and text.strip() in ("true", "false")


@props(60)
@given(st.builds(lambda sw: json.dumps(sw), switch_like()) | ANY_PAYLOAD)
@example('{"apower":1,"x":1e400}')  # inf kept in the state, which dumps() then could not write
def test_switch_status_parses_or_is_refused(payload: bytes | str) -> None:
    state = SwitchState("m-1")
    try:
        sw = parse_switch_status(payload)
        assert isinstance(sw, dict)
        state.apply_full(sw, datetime(2026, 11, 21, tzinfo=UTC))
    except ValidationError as exc:
        assert_reason(exc)
        assert state.status == {} and not state.complete
        return
    json.dumps(state.status, allow_nan=False)


@props(120)
@given(st.dictionaries(st.sampled_from(["id", "src", "method", "params", "x"]), JSON_TEXT, max_size=4).map(obj_text)
       | ANY_PAYLOAD)
def test_any_request_parses_or_is_refused(payload: bytes | str) -> None:
    try:
        _id, src, method, params = parse_request(payload)
    except ValidationError as exc:
        assert_reason(exc)
        return
    assert isinstance(src, str) and src and isinstance(method, str) and method and isinstance(params, dict)


# -- merging and sampling ---------------------------------------------------------------------------------

@props(50)
@given(samples())
def test_sample_round_trips_through_the_switch_shape(sample: PowerSample) -> None:
    assert sample_from_switch(sample.meter, sample.ts, switch_from_sample(sample)) == sample
    # Merging a stored sample's shape into nothing, or itself into itself, changes nothing.
    sw = switch_from_sample(sample)
    assert merge({}, sw) == sw == merge(sw, sw)


@props(60)
@given(switch_like())
@example({"aenergy": 0})  # taken for "no object"
@example({"temperature": ""})
def test_sample_from_any_switch_is_plausible_or_refused(sw: dict[str, Any]) -> None:
    try:
        sample = sample_from_switch("m-1", datetime(2026, 11, 21, tzinfo=UTC), sw)
    except ValidationError as exc:
        assert_reason(exc)
        return
    for name, m in METER_MEASURES.items():
        value = getattr(sample, name)
        assert value is None or (not isinstance(value, bool) and m.plausible_min <= value <= m.plausible_max)
    assert sample.output in (None, True, False)
    for key in ("aenergy", "ret_aenergy", "temperature"):
        assert sw.get(key) is None or isinstance(sw[key], dict), f"{key}={sw[key]!r} was taken for an object"


nested = st.recursive(json_values, lambda c: st.dictionaries(st.sampled_from(["a", "b", "total"]), c, max_size=3),
                      max_leaves=10)
dicts = st.dictionaries(st.sampled_from(["a", "b", "aenergy", "total"]), nested, max_size=4)


@props(60)
@given(dicts, dicts)
def test_merge_is_a_deep_update_that_leaves_its_inputs_alone(base: dict[str, Any], partial: dict[str, Any]) -> None:
    base_before, partial_before = copy.deepcopy(base), copy.deepcopy(partial)
    out = merge(base, partial)
    assert (base, partial) == (base_before, partial_before)
    assert set(out) == set(base) | set(partial)
    for key, value in partial.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            assert out[key] == merge(base[key], value)
        else:
            assert out[key] == value
    for key in set(base) - set(partial):
        assert out[key] == base[key]
    assert merge(out, partial) == out  # applying the same partial twice is applying it once
    # The result shares nothing mutable with the inputs: a later merge cannot reach back into them.
    out_copy = copy.deepcopy(out)
    for value in out.values():
        if isinstance(value, dict):
            value["poke"] = 1
    assert (base, partial) == (base_before, partial_before)
    del out_copy


@props(60)
@given(samples(), st.dictionaries(st.sampled_from(list(METER_MEASURES)), st.floats() | st.integers(), max_size=3))
def test_a_refused_partial_leaves_the_merged_state(sample: PowerSample, changes: dict[str, Any]) -> None:
    state = SwitchState(sample.meter)
    state.apply_full(switch_from_sample(sample), sample.ts)
    before = copy.deepcopy(state.status)
    partial = {k: v for k, v in changes.items() if k in ("apower", "voltage", "current", "freq", "pf")}
    err = refused(state.apply_partial, partial, sample.ts)
    if err is not None:
        assert state.status == before
    else:
        assert state.status == merge(before, partial)


@props(20)
@given(st.sampled_from([33, 100, 500, 900, 990]), st.sampled_from(["events/rpc", "status"]))
def test_deeply_nested_frames_are_refused_not_crashed(depth: int, where: str) -> None:
    inner = '{"x":' * depth + "1" + "}" * depth
    if where == "status":
        err = refused(lambda: SwitchState("m-1").apply_full(parse_switch_status(f'{{"apower":1,"n":{inner}}}'),
                                                              datetime(2026, 11, 21, tzinfo=UTC)))
    else:
        text = f'{{"src":"m-1","method":"NotifyStatus","params":{{"ts":1795000000,"switch:0":{{"n":{inner}}}}}}}'
        err = refused(lambda: SwitchState("m-1").apply_partial(parse_rpc_frame(text).switch or {},
                                                                datetime(2026, 11, 21, tzinfo=UTC)))
    if err is None:
        assert depth < 100  # what is kept must be storable and copyable again
