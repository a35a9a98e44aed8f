"""Remote switching of a meter's output (operators and admins) and its audit trail.

``POST /api/meters/<meter>/switch`` with ``{"on": true|false}`` records a ``pending`` row in
``switch_actions``, sends the command (:mod:`webui.switching`: Gen2 ``Switch.Set`` RPC, Gen1
``relay/0/command``, by the meter's ``devices.generation``) and waits for the device's answer, then
records the outcome: 200 confirmed, 502 the device refused, 504 no answer in time, 503 not sent
(MQTT down). ``GET /api/meters/<meter>/switch-actions`` lists the trail, newest first.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Response, jsonify, request
from flask_babel import gettext as _
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from plantmodel.readings import format_ts
from plantmodel.sources import MeterSource
from store import history
from store import models as orm
from webui.api import ApiError, bp
from webui.api.devices import meter_or_404
from webui.api.params import PAGE_PARAMS, json_body, page, query
from webui.audit import audit
from webui.auth import current_user, require_role
from webui.i18n import number_text
from webui.live import MqttUnavailable
from webui.state import web_state
from webui.switching import SwitchAnswer, Switcher, state_name

ADDR_MAX = 64  # switch_actions.remote_addr

log = logging.getLogger(__name__)


def action_item(row: orm.SwitchAction) -> dict[str, Any]:
    return {"id": row.id, "meter": row.meter_id, "requested_at": format_ts(row.requested_at),
            "requested_by": row.requested_by, "remote_addr": row.remote_addr, "from_state": row.from_state,
            "to_state": row.to_state, "outcome": row.outcome,
            "answered_at": None if row.answered_at is None else format_ts(row.answered_at), "detail": row.detail}


def meter_generation(session: Session, meter: str) -> int | None:
    """The device registry's generation of a meter (1 = Gen1 API; None: not known yet)."""
    row = session.get(orm.Device, MeterSource(meter).key)
    return None if row is None else row.generation


def known_state(session: Session, meter: str, generation: int | None, switcher: Switcher) -> str | None:
    """The output's latest known state: a Gen1 relay state reported since start, else the latest
    stored reading's ``output`` (a Gen2 answer's ``was_on`` replaces it later)."""
    if generation == 1:
        live = switcher.relay_state(meter)
        if live is not None:
            return state_name(live)
    row = history.latest_row(session, history.meter_source(meter))
    return None if row is None else state_name(row.output)


@bp.post("/meters/<meter>/switch")
@require_role("operator")
def switch_meter(meter: str) -> Response | tuple[Response, int]:
    query(())
    body = json_body(("on",), ("on",))
    on = body["on"]
    if not isinstance(on, bool):
        raise ApiError(400, _("field %(key)s must be true or false", key="'on'"))
    user = current_user()
    assert user is not None  # require_role let us in
    state = web_state()
    switcher = state.switcher
    with state.make_session.begin() as session:
        meter_or_404(session, meter)
        generation = meter_generation(session, meter)
        from_state = known_state(session, meter, generation, switcher)
        # Recorded before anything is sent: a crash while waiting leaves a pending row, not nothing.
        row = orm.SwitchAction(meter_id=meter, requested_at=switcher.clock(), requested_by=user.username,
                               remote_addr=(request.remote_addr or "")[:ADDR_MAX] or None,
                               from_state=from_state, to_state=state_name(on), outcome="pending")
        session.add(row)
        session.flush()
        action_id = row.id
        # The request is on the trail before anything is sent; its outcome follows (_record).
        audit("switch.request", session=session, switch_action=action_id, meter=meter,
              from_state=from_state, to_state=state_name(on))
    try:
        answer = switcher.switch(meter, on, generation=generation)
    except MqttUnavailable as exc:
        answer = SwitchAnswer("error", on, None, None, f"not sent: {exc}")
        _record(meter, action_id, answer, from_state)
        # The reason (the MQTT client's, English) is in the stored detail and the log; the person reads a sentence.
        log.warning("switch of %s not sent: %s", meter, exc)
        return _refusal(503, _("nothing was sent: the web UI cannot publish to the MQTT broker"), meter, action_id,
                        answer, from_state)
    except Exception:
        _record(meter, action_id, SwitchAnswer("error", on, None, None, "not sent: internal error"), from_state)
        raise
    if answer.was_on is not None:
        from_state = state_name(answer.was_on)  # the device's own word
    _record(meter, action_id, answer, from_state)
    if answer.outcome == "confirmed":
        return jsonify(outcome="confirmed", meter=meter, on=on, was_on=_was_on(answer, from_state),
                       answered_at=format_ts(answer.answered_at) if answer.answered_at else None,
                       action_id=action_id, detail=answer.detail)
    if answer.outcome == "error":
        return _refusal(502, _("the meter refused: %(detail)s", detail=answer.detail), meter, action_id, answer,
                        from_state)
    seconds = number_text(switcher.timeout)
    return _refusal(504, _("No answer from the meter within %(seconds)s s — its state is unknown", seconds=seconds),
                    meter, action_id, answer, from_state)


def _was_on(answer: SwitchAnswer, from_state: str | None) -> bool | None:
    """Gen2 says it; for Gen1 the latest state known before the command."""
    if answer.was_on is not None:
        return answer.was_on
    return None if from_state is None else from_state == "on"


def _record(meter: str, action_id: int, answer: SwitchAnswer, from_state: str | None) -> None:
    """The outcome, in the only columns the web UI's account may update, then the audit log line."""
    with web_state().make_session.begin() as session:
        session.execute(update(orm.SwitchAction).where(orm.SwitchAction.id == action_id).values(
            from_state=from_state, outcome=answer.outcome, answered_at=answer.answered_at,
            detail=answer.detail))
        audit("meter.switch", session=session, switch_action=action_id, meter=meter, from_state=from_state,
              to_state=state_name(answer.on), outcome=answer.outcome, detail=answer.detail)


def _refusal(status: int, message: str, meter: str, action_id: int, answer: SwitchAnswer,
             from_state: str | None) -> tuple[Response, int]:
    body: dict[str, Any] = {"error": message, "status": status, "outcome": answer.outcome, "meter": meter,
                            "on": answer.on, "was_on": _was_on(answer, from_state), "action_id": action_id}
    if answer.code is not None:
        body["code"] = answer.code
    return jsonify(body), status


@bp.get("/meters/<meter>/switch-actions")
def switch_actions(meter: str) -> Response:
    args = query(PAGE_PARAMS)
    pg = page(args)
    with web_state().make_session() as session:
        meter_or_404(session, meter)
        where = orm.SwitchAction.meter_id == meter
        total = session.scalar(select(func.count()).select_from(orm.SwitchAction).where(where)) or 0
        pages = pg.check(total)
        rows = session.scalars(select(orm.SwitchAction).where(where)
                               .order_by(orm.SwitchAction.requested_at.desc(), orm.SwitchAction.id.desc())
                               .offset(pg.offset).limit(pg.size))
        items = [action_item(r) for r in rows]
    return jsonify(items=items, page=pg.number, per_page=pg.size, total=total, pages=pages)
