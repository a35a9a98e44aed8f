"""Property-based tests (hypothesis) of the model's parsers of untrusted input: readings, unit status,
confirmations, alarms, thresholds, scopes, topics and the JSON helpers.

Two properties throughout: what the model builds parses back to the same value, and anything else is
either accepted (and then satisfies the model's invariants) or refused with a
:class:`~plantmodel.errors.ValidationError` carrying a readable reason — never another exception.

The strategies here are shared by the other ``test_properties_*`` modules. Runs are derandomized (the
same examples on every run, so CI is deterministic) and sized to keep the whole property suite fast.
"""

from __future__ import annotations

import json
import math
import os
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from plantmodel import jsonutil
from plantmodel.confirm import AutomateConfirmation, Confirmation
from plantmodel.errors import ValidationError
from plantmodel.measures import (
    AUTOMATE_ALARM_MEASURES,
    AUTOMATE_MEASURES,
    MEASURES,
    METER_ALARM_MEASURES,
    METER_MEASURES,
    format_automate_type,
)
from plantmodel.readings import MAX_AUTOMATE, MAX_UNIT, Reading, check_boot, format_ts, parse_ts
from plantmodel.sources import AutomateSource, MeterSource, parse_source
from plantmodel.status import STATES, DeviceStatus
from plantmodel.storage import SEQ_MAX
from plantmodel.text import printable
from plantmodel.thresholds import DEFAULT_SCOPE, SEVERITIES, Alarm, Threshold, check_scope, scope_chain
from plantmodel.topics import (
    SHELLY_SUFFIXES,
    AlarmTopic,
    ConfirmTopic,
    ReadingTopic,
    ShellyTopic,
    Topics,
    UnitStatusTopic,
)

