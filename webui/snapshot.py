"""The dashboard's starting point, read from the database: the page, ``/api/latest`` and the
``snapshot`` Socket.IO event all serve this same structure."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from plantmodel.measures import AUTOMATE_MEASURES, METER_MEASURES, Measure
from plantmodel.readings import format_ts
from store import queries


def measure_table() -> dict[str, dict[str, dict[str, Any]]]:
    """What the page needs to label, format and highlight a value."""

    def table(measures: dict[str, Measure]) -> dict[str, dict[str, Any]]:
        return {m.name: {"label": m.label, "unit": m.unit, "low": m.low, "high": m.high,
                         "decimals": m.decimals} for m in measures.values()}

    return {"automate": table(AUTOMATE_MEASURES), "meter": table(METER_MEASURES)}


def load_snapshot(make_session: sessionmaker[Session]) -> dict[str, Any]:
    """``units``: [{unit, automates: [{unit, automate, type, reading (Reading.to_dict() or null)}]}],
    ``meters``: [{meter, power (PowerSample.to_dict() or null)}], ``devices``: {device key (e.g.
    ``units/3``, ``meters/<id>``): {state, ts}}, ``alarms``: active [Alarm.to_dict()], ``measures``."""
    with make_session() as session:
        readings = {(r.unit_id, r.automate_no): r for r in queries.latest_readings(session)}
        power = {p.meter_id: p for p in queries.latest_power_readings(session)}
        units: dict[int, list[dict[str, Any]]] = {}
        for a in queries.automates(session):
            row = readings.get((a.unit_id, a.automate_no))
            units.setdefault(a.unit_id, []).append({
                "unit": a.unit_id, "automate": a.automate_no, "type": a.type,
                "reading": None if row is None else queries.reading_from_row(row, a.type).to_dict(),
            })
        meters = [
            {"meter": m.id, "power": queries.sample_from_row(power[m.id]).to_dict() if m.id in power else None}
            for m in queries.meters(session)
        ]
        devices = {d.device: {"state": d.state, "ts": format_ts(d.ts)} for d in queries.device_states(session)}
        alarms = [a.to_dict() for a in queries.active_alarms(session)]
    return {
        "units": [{"unit": u, "automates": autos} for u, autos in sorted(units.items())],
        "meters": meters,
        "devices": devices,
        "alarms": alarms,
        "measures": measure_table(),
    }

