"""Alarm history with filters, and acknowledgement by an operator."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify

from plantmodel.measures import AUTOMATE_MEASURES, MEASURES, METER_ALARM_MEASURES
from plantmodel.readings import MAX_AUTOMATE, MAX_UNIT, format_ts, utcnow
from store import history, queries
from webui.api import ApiError, bp
from webui.api.devices import automate_or_404, meter_or_404, unit_or_404
from webui.api.params import PAGE_PARAMS, choice, page, parse_int, query, text, time_range
from webui.audit import audit
from webui.auth import current_user, require_role
from webui.state import web_state

ALARM_PARAMS = ("state", "unit", "automate", "meter", "measure", "start", "end", *PAGE_PARAMS)
MAX_ALARM_ID = 2**63 - 1


@bp.get("/alarms")
def alarms() -> Response:
    args = query(ALARM_PARAMS)
    state = choice(args, "state", history.ALARM_STATES, "all")
    unit = parse_int("unit", args["unit"], minimum=1, maximum=MAX_UNIT) if "unit" in args else None
    automate = parse_int("automate", args["automate"], minimum=1, maximum=MAX_AUTOMATE) \
        if "automate" in args else None
    meter = text(args, "meter")
    measure = text(args, "measure")
    if automate is not None and unit is None:
        raise ApiError(400, "automate needs unit (automate numbers repeat in every unit)")
    if meter is not None and unit is not None:
        raise ApiError(400, "unit and meter exclude each other (an alarm comes from an automate or a meter)")
    if measure is not None:
        _check_measure(measure, unit, meter)
    start, end = time_range(args)
    pg = page(args)
    with web_state().make_session() as session:
        if automate is not None:
            assert unit is not None
            automate_or_404(session, unit, automate)
        elif unit is not None:
            unit_or_404(session, unit)
        if meter is not None:
            meter_or_404(session, meter)
        flt = history.AlarmFilter(state, unit, automate, meter, measure, start, end)
        total, rows = history.alarms_page(session, flt, offset=pg.offset, limit=pg.size)
        pages = pg.check(total)
        items = [queries.alarm_dict(r) for r in rows]
    return jsonify(items=items, page=pg.number, per_page=pg.size, total=total, pages=pages)


def _check_measure(measure: str, unit: int | None, meter: str | None) -> None:
    if measure not in MEASURES:
        raise ApiError(400, f"measure={measure!r} is unknown (known: {', '.join(MEASURES)})")
    if meter is not None and measure not in METER_ALARM_MEASURES:
        raise ApiError(400, f"measure={measure!r} is not a meter measure")
    if unit is not None and measure not in AUTOMATE_MEASURES:
        raise ApiError(400, f"measure={measure!r} is not an automate measure")


@bp.post("/alarms/<int:alarm_id>/ack")
@require_role("operator")
def acknowledge(alarm_id: int) -> Response:
    query(())
    user = current_user()
    assert user is not None  # require_role let us in
    if alarm_id > MAX_ALARM_ID:
        raise ApiError(404, f"alarm {alarm_id} is unknown")
    state = web_state()
    with state.make_session.begin() as session:
        row, done = history.acknowledge_once(session, alarm_id, user.username, utcnow())
        if row is None:
            raise ApiError(404, f"alarm {alarm_id} is unknown")
        if not done:
            when = format_ts(row.acknowledged_at) if row.acknowledged_at else "?"
            raise ApiError(409, f"alarm {alarm_id} was already acknowledged by {row.acknowledged_by} at {when}")
        data: dict[str, Any] = queries.alarm_dict(row)
    # After the commit: browsers must never see an acknowledgement that was rolled back.
    audit("alarm.acknowledge", alarm=alarm_id, source=data.get("source"), measure=data.get("measure"))
    state.feed.alarm_changed(data)
    return jsonify(data)