# -- the profile: deterministic, no example database written into the work tree, no deadline (CI
# machines are slow and shared; the budget is kept by max_examples instead). The example counts below
# keep the whole property suite within CI's time budget (~20 s); ABB_PROPERTY_SCALE=20 runs twenty times
# as many, for a longer hunt on a workstation.
SCALE = float(os.environ.get("ABB_PROPERTY_SCALE", "1"))
settings.register_profile(
    "abb-properties", derandomize=True, database=None, deadline=None, max_examples=100, print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
PROFILE = settings.get_profile("abb-properties")


def props(max_examples: int = 100) -> settings:
    return settings(PROFILE, max_examples=max(1, round(max_examples * SCALE)))


def assert_reason(exc: ValidationError) -> None:
    """A refusal a person can read: non-empty, one line, no control characters."""
    assert type(exc.reason) is str and exc.reason.strip(), repr(exc.reason)
    assert printable(exc.reason) == exc.reason, repr(exc.reason)
    assert str(exc) == exc.reason


def refused(fn: Any, *args: Any, **kw: Any) -> ValidationError | None:
    """Call ``fn``; return the ValidationError it raised (checked), or None if it accepted. Any other
    exception propagates and fails the test."""
    try:
        fn(*args, **kw)
    except ValidationError as exc:
        assert_reason(exc)
        return exc
    return None


# -- strategies: valid values --------------------------------------------------------------------------

EPOCH_MIN = datetime(2000, 1, 1, tzinfo=UTC)
EPOCH_MAX = datetime(2200, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)


@st.composite
def timestamps(draw: st.DrawFn, lo: datetime = EPOCH_MIN, hi: datetime = EPOCH_MAX) -> datetime:
    """Aware datetimes with millisecond precision (what the model keeps), in various fixed offsets."""
    ms = draw(st.integers(0, (hi - lo) // timedelta(milliseconds=1)))
    ts = lo + timedelta(milliseconds=ms)
    offset = draw(st.sampled_from([0, 0, 60, -300, 330, 14 * 60 - 1]))
    return ts.astimezone(timezone(timedelta(minutes=offset)))


def measure_value(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False) | st.integers(math.ceil(lo), math.floor(hi))


BOOTS = st.none() | st.from_regex(r"[A-Za-z0-9_-]{1,32}", fullmatch=True) | st.integers(0, 10**32 - 1)
METER_IDS = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", fullmatch=True)


@st.composite
def readings(draw: st.DrawFn, unit: int | None = None, automate: int | None = None) -> Reading:
    return Reading(
        unit=draw(st.integers(1, MAX_UNIT)) if unit is None else unit,
        automate=draw(st.integers(1, MAX_AUTOMATE)) if automate is None else automate,
        type=format_automate_type(draw(st.integers(0, 0xFFFFFFFF))),
        seq=draw(st.integers(0, SEQ_MAX)),
        ts=draw(timestamps()),
        **{name: draw(measure_value(m.plausible_min, m.plausible_max)) for name, m in AUTOMATE_MEASURES.items()},
        boot=check_boot(draw(BOOTS)),
    )


sources = st.builds(AutomateSource, st.integers(1, MAX_UNIT), st.integers(1, MAX_AUTOMATE)) | st.builds(
    MeterSource, METER_IDS)
finite = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**53), 2**53)


@st.composite
def alarms(draw: st.DrawFn) -> Alarm:
    source = draw(sources)
    measures = AUTOMATE_MEASURES if isinstance(source, AutomateSource) else METER_MEASURES
    return Alarm(source, draw(st.sampled_from(list(measures))), draw(finite), draw(finite),
                 draw(st.sampled_from(["low", "high"])), draw(st.sampled_from(SEVERITIES)),
                 draw(st.sampled_from(["active", "cleared"])), draw(timestamps()), draw(timestamps()))


@st.composite
def confirmations(draw: st.DrawFn) -> Confirmation:
    entries = {}
    for automate in draw(st.sets(st.integers(1, MAX_AUTOMATE), max_size=4)):
        newest = draw(st.integers(-1, SEQ_MAX))
        entries[automate] = AutomateConfirmation(draw(st.integers(-1, newest)), newest, draw(timestamps()),
                                                 check_boot(draw(BOOTS)))
    return Confirmation(draw(st.integers(1, MAX_UNIT)), draw(timestamps()), entries)


scopes = st.one_of(
    st.just(DEFAULT_SCOPE),
    st.integers(1, MAX_UNIT).map(lambda u: f"units/{u}"),
    st.builds(lambda u, a: f"units/{u}/automates/{a}", st.integers(1, MAX_UNIT), st.integers(1, MAX_AUTOMATE)),
    METER_IDS.map(lambda m: f"meters/{m}"),
)

# -- strategies: hostile JSON text ---------------------------------------------------------------------

# Number tokens as raw JSON text: what json.dumps cannot even write (NaN, an integer of 5000 digits, past
# Python's int-string limit), overflow (1e400 parses to inf), columns' edges (2**63) and ordinary ones.
NUMBER_TOKENS = st.one_of(
    st.sampled_from(["0", "-0", "1", "-1", "1.5", "3.2", "7.0", "4012", "1e400", "-1e400", "1e-400", "1e308",
                     "NaN", "Infinity", "-Infinity", "1" * 5000, "-" + "9" * 4301, "1" + "0" * 400,
                     str(2**63), str(2**63 - 1), str(2**64), str(-(2**63) - 1), "1795000000.25", "0.1e1"]),
    st.integers().map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
)
STRING_TOKENS = st.one_of(
    st.text(max_size=12).map(json.dumps),  # escaped (ensure_ascii)
    st.text(max_size=12).map(lambda s: json.dumps(s, ensure_ascii=False)),  # raw unicode, controls escaped
    st.sampled_from(['"\\ud800"', '"\\u0000"', '"a\x01b"', '"\u202e\u2066x"', '"\x1b[31mred"', '"°C"',
                     '"2026-11-21T10:15:00.000Z"', '"0x0000BA27"', '"online"', '"²"', '"٣"', '"00"',
                     '"' + "9" * 5000 + '"']),
)
SCALAR_TOKENS = st.one_of(NUMBER_TOKENS, STRING_TOKENS, st.sampled_from(["true", "false", "null"]))
KEYS = st.sampled_from(["unit", "automate", "seq", "ts", "boot", "src", "method", "params", "switch:0",
                        "apower", "output", "aenergy", "total", "result", "error", "id", "sys", "unixtime",
                        "state", "automates", "1", "7"]) | st.text(max_size=6)


def obj_text(items: dict[str, str]) -> str:
    return "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in items.items()) + "}"


JSON_TEXT = st.recursive(
    SCALAR_TOKENS,
    lambda children: st.lists(children, max_size=4).map(lambda xs: "[" + ",".join(xs) + "]")
    | st.dictionaries(KEYS, children, max_size=5).map(obj_text),
    max_leaves=12,
)


