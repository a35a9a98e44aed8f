"""The legacy HTTP senders' adapter (plantmodel/legacy.py): seed 1's /collector/info fields and seed
2's /webhook/ fields become our Reading and PowerSample; every missing, non-numeric or absurd field is
refused with a reason naming the sender's field."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plantmodel import legacy
from plantmodel.errors import ValidationError
from plantmodel.readings import Reading
from plantmodel.shelly import PowerSample

NOW = datetime(2026, 11, 21, 10, 15, 30, 123456, tzinfo=UTC)
SEED = {"unityId": 3, "tmp_Cuve": 3.2, "tmp_Ext": 11.4, "poids_Lait_Cuve": 4000, "mesure_PH": 7.0, "mesure_K": 40,
        "concentration_NaCl": 1.3, "niv_Bact_Salmonelle": 20, "niv_Bact_Ecoli": 40, "niv_Bact_Listeria": 30}
FORM = {k: str(v) for k, v in SEED.items()}
WEBHOOK = {"power": 120.5, "voltage": 230.1, "current": 0.52, "energy": 10.2}


def reading(fields: dict[str, Any], unit: int = 3, *, automate_type: str | None = None,
            previous_milk_kg: float | None = None) -> Reading:
    return legacy.collector_reading(fields, unit, now=NOW, automate_type=automate_type,
                                    previous_milk_kg=previous_milk_kg)


def refused(fields: dict[str, Any], unit: int = 3) -> str:
    with pytest.raises(ValidationError) as exc:
        reading(fields, unit)
    return exc.value.reason


def test_seed_fields_map_to_the_reading() -> None:
    r = reading(SEED)
    assert (r.unit, r.automate, r.seq, r.type) == (3, 1, None, "0x00000000")
    assert r.measures() == {"tank_temp_c": 3.2, "ext_temp_c": 11.4, "milk_kg": 4000, "product_kg": 0, "ph": 7.0,
                            "k_mg_l": 40, "nacl_g_l": 1.3, "salmonella_ppm": 20, "ecoli_ppm": 40, "listeria_ppm": 30}
    assert r.ts == NOW.replace(microsecond=123000)  # the receive time, at the database's millisecond
    assert "seq" not in r.to_dict()  # the bridge numbers legacy readings itself
    assert Reading.from_json(r.to_json()) == r
    assert list(legacy.COLLECTOR_FIELDS.values()) == [m for m in r.measures() if m != "product_kg"]


def test_form_text_gives_the_same_reading_as_json_numbers() -> None:
    assert reading(FORM) == reading(SEED)
    assert reading({**FORM, "tmp_Cuve": "+3.2e0", "mesure_K": "40."}) == reading(SEED)


def test_optional_automate_type_time_and_product() -> None:
    r = reading({**SEED, "automate": 7, "type": "0x0000ba27", "timestamp": "2026-11-21T10:00:00Z", "product_kg": 12})
    assert (r.automate, r.type, r.ts, r.product_kg) == (7, "0x0000BA27", datetime(2026, 11, 21, 10, tzinfo=UTC), 12)
    assert reading({**FORM, "automate": "7", "ts": "2026-11-21T10:00:00.500Z"}).ts.microsecond == 500_000
    # No type sent: the automate's stored one, else "unknown".
    assert reading(SEED, automate_type="0x0000BA2F").type == "0x0000BA2F"
    assert reading({**SEED, "type": "0x0000BA21"}, automate_type="0x0000BA2F").type == "0x0000BA21"


@pytest.mark.parametrize(("previous", "expected"), [(None, 0), (4060, 60), (3990, 0), (4000, 0)])
def test_product_is_the_milk_drop_since_the_previous_reading(previous: float | None, expected: float) -> None:
    """As the simulator computes it: a refill (milk going up) makes no product."""
    assert reading(SEED, previous_milk_kg=previous).product_kg == expected


@pytest.mark.parametrize("field", ["unityId", *legacy.COLLECTOR_FIELDS])
def test_every_missing_field_is_named(field: str) -> None:
    assert refused({k: v for k, v in SEED.items() if k != field}) == f"missing field {field!r}"


def test_several_missing_fields_are_all_named() -> None:
    assert refused({"unityId": 3, "tmp_Cuve": 3.2}) == "missing fields " + ", ".join(
        repr(f) for f in legacy.COLLECTOR_FIELDS if f != "tmp_Cuve")


BAD_NUMBERS = ["", "abc", "nan", "NaN", "inf", "-Infinity", "3,2", " 3.2", "3.2 ", "0x10", "1_000", "٣", "３",
               "1e999", "--1", "1e", ".", float("nan"), float("inf"), True, False, None, [3.2], {"v": 3.2}, 10**400]


@pytest.mark.parametrize("field", [*legacy.COLLECTOR_FIELDS, "product_kg"])
@pytest.mark.parametrize("value", BAD_NUMBERS, ids=repr)
def test_every_non_numeric_value_is_named(field: str, value: Any) -> None:
    reason = refused({**SEED, field: value})
    assert reason.startswith(f"field {field!r}"), reason


@pytest.mark.parametrize(("field", "value"), [("tmp_Cuve", 500), ("mesure_PH", 15), ("poids_Lait_Cuve", -1),
                                              ("niv_Bact_Listeria", 2e6), ("product_kg", -5)])
def test_absurd_values_name_the_senders_field(field: str, value: float) -> None:
    reason = refused({**SEED, field: value})
    assert reason.startswith(f"field {field!r}") and "absurd" in reason, reason


@pytest.mark.parametrize(("fields", "names"), [
    ({"unityId": "3.0"}, "'unityId' must be a whole number"),
    ({"unityId": 3.0}, "'unityId' must be a whole number"),
    ({"unityId": True}, "'unityId' must be a whole number"),
    ({"unityId": 0}, "'unityId' = 0 is out of range"),
    ({"unityId": 10_000}, "'unityId' = 10000 is out of range"),
    ({"automate": 0}, "'automate' = 0 is out of range"),
    ({"automate": "x"}, "'automate' must be a whole number"),
    ({"automate": 1000}, "'automate' = 1000 is out of range"),
    ({"type": "BA27"}, "'type' must be a 32-bit hex code"),
    ({"type": 0xBA27}, "'type' must be a 32-bit hex code"),
    ({"timestamp": "yesterday"}, "'timestamp' must be ISO 8601"),
    ({"ts": 1732184100}, "'ts' must be ISO 8601"),
    ({"timestamp": "2026-11-21T10:00:00+01:00"}, "'timestamp' must be ISO 8601 UTC"),
    ({"timestamp": "2026-11-21T10:00:00Z", "ts": "2026-11-21T10:00:00Z"}, "give 'timestamp' or 'ts', not both"),
])
def test_bad_optional_and_id_fields_are_named(fields: dict[str, Any], names: str) -> None:
    assert names in refused({**SEED, **fields})


def test_unityid_must_be_the_tokens_unit() -> None:
    assert legacy.collector_unit(SEED) == 3
    assert "'unityId' = 3 is not unit 4" in refused(SEED, unit=4)


def test_unknown_fields_are_ignored() -> None:
    assert reading({**SEED, "firmware": "v1.2", "tmp_Cuve2": "garbage", "nested": {"a": [1]}}) == reading(SEED)


def test_webhook_sample() -> None:
    s = legacy.webhook_sample(WEBHOOK, "legacy-pro1pm", NOW)
    assert (s.meter, s.apower, s.voltage, s.current, s.energy_wh) == ("legacy-pro1pm", 120.5, 230.1, 0.52, 10.2)
    assert (s.output, s.freq, s.pf, s.ret_energy_wh, s.temperature_c, s.errors) == (None, None, None, None, None, ())
    assert s.ts == NOW.replace(microsecond=123000)  # the server adds the time
    assert PowerSample.from_json(s.to_json()) == s
    as_text = legacy.webhook_sample({k: str(v) for k, v in WEBHOOK.items()}, "legacy-pro1pm", NOW)
    assert as_text == s
    assert legacy.webhook_sample({**WEBHOOK, "timestamp": "2020-01-01T00:00:00Z", "x": 1}, "m", NOW).ts == s.ts


@pytest.mark.parametrize("field", list(legacy.WEBHOOK_FIELDS))
def test_webhook_missing_and_bad_fields_are_named(field: str) -> None:
    with pytest.raises(ValidationError, match=f"missing field '{field}'"):
        legacy.webhook_sample({k: v for k, v in WEBHOOK.items() if k != field}, "m", NOW)
    for value in ("", "abc", "nan", float("inf"), True, None, "1e999"):
        with pytest.raises(ValidationError, match=f"^field '{field}'"):
            legacy.webhook_sample({**WEBHOOK, field: value}, "m", NOW)
    with pytest.raises(ValidationError, match=f"^field '{field}' = .* is absurd"):
        legacy.webhook_sample({**WEBHOOK, field: 1e14}, "m", NOW)


def test_webhook_refuses_a_bad_meter_id() -> None:
    with pytest.raises(ValidationError, match="invalid meter id"):
        legacy.webhook_sample(WEBHOOK, "a/b", NOW)


@pytest.mark.parametrize(("device", "unit", "meter"), [
    ("units/1", 1, None), ("units/9999", 9999, None), ("meters/legacy-pro1pm", None, "legacy-pro1pm"),
    ("meters/shellypro1pm-a8032ab1c2d3", None, "shellypro1pm-a8032ab1c2d3")])
def test_token_devices(device: str, unit: int | None, meter: str | None) -> None:
    assert legacy.check_token_device(device) == device
    assert (legacy.token_unit(device), legacy.token_meter(device)) == (unit, meter)


@pytest.mark.parametrize("device", ["units/0", "units/01", "units/10000", "units/1/automates/2", "units/",
                                    "meters/", "meters/a/b", "meters/-x", "shellypro1pm-x", "", None, 3])
def test_bad_token_devices_are_refused(device: Any) -> None:
    with pytest.raises(ValidationError, match=r"must be units/<unit number>|invalid meter id"):
        legacy.check_token_device(device)


NUMBER_LIKE = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(), st.text(max_size=12),
                        st.booleans(), st.none())


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])  # (a loaded CI box)
@given(st.dictionaries(st.sampled_from([*SEED, "automate", "type", "timestamp", "ts", "product_kg"]), NUMBER_LIKE))
def test_any_fields_give_a_valid_reading_or_a_validation_error(fields: dict[str, Any]) -> None:
    """Never another exception (a 500 on the route), never a reading the model would refuse."""
    try:
        r = reading({**SEED, **fields})
    except ValidationError:
        return
    assert Reading.from_json(r.to_json()) == r
