from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from plantmodel import DeviceStatus, Reading, ValidationError, format_ts, parse_ts
from plantmodel.measures import AUTOMATE_MEASURES

EXAMPLE = {"unit": 3, "automate": 7, "type": "0x0000BA27", "seq": 1234, "ts": "2026-11-21T10:15:00.000Z",
           "tank_temp_c": 3.4, "ext_temp_c": 11.2, "milk_kg": 4012, "product_kg": 35, "ph": 7.0,
           "k_mg_l": 41, "nacl_g_l": 1.3, "salmonella_ppm": 22, "ecoli_ppm": 40, "listeria_ppm": 31}


def payload(**changes: object) -> str:
    data = {**EXAMPLE, **changes}
    return json.dumps({k: v for k, v in data.items() if v is not ...})


def test_issue_example_round_trips() -> None:
    r = Reading.from_json(payload())
    assert (r.unit, r.automate, r.seq, r.milk_kg, r.ph) == (3, 7, 1234, 4012, 7.0)
    assert r.ts == datetime(2026, 11, 21, 10, 15, tzinfo=UTC)
    assert json.loads(r.to_json()) == EXAMPLE


def test_unknown_fields_are_tolerated() -> None:
    assert Reading.from_json(payload(firmware="1.2")).unit == 3


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json", "not valid JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[1, 2]", "must be a JSON object"),
        (payload(ph=float("nan")).encode(), "not a number"),
        (payload(ph="7.0").encode(), "'ph' must be a number"),
        (payload(ph=True).encode(), "'ph' must be a number"),
        (payload(ph=None).encode(), "'ph' must be a number, got null"),
        (payload(ph=...).encode(), "missing field 'ph'"),
        (payload(unit="3").encode(), "'unit' must be an integer"),
        (payload(unit=3.0).encode(), "'unit' must be an integer"),
        (payload(unit=0).encode(), "unit 0 out of range"),
        (payload(seq=-1).encode(), "'seq' = -1 does not fit its column"),
        (payload(seq=2**63).encode(), "'seq' = 9223372036854775808 does not fit its column"),
        (payload(type="BA27").encode(), "must look like 0x0000BA27"),
        (payload(ts="2026-11-21 10:15").encode(), "ISO 8601"),
        (payload(ts="2026-11-21T10:15:00.000+02:00").encode(), "ISO 8601"),
        (payload(ph=15).encode(), "'ph' = 15 is absurd"),
        (payload(tank_temp_c=-273).encode(), "absurd"),
        (payload(milk_kg=1e9).encode(), "absurd"),
    ],
)
def test_invalid_readings_are_refused_with_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(ValidationError) as exc:
        Reading.from_json(raw)
    assert reason in exc.value.reason


def test_out_of_normal_range_is_valid() -> None:
    """An alarm is not a validation error: 4.6 °C is a real (bad) tank temperature."""
    assert Reading.from_json(payload(tank_temp_c=4.6)).tank_temp_c == 4.6


def test_timestamps() -> None:
    ts = parse_ts("2026-11-21T10:15:00.123456Z")
    assert ts.microsecond == 123000  # milliseconds, as stored
    assert format_ts(ts) == "2026-11-21T10:15:00.123Z"
    assert parse_ts("2026-11-21T10:15:00Z") == parse_ts("2026-11-21T10:15:00.000+00:00")
    with pytest.raises(ValueError):
        format_ts(datetime(2026, 1, 1))


def test_device_status() -> None:
    s = DeviceStatus.from_json('{"state": "offline", "ts": "2026-11-21T10:15:00.000Z"}')
    assert s.state == "offline"
    assert json.loads(DeviceStatus.online().to_json())["state"] == "online"
    with pytest.raises(ValidationError):
        DeviceStatus.from_json('{"state": "sleeping", "ts": "2026-11-21T10:15:00.000Z"}')


def test_every_measure_has_a_sane_definition() -> None:
    assert len(AUTOMATE_MEASURES) == 10
    for m in AUTOMATE_MEASURES.values():
        if m.low is not None and m.high is not None:
            assert m.plausible_min <= m.low < m.high <= m.plausible_max


def test_boot_id_is_optional_text_or_a_counter() -> None:
    assert Reading.from_dict({**EXAMPLE}).boot is None
    assert Reading.from_dict({**EXAMPLE, "boot": "9f2c61d0"}).boot == "9f2c61d0"
    assert Reading.from_dict({**EXAMPLE, "boot": 42}).boot == "42"
    for bad in ("", "x" * 33, "a b", True, -1, 1.5):
        with pytest.raises(ValidationError):
            Reading.from_dict({**EXAMPLE, "boot": bad})
    assert "boot" not in Reading.from_dict({**EXAMPLE}).to_dict()  # unchanged for units without one