@st.composite
def deep(draw: st.DrawFn, max_depth: int = 5000) -> str:
    """Nesting from a little to far past what the JSON decoder or a recursive copy can take."""
    n = draw(st.sampled_from([d for d in (1, 2, 40, 200, 600, 900, 990, 1200, 5000) if d <= max_depth]))
    inner = draw(SCALAR_TOKENS)
    if draw(st.booleans()):
        return "[" * n + inner + "]" * n
    return '{"a":' * n + inner + "}" * n


def as_payload(text: str, how: int) -> bytes | str:
    return text if how == 0 else text.encode("utf-8", "surrogatepass")


def with_fields(base: dict[str, Any], overrides: dict[str, str], drop: set[str]) -> str:
    """``base`` as JSON text with some fields dropped and some replaced by raw JSON text."""
    items = {k: json.dumps(v) for k, v in base.items() if k not in drop}
    items.update(overrides)
    return obj_text(items)


# Anything at all that may arrive: bytes, text, JSON of any shape, deep JSON, and mutated valid payloads
# (built by the callers, who know what valid looks like).
ANY_PAYLOAD = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=32).map(lambda s: s.encode("utf-8")),
    st.builds(as_payload, JSON_TEXT, st.integers(0, 1)),
    st.builds(as_payload, deep(), st.integers(0, 1)),
    st.sampled_from([b"", b"{}", b"[]", b"null", b"\xef\xbb\xbf{}", b"\xed\xa0\x80", b'{"a":1}{}', b"\x00",
                     b'{"a":NaN}', b'{"a":1e400}', b"{" + b"1" * 5000 + b"}"]),
)


# -- JSON helpers ----------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=16,
)


@props(50)
@given(st.dictionaries(st.text(max_size=8), json_values, max_size=6))
def test_dumps_then_loads_object_round_trips(data: dict[str, Any]) -> None:
    text = jsonutil.dumps(data)
    assert jsonutil.loads_object(text, "x") == data
    assert jsonutil.loads_object(text.encode("utf-8"), "x") == data
    assert "\n" not in text


# Regressions (bugs these tests found): an integer past Python's 4300-digit limit raised ValueError; 1e400
# decoded to inf and got through.
@props(120)
@given(ANY_PAYLOAD)
@example(b'{"a":' + b"1" * 5000 + b"}")
@example(b'{"a":[1e400]}')
def test_loads_object_returns_a_dict_or_refuses(payload: bytes | str) -> None:
    try:
        data = jsonutil.loads_object(payload, "payload")
    except ValidationError as exc:
        assert_reason(exc)
        return
    assert isinstance(data, dict)
    # Nothing non-finite gets through: NaN/Infinity are refused, 1e400 (inf) is left to number().
    jsonutil.dumps({k: v for k, v in data.items() if not (isinstance(v, float) and not math.isfinite(v))})


@props(90)
@given(st.dictionaries(KEYS, JSON_TEXT, max_size=4).map(obj_text), KEYS)
def test_field_helpers_return_the_type_or_refuse(text: str, key: str) -> None:
    try:
        data = jsonutil.loads_object(text, "x")
    except ValidationError:
        return
    for helper, kind in ((jsonutil.require_int, int), (jsonutil.require_number, (int, float)),
                         (jsonutil.require_str, str)):
        try:
            value = helper(data, key)
        except ValidationError as exc:
            assert_reason(exc)
            continue
        assert isinstance(value, kind) and not isinstance(value, bool)
        assert value is data[key]  # returned as decoded, never converted
        if helper is jsonutil.require_number:
            # A number the model accepts is one the database (DOUBLE) and float arithmetic can take.
            assert math.isfinite(float(value))
    if key in data:
        try:
            value = jsonutil.number(data[key], key)
        except ValidationError as exc:
            assert_reason(exc)
        else:
            assert math.isfinite(float(value))


@props(60)
@given(st.integers(min_value=-(10**400), max_value=10**400) | st.sampled_from([10**309, -(10**309), 2**1024]))
def test_number_accepts_only_what_a_float_can_hold(value: int) -> None:
    err = refused(jsonutil.number, value, "x")
    try:
        fits = math.isfinite(float(value))
    except OverflowError:
        fits = False
    assert (err is None) == fits


@props(30)
@given(st.integers(min_value=-(2**70), max_value=2**70), st.integers(-10, 10), st.integers(-10, 10))
def test_require_int_bounds(value: int, lo: int, hi: int) -> None:
    err = refused(jsonutil.require_int, {"k": value}, "k", minimum=lo, maximum=hi)
    assert (err is None) == (lo <= value <= hi)


