"""Log-in rate limits: failed log-ins per user name and per address, with a temporary lock-out.

Flask-Limiter (one ``Limiter`` per app, in-memory storage): it is the maintained Flask extension
for exactly this, with moving windows and a per-route ``deduct_when``, so only *failed* log-ins
count and a user who logs in right is never slowed down. A user name under attack is locked for
the window whatever address the attempts come from; one address guessing many user names is
locked too. In-memory counters are per process: several web UI processes behind a load balancer
each count their own (give the limiter a shared ``storage_uri``, e.g. Redis, there).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, make_response, render_template, request
from flask_babel import gettext as _
from flask_limiter import Limiter, RequestLimit
from flask_limiter.util import get_remote_address

from plantmodel.i18n import N_
from plantmodel.text import printable

log = logging.getLogger(__name__)

LOCKED = N_("Too many failed log-ins: try again in a few minutes.")  # shown in the log-in form's language


def _user_key() -> str:
    return "user:" + request.form.get("username", "").strip().lower()


def _failed(resp: Response) -> bool:
    return resp.status_code == 401


def _breach(limit: RequestLimit) -> Response:
    # Escaped and quoted: the name is the unauthenticated sender's text (a newline would forge a log line).
    log.warning("log-in locked for %r (%s): %s", printable(request.form.get("username", "")[:64]),
                request.remote_addr, limit.limit)
    return make_response(render_template("login.html", next=request.form.get("next", ""), error=_(LOCKED)), 429)


def install(app: Flask, *, per_user: str, per_address: str) -> Limiter:
    """Limit POST /login (the ``auth.login`` view, registered before this)."""
    limiter = Limiter(get_remote_address, app=app, storage_uri="memory://", strategy="moving-window")
    view: Any = app.view_functions["auth.login"]  # (Flask-Limiter's decorator types it as maybe async)
    view = limiter.limit(per_user, key_func=_user_key, methods=["POST"], deduct_when=_failed, on_breach=_breach,
                         scope="login-user")(view)
    view = limiter.limit(per_address, methods=["POST"], deduct_when=_failed, on_breach=_breach,
                         scope="login-address")(view)
    app.view_functions["auth.login"] = view
    return limiter
