"""JSON API (read-only for now)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from webui.snapshot import load_snapshot
from webui.state import web_state

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.get("/latest")
def latest() -> Response:
    """The snapshot the dashboard starts from (see :func:`webui.snapshot.load_snapshot`)."""
    return jsonify(load_snapshot(web_state().make_session))
