"""Units, automates and meters: what exists, its state and its latest values."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from typing import Any

from flask import Response, jsonify
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from plantmodel.readings import MAX_AUTOMATE, MAX_UNIT, format_ts
from plantmodel.sources import METER_ID_RE, MeterSource, unit_key
from store import history, queries
from store import models as orm
from webui.api import ApiError, bp, registry  # noqa: F401  (registry: for its routes, /api/devices)
from webui.api.params import choice, query
from webui.state import web_state

# -- lookups (404 for what does not exist) -----------------------------------------------------------

def unit_or_404(session: Session, unit: int) -> orm.Unit:
    # Range first: an absurd id from the URL must not reach the database driver (integer overflow).
    row = session.get(orm.Unit, unit) if 1 <= unit <= MAX_UNIT else None
    if row is None:
        raise ApiError(404, _("unit %(unit)s is unknown", unit=unit))
    return row


def automate_or_404(session: Session, unit: int, automate: int) -> orm.Automate:
    unit_or_404(session, unit)
    row = session.get(orm.Automate, (unit, automate)) if 1 <= automate <= MAX_AUTOMATE else None
    if row is None:
        raise ApiError(404, _("unit %(unit)s has no automate %(automate)s", unit=unit, automate=automate))
    return row


def meter_or_404(session: Session, meter: str) -> orm.Meter:
    row = session.get(orm.Meter, meter) if METER_ID_RE.fullmatch(meter) else None
    if row is None:
        raise ApiError(404, _("meter %(meter)s is unknown", meter=repr(meter)))
    return row


def device_state(session: Session, device: str) -> str | None:
    row = session.get(orm.DeviceState, device)
    return None if row is None else row.state


# -- item shapes ---------------------------------------------------------------------------------------

def reading_item(row: orm.Reading, automate_type: str) -> dict[str, Any]:
    return {**queries.reading_from_row(row, automate_type).to_dict(), **_times(row)}


def power_item(row: orm.PowerReading) -> dict[str, Any]:
    return {**queries.sample_from_row(row).to_dict(), **_times(row)}


def _times(row: orm.Reading | orm.PowerReading) -> dict[str, str | None]:
    """When the bridge received the row, and when it wrote it (null for rows from before)."""
    return {"received_at": format_ts(row.received_at),
            "stored_at": None if row.stored_at is None else format_ts(row.stored_at)}


def _automate_item(a: orm.Automate, latest: orm.Reading | None, names: dict[str, str]) -> dict[str, Any]:
    return {"unit": a.unit_id, "automate": a.automate_no, "type": a.type, "name": names.get(unit_key(a.unit_id)),
            "latest": None if latest is None else queries.reading_from_row(latest, a.type).to_dict()}


def _hidden(session: Session, args: Mapping[str, str]) -> AbstractSet[str]:
    """The removed devices a list leaves out, unless asked for with ``removed=1``."""
    return set() if choice(args, "removed", ("0", "1"), "0") == "1" else queries.removed_devices(session)


def _units(session: Session, only: int | None = None, hidden: AbstractSet[str] = frozenset()) -> list[dict[str, Any]]:
    states = {d.device: d.state for d in queries.device_states(session)}
    names = queries.device_names(session)
    units: dict[int, dict[str, Any]] = {
        u.id: {"unit": u.id, "name": names.get(unit_key(u.id)), "state": states.get(unit_key(u.id)),
               "automates": []}
        for u in session.scalars(select(orm.Unit).order_by(orm.Unit.id))
        if (only is None or u.id == only) and unit_key(u.id) not in hidden
    }
    for a in queries.automates(session):
        if a.unit_id in units:
            units[a.unit_id]["automates"].append({"automate": a.automate_no, "type": a.type})
    return list(units.values())


def _automates(session: Session, unit: int | None = None,
               hidden: AbstractSet[str] = frozenset()) -> list[dict[str, Any]]:
    latest = {(r.unit_id, r.automate_no): r for r in queries.latest_readings(session)}
    names = queries.device_names(session)
    return [_automate_item(a, latest.get((a.unit_id, a.automate_no)), names)
            for a in queries.automates(session)
            if (unit is None or a.unit_id == unit) and unit_key(a.unit_id) not in hidden]


def _meter_item(m: orm.Meter, name: str | None, state: str | None,
                latest: orm.PowerReading | None) -> dict[str, Any]:
    return {"meter": m.id, "name": name, "first_seen": format_ts(m.first_seen), "last_seen": format_ts(m.last_seen),
            "state": state,
            "latest": None if latest is None else queries.sample_from_row(latest).to_dict()}


# -- routes ------------------------------------------------------------------------------------------

@bp.get("/units")
def units() -> Response:
    args = query(("removed",))
    with web_state().make_session() as session:
        return jsonify(items=_units(session, hidden=_hidden(session, args)))


@bp.get("/units/<int:unit>")
def unit_detail(unit: int) -> Response:
    query(())
    with web_state().make_session() as session:
        unit_or_404(session, unit)
        return jsonify(_units(session, only=unit)[0])


@bp.get("/automates")
def all_automates() -> Response:
    args = query(("removed",))
    with web_state().make_session() as session:
        return jsonify(items=_automates(session, hidden=_hidden(session, args)))


@bp.get("/units/<int:unit>/automates")
def unit_automates(unit: int) -> Response:
    query(())
    with web_state().make_session() as session:
        unit_or_404(session, unit)
        return jsonify(items=_automates(session, unit))


@bp.get("/units/<int:unit>/automates/<int:automate>")
def automate_detail(unit: int, automate: int) -> Response:
    query(())
    with web_state().make_session() as session:
        a = automate_or_404(session, unit, automate)
        return jsonify(_automate_item(a, history.latest_row(session, history.automate_source(unit, automate)),
                                      queries.device_names(session)))


@bp.get("/meters")
def meters() -> Response:
    args = query(("removed",))
    with web_state().make_session() as session:
        hidden = _hidden(session, args)
        latest = {p.meter_id: p for p in queries.latest_power_readings(session)}
        states = {d.device: d.state for d in queries.device_states(session)}
        names = queries.device_names(session)
        return jsonify(items=[_meter_item(m, names.get(MeterSource(m.id).key), states.get(MeterSource(m.id).key),
                                          latest.get(m.id))
                              for m in queries.meters(session) if MeterSource(m.id).key not in hidden])


@bp.get("/meters/<meter>")
def meter_detail(meter: str) -> Response:
    query(())
    with web_state().make_session() as session:
        m = meter_or_404(session, meter)
        key = MeterSource(meter).key
        return jsonify(_meter_item(m, queries.device_names(session).get(key), device_state(session, key),
                                   history.latest_row(session, history.meter_source(meter))))