# -- timestamps and boot ids -----------------------------------------------------------------------------

@props(120)
@given(timestamps())
def test_format_then_parse_ts_round_trips(ts: datetime) -> None:
    text = format_ts(ts)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", text, re.ASCII)
    back = parse_ts(text)
    assert back == ts and back.tzinfo == UTC


TS_LIKE = st.one_of(
    st.from_regex(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,7})?(Z|[+-]\d\d:?\d\d)?", fullmatch=True),
    st.from_regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-]00:?00)",
                  fullmatch=True),
    st.text(max_size=30),
)


@props(120)
@given(TS_LIKE | st.integers() | st.none() | st.floats())
def test_parse_ts_returns_utc_milliseconds_or_refuses(text: Any) -> None:
    try:
        ts = parse_ts(text)
    except ValidationError as exc:
        assert_reason(exc)
        assert "'ts'" in exc.reason
        return
    assert isinstance(text, str) and text.isascii()
    assert ts.tzinfo == UTC and ts.microsecond % 1000 == 0 and 2000 <= ts.year <= 2200
    assert parse_ts(format_ts(ts)) == ts


@props(120)
@given(BOOTS | st.text(max_size=40) | st.booleans() | st.floats() | st.integers() | st.lists(st.integers()))
def test_check_boot_keeps_valid_ids_as_text(boot: Any) -> None:
    try:
        out = check_boot(boot)
    except ValidationError as exc:
        assert_reason(exc)
        return
    if boot is None:
        assert out is None
    else:
        assert isinstance(out, str) and re.fullmatch(r"[A-Za-z0-9_-]{1,32}", out)
        assert check_boot(out) == out  # idempotent: what is stored parses again


# -- readings ------------------------------------------------------------------------------------------

@props(60)
@given(readings())
def test_reading_round_trips_through_json_and_dict(r: Reading) -> None:
    for payload in (r.to_json(), r.to_json().encode("utf-8")):
        back = Reading.from_json(payload)
        assert back == r and back.boot == r.boot
    assert Reading.from_dict(json.loads(r.to_json())) == r
    assert Reading.from_dict(r.to_dict()) == r


READING_KEYS = ["unit", "automate", "type", "seq", "ts", *AUTOMATE_MEASURES, "boot"]


@st.composite
def mutated_readings(draw: st.DrawFn) -> tuple[str, set[str], dict[str, str]]:
    r = draw(readings())
    drop = draw(st.sets(st.sampled_from(READING_KEYS), max_size=2))
    overrides = draw(st.dictionaries(st.sampled_from([*READING_KEYS, "extra"]), JSON_TEXT, max_size=2))
    return with_fields(r.to_dict(), overrides, drop), drop, overrides


def check_accepted_reading(r: Reading) -> None:
    assert 1 <= r.unit <= MAX_UNIT and 1 <= r.automate <= MAX_AUTOMATE and 0 <= r.seq <= SEQ_MAX
    for name, m in AUTOMATE_MEASURES.items():
        value = getattr(r, name)
        assert not isinstance(value, bool) and m.plausible_min <= value <= m.plausible_max
    assert Reading.from_json(r.to_json()) == r


@props(90)
@given(mutated_readings())
def test_mutated_reading_is_accepted_whole_or_refused(case: tuple[str, set[str], dict[str, str]]) -> None:
    text, drop, _overrides = case
    try:
        r = Reading.from_json(text)
    except ValidationError as exc:
        assert_reason(exc)
        return
    assert not (drop - {"boot"}), "a reading without a required field was accepted"
    check_accepted_reading(r)


@props(180)
@given(ANY_PAYLOAD)
@example(b'{"seq":' + b"1" * 5000 + b"}")
@example(b'{"unit":3,"automate":7,"seq":1,"ph":1e400}')
def test_any_payload_is_a_reading_or_refused(payload: bytes | str) -> None:
    try:
        r = Reading.from_json(payload)
    except ValidationError as exc:
        assert_reason(exc)
        return
    check_accepted_reading(r)


@props(60)
@given(readings(), st.sampled_from(list(AUTOMATE_MEASURES)), st.booleans(),
       st.floats(min_value=1e-9, max_value=1e300) | st.integers(1, 10**30))
