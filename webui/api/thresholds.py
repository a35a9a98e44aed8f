"""Alarm thresholds: list, set and remove (admin), what applies at a scope, and the audit trail.

A limit left out of ``PUT /api/thresholds`` is *inherited*: it comes live from the wider scope
(``units/3/automates/7`` -> ``units/3`` -> ``*``), so a later change there reaches it. ``null`` is
an explicit "no limit". Removing a limit that applies, or widening one past the measure's normal
range, is refused with 409 unless the body says ``"confirm": true``: a blank field must never
silently drop a food-safety limit (issue 11, bug 4).

The bridge polls the thresholds table, so a change applies to the next readings without a restart.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Response, jsonify
from flask_babel import gettext as _
from sqlalchemy.orm import Session

from plantmodel.errors import ValidationError
from plantmodel.measures import MEASURES
from plantmodel.readings import format_ts, utcnow
from plantmodel.thresholds import (
    DEFAULT_SCOPE,
    Sentence,
    Threshold,
    ThresholdSet,
    change_risks,
    check_scope,
    incoherence,
    scope_chain,
)
from store import history, queries
from store import models as orm
from webui.api import ApiError, bp, invalid_input
from webui.api.params import (
    PAGE_PARAMS,
    body_number,
    body_str,
    choice,
    json_body,
    no_body,
    page,
    query,
    required,
)
from webui.audit import audit
from webui.auth import current_user, require_role
from webui.i18n import number_text
from webui.state import web_state

log = logging.getLogger(__name__)

FIELDS = ("scope", "measure", "low", "high", "deadband", "severity", "confirm")
SIDES = ("low", "high")
_MEASURE_ORDER = {name: i for i, name in enumerate(MEASURES)}


def threshold_item(row: orm.Threshold) -> dict[str, Any]:
    return {"scope": row.scope, "measure": row.measure, "low": row.low, "high": row.high,
            "inherit_low": bool(row.inherit_low), "inherit_high": bool(row.inherit_high),
            "deadband": row.deadband, "severity": row.severity, "updated_at": format_ts(row.updated_at),
            "updated_by": row.updated_by}


@bp.get("/thresholds")
def list_thresholds() -> Response:
    query(())
    with web_state().make_session() as session:
        rows = queries.threshold_rows(session)
        # Defaults first, then each scope; measures in the model's order (as the pages show them).
        rows.sort(key=lambda r: (r.scope != DEFAULT_SCOPE, r.scope, _MEASURE_ORDER.get(r.measure, 99)))
        return jsonify(items=[threshold_item(r) for r in rows])


@bp.get("/thresholds/effective")
def effective_thresholds() -> Response:
    """Per measure of ``scope``: what applies there (``effective``) and what a blank field of the
    form would give (``inherited``: the wider scopes alone), each field with the scope it comes from."""
    args = query(("scope", "measure"))
    scope = required(args, "scope")
    with invalid_input():
        check_scope(scope)
    measures = [m for m in MEASURES if _measure_fits(scope, m)]
    if "measure" in args:
        if args["measure"] not in measures:
            raise ApiError(400, _("measure=%(measure)s is not a measure of scope %(scope)s (known: %(known)s)",
                                  measure=repr(args["measure"]), scope=scope, known=", ".join(measures)))
        measures = [args["measure"]]
    with web_state().make_session() as session:
        rows = {(r.scope, r.measure): r for r in queries.threshold_rows(session) if r.scope in scope_chain(scope)}
        current = ThresholdSet(queries.threshold_of_row(r) for r in rows.values())
    items = []
    for m in measures:
        own = rows.get((scope, m))
        normal = MEASURES[m]
        items.append({"measure": m, "own": None if own is None else threshold_item(own),
                      "effective": _fields(current, scope, m, inherited_only=False),
                      "inherited": _fields(current, scope, m, inherited_only=True),
                      "normal": {"low": normal.low, "high": normal.high}})
    return jsonify(scope=scope, chain=list(scope_chain(scope)), items=items)


@bp.put("/thresholds")
@require_role("admin")
def put_threshold() -> Response | tuple[Response, int]:
    """Create or replace the threshold of (scope, measure). ``low``/``high``: a number, ``null``
    (no limit) or left out (inherited; at ``*``: no limit). ``deadband``/``severity`` left out: the
    value the wider scope gives (the measure's by default)."""
    query(())
    body = json_body(FIELDS, ("scope", "measure"))
    scope, measure = body_str(body, "scope"), body_str(body, "measure")
    if measure not in MEASURES:
        raise ApiError(400, _("measure %(measure)s is unknown (known: %(known)s)", measure=repr(measure),
                              known=", ".join(MEASURES)))
    confirm = _body_flag(body, "confirm")
    if "deadband" in body and body_number(body, "deadband") is None:
        raise ApiError(400, _("field %(key)s must be a number (0 for none)", key="'deadband'"))
    with invalid_input():
        check_scope(scope)
    user = current_user()
    assert user is not None
    with web_state().make_session.begin() as session:
        current = ThresholdSet(queries.lock_thresholds_for_edit(session))  # first: see the newest set
        _check_scope_exists(session, scope)
        inherited, _origin = current.explain(scope, measure, inherited_only=True)
        default = MEASURES[measure]
        deadband = body_number(body, "deadband") if "deadband" in body else (
            inherited.deadband if inherited else default.deadband)
        if deadband is None:
            raise ApiError(400, _("field %(key)s must be a number (0 for none; leave it out to inherit)",
                                  key="'deadband'"))
        severity = body_str(body, "severity") if "severity" in body else (
            inherited.severity if inherited else default.severity)
        limits: dict[str, Any] = {}
        for side in SIDES:
            # At "*" nothing is wider: left out means no limit, stored as such (not as inherit).
            inherit = side not in body and scope != DEFAULT_SCOPE
            limits[side] = body_number(body, side) if side in body else None
            limits[f"inherit_{side}"] = inherit
        with invalid_input():  # the scope's measures, the limits' order, the deadband and severity
            threshold = Threshold(measure, scope, deadband=deadband, severity=severity, **limits)
        after = ThresholdSet([*(t for t in current if (t.scope, t.measure) != (scope, measure)), threshold])
        _check_coherent(after, measure)
        risks = _risks(current, after, scope, measure)
        if risks and not confirm:
            return _confirm_needed(risks)
        existed = queries.get_threshold(session, scope, measure) is not None
        queries.upsert_threshold(session, threshold, utcnow(), user.username)
        session.flush()
        row = queries.get_threshold(session, scope, measure)
        assert row is not None
        item = threshold_item(row)
        audit("threshold.set", session=session, scope=scope, measure=measure, low=threshold.low,
              high=threshold.high, inherit_low=threshold.inherit_low, inherit_high=threshold.inherit_high,
              deadband=threshold.deadband, severity=threshold.severity,
              **({"confirmed": "; ".join(risks)} if risks else {}))
    return jsonify(item), 200 if existed else 201


@bp.delete("/thresholds")
@require_role("admin")
def delete_threshold() -> Response | tuple[Response, int]:
    """Remove a threshold; the scope then inherits the wider one again. The defaults (``*``) stay:
    they can only be changed. ``confirm=true`` when that removes or widens a limit (else 409)."""
    args = query(("scope", "measure", "confirm"))
    no_body()
    scope, measure = required(args, "scope"), required(args, "measure")
    confirm = choice(args, "confirm", ("true", "false"), "false") == "true"
    if scope == DEFAULT_SCOPE:
        raise ApiError(400, _("scope '*' holds the defaults: change them with PUT, they cannot be deleted"))
    if measure not in MEASURES:
        raise ApiError(400, _("measure=%(measure)s is unknown (known: %(known)s)", measure=repr(measure),
                              known=", ".join(MEASURES)))
    with invalid_input():
        check_scope(scope)
    user = current_user()
    assert user is not None
    with web_state().make_session.begin() as session:
        current = ThresholdSet(queries.lock_thresholds_for_edit(session))  # first: see the newest set
        row = queries.get_threshold(session, scope, measure)
        if row is None:
            raise ApiError(404, _("no threshold for %(measure)s at scope %(scope)s", measure=measure, scope=scope))
        after = ThresholdSet(t for t in current if (t.scope, t.measure) != (scope, measure))
        _check_coherent(after, measure)
        risks = _risks(current, after, scope, measure)
        if risks and not confirm:
            return _confirm_needed(risks)
        item = threshold_item(row)
        queries.delete_threshold(session, scope, measure, utcnow(), user.username)
        audit("threshold.delete", session=session, scope=scope, measure=measure,
              **({"confirmed": "; ".join(risks)} if risks else {}))
    return jsonify(deleted=item)


@bp.get("/thresholds/changes")
def threshold_changes() -> Response:
    args = query(PAGE_PARAMS)
    pg = page(args)
    with web_state().make_session() as session:
        total, rows = history.threshold_changes_page(session, offset=pg.offset, limit=pg.size)
        pages = pg.check(total)
        items = [{"changed_at": format_ts(r.changed_at), "changed_by": r.changed_by, "scope": r.scope,
                  "measure": r.measure, "action": r.action, "old": _json(r.old_value), "new": _json(r.new_value)}
                 for r in rows]
    return jsonify(items=items, page=pg.number, per_page=pg.size, total=total, pages=pages)


def _json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _body_flag(body: dict[str, Any], key: str) -> bool:
    value = body.get(key, False)
    if not isinstance(value, bool):
        raise ApiError(400, _("field %(key)s must be true or false", key=repr(key)))
    return value


def _measure_fits(scope: str, measure: str) -> bool:
    """Whether ``measure`` can have a threshold at ``scope`` (the model decides: meters/automates)."""
    try:
        Threshold(measure, scope)
    except ValidationError:
        return False
    return True


def _fields(ts: ThresholdSet, scope: str, measure: str, *, inherited_only: bool) -> dict[str, Any]:
    """``{field: {"value", "from"}}``; ``from`` null: set at no scope (the measure's own deadband and
    severity, or no limit)."""
    found, origin = ts.explain(scope, measure, inherited_only=inherited_only)
    default = MEASURES[measure]
    values = {"low": found.low if found else None, "high": found.high if found else None,
              "deadband": found.deadband if found else default.deadband,
              "severity": found.severity if found else default.severity}
    return {k: {"value": v, "from": origin[k]} for k, v in values.items()}


def _risks(before: ThresholdSet, after: ThresholdSet, scope: str, measure: str) -> list[Sentence]:
    return change_risks(before, after, scope, measure)  # the model's rule, shared with the CLI


def _check_coherent(after: ThresholdSet, measure: str) -> None:
    problem = incoherence(after, measure)
    if problem is not None:
        raise ApiError(400, problem.translated(_, number_text))


def _confirm_needed(risks: list[Sentence]) -> tuple[Response, int]:
    """409, in the request's language: the page shows ``confirm`` (each risk) and asks."""
    log.info("threshold change refused until confirmed: %s", "; and ".join(risks))
    said = [r.translated(_, number_text) for r in risks]
    message = _('This change %(risks)s. Resend with "confirm": true to do it.', risks=_("; and ").join(said))
    return jsonify(error=message, status=409, confirm=said), 409


def _check_scope_exists(session: Session, scope: str) -> None:
    """A scope naming a unit, automate or meter that never reported is most likely a typo."""
    if scope == DEFAULT_SCOPE:
        return
    parts = scope.split("/")
    if parts[0] == "meters":
        found = session.get(orm.Meter, parts[1]) is not None
    elif len(parts) == 2:
        found = session.get(orm.Unit, int(parts[1])) is not None
    else:
        found = session.get(orm.Automate, (int(parts[1]), int(parts[3]))) is not None
    if not found:
        raise ApiError(400, _("scope %(scope)s: no such device has reported yet", scope=repr(scope)))
