"""Alarm history with filters, and acknowledgement by an operator."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator, Mapping
from typing import Any

from flask import Response, jsonify, request
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from plantmodel.i18n import format_time
from plantmodel.measures import AUTOMATE_ALARM_MEASURES, MEASURES, METER_ALARM_MEASURES
from plantmodel.readings import MAX_AUTOMATE, MAX_UNIT, utcnow
from plantmodel.text import has_unprintable
from plantmodel.timezone import plant_zone
from store import history, queries
from store import models as orm
from webui.api import ApiError, bp
from webui.api.csvout import FORMAT_PARAM, csv_chunks, csv_format, csv_response
from webui.api.devices import automate_or_404, meter_or_404, unit_or_404
from webui.api.params import PAGE_PARAMS, choice, json_body, page, parse_int, query, text, time_range
from webui.audit import audit
from webui.auth import current_user, require_role
from webui.i18n import language
from webui.state import web_state

ALARM_PARAMS = ("state", "unit", "automate", "meter", "measure", "start", "end", *PAGE_PARAMS)
MAX_ALARM_ID = 2**63 - 1
NOTE_MAX = 2000
DISPOSITIONS = ("hold", "release", "none")  # what became of the product made during the deviation
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")  # Hangul fillers: letters that print as nothing
ALARM_CSV_COLUMNS = ("id", "source", "name", "measure", "severity", "bound", "value", "limit", "last_value", "state",
                     "raised_at", "cleared_at", "acknowledged_at", "acknowledged_by", "ack_note", "ack_disposition",
                     "detail")
ALARM_CSV_TIMES = ("raised_at", "cleared_at", "acknowledged_at")


@bp.get("/alarms")
def alarms() -> Response:
    args = query(ALARM_PARAMS)
    flt = _alarm_filter(args)
    pg = page(args)
    with web_state().make_session() as session:
        _check_devices(session, flt)
        total, rows = history.alarms_page(session, flt, offset=pg.offset, limit=pg.size)
        pages = pg.check(total)
        items = [queries.alarm_dict(r) for r in rows]
    return jsonify(items=items, page=pg.number, per_page=pg.size, total=total, pages=pages)


def _alarm_filter(args: Mapping[str, str]) -> history.AlarmFilter:
    state = choice(args, "state", history.ALARM_STATES, "all")
    unit = parse_int("unit", args["unit"], minimum=1, maximum=MAX_UNIT) if "unit" in args else None
    automate = parse_int("automate", args["automate"], minimum=1, maximum=MAX_AUTOMATE) \
        if "automate" in args else None
    meter = text(args, "meter")
    measure = text(args, "measure")
    if automate is not None and unit is None:
        raise ApiError(400, _("automate needs unit (automate numbers repeat in every unit)"))
    if meter is not None and unit is not None:
        raise ApiError(400, _("unit and meter exclude each other (an alarm comes from an automate or a meter)"))
    if measure is not None:
        _check_measure(measure, unit, meter)
    start, end = time_range(args)
    return history.AlarmFilter(state, unit, automate, meter, measure, start, end)


def _check_devices(session: Session, flt: history.AlarmFilter) -> None:
    """An unknown unit, automate or meter is a 404, not an empty list."""
    if flt.automate is not None:
        assert flt.unit is not None
        automate_or_404(session, flt.unit, flt.automate)
    elif flt.unit is not None:
        unit_or_404(session, flt.unit)
    if flt.meter is not None:
        meter_or_404(session, flt.meter)


def _check_measure(measure: str, unit: int | None, meter: str | None) -> None:
    if measure not in MEASURES:
        raise ApiError(400, _("measure=%(measure)s is unknown (known: %(known)s)", measure=repr(measure),
                              known=", ".join(MEASURES)))
    if meter is not None and measure not in METER_ALARM_MEASURES:
        raise ApiError(400, _("measure=%(measure)s is not a meter measure", measure=repr(measure)))
    if unit is not None and measure not in AUTOMATE_ALARM_MEASURES:
        raise ApiError(400, _("measure=%(measure)s is not an automate measure", measure=repr(measure)))


@bp.get("/alarms.csv")
def alarms_csv() -> Response:
    """The alarms matching the same filters as ``/alarms`` (all of them, not a page), newest raised
    first, with who acknowledged each and the corrective action."""
    args = query((*ALARM_PARAMS[:-len(PAGE_PARAMS)], FORMAT_PARAM))
    flt = _alarm_filter(args)
    fmt = csv_format(args)
    make_session = web_state().make_session
    with make_session() as session:
        _check_devices(session, flt)
    return csv_response(csv_chunks(fmt, ALARM_CSV_COLUMNS, _alarm_rows(make_session, flt),
                                   time_columns=ALARM_CSV_TIMES), "alarms.csv")


def _alarm_rows(make_session: sessionmaker[Session], flt: history.AlarmFilter) -> Iterator[list[Any]]:
    """Owns its session: it outlives the request handler."""
    a = orm.Alarm
    stmt = select(a).where(*flt.clauses()).order_by(a.raised_at.desc(), a.id.desc())
    with make_session() as session:
        names = queries.device_names(session)
        for row in session.scalars(stmt.execution_options(yield_per=500)):
            yield [row.id, row.source, names.get(queries.device_of_source(row.source)), row.measure, row.severity,
                   row.bound, row.value, row.limit_value, row.last_value, row.state, row.raised_at,
                   row.cleared_at, row.acknowledged_at, row.acknowledged_by, row.ack_note, row.ack_disposition,
                   row.detail]


def ack_action(body: Mapping[str, Any], severity: str) -> tuple[str | None, str | None]:
    """(note, disposition) of an acknowledgement body. A critical alarm needs both (HACCP principle 5:
    a deviation's corrective action is recorded with it); optional below."""
    note = body.get("note")
    if note is not None:
        if not isinstance(note, str):
            raise ApiError(400, _("field %(key)s must be a string", key="'note'"))
        note = note.strip()
        if len(note) > NOTE_MAX:
            raise ApiError(400, _("field %(key)s is longer than %(max)s characters", key="'note'", max=NOTE_MAX))
        if has_unprintable(note, allow="\r\n"):  # line breaks are fine in a note
            raise ApiError(400, _("field %(key)s has a character that is not printable", key="'note'"))
        # A note must say something: at least one letter or digit (not a filler that looks blank).
        if not any(unicodedata.category(c)[0] in "LN" and c not in _BLANK_LETTERS for c in note):
            note = None
    disposition = body.get("disposition")
    if disposition is not None and disposition not in DISPOSITIONS:
        raise ApiError(400, _("field %(key)s must be one of %(choices)s", key="'disposition'",
                              choices=", ".join(DISPOSITIONS)))
    if severity == "critical":
        if note is None:
            raise ApiError(400, _("a critical alarm needs a note: the corrective action taken"))
        if disposition is None:
            raise ApiError(400, _("a critical alarm needs a disposition of the product (%(choices)s)",
                                  choices=", ".join(DISPOSITIONS)))
    return note, disposition


@bp.post("/alarms/<int:alarm_id>/ack")
@require_role("operator")
def acknowledge(alarm_id: int) -> Response:
    query(())
    # No body (or an empty one) is fine for warnings; whatever is sent must be an object of known fields.
    body = json_body(("note", "disposition")) if request.get_data(cache=True) else {}
    user = current_user()
    assert user is not None  # require_role let us in
    if alarm_id > MAX_ALARM_ID:
        raise ApiError(404, _("alarm %(alarm)s is unknown", alarm=alarm_id))
    state = web_state()
    with state.make_session.begin() as session:
        found = session.get(orm.Alarm, alarm_id)
        if found is None:
            raise ApiError(404, _("alarm %(alarm)s is unknown", alarm=alarm_id))
        if found.acknowledged_at is None:  # else the 409 below says who did, whatever the body
            note, disposition = ack_action(body, found.severity)
        else:
            note, disposition = None, None
        row, done = history.acknowledge_once(session, alarm_id, user.username, utcnow(), note=note,
                                             disposition=disposition)
        if row is None:
            raise ApiError(404, _("alarm %(alarm)s is unknown", alarm=alarm_id))
        if not done:
            # For the operator who lost the race: the time the way the page writes times.
            when = (format_time(row.acknowledged_at, plant_zone(web_state().settings.plant_tz), language(),
                                seconds=True) if row.acknowledged_at else "?")
            raise ApiError(409, _("alarm %(alarm)s was already acknowledged by %(username)s at %(when)s",
                                  alarm=alarm_id, username=row.acknowledged_by, when=when))
        data: dict[str, Any] = queries.alarm_dict(row)
        # In the same transaction: the acknowledgement never commits without its audit entry.
        audit("alarm.acknowledge", session=session, alarm=alarm_id, source=data.get("source"),
              measure=data.get("measure"), severity=row.severity, note=note, disposition=disposition)
    # After the commit: browsers must never see an acknowledgement that was rolled back.
    state.feed.alarm_changed(data, tell_others=True)
    return jsonify(data)
