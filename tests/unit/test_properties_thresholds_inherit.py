"""Properties of the per-field threshold merge (plantmodel.thresholds.ThresholdSet): each limit
comes from the most specific row that sets it (a number or an explicit "no limit"), an inheriting
row passes it on to the wider scope, and deadband/severity come from the most specific row."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from plantmodel.thresholds import SEVERITIES, Threshold, ThresholdSet

CHAIN = ("units/3/automates/7", "units/3", "*")
MEASURE = "tank_temp_c"
INHERIT = "inherit"

# Lows below highs in every row, so each row is valid alone (as the model requires).
LOWS = st.sampled_from([INHERIT, None]) | st.floats(0, 3, allow_nan=False)
HIGHS = st.sampled_from([INHERIT, None]) | st.floats(3, 6, allow_nan=False)


@st.composite
def rows(draw: st.DrawFn) -> dict[str, Threshold]:
    out = {}
    for scope in CHAIN:
        if not draw(st.booleans()):
            continue
        low, high = draw(LOWS), draw(HIGHS)
        out[scope] = Threshold(MEASURE, scope, None if low == INHERIT else low, None if high == INHERIT else high,
                               draw(st.floats(0, 1)), draw(st.sampled_from(SEVERITIES)),
                               inherit_low=low == INHERIT, inherit_high=high == INHERIT)
    return out


def expected(by_scope: dict[str, Threshold], scope: str) -> dict[str, Any] | None:
    """The merge, written the slow, obvious way."""
    chain = CHAIN[CHAIN.index(scope):]
    present = [by_scope[s] for s in chain if s in by_scope]
    if not present:
        return None
    out: dict[str, Any] = {"deadband": present[0].deadband, "severity": present[0].severity}
    for side in ("low", "high"):
        out[side] = next((getattr(t, side) for t in present if not getattr(t, f"inherit_{side}")), None)
    return out


def as_dict(t: Threshold | None) -> dict[str, Any] | None:
    return None if t is None else {"low": t.low, "high": t.high, "deadband": t.deadband, "severity": t.severity}


@given(rows(), st.sampled_from(CHAIN))
def test_resolution_is_the_per_field_merge(by_scope: dict[str, Threshold], scope: str) -> None:
    ts = ThresholdSet(by_scope.values())
    first = ts.resolve_scope(scope, MEASURE)
    assert as_dict(first) == expected(by_scope, scope)
    assert ts.resolve_scope(scope, MEASURE) is first  # cached: the bridge resolves every reading
    assert as_dict(ts.explain(scope, MEASURE)[0]) == expected(by_scope, scope)
    if first is not None:
        assert not (first.inherit_low or first.inherit_high)  # a resolved threshold is complete


@given(rows(), st.floats(0, 3, allow_nan=False), st.sampled_from(["low", "high"]))
def test_a_change_at_the_default_scope_reaches_exactly_the_scopes_that_inherit_it(
        by_scope: dict[str, Threshold], new: float, side: str) -> None:
    narrow = CHAIN[0]
    star = by_scope.get("*") or Threshold(MEASURE, "*")
    value = new if side == "low" else new + 3
    changed = {**by_scope, "*": Threshold(MEASURE, "*", **{**{k: getattr(star, k) for k in (
        "low", "high", "deadband", "severity")}, side: value, f"inherit_{side}": False})}
    # Does every row between the narrow scope and "*" inherit this side?
    inherits = all(getattr(by_scope[s], f"inherit_{side}") for s in CHAIN[:2] if s in by_scope)
    after = ThresholdSet(changed.values()).resolve_scope(narrow, MEASURE)
    assert after is not None
    if inherits:
        assert getattr(after, side) == value
    else:  # a number or an explicit "no limit" on the way stops it
        before = ThresholdSet(by_scope.values()).resolve_scope(narrow, MEASURE)
        assert before is not None and getattr(after, side) == getattr(before, side)


def test_inherit_at_the_default_scope_is_no_limit_and_an_inherit_flag_cannot_carry_a_value() -> None:
    ts = ThresholdSet([Threshold(MEASURE, "*", None, 4.0, inherit_low=True)])
    found = ts.resolve_scope("units/1", MEASURE)
    assert found is not None and (found.low, found.high) == (None, 4.0)
    try:
        Threshold(MEASURE, "units/1", 2.0, None, inherit_low=True)
    except ValueError as exc:
        assert "inherited" in str(exc)
    else:
        raise AssertionError("an inherited low with a value was accepted")
