"""The plant as it is now: the live snapshot."""

from __future__ import annotations

from flask import Response, jsonify

from webui.api import bp
from webui.api.params import query
from webui.snapshot import load_snapshot
from webui.state import web_state


@bp.get("/latest")
def latest() -> Response:
    """The snapshot the dashboard starts from (see :func:`webui.snapshot.load_snapshot`)."""
    query(())
    return jsonify(load_snapshot(web_state().make_session))
