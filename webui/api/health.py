"""``GET /api/health``: every service's health, for the services page (admins) and monitoring
scripts (an admin's API token). See :mod:`webui.services`."""

from __future__ import annotations

from flask import Response, jsonify

from webui.api import bp
from webui.api.params import query
from webui.auth import require_role
from webui.services import all_services, webui_health
from webui.state import web_state


@bp.get("/health")
@require_role("admin")
def health() -> Response:
    query(())
    state = web_state()
    own = webui_health(state.make_session, state.feed.health.to_dict())
    return jsonify(all_services(state.make_session, own, state.feed.bridge_reports))
