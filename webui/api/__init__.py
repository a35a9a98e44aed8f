"""The JSON REST API under ``/api`` (documented by ``/api/openapi.json``).

Every module here adds its routes to the one blueprint ``bp``. Errors are JSON
``{"error": "<what is wrong>", "status": <code>}``: raise :class:`ApiError` (or ``abort``) from a
route; bad parameters are 400, unknown ids and pages past the end 404, and nothing is a 500.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Blueprint, Flask, Response, jsonify, render_template
from flask_babel import force_locale, gettext
from werkzeug.exceptions import HTTPException

from plantmodel.errors import ValidationError
from plantmodel.i18n import N_
from webui.auth import is_api_request
from webui.i18n import language_for, number_text

log = logging.getLogger(__name__)

bp = Blueprint("api", __name__, url_prefix="/api")

# Werkzeug's own descriptions of the errors it raises (unknown path, wrong method, body too large...),
# marked here so the API's JSON says them in the request's language; the English is Werkzeug's, unchanged.
HTTP_DESCRIPTIONS: dict[int, str] = {
    400: N_("The browser (or proxy) sent a request that this server could not understand."),
    401: N_("The server could not verify that you are authorized to access the URL requested. You either "
            "supplied the wrong credentials (e.g. a bad password), or your browser doesn't understand how to "
            "supply the credentials required."),
    403: N_("You don't have the permission to access the requested resource. It is either read-protected or "
            "not readable by the server."),
    404: N_("The requested URL was not found on the server. If you entered the URL manually please check your "
            "spelling and try again."),
    405: N_("The method is not allowed for the requested URL."),
    413: N_("The data value transmitted exceeds the capacity limit."),
    415: N_("The server does not support the media type transmitted in the request."),
    429: N_("This user has exceeded an allotted request count. Try again later."),
}
INTERNAL_ERROR = N_("internal error (see the web UI's log)")


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
        raise ApiError(status, exc.translated(gettext, number_text)) from None


def error_response(status: int, message: str) -> Response:
    resp = jsonify(error=message, status=status)
    resp.status_code = status
    return resp


def install(app: Flask) -> None:
    """Register the API blueprint and the JSON error handlers for ``/api`` paths."""
    # Imported for their routes on ``bp``.
    import webui.api.audit  # (the audit trail, admins)
    import webui.api.health  # (the services' health, admins)
    import webui.api.notifications  # (alarm notification routes and outbox, admins)
    import webui.api.rejected  # (rejected messages, admins)
    import webui.api.tokens  # noqa: F401  (the legacy HTTP senders' tokens)
    from webui.api import alarms, devices, legacy, me, openapi, plant, thresholds, timeseries, users  # noqa: F401

    app.register_blueprint(bp)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response | HTTPException:
        if isinstance(exc, ApiError) or is_api_request():
            return error_response(exc.code or 500, _description(exc))
        if exc.code is None or exc.code < 400 or exc.response is not None:
            return exc  # a redirect (e.g. to the URL with its slash), or a response made by the view
        try:  # a page: our error page, in the request's language (Werkzeug's own is English)
            return Response(render_template("error.html", status=exc.code, message=_description(exc)),
                            status=exc.code, headers=exc.get_headers() if exc.code == 405 else None)
        except Exception:  # e.g. the database is down for the menu: Werkzeug's plain page
            log.debug("error page for %s not rendered", exc.code, exc_info=True)
            return exc

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response | tuple[str, int]:
        # Logged with the traceback; the client gets a short JSON (API) or text error, never a stack.
        log.exception("unhandled error on %s", exc)
        message = gettext_anyway(INTERNAL_ERROR)
        if is_api_request():
            return error_response(500, message)
        return message, 500


def _description(exc: HTTPException) -> str:
    """An error's message: ours (already in the request's language), or Werkzeug's default one
    translated; a description Werkzeug does not know is passed on as it is."""
    description = exc.description or exc.name
    default = HTTP_DESCRIPTIONS.get(exc.code or 0)
    if not isinstance(exc, ApiError) and default is not None and description == default:
        return gettext_anyway(default)
    return description


def gettext_anyway(message: str, **params: object) -> str:
    """``message`` in the request's language, for an answer to a failure. Finding that language may
    read the user's choice from the database: when that fails too (the database is down), the
    browser's language, else the plant's, else the English: an error answer must not fail in turn."""
    try:
        return gettext(message, **params)
    except Exception:  # already answering an error
        log.debug("no language for %r from the locale selector", message, exc_info=True)
    try:
        with force_locale(language_for(None)):
            return gettext(message, **params)
    except Exception:
        log.debug("could not translate %r", message, exc_info=True)
        return message % params if params else message
