"""The dashboard's pages and the health check.

Pages are server-rendered shells: the data comes from the JSON API and the Socket.IO feed (see the
scripts under ``static/``). What a page needs before its first API call (the plant snapshot, the
open alarms, the list of units and meters for its selectors) is rendered or embedded here.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, render_template, request
from flask_babel import gettext as _
from jinja2.utils import htmlsafe_json_dumps
from markupsafe import Markup
from sqlalchemy.orm import Session

from plantmodel.measures import AUTOMATE_ALARM_MEASURES, AUTOMATE_MEASURES, METER_ALARM_MEASURES, METER_MEASURES
from plantmodel.sources import AutomateSource, MeterSource, unit_key
from plantmodel.thresholds import DEFAULT_SCOPE, SEVERITIES
from store import models as orm
from store import queries
from store.users import ROLES
from webui.auth import current_user, public, require_role
from webui.i18n import page_i18n
from webui.services import webui_health
from webui.snapshot import load_snapshot, measure_table, unit_snapshot
from webui.sockets import STALE_AFTER
from webui.state import web_state

log = logging.getLogger(__name__)

bp = Blueprint("dashboard", __name__)


@bp.app_context_processor
def _page_context() -> dict[str, Any]:
    # Callables, so only templates that show the navigation pay for the query.
    return {"nav_meters": _nav_meters, "page_config": _page_config}


@bp.app_template_filter("ordered_json")
def _ordered_json(value: Any) -> Markup:
    """JSON for a ``<script type="application/json">``: HTML-safe like ``tojson``, but keeping the key
    order (``tojson`` sorts keys, and the measures' order is the order the pages show them in)."""
    return htmlsafe_json_dumps(value, dumps=current_app.json.dumps)


def _nav_meters() -> list[dict[str, str | None]]:
    """The meters menu: [{id, name}], removed meters left out."""
    if current_user() is None:
        return []
    with web_state().make_session() as session:
        names, removed = queries.device_names(session), queries.removed_devices(session)
        return [{"id": m.id, "name": names.get(MeterSource(m.id).key)} for m in queries.meters(session)
                if MeterSource(m.id).key not in removed]


def _registry(session: Session, *, hide_removed: bool = True) -> dict[str, Any]:
    """What the overview needs of the device registry: ``names`` ({device: name}), ``disabled`` and
    ``hidden`` (the removed devices, unless the page was asked for them with ``?removed=1``)."""
    rows = queries.device_rows(session)
    return {"names": {r.device: r.name for r in rows if r.name is not None},
            "disabled": [r.device for r in rows if r.disabled],
            "hidden": [r.device for r in rows if r.removed_at is not None] if hide_removed else []}


def _unit_names(session: Session) -> dict[int, str]:
    """{unit number: name} of the named units."""
    return {int(key.split("/")[1]): name for key, name in queries.device_names(session).items()
            if key.startswith("units/")}


def _page_config() -> dict[str, Any]:
    """What every page's script needs before the Socket.IO ``hello`` arrives."""
    settings = web_state().settings
    return {"periods": {"automate": settings.report_period, "meter": settings.meter_period},
            "stale_after": STALE_AFTER, "measures": measure_table(), "plant_tz": settings.plant_tz,
            "i18n": page_i18n()}


def _unit_automates(session: Session) -> dict[int, list[int]]:
    units: dict[int, list[int]] = {}
    for a in queries.automates(session):
        units.setdefault(a.unit_id, []).append(a.automate_no)
    return units


def _not_found(message: str) -> tuple[str, int]:
    return render_template("error.html", status=404, message=message), 404


@bp.get("/")
def index() -> str:
    # The page draws this snapshot at once, then follows the live events.
    with web_state().make_session() as session:
        registry = _registry(session, hide_removed=request.args.get("removed") != "1")
    return render_template("overview.html", snapshot=load_snapshot(web_state().make_session), registry=registry)


@bp.get("/units/<int:unit>")
def unit_view(unit: int) -> str | tuple[str, int]:
    # The overview narrowed to one unit: the browser watches only that unit's room.
    snapshot = unit_snapshot(web_state().make_session, unit)
    if snapshot is None:
        return _not_found(_("Unit %(unit)s is unknown.", unit=unit))
    with web_state().make_session() as session:
        registry = _registry(session, hide_removed=False)  # asked for by its number: shown even if removed
    return render_template("overview.html", snapshot=snapshot, unit=unit, registry=registry,
                           unit_name=registry["names"].get(unit_key(unit)))


@bp.get("/units/<int:unit>/automates/<int:automate>")
def automate_view(unit: int, automate: int) -> str | tuple[str, int]:
    with web_state().make_session() as session:
        units = _unit_automates(session)
        unit_names = _unit_names(session)
    if unit not in units:
        return _not_found(_("Unit %(unit)s is unknown.", unit=unit))
    if automate not in units[unit]:
        return _not_found(_("Unit %(unit)s has no automate %(automate)s.", unit=unit, automate=automate))
    return render_template("automate.html", unit=unit, automate=automate, units=units,
                           measures=AUTOMATE_MEASURES, unit_names=unit_names)


@bp.get("/meters/<meter>")
def meter_view(meter: str) -> str | tuple[str, int]:
    with web_state().make_session() as session:
        known = session.get(orm.Meter, meter) is not None
        name = queries.device_names(session).get(MeterSource(meter).key) if known else None
    if not known:
        return _not_found(_("Meter %(meter)s is unknown.", meter=meter))
    return render_template("meter.html", meter=meter, measures=METER_MEASURES, meter_name=name)


@bp.get("/alarms")
def alarms() -> str:
    with web_state().make_session() as session:
        units = _unit_automates(session)
        meters = [m.id for m in queries.meters(session)]
        open_alarms = [queries.alarm_dict(row) for row in reversed(queries.open_alarms(session))]
        names = queries.device_names(session)
    user = current_user()
    return render_template("alarms.html", open_alarms=open_alarms, units=units, meters=meters,
                           measures={**AUTOMATE_ALARM_MEASURES, **METER_ALARM_MEASURES},
                           can_ack=user is not None and user.can("operator"), names=names)


@bp.get("/admin/thresholds")
@require_role("admin")
def thresholds() -> str:
    with web_state().make_session() as session:
        units = _unit_automates(session)
        meters = [m.id for m in queries.meters(session)]
    scopes = [DEFAULT_SCOPE, *(unit_key(u) for u in units),
              *(AutomateSource(u, a).key for u, autos in units.items() for a in autos),
              *(MeterSource(m).key for m in meters)]
    return render_template("thresholds.html", scopes=scopes, severities=SEVERITIES,
                           automate_measures=AUTOMATE_ALARM_MEASURES, meter_measures=METER_ALARM_MEASURES)


@bp.get("/admin/users")
@require_role("admin")
def users() -> str:
    return render_template("users.html", roles=ROLES)


@bp.get("/admin/senders")
@require_role("admin")
def senders() -> str:
    """Tokens of the legacy HTTP senders (/collector/info, /webhook/): list, create, revoke."""
    with web_state().make_session() as session:  # suggestions for the device field
        devices = [unit_key(u) for u in sorted(_unit_automates(session))]
        devices += [MeterSource(m.id).key for m in queries.meters(session)]
    return render_template("senders.html", devices=devices)


@bp.get("/admin/devices")
@require_role("admin")
def devices() -> str:
    # The table comes from GET /api/devices (static/devices.js).
    return render_template("devices.html")


@bp.get("/admin/notifications")
@require_role("admin")
def notifications() -> str:
    # Routes and outbox come from /api/notification-routes and /api/notifications (static/notifications.js).
    return render_template("notifications.html", severities=SEVERITIES)


@bp.get("/admin/audit")
@require_role("admin")
def audit_log() -> str:
    """The audit trail; the entries come from GET /api/audit (static/audit.js), filtered by the URL's query."""
    from webui.api.audit import KNOWN_ACTIONS

    filters = {k: request.args.get(k) for k in ("action", "actor")}
    return render_template("audit.html", filters=filters, actions=KNOWN_ACTIONS)


@bp.get("/healthz")
@public
def healthz() -> tuple[Response, int]:
    """This process's own health: its database and its broker connection (503 when either is down,
    so a load balancer or compose stops counting on it; the live pages would be frozen)."""
    state = web_state()
    health = webui_health(state.make_session, state.feed.health.to_dict())
    # Public (load balancers, compose): yes or no per dependency; the details (host, process, why)
    # are for admins, at /api/health.
    body = jsonify(status="ok" if health.ok else "unavailable", db=health.checks["database"].ok,
                   mqtt=health.checks["broker"].ok)
    return body, 200 if health.ok else 503


@bp.get("/admin/services")
@require_role("admin")
def services() -> str:
    """Each service's health (GET /api/health, static/services.js): this web UI, the bridges, the notifier."""
    return render_template("services.html")


@bp.get("/admin/rejected")
@require_role("admin")
def rejected() -> str:
    """Rejected messages; the rows come from GET /api/rejected (static/rejected.js), filtered by the URL's query."""
    filters = {k: request.args.get(k) for k in ("source", "reason")}
    return render_template("rejected.html", filters=filters)
