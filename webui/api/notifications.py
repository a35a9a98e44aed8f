"""Alarm notification routes (admin) and the notifier's outbox.

``GET/POST /api/notification-routes``, ``PATCH/DELETE /api/notification-routes/<id>``: who is told
about which alarms (e-mail list or webhook URL, minimum severity, scope, events, escalation); every
change is audited (``notification_route.set`` / ``notification_route.delete``) in its transaction,
a webhook URL masked there (it may hold a secret).
``GET /api/notifications``: the outbox, newest first, with status, attempts and the last error.
The ``python -m notifier`` service reads the routes on every poll: a change applies within seconds.
"""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify
from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from notifier.routing import (
    ESCALATE,
    check_events,
    check_name,
    check_route_scope,
    check_severity,
    check_target,
    masked_target,
)
from plantmodel.errors import ValidationError
from plantmodel.readings import format_ts, utcnow
from store import models as orm
from webui.api import ApiError, bp
from webui.api.params import PAGE_PARAMS, choice, json_body, no_body, page, query
from webui.audit import audit
from webui.auth import current_user, require_role
from webui.i18n import number_text
from webui.state import web_state

FIELDS = ("name", "channel", "target", "min_severity", "scope", "events", "escalate_after_min", "enabled")
STATUSES = ("pending", "sent", "failed", "skipped")  # skipped: an escalation acknowledged before it went out


def route_item(row: orm.NotificationRoute) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "channel": row.channel, "target": row.target,
            "min_severity": row.min_severity, "scope": row.scope, "events": row.events.split(","),
            "escalate_after_min": row.escalate_after_min, "enabled": row.enabled,
            "updated_at": format_ts(row.updated_at), "updated_by": row.updated_by}


def notification_item(row: orm.Notification, route: str | None) -> dict[str, Any]:
    def ts(v: Any) -> str | None:
        return None if v is None else format_ts(v)

    return {"id": row.id, "alarm_id": row.alarm_id, "route_id": row.route_id, "route": route, "event": row.event,
            "created_at": ts(row.created_at), "status": row.status, "attempts": row.attempts,
            "next_attempt_at": ts(row.next_attempt_at) if row.status == "pending" else None,
            "sent_at": ts(row.sent_at), "last_error": row.last_error}


def _str(body: dict[str, Any], key: str) -> str:
    value = body[key]
    if not isinstance(value, str):
        raise ApiError(400, _("field %(key)s must be a string", key=repr(key)))
    return value


