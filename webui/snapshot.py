"""The views' starting points, read from the database: the overview page, ``/api/latest`` and the
Socket.IO ``watch`` answer for the plant serve :func:`load_snapshot`; a unit's or an automate's
``watch`` the same structure filtered (:func:`unit_snapshot`); a meter's :func:`meter_snapshot`."""

from __future__ import annotations

from typing import Any

from flask_babel import gettext
from sqlalchemy.orm import Session, sessionmaker

from plantmodel.measures import AUTOMATE_MEASURES, METER_ERRORS, METER_MEASURES, SOURCE_HEALTH, Measure
from plantmodel.readings import format_ts
from plantmodel.sources import AutomateSource, MeterSource, unit_key
from plantmodel.thresholds import ThresholdSet
from store import history, queries
from store import models as orm

METER_LAST = 10  # power readings in a meter's snapshot


def measure_table() -> dict[str, dict[str, dict[str, Any]]]:
    """What the page needs to label, format and highlight a value."""

    def table(measures: dict[str, Measure]) -> dict[str, dict[str, Any]]:
        # short, key: the overview cell's label and whether a phone shows it (plantmodel.measures).
        # In the request's language (the definitions are English, marked for translation).
        return {m.name: {"label": gettext(m.label), "short": gettext(m.short),
                         "unit": gettext(m.unit) if m.unit else "", "low": m.low, "high": m.high,
                         "decimals": m.decimals, "key": m.key} for m in measures.values()}

    # alarm_only: what an alarm may name but no reading carries (a meter's error flags, no data,
    # probe fault): labelled like the others, never drawn as a tile or chart.
    return {"automate": table(AUTOMATE_MEASURES), "meter": table(METER_MEASURES),
            "alarm_only": table({**METER_ERRORS, **SOURCE_HEALTH})}


def load_snapshot(make_session: sessionmaker[Session]) -> dict[str, Any]:
    """``units``: [{unit, automates: [{unit, automate, type, reading (Reading.to_dict() or null)}]}],
    ``meters``: [{meter, power (PowerSample.to_dict() or null)}], ``devices``: {device key (e.g.
    ``units/3``, ``meters/<id>``): {state, ts}}, ``alarms``: active [Alarm.to_dict()], ``measures``."""
    with make_session() as session:
        return _plant(session, None, None)


def unit_snapshot(make_session: sessionmaker[Session], unit: int,
                  automate: int | None = None) -> dict[str, Any] | None:
    """:func:`load_snapshot` of one unit (or one of its automates): its automates, its status, its
    active alarms, no meters. None when the unit (automate) is unknown."""
    with make_session() as session:
        snapshot = _plant(session, unit, automate)
    return snapshot if snapshot["units"] else None


def meter_snapshot(make_session: sessionmaker[Session], meter: str) -> dict[str, Any] | None:
    """``meter``, ``power`` (the latest PowerSample.to_dict() or null), ``state`` ("online" |
    "offline" | null), ``last10`` (the last power readings, newest first) and ``limits`` ({measure:
    {low, high}} of the thresholds that apply to this meter). None when the meter is unknown."""
    with make_session() as session:
        if session.get(orm.Meter, meter) is None:
            return None
        rows = history.rows_page(session, history.meter_source(meter), None, None, offset=0, limit=METER_LAST,
                                 descending=True)
        last = [queries.sample_from_row(row).to_dict() for row in rows]
        status = session.get(orm.DeviceState, MeterSource(meter).key)
        thresholds = ThresholdSet(queries.load_thresholds(session))
    return {
        "meter": meter,
        "power": last[0] if last else None,
        "state": None if status is None else status.state,
        "last10": last,
        # Only the measures that have a limit: the page highlights those.
        "limits": {m: lim for m, lim in thresholds.limits(MeterSource(meter).key, METER_MEASURES).items()
                   if lim["low"] is not None or lim["high"] is not None},
    }


def alarm_summary(alarms: list[dict[str, Any]]) -> dict[str, Any]:
    """What the header counter and the overview's per-unit counts show, from alarm dicts
    (``queries.alarm_dict`` or ``Alarm.to_dict()``): only *active* alarms count, acknowledged or not
    (an acknowledged alarm still means a value out of range). ``{"active", "critical",
    "acknowledged", "units": {"<u>": {"active", "critical"}}, "meters": {"<id>": {...}}}``."""
    out: dict[str, Any] = {"active": 0, "critical": 0, "acknowledged": 0, "units": {}, "meters": {}}
    for a in alarms:
        if a.get("state") != "active":
            continue
        critical = a.get("severity") == "critical"
        out["active"] += 1
        out["critical"] += critical
        out["acknowledged"] += bool(a.get("acknowledged_at"))
        if a.get("meter"):
            group, key = out["meters"], str(a["meter"])
        elif a.get("unit") is not None:
            group, key = out["units"], str(a["unit"])
        else:
            continue
        counts = group.setdefault(key, {"active": 0, "critical": 0})
        counts["active"] += 1
        counts["critical"] += critical
    return out


def _plant(session: Session, unit: int | None, automate: int | None) -> dict[str, Any]:
    def wanted(u: int, a: int) -> bool:
        return (unit is None or u == unit) and (automate is None or a == automate)

    readings = {(r.unit_id, r.automate_no): r for r in queries.latest_readings(session)}
    units: dict[int, list[dict[str, Any]]] = {}
    for a in queries.automates(session):
        if not wanted(a.unit_id, a.automate_no):
            continue
        row = readings.get((a.unit_id, a.automate_no))
        units.setdefault(a.unit_id, []).append({
            "unit": a.unit_id, "automate": a.automate_no, "type": a.type,
            "reading": None if row is None else queries.reading_from_row(row, a.type).to_dict(),
        })
    if unit is None:
        power = {p.meter_id: p for p in queries.latest_power_readings(session)}
        meters = [
            {"meter": m.id, "power": queries.sample_from_row(power[m.id]).to_dict() if m.id in power else None}
            for m in queries.meters(session)
        ]
        devices = {d.device: {"state": d.state, "ts": format_ts(d.ts)} for d in queries.device_states(session)}
        alarms = [a.to_dict() for a in queries.active_alarms(session)]
    else:
        meters = []
        status = session.get(orm.DeviceState, unit_key(unit))
        devices = {} if status is None else {status.device: {"state": status.state, "ts": format_ts(status.ts)}}
        alarms = [a.to_dict() for a in queries.active_alarms(session)
                  if isinstance(a.source, AutomateSource) and wanted(a.source.unit, a.source.automate)]
    return {
        "units": [{"unit": u, "automates": autos} for u, autos in sorted(units.items())],
        "meters": meters,
        "devices": devices,
        "alarms": alarms,
        "measures": measure_table(),
    }