def test_absurd_measures_are_refused(r: Reading, name: str, below: bool, by: float) -> None:
    m = AUTOMATE_MEASURES[name]
    value = m.plausible_min - by if below else m.plausible_max + by
    assume(not m.plausible_min <= value <= m.plausible_max)  # float rounding can land back on the edge
    data = {**r.to_dict(), name: value}
    err = refused(Reading.from_dict, data)
    assert err is not None and name in err.reason


@props(60)
@given(readings(), st.sampled_from(READING_KEYS[:-1]))
def test_each_missing_required_field_is_named(r: Reading, key: str) -> None:
    assume(key != "seq")  # optional: a legacy HTTP sender's reading has none (the bridge numbers it)
    data = r.to_dict()
    del data[key]
    err = refused(Reading.from_dict, data)
    assert err is not None and repr(key) in err.reason


@props(60)
@given(readings(), st.sampled_from(["unit", "automate", "seq", *AUTOMATE_MEASURES]),
       st.sampled_from([True, False, None, "1", [1], {"v": 1}, 1.5]))
def test_wrong_types_are_refused(r: Reading, key: str, value: Any) -> None:
    assume(not (key == "seq" and value is None))  # seq null: an unnumbered reading
    if value == 1.5 and key in AUTOMATE_MEASURES:
        value = "1.5"
    err = refused(Reading.from_dict, {**r.to_dict(), key: value})
    assert err is not None


# -- unit status -----------------------------------------------------------------------------------------

@props(60)
@given(st.sampled_from(STATES), timestamps())
def test_device_status_round_trips(state: str, ts: datetime) -> None:
    s = DeviceStatus(state, ts)
    assert DeviceStatus.from_json(s.to_json()) == s
    assert DeviceStatus.from_json(s.to_json().encode()) == s


@props(120)
@given(ANY_PAYLOAD | st.builds(lambda o: obj_text(o).encode(), st.dictionaries(
    st.sampled_from(["state", "ts", "x"]), STRING_TOKENS | NUMBER_TOKENS, max_size=3)))
def test_device_status_parses_or_refuses(payload: bytes | str) -> None:
    try:
        s = DeviceStatus.from_json(payload)
    except ValidationError as exc:
        assert_reason(exc)
        return
    assert s.state in STATES and s.ts.tzinfo == UTC
    assert DeviceStatus.from_json(s.to_json()) == s


# -- confirmations ---------------------------------------------------------------------------------------

@props(50)
@given(confirmations())
def test_confirmation_round_trips(c: Confirmation) -> None:
    back = Confirmation.from_json(c.to_json())
    assert back == c
    assert Confirmation.from_json(c.to_json().encode()) == c


@st.composite
def mutated_confirmations(draw: st.DrawFn) -> str:
    c = draw(confirmations())
    data = c.to_dict()
    if draw(st.booleans()):
        key = draw(st.sampled_from(["1", "01", "0", "1000", "²", "٣", "-1", "", "9" * 5000, "+1", " 1", "1_0"]))
        data["automates"][key] = {"confirmed": 1, "newest": 2, "newest_ts": "2026-11-21T10:15:00.000Z"}
    text = json.dumps(data)
    overrides = draw(st.dictionaries(st.sampled_from(["unit", "ts", "automates"]), JSON_TEXT, max_size=1))
    if overrides:
        text = with_fields(data, overrides, set())
    return text


@props(90)
@given(mutated_confirmations() | ANY_PAYLOAD)
@example('{"unit":1,"ts":"2026-11-21T10:15:00.000Z","automates":{"²":{"confirmed":1,"newest":2,'
         '"newest_ts":"2026-11-21T10:15:00.000Z"}}}')  # "²".isdigit(), int("²") raised ValueError
@example('{"unit":-5,"ts":"2026-11-21T10:15:00.000Z","automates":{}}')  # accepted
def test_confirmation_parses_or_refuses(payload: bytes | str) -> None:
    try:
        c = Confirmation.from_json(payload)
    except ValidationError as exc:
        assert_reason(exc)
        return
    assert 1 <= c.unit <= MAX_UNIT
    for automate, entry in c.automates.items():
        assert 1 <= automate <= MAX_AUTOMATE
        assert -1 <= entry.confirmed <= entry.newest <= SEQ_MAX
    assert Confirmation.from_json(c.to_json()) == c


# -- alarms ----------------------------------------------------------------------------------------------