def _checked(body: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """The route's columns after applying ``body`` to ``current`` (a new route: the defaults),
    every field checked; 400 with the reason otherwise."""
    merged = {**current, **body}
    out: dict[str, Any] = {}
    try:
        out["name"] = check_name(_str(merged, "name"))
        out["channel"] = _str(merged, "channel")
        out["target"] = check_target(out["channel"], _str(merged, "target"))
        out["min_severity"] = check_severity(_str(merged, "min_severity"))
        out["scope"] = check_route_scope(_str(merged, "scope"))
        esc = merged["escalate_after_min"]
        if esc is not None and (not isinstance(esc, int) or isinstance(esc, bool)):
            raise ApiError(400, _("field %(key)s must be an integer (minutes) or null", key="'escalate_after_min'"))
        events = merged["events"]
        if "events" not in body and esc is not None:
            events = [ESCALATE]  # made an escalation route: its events follow
        elif "events" not in body and current.get("escalate_after_min") is not None and esc is None:
            events = ["raise", "clear"]  # no longer one
        if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
            raise ApiError(400, _("field %(key)s must be a list of strings (raise, clear)", key="'events'"))
        out["events"] = check_events(events, esc)
        out["escalate_after_min"] = esc
    except ValidationError as exc:
        raise ApiError(400, exc.translated(_, number_text)) from None
    if not isinstance(merged["enabled"], bool):
        raise ApiError(400, _("field %(key)s must be true or false", key="'enabled'"))
    out["enabled"] = merged["enabled"]
    return out


def _route_or_404(session: Session, route_id: int) -> orm.NotificationRoute:
    row = session.get(orm.NotificationRoute, route_id) if 1 <= route_id <= 2**31 - 1 else None
    if row is None:
        raise ApiError(404, _("notification route %(route)s is unknown", route=route_id))
    return row


def _who() -> str:
    user = current_user()
    assert user is not None  # require_role let us in
    return user.username


@bp.get("/notification-routes")
@require_role("admin")
def list_routes() -> Response:
    query(())
    with web_state().make_session() as session:
        rows = session.scalars(select(orm.NotificationRoute).order_by(orm.NotificationRoute.id))
        return jsonify(items=[route_item(r) for r in rows])


@bp.post("/notification-routes")
@require_role("admin")
def create_route() -> tuple[Response, int]:
    query(())
    body = json_body(FIELDS, ("name", "channel", "target"))
    values = _checked(body, {"min_severity": "critical", "scope": "*", "events": ["raise", "clear"],
                             "escalate_after_min": None, "enabled": True})
    with web_state().make_session.begin() as session:
        row = orm.NotificationRoute(**values, updated_at=utcnow(), updated_by=_who())
        session.add(row)
        session.flush()
        item = route_item(row)
        audit("notification_route.set", session=session, route=row.id, old=None, new=_audited(item))
    return jsonify(item), 201


@bp.patch("/notification-routes/<int:route_id>")
@require_role("admin")
def change_route(route_id: int) -> Response:
    query(())
    body = json_body(FIELDS)
    if not body:
        raise ApiError(400, _("give at least one field (%(fields)s)", fields=", ".join(FIELDS)))
    with web_state().make_session.begin() as session:
        row = _route_or_404(session, route_id)
        old = route_item(row)
        values = _checked(body, {k: old[k] for k in FIELDS})
        for key, value in values.items():
            setattr(row, key, value)
        # Also what the notifier reads as "since": a route edited now does not replay earlier alarms.
        row.updated_at, row.updated_by = utcnow(), _who()
        item = route_item(row)
        audit("notification_route.set", session=session, route=row.id, old=_audited(old), new=_audited(item))
    return jsonify(item)


@bp.delete("/notification-routes/<int:route_id>")
@require_role("admin")
def delete_route(route_id: int) -> Response:
    query(())
    no_body()
    with web_state().make_session.begin() as session:
        row = _route_or_404(session, route_id)
        item = route_item(row)
        session.delete(row)
        audit("notification_route.delete", session=session, route=route_id, old=_audited(item))
    return jsonify(deleted=item)


def _audited(item: dict[str, Any]) -> dict[str, Any]:
    """The route as the append-only audit trail (and its log line) keeps it: a webhook URL masked to
    its host and a hash (Slack/Teams put the secret in the path; a change still shows), e-mail addresses
    as they are. The admins read the whole URL in ``GET /api/notification-routes``."""
    return {k: masked_target(item["channel"], item[k]) if k == "target" else item[k] for k in FIELDS}


@bp.get("/notifications")
@require_role("admin")
def list_notifications() -> Response:
    args = query((*PAGE_PARAMS, "status"))
    pg = page(args, default_size=50, max_size=500)
    status = choice(args, "status", ("", *STATUSES), "") or None
    where = [] if status is None else [orm.Notification.status == status]
    with web_state().make_session() as session:
        total = session.scalar(select(func.count()).select_from(orm.Notification).where(*where)) or 0
        pages = pg.check(total)
        rows = list(session.scalars(select(orm.Notification).where(*where)
                                    .order_by(orm.Notification.id.desc()).offset(pg.offset).limit(pg.size)))
        names = dict(session.execute(select(orm.NotificationRoute.id, orm.NotificationRoute.name)).all())
        items = [notification_item(r, names.get(r.route_id)) for r in rows]
    return jsonify(items=items, page=pg.number, per_page=pg.size, total=total, pages=pages)
