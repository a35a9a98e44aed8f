"""Thresholds and the alarm state machine (pure logic; the bridge persists and publishes).

A threshold applies to one measure within a *scope*:

    ``*``                     every automate / meter (the defaults: DOMAIN.md's normal ranges)
    ``units/3``               every automate of unit 3
    ``units/3/automates/7``   one automate
    ``meters/<id>``           one meter

The most specific scope wins. An alarm is raised when a value leaves ``[low, high]`` and cleared
only once the value is back inside by at least ``deadband`` — so a value jittering at the limit
raises one alarm, not one per reading.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from plantmodel.errors import ValidationError
from plantmodel.jsonutil import dumps, loads_object, require_number, require_str
from plantmodel.measures import AUTOMATE_MEASURES, MEASURES, METER_ALARM_MEASURES
from plantmodel.readings import format_ts, parse_ts
from plantmodel.sources import AutomateSource, MeterSource, Source, parse_source, unit_of_key
from plantmodel.undo import UndoLog

DEFAULT_SCOPE = "*"
SEVERITIES = ("info", "warning", "critical")


def check_scope(scope: str) -> str:
    """A threshold scope (``*``, ``units/3``, ``units/3/automates/7``, ``meters/<id>``), refused
    unless written the one way lookups use it: ``units/03`` would silently never match."""
    if scope == DEFAULT_SCOPE:
        return scope
    parts = scope.split("/")
    try:
        if len(parts) == 2 and parts[0] == "units":
            unit_of_key(scope)
        else:
            parse_source(scope)
    except ValidationError as exc:
        raise ValidationError(f"scope {scope!r}: {exc.reason} (use *, units/N, units/N/automates/M or "
                              "meters/<id>)") from None
    return scope


def scope_chain(scope: str) -> tuple[str, ...]:
    """A scope and the wider ones it inherits from, most specific first."""
    parts = check_scope(scope).split("/")
    if len(parts) == 4:  # units/<u>/automates/<a>
        return (scope, "/".join(parts[:2]), DEFAULT_SCOPE)
    return (scope, DEFAULT_SCOPE) if scope != DEFAULT_SCOPE else (DEFAULT_SCOPE,)


def scopes_for(source: Source) -> tuple[str, ...]:
    """Scopes that apply to a source, most specific first."""
    return scope_chain(source.key)


@dataclass(frozen=True, slots=True)
class Threshold:
    measure: str
    scope: str = DEFAULT_SCOPE
    low: float | None = None
    high: float | None = None
    deadband: float = 0.0
    severity: str = "warning"

    def __post_init__(self) -> None:
        if self.measure not in MEASURES:
            raise ValidationError(f"unknown measure {self.measure!r}; known: {', '.join(MEASURES)}")
        check_scope(self.scope)
        if self.scope.startswith("meters/") and self.measure not in METER_ALARM_MEASURES:
            raise ValidationError(f"{self.measure!r} is not a meter measure")
        if self.scope.startswith("units/") and self.measure not in AUTOMATE_MEASURES:
            raise ValidationError(f"{self.measure!r} is not an automate measure")
        for name in ("low", "high", "deadband"):
            # Fix (property tests): NaN and infinities were accepted; every comparison with NaN is
            # False, so such a threshold silently never alarms (and SQLite stores NaN as NULL).
            value = getattr(self, name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValidationError(f"{name} must be a finite number, got {value}")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValidationError(f"low {self.low} is above high {self.high}")
        if self.deadband < 0:
            raise ValidationError("deadband must be >= 0")
        if self.severity not in SEVERITIES:
            raise ValidationError(f"severity must be one of {SEVERITIES}")

    def breach(self, value: float, active_bound: str | None) -> str | None:
        """The bound ('low'/'high') that is in alarm after ``value``, given the one active before."""
        if self.high is not None and value > self.high:
            return "high"
        if self.low is not None and value < self.low:
            return "low"
        # Inside the range, but an active alarm only clears once past the deadband.
        if active_bound == "high" and self.high is not None and value > self.high - self.deadband:
            return "high"
        if active_bound == "low" and self.low is not None and value < self.low + self.deadband:
            return "low"
        return None

    def limit(self, bound: str) -> float:
        value = self.high if bound == "high" else self.low
        assert value is not None
        return value


def default_thresholds() -> list[Threshold]:
    """The normal ranges of DOMAIN.md §1 and 3500 W for meter power."""
    return [
        Threshold(m.name, DEFAULT_SCOPE, m.low, m.high, m.deadband, m.severity)
        for m in MEASURES.values()
        if m.low is not None or m.high is not None
    ]


class ThresholdSet:
    """Immutable: an edit builds a new set. Resolution is cached per (scope, measure), since the
    bridge resolves every measure of every reading (re-checking the scope each time was 11 % of
    its CPU)."""

    def __init__(self, thresholds: Iterable[Threshold]) -> None:
        self._by_key = {(t.scope, t.measure): t for t in thresholds}
        self._resolved: dict[tuple[str, str], Threshold | None] = {}

    def __len__(self) -> int:
        return len(self._by_key)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._by_key.values())

    def resolve(self, source: Source, measure: str) -> Threshold | None:
        return self.resolve_scope(source.key, measure)

    def resolve_scope(self, scope: str, measure: str) -> Threshold | None:
        """The threshold that applies to ``scope`` (itself, or inherited from a wider scope)."""
        try:
            return self._resolved[(scope, measure)]
        except KeyError:
            pass
        found = None
        for wider in scope_chain(scope):
            found = self._by_key.get((wider, measure))
            if found is not None:
                break
        if len(self._resolved) < 100_000:  # scopes come from validated sources; bound it all the same
            self._resolved[(scope, measure)] = found
        return found

    def limits(self, scope: str, measures: Iterable[str]) -> dict[str, dict[str, float | None]]:
        """``{measure: {"low", "high"}}`` that apply to ``scope`` (both None where no threshold applies):
        what the pages draw as the normal band."""
        out: dict[str, dict[str, float | None]] = {}
        for m in measures:
            t = self.resolve_scope(scope, m)
            out[m] = {"low": None if t is None else t.low, "high": None if t is None else t.high}
        return out


# -- alarms --------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Alarm:
    """Payload on ``<root>/alarms/<source>/<measure>`` (retained: the current state)."""

    source: Source
    measure: str
    value: float
    limit: float
    bound: str  # "low" | "high"
    severity: str
    state: str  # "active" | "cleared"
    raised_at: datetime
    since: datetime  # when the current state began

    @property
    def key(self) -> tuple[str, str]:
        return (self.source.key, self.measure)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"source": self.source.key, "label": self.source.label}
        if isinstance(self.source, AutomateSource):
            data.update(unit=self.source.unit, automate=self.source.automate)
        else:
            data["meter"] = self.source.meter
        measure = MEASURES[self.measure]
        data.update(
            measure=self.measure, unit_of_measure=measure.unit, value=self.value, limit=self.limit,
            bound=self.bound, severity=self.severity, state=self.state,
            since=format_ts(self.since), raised_at=format_ts(self.raised_at),
        )
        return data

    def to_json(self) -> str:
        return dumps(self.to_dict())

    @classmethod
    def from_json(cls, payload: bytes | str) -> Alarm:
        data = loads_object(payload, "alarm")
        alarm = cls(
            source=parse_source(require_str(data, "source")),
            measure=require_str(data, "measure"),
            value=require_number(data, "value"),
            limit=require_number(data, "limit"),
            bound=require_str(data, "bound"),
            severity=require_str(data, "severity"),
            state=require_str(data, "state"),
            raised_at=parse_ts(require_str(data, "raised_at"), "raised_at"),
            since=parse_ts(require_str(data, "since"), "since"),
        )
        # Fix (property tests): the measure, bound, severity and state were taken as they came, so an
        # accepted alarm could fail its own to_json() (KeyError on an unknown measure) or carry a
        # state the pages do not know.
        measures = AUTOMATE_MEASURES if isinstance(alarm.source, AutomateSource) else METER_ALARM_MEASURES
        if alarm.measure not in measures:
            raise ValidationError(f"field 'measure' = {alarm.measure!r} is not a measure of {alarm.source.label}")
        for key, allowed in (("bound", ("low", "high")), ("severity", SEVERITIES),
                             ("state", ("active", "cleared"))):
            if getattr(alarm, key) not in allowed:
                raise ValidationError(f"field {key!r} must be one of {allowed}, got {getattr(alarm, key)!r}")
        return alarm


@dataclass(slots=True)
class AlarmEngine:
    """Tracks the active alarm per (source, measure) and turns values into alarm transitions.

    The caller decides which values are new (the bridge: a unit's ``seq`` order, a meter's stored
    row), so a replayed message is never evaluated twice and a timestamp, however far in the
    future, never stops the next values from being evaluated.
    """

    thresholds: ThresholdSet
    journal: UndoLog = field(default_factory=UndoLog)  # every change is recorded before it is made
    _active: dict[tuple[str, str], Alarm] = field(default_factory=dict)

    def load(self, active: Iterable[Alarm]) -> None:
        for alarm in active:
            self._active[alarm.key] = alarm

    def active(self) -> list[Alarm]:
        return list(self._active.values())

    def count(self) -> int:
        return len(self._active)

    def replace_source(self, source: str, active: Iterable[Alarm]) -> None:
        """Take ``active`` as the alarms of ``source`` (another bridge evaluated it since)."""
        for key in [k for k in self._active if k[0] == source]:
            self.journal.save(self._active, key)
            del self._active[key]
        for alarm in active:
            self.journal.save(self._active, alarm.key)
            self._active[alarm.key] = alarm

    def evaluate(self, source: Source, measures: Mapping[str, float], ts: datetime) -> list[Alarm]:
        events: list[Alarm] = []
        skey = source.key
        active, resolve = self._active, self.thresholds.resolve_scope
        for measure, value in measures.items():
            key = (skey, measure)
            current = active.get(key)
            threshold = resolve(skey, measure)
            if current is None and (threshold is None or (
                    (threshold.high is None or value <= threshold.high)
                    and (threshold.low is None or value >= threshold.low))):
                continue  # nothing to watch, or in range with no alarm: the common case, kept short
            bound = threshold.breach(value, current.bound if current else None) if threshold else None
            if current is not None and bound != current.bound:
                events.append(replace(current, value=value, state="cleared", since=ts))
                self.journal.save(self._active, key)
                del self._active[key]
                current = None
            if bound is not None and current is None:
                assert threshold is not None
                alarm = Alarm(source, measure, value, threshold.limit(bound), bound,
                              threshold.severity, "active", ts, ts)
                self.journal.save(self._active, key)
                self._active[key] = alarm
                events.append(alarm)
        return events


__all__ = [
    "DEFAULT_SCOPE",
    "Alarm",
    "AlarmEngine",
    "MeterSource",
    "Threshold",
    "ThresholdSet",
    "check_scope",
    "default_thresholds",
    "scope_chain",
    "scopes_for",
]