@props(90)
@given(alarms())
def test_alarm_round_trips(a: Alarm) -> None:
    assert Alarm.from_json(a.to_json()) == a


ALARM_KEYS = ["source", "measure", "value", "limit", "bound", "severity", "state", "raised_at", "since"]


@st.composite
def mutated_alarms(draw: st.DrawFn) -> str:
    a = draw(alarms())
    data = a.to_dict()
    choice = draw(st.sampled_from(["measure", "bound", "severity", "state", "source", "raw"]))
    if choice == "raw":
        overrides = draw(st.dictionaries(st.sampled_from(ALARM_KEYS), JSON_TEXT, max_size=2))
        return with_fields(data, overrides, draw(st.sets(st.sampled_from(ALARM_KEYS), max_size=1)))
    pool = {"measure": [*MEASURES, "bogus", "PH", ""], "bound": ["low", "high", "middle", ""],
            "severity": [*SEVERITIES, "fatal", ""], "state": ["active", "cleared", "open", ""],
            "source": ["units/1/automates/1", "meters/m-1", "units/²/automates/1", "units/1", "meters/",
                       "units/" + "1" * 5000 + "/automates/1", "units/01/automates/1", "units/0/automates/1"]}
    data[choice] = draw(st.sampled_from(pool[choice]))
    return json.dumps(data)


def _alarm_text(**changes: Any) -> str:
    base = {"source": "units/1/automates/1", "measure": "ph", "value": 7.4, "limit": 7.2, "bound": "high",
            "severity": "warning", "state": "active", "raised_at": "2026-11-21T10:15:00.000Z",
            "since": "2026-11-21T10:15:00.000Z"}
    return json.dumps({**base, **changes})


@props(90)
@given(mutated_alarms() | ANY_PAYLOAD)
@example(_alarm_text(measure="bogus"))  # accepted; its to_json() raised KeyError
@example(_alarm_text(source="meters/m-1", measure="tank_temp_c"))  # accepted
@example(_alarm_text(bound="middle"))  # accepted
@example(_alarm_text(source="units/²/automates/1"))  # ValueError
def test_alarm_parses_or_refuses(payload: bytes | str) -> None:
    try:
        a = Alarm.from_json(payload)
    except ValidationError as exc:
        assert_reason(exc)
        return
    # What is accepted is an alarm the rest of the stack can show and publish again.
    assert a.measure in (AUTOMATE_MEASURES if isinstance(a.source, AutomateSource) else METER_MEASURES)
    assert a.bound in ("low", "high") and a.severity in SEVERITIES and a.state in ("active", "cleared")
    assert math.isfinite(a.value) and math.isfinite(a.limit)
    assert Alarm.from_json(a.to_json()) == a


# -- sources, scopes and thresholds ------------------------------------------------------------------

SCOPE_LIKE = st.one_of(
    scopes,
    st.builds(lambda parts: "/".join(parts), st.lists(st.sampled_from(
        ["units", "automates", "meters", "*", "1", "01", "0", "9999", "10000", "²", "٣", "１", "-1", "+1",
         "1" * 5000, "", " 1", "m-1", "a..b", "x" * 65]), min_size=1, max_size=5)),
    st.text(max_size=20),
)


@props(180)
@given(SCOPE_LIKE)
@example("units/²/automates/1")  # ValueError
@example("units/1/automates/" + "1" * 5000)  # ValueError
def test_parse_source_parses_or_refuses(key: str) -> None:
    try:
        source = parse_source(key)
    except ValidationError as exc:
        assert_reason(exc)
        return
    assert source.key == key  # only the one canonical spelling is accepted


@props(240)
@given(SCOPE_LIKE)
@example("units/²/automates/1")  # ValueError
@example("units/" + "1" * 5000)  # ValueError
def test_check_scope_accepts_only_canonical_scopes(scope: str) -> None:
    try:
        out = check_scope(scope)
    except ValidationError as exc:
        assert_reason(exc)
        return
    assert out == scope
    chain = scope_chain(scope)
    assert chain[0] == scope and chain[-1] == DEFAULT_SCOPE
    if scope != DEFAULT_SCOPE and scope.count("/") == 1 and scope.startswith("units/"):
        assert 1 <= int(scope.split("/")[1]) <= MAX_UNIT
    elif scope != DEFAULT_SCOPE:
        assert parse_source(scope).key == scope


