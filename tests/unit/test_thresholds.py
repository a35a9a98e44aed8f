from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from plantmodel import AutomateSource, MeterSource, ValidationError
from plantmodel.thresholds import AlarmEngine, Threshold, ThresholdSet, check_scope, default_thresholds

T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
SRC = AutomateSource(3, 7)


def run(engine: AlarmEngine, values: list[float], measure: str = "tank_temp_c", source=SRC) -> list[str]:
    """Feed values one second apart; return the transitions as 'active'/'cleared' strings."""
    out = []
    for i, v in enumerate(values):
        out += [f"{e.state}@{v}" for e in engine.evaluate(source, {measure: v}, T0 + timedelta(seconds=i))]
    return out


def defaults() -> AlarmEngine:
    return AlarmEngine(ThresholdSet(default_thresholds()))


def test_defaults_are_the_normal_ranges() -> None:
    by = {t.measure: t for t in default_thresholds()}
    assert (by["tank_temp_c"].low, by["tank_temp_c"].high) == (2.5, 4.0)
    assert (by["milk_kg"].low, by["milk_kg"].high) == (3512, 4607)
    assert (by["listeria_ppm"].low, by["listeria_ppm"].high) == (28, 54)
    assert by["apower"].high == 3500 and by["apower"].low is None
    assert "product_kg" not in by  # derived, no normal range


def test_raise_and_clear_past_the_deadband() -> None:
    assert run(defaults(), [3.5, 4.1, 3.9, 3.81, 3.8, 3.5]) == ["active@4.1", "cleared@3.8"]


def test_jitter_at_the_limit_raises_one_alarm() -> None:
    assert run(defaults(), [4.0, 4.1, 4.0, 4.1, 4.0, 4.1, 3.9, 4.1]) == ["active@4.1"]


def test_low_side_and_switching_sides() -> None:
    assert run(defaults(), [2.4, 2.6, 2.8, 4.5]) == ["active@2.4", "cleared@2.8", "active@4.5"]
    assert run(defaults(), [2.4, 4.5]) == ["active@2.4", "cleared@4.5", "active@4.5"]


def test_zero_deadband_flaps_by_definition() -> None:
    engine = AlarmEngine(ThresholdSet([Threshold("ph", high=7.2, deadband=0)]))
    assert run(engine, [7.3, 7.2, 7.3], "ph") == ["active@7.3", "cleared@7.2", "active@7.3"]


def test_every_value_is_evaluated_whatever_its_timestamp() -> None:
    # Which values are new is the caller's decision (a unit's seq order): a value stamped a day
    # ahead must not stop the next ones from raising or clearing.
    engine = defaults()
    assert engine.evaluate(SRC, {"ph": 7.0}, T0 + timedelta(days=1)) == []
    assert [e.state for e in engine.evaluate(SRC, {"ph": 7.5}, T0)] == ["active"]
    assert engine.evaluate(SRC, {"ph": 7.5}, T0) == []  # still active: no second alarm
    assert [e.state for e in engine.evaluate(SRC, {"ph": 7.0}, T0 - timedelta(seconds=5))] == ["cleared"]


def test_most_specific_scope_wins() -> None:
    ts = ThresholdSet([*default_thresholds(),
                       Threshold("tank_temp_c", "units/3", high=5.0, deadband=0.2),
                       Threshold("tank_temp_c", "units/3/automates/7", high=6.0, deadband=0.2),
                       Threshold("apower", "meters/m1", high=1000, deadband=10)])
    assert ts.resolve(AutomateSource(3, 7), "tank_temp_c").high == 6.0
    assert ts.resolve(AutomateSource(3, 8), "tank_temp_c").high == 5.0
    assert ts.resolve(AutomateSource(4, 7), "tank_temp_c").high == 4.0
    assert ts.resolve(MeterSource("m1"), "apower").high == 1000
    assert ts.resolve(MeterSource("m2"), "apower").high == 3500
    assert ts.resolve_scope("units/3/automates/9", "tank_temp_c").high == 5.0


def test_alarm_payload_is_readable() -> None:
    (ev,) = defaults().evaluate(MeterSource("m1"), {"apower": 3800.0}, T0)
    d = ev.to_dict()
    assert d["source"] == "meters/m1" and d["meter"] == "m1" and d["measure"] == "apower"
    assert (d["value"], d["limit"], d["bound"], d["state"]) == (3800.0, 3500, "high", "active")
    assert d["since"] == "2026-11-21T10:00:00.000Z" and d["severity"] == "warning"
    from plantmodel.thresholds import Alarm

    assert Alarm.from_json(ev.to_json()) == ev


def test_journal_undoes_a_batch() -> None:
    engine = defaults()
    engine.journal.clear()
    assert run(engine, [4.5]) == ["active@4.5"]
    engine.journal.undo()
    assert run(engine, [4.5]) == ["active@4.5"]  # raised again: the first one was undone


@pytest.mark.parametrize("kwargs", [
    {"measure": "nope"},
    {"measure": "ph", "low": 8, "high": 7},
    {"measure": "ph", "deadband": -1},
    {"measure": "ph", "severity": "fatal"},
    {"measure": "ph", "scope": "meters/m1"},
    {"measure": "apower", "scope": "units/3"},
    {"measure": "ph", "scope": "units/x"},
])
def test_invalid_thresholds(kwargs: dict) -> None:
    with pytest.raises(ValidationError):
        Threshold(**kwargs)


@pytest.mark.parametrize(("scope", "reason"), [
    ("units/03", "must be written 'units/3'"),
    ("units/²", "'²' is not a unit number"),
    ("units/x", "'x' is not a unit number"),
    ("units/03/automates/7", "'03' is not a number"),
    ("plant", "invalid source 'plant'"),
])
def test_a_scope_is_refused_unless_written_as_lookups_use_it(scope: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(reason)):
        check_scope(scope)
    for good in ("*", "units/3", "units/3/automates/7", "meters/shellypro1pm-a8032ab1c2d3"):
        assert check_scope(good) == good
