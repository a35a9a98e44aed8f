"""Alarm thresholds: list, set and remove (admin), and the audit trail of every change.

The bridge polls the thresholds table, so a change applies to the next readings without a restart.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Response, jsonify
from sqlalchemy.orm import Session

from plantmodel.measures import MEASURES
from plantmodel.readings import format_ts, utcnow
from plantmodel.thresholds import DEFAULT_SCOPE, Threshold, check_scope
from store import history, queries
from store import models as orm
from webui.api import ApiError, bp, invalid_input
from webui.api.params import PAGE_PARAMS, body_number, body_str, json_body, page, query, required
from webui.audit import audit
from webui.auth import current_user, require_role
from webui.state import web_state

FIELDS = ("scope", "measure", "low", "high", "deadband", "severity")
_MEASURE_ORDER = {name: i for i, name in enumerate(MEASURES)}


def threshold_item(row: orm.Threshold) -> dict[str, Any]:
    return {"scope": row.scope, "measure": row.measure, "low": row.low, "high": row.high,
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


@bp.put("/thresholds")
@require_role("admin")
def put_threshold() -> Response | tuple[Response, int]:
    """Create or replace the threshold of (scope, measure). ``low``/``high`` are required (null =
    no limit on that side); ``deadband``/``severity`` default to the measure's."""
    query(())
    body = json_body(FIELDS, ("scope", "measure", "low", "high"))
    scope, measure = body_str(body, "scope"), body_str(body, "measure")
    if measure not in MEASURES:
        raise ApiError(400, f"measure {measure!r} is unknown (known: {', '.join(MEASURES)})")
    default = MEASURES[measure]
    deadband = body_number(body, "deadband") if "deadband" in body else default.deadband
    if deadband is None:
        raise ApiError(400, "field 'deadband' must be a number (0 for none)")
    severity = body_str(body, "severity") if "severity" in body else default.severity
    with invalid_input():  # the scope, its measures, the limits' order and the severity
        threshold = Threshold(measure, scope, body_number(body, "low"), body_number(body, "high"), deadband,
                              severity)
    user = current_user()
    assert user is not None
    with web_state().make_session.begin() as session:
        _check_scope_exists(session, scope)
        existed = queries.get_threshold(session, scope, measure) is not None
        queries.upsert_threshold(session, threshold, utcnow(), user.username)
        session.flush()
        row = queries.get_threshold(session, scope, measure)
        assert row is not None
        item = threshold_item(row)
    audit("threshold.set", scope=scope, measure=measure, low=threshold.low, high=threshold.high,
          deadband=threshold.deadband, severity=threshold.severity)
    return jsonify(item), 200 if existed else 201


@bp.delete("/thresholds")
@require_role("admin")
def delete_threshold() -> Response:
    """Remove a threshold; the scope then inherits the wider one again. The defaults (``*``) stay:
    they can only be changed."""
    args = query(("scope", "measure"))
    scope, measure = required(args, "scope"), required(args, "measure")
    if scope == DEFAULT_SCOPE:
        raise ApiError(400, "scope '*' holds the defaults: change them with PUT, they cannot be deleted")
    if measure not in MEASURES:
        raise ApiError(400, f"measure={measure!r} is unknown (known: {', '.join(MEASURES)})")
    with invalid_input():
        check_scope(scope)
    user = current_user()
    assert user is not None
    with web_state().make_session.begin() as session:
        row = queries.get_threshold(session, scope, measure)
        if row is None:
            raise ApiError(404, f"no threshold for {measure} at scope {scope}")
        item = threshold_item(row)
        queries.delete_threshold(session, scope, measure, utcnow(), user.username)
    audit("threshold.delete", scope=scope, measure=measure)
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
        raise ApiError(400, f"scope {scope!r}: no such device has reported yet")