@props(90)
@given(scopes)
def test_every_valid_scope_is_accepted(scope: str) -> None:
    assert check_scope(scope) == scope


threshold_args = st.fixed_dictionaries({
    "measure": st.sampled_from([*MEASURES, "bogus", ""]),
    "scope": SCOPE_LIKE,
    "low": st.none() | st.floats() | st.integers(-(10**6), 10**6),
    "high": st.none() | st.floats() | st.integers(-(10**6), 10**6),
    "deadband": st.floats() | st.integers(-5, 5),
    "severity": st.sampled_from([*SEVERITIES, "fatal", ""]),
})


@props(240)
@given(threshold_args)
@example({"measure": "ph", "scope": "*", "low": None, "high": math.inf, "deadband": 0.0, "severity": "info"})
@example({"measure": "ph", "scope": "*", "low": math.nan, "high": 7.0, "deadband": 0.0, "severity": "info"})
@example({"measure": "ph", "scope": "*", "low": 6.0, "high": 7.0, "deadband": math.nan, "severity": "info"})
def test_threshold_is_consistent_or_refused(kw: dict[str, Any]) -> None:
    try:
        t = Threshold(**kw)
    except ValidationError as exc:
        assert_reason(exc)
        return
    assert t.measure in MEASURES and check_scope(t.scope) == t.scope and t.severity in SEVERITIES
    for bound in (t.low, t.high, t.deadband):
        assert bound is None or math.isfinite(bound), "a non-finite limit never alarms (every comparison is False)"
    assert t.deadband >= 0
    if t.low is not None and t.high is not None:
        assert t.low <= t.high
    if t.scope.startswith("meters/"):
        assert t.measure in METER_ALARM_MEASURES
    if t.scope.startswith("units/"):
        assert t.measure in AUTOMATE_ALARM_MEASURES


# -- topics ----------------------------------------------------------------------------------------------

ROOTS = st.sampled_from(["plant", "abb/prod", "a", "x-1/y_2/z"])


@props(120)
@given(ROOTS, st.integers(1, MAX_UNIT), st.integers(1, MAX_AUTOMATE), METER_IDS,
       st.sampled_from(list(MEASURES)))
def test_built_topics_parse_back(root: str, unit: int, automate: int, meter: str, measure: str) -> None:
    t = Topics(root)
    assert t.parse(t.reading(unit, automate)) == ReadingTopic(AutomateSource(unit, automate))
    assert t.parse(t.unit_status(unit)) == UnitStatusTopic(unit)
    assert t.parse(t.confirmation(unit)) == ConfirmTopic(unit)
    for source in (AutomateSource(unit, automate), MeterSource(meter)):
        assert t.parse(t.alarm(source, measure)) == AlarmTopic(source, measure)
    if meter != root:  # a meter named like the topic root would be read as part of the plant's tree
        for suffix in SHELLY_SUFFIXES:
            assert t.parse(Topics.shelly(meter, suffix)) == ShellyTopic(meter, suffix)


TOPIC_PARTS = st.sampled_from(["plant", "units", "automates", "readings", "status", "alarms", "confirm",
                               "meters", "bridge", "rpc", "events", "online", "switch:0", "1", "7", "01", "0",
                               "10000", "²", "٣", "1" * 5000, "", "+", "#", "tank_temp_c", "apower",
                               "shellypro1pm-a1", "x\x00", "\u202e", "."])


@props(180)
@given(st.lists(TOPIC_PARTS, min_size=1, max_size=8).map("/".join) | st.text(max_size=40))
@example("plant/alarms/units/²/automates/1/ph")  # ValueError: the bridge held such a message
@example("plant/alarms/units/" + "1" * 5000 + "/automates/1/ph")
def test_any_topic_parses_or_is_a_topic_error(topic: str) -> None:
    t = Topics()
    try:
        parsed = t.parse(topic)
    except ValidationError as exc:
        assert_reason(exc)
        return
    match parsed:
        case ReadingTopic(source=s):
            assert t.reading(s.unit, s.automate) == topic
        case UnitStatusTopic(unit=u):
            assert t.unit_status(u) == topic
        case ConfirmTopic(unit=u):
            assert t.confirmation(u) == topic
        case AlarmTopic(source=s, measure=m):
            assert t.alarm(s, m) == topic
        case ShellyTopic(meter=m, kind=k):
            assert Topics.shelly(m, k) == topic
        case _:
            pytest.fail(f"unexpected parse result {parsed!r}")
