"""Thresholds and the alarm state machine (pure logic; the bridge persists and publishes).

A threshold applies to one measure within a *scope*:

    ``*``                     every automate / meter (the defaults: DOMAIN.md's normal ranges)
    ``units/3``               every automate of unit 3
    ``units/3/automates/7``   one automate
    ``meters/<id>``           one meter

The most specific scope wins, field by field: a row may *inherit* its low or high limit
(``inherit_low``/``inherit_high``), which then comes live from the wider scope, so a change there
reaches it; ``low=None`` without inherit is an explicit "no limit" that stops the inheritance.
Deadband and severity come from the most specific row. An alarm is raised when a value leaves
``[low, high]`` and cleared only once the value is back inside by at least ``deadband`` — so a
value jittering at the limit raises one alarm, not one per reading.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from plantmodel.errors import Quantity, ValidationError, translate
from plantmodel.i18n import N_
from plantmodel.jsonutil import dumps, loads_object, optional_text, require_number, require_str
from plantmodel.measures import AUTOMATE_ALARM_MEASURES, MEASURES, METER_ALARM_MEASURES
from plantmodel.readings import format_ts, parse_ts
from plantmodel.sources import AutomateSource, MeterSource, Source, parse_source, unit_of_key
from plantmodel.undo import UndoLog

DEFAULT_SCOPE = "*"
SEVERITIES = ("info", "warning", "critical")
DETAIL_MAX = 512  # alarms.detail


class Sentence(str):
    """An English sentence (what the audit trail, the logs and the CLI keep) that a page can also say
    in its own language, like :meth:`ValidationError.translated`: ``template % params`` through
    ``gettext``. The params named in ``labels`` are marked strings too (a measure's label)."""

    template: str
    params: dict[str, object]
    labels: tuple[str, ...]

    def __new__(cls, template: str, labels: tuple[str, ...] = (), **params: object) -> Sentence:
        self = super().__new__(cls, template % params)
        self.template, self.params, self.labels = template, params, labels
        return self

    def translated(self, gettext: Callable[[str], str], number: Callable[[float], str] | None = None) -> str:
        params = {k: gettext(str(v)) if k in self.labels else v for k, v in self.params.items()}
        return translate(self.template, params, gettext, number)


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
        # The inner reason is the source parser's, shared with the topics' decoding: English.
        raise ValidationError(N_("scope %(scope)s: %(problem)s (use *, units/N, units/N/automates/M or "
                                 "meters/<id>)"), scope=repr(scope), problem=exc.reason) from None
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
    # True: that limit comes from the wider scope (at ``*``: no limit). Default False, so every
    # caller and every stored row from before inheritance keeps its meaning.
    inherit_low: bool = False
    inherit_high: bool = False

    def __post_init__(self) -> None:
        if self.measure not in MEASURES:
            raise ValidationError(N_("unknown measure %(measure)s; known: %(known)s"), measure=repr(self.measure),
                                  known=", ".join(MEASURES))
        check_scope(self.scope)
        if self.scope.startswith("meters/") and self.measure not in METER_ALARM_MEASURES:
            raise ValidationError(N_("%(measure)s is not a meter measure"), measure=repr(self.measure))
        if self.scope.startswith("units/") and self.measure not in AUTOMATE_ALARM_MEASURES:
            raise ValidationError(N_("%(measure)s is not an automate measure"), measure=repr(self.measure))
        for name in ("low", "high", "deadband"):
            # Fix (property tests): NaN and infinities were accepted; every comparison with NaN is
            # False, so such a threshold silently never alarms (and SQLite stores NaN as NULL).
            value = getattr(self, name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValidationError(N_("%(name)s must be a finite number, got %(value)s"), name=name, value=value)
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValidationError(N_("low %(low)s is above high %(high)s"), low=self.low, high=self.high)
        for side in ("low", "high"):
            if getattr(self, f"inherit_{side}") and getattr(self, side) is not None:
                raise ValidationError(N_("%(side)s is inherited from the wider scope, so it cannot also be "
                                         "%(value)s"), side=side, value=getattr(self, side))
        if self.deadband < 0:
            raise ValidationError(N_("deadband must be >= 0"))
        if self.severity not in SEVERITIES:
            raise ValidationError(N_("severity must be one of %(severities)s"), severities=str(SEVERITIES))

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
        found, _ = self._merge(scope_chain(scope), measure)
        if len(self._resolved) < 100_000:  # scopes come from validated sources; bound it all the same
            self._resolved[(scope, measure)] = found
        return found

    def explain(self, scope: str, measure: str, *, inherited_only: bool = False
                ) -> tuple[Threshold | None, dict[str, str | None]]:
        """The threshold that applies to ``scope`` and, per field, the scope it comes from (None:
        set nowhere). ``inherited_only``: what ``scope`` would get from the wider scopes alone (what
        a blank field of the form means). Not cached: the form asks, not the bridge."""
        chain = scope_chain(scope)
        return self._merge(chain[1:] if inherited_only else chain, measure)

    def _merge(self, chain: Iterable[str], measure: str) -> tuple[Threshold | None, dict[str, str | None]]:
        rows = [t for t in (self._by_key.get((s, measure)) for s in chain) if t is not None]
        origin: dict[str, str | None] = dict.fromkeys(("low", "high", "deadband", "severity"))
        if not rows:
            return None, origin
        first = rows[0]
        origin["deadband"] = origin["severity"] = first.scope
        values: dict[str, float | None] = {"low": None, "high": None}
        for side in ("low", "high"):
            for t in rows:
                if not getattr(t, f"inherit_{side}"):
                    values[side], origin[side] = getattr(t, side), t.scope
                    break
        if not (first.inherit_low or first.inherit_high):
            return first, origin  # nothing inherited: the row itself (every row before inheritance)
        return _merged(first, values["low"], values["high"]), origin

    def limits(self, scope: str, measures: Iterable[str]) -> dict[str, dict[str, float | None]]:
        """``{measure: {"low", "high"}}`` that apply to ``scope`` (both None where no threshold applies):
        what the pages draw as the normal band."""
        out: dict[str, dict[str, float | None]] = {}
        for m in measures:
            t = self.resolve_scope(scope, m)
            out[m] = {"low": None if t is None else t.low, "high": None if t is None else t.high}
        return out


def change_risks(before: ThresholdSet, after: ThresholdSet, scope: str, measure: str) -> list[Sentence]:
    """What a change of ``measure`` at ``scope`` does that needs an explicit confirmation (the API's
    ``"confirm": true``, the CLI's ``--confirm``): a limit that applied at ``scope`` and no longer
    does, or one moved outward past the measure's normal range. Narrower scopes inheriting from
    ``scope`` change the same way, so checking ``scope`` covers them."""
    old, old_from = before.explain(scope, measure)
    new, new_from = after.explain(scope, measure)
    normal = MEASURES[measure]

    def describe(value: float) -> Quantity:
        return Quantity(value, normal.unit)  # "2.5 °C"; "2,5 °C" on a French page

    # One sentence per side (the translations say "low limit" and "high limit" differently).
    removes = {"low": N_("removes the low limit %(value)s (from %(origin)s) of %(measure)s at %(scope)s"),
               "high": N_("removes the high limit %(value)s (from %(origin)s) of %(measure)s at %(scope)s")}
    widens = {"low": N_("widens the low limit of %(measure)s at %(scope)s from %(was)s to %(now)s "
                        "(from %(origin)s), past the normal low %(edge)s"),
              "high": N_("widens the high limit of %(measure)s at %(scope)s from %(was)s to %(now)s "
                         "(from %(origin)s), past the normal high %(edge)s")}
    risks = []
    for side in ("low", "high"):
        was = getattr(old, side) if old else None
        now = getattr(new, side) if new else None
        edge = getattr(normal, side)
        if was is not None and now is None:
            risks.append(Sentence(removes[side], ("measure",), value=describe(was), origin=old_from[side],
                                  measure=normal.label, scope=scope))
        elif was is not None and now is not None and edge is not None:
            outward = now < was if side == "low" else now > was
            past = now < edge if side == "low" else now > edge
            if outward and past:
                risks.append(Sentence(widens[side], ("measure",), measure=normal.label, scope=scope,
                                      was=describe(was), now=describe(now), origin=new_from[side],
                                      edge=describe(edge)))
    return risks


def incoherence(after: ThresholdSet, measure: str) -> Sentence | None:
    """Why ``after`` must be refused (None: it may be stored): some scope would inherit a low above
    its high (or the reverse), so every value would alarm there."""
    for t in after:
        if t.measure != measure:
            continue
        found, origin = after.explain(t.scope, measure)
        if found and found.low is not None and found.high is not None and found.low > found.high:
            unit = MEASURES[measure].unit
            return Sentence(N_("this would leave %(measure)s at %(scope)s with low %(low)s (from %(low_from)s) "
                               "above high %(high)s (from %(high_from)s)"), ("measure",),
                            measure=MEASURES[measure].label, scope=t.scope, low=Quantity(found.low, unit),
                            low_from=origin["low"], high=Quantity(found.high, unit), high_from=origin["high"])
    return None


def _merged(first: Threshold, low: float | None, high: float | None) -> Threshold:
    """``first`` with its inherited limits filled in, built without ``__post_init__``: each row was
    valid alone, but a later edit of the wider scope may put an inherited low above an own high.
    Refusing would leave the bridge without any threshold there; kept as is, every value alarms,
    which an operator sees (and the API refuses such an edit in the first place)."""
    merged = object.__new__(Threshold)
    for name in Threshold.__dataclass_fields__:
        object.__setattr__(merged, name, getattr(first, name))
    object.__setattr__(merged, "low", low)
    object.__setattr__(merged, "high", high)
    object.__setattr__(merged, "inherit_low", False)
    object.__setattr__(merged, "inherit_high", False)
    return merged


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
    detail: str | None = None  # what explains it beyond the value (a probe fault's last rejection reason)

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
            since=format_ts(self.since), raised_at=format_ts(self.raised_at), detail=self.detail,
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
            detail=optional_text(data.get("detail"), "detail", DETAIL_MAX),
        )
        # Fix (property tests): the measure, bound, severity and state were taken as they came, so an
        # accepted alarm could fail its own to_json() (KeyError on an unknown measure) or carry a
        # state the pages do not know.
        measures = AUTOMATE_ALARM_MEASURES if isinstance(alarm.source, AutomateSource) else METER_ALARM_MEASURES
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

    def evaluate(self, source: Source, measures: Mapping[str, float], ts: datetime,
                 details: Mapping[str, str] | None = None) -> list[Alarm]:
        """``details``: per measure, the ``detail`` an alarm raised now carries."""
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
                              threshold.severity, "active", ts, ts, (details or {}).get(measure))
                self.journal.save(self._active, key)
                self._active[key] = alarm
                events.append(alarm)
        return events


__all__ = [
    "DEFAULT_SCOPE",
    "Alarm",
    "AlarmEngine",
    "MeterSource",
    "Sentence",
    "Threshold",
    "ThresholdSet",
    "change_risks",
    "check_scope",
    "default_thresholds",
    "incoherence",
    "scope_chain",
    "scopes_for",
]
