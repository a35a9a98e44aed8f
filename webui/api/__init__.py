"""The JSON REST API under ``/api`` (documented by ``/api/openapi.json``).

Every module here adds its routes to the one blueprint ``bp``. Errors are JSON
``{"error": "<what is wrong>", "status": <code>}``: raise :class:`ApiError` (or ``abort``) from a
route; bad parameters are 400, unknown ids and pages past the end 404, and nothing is a 500.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Blueprint, Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from plantmodel.errors import ValidationError
from webui.auth import is_api_request

log = logging.getLogger(__name__)

bp = Blueprint("api", __name__, url_prefix="/api")


class ApiError(HTTPException):
    """An error answered as JSON with the given status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(description=message)
        self.code = status


@contextmanager
def invalid_input(status: int = 400) -> Iterator[None]:
    """What the model refuses (a :class:`ValidationError` raised by the checks called inside) is
    the client's error: answered with ``status`` and the model's reason."""
    try:
        yield
    except ValidationError as exc:
        raise ApiError(status, exc.reason) from None


def error_response(status: int, message: str) -> Response:
    resp = jsonify(error=message, status=status)
    resp.status_code = status
    return resp


def install(app: Flask) -> None:
    """Register the API blueprint and the JSON error handlers for ``/api`` paths."""
    # Imported for their routes on ``bp``.
    import webui.api.audit  # (the audit trail, admins)
    import webui.api.notifications  # (alarm notification routes and outbox, admins)
    import webui.api.rejected  # (rejected messages, admins)
    import webui.api.tokens  # noqa: F401  (the legacy HTTP senders' tokens)
    from webui.api import alarms, devices, legacy, me, openapi, plant, thresholds, timeseries, users  # noqa: F401

    app.register_blueprint(bp)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response | HTTPException:
        if isinstance(exc, ApiError) or is_api_request():
            return error_response(exc.code or 500, exc.description or exc.name)
        return exc

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response | tuple[str, int]:
        # Logged with the traceback; the client gets a short JSON (API) or text error, never a stack.
        log.exception("unhandled error on %s", exc)
        if is_api_request():
            return error_response(500, "internal error (see the web UI's log)")
        return "internal error (see the web UI's log)", 500
