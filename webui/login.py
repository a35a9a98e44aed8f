"""Log-in and log-out pages (blueprint ``auth``)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import cast
from urllib.parse import urlsplit

from flask import Blueprint, Response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from plantmodel.readings import utcnow
from plantmodel.text import printable
from store.models import AuditEntry
from webui.audit import audit
from webui.auth import authenticate, csrf_matches, csrf_token, current_user, login_user, logout_user, public
from webui.state import web_state

log = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)
NAME_MAX = 64  # audit_log.actor
LOCKOUT_AUDIT_WINDOW = timedelta(minutes=15)  # the default lock-out window (WEBUI_LOGIN_LIMIT_*)


def _safe_next(target: str | None) -> str:
    # Only local paths: an attacker's ?next=https://evil/ must not turn the log-in into a redirector.
    if not target or not target.startswith("/") or target.startswith("//") or urlsplit(target).netloc:
        return url_for("dashboard.index")
    return target


@bp.route("/login", methods=["GET", "POST"])
@public
def login() -> str | Response | tuple[str, int]:
    if request.method == "GET":
        return render_template("login.html", next=request.args.get("next", ""), error=None)
    if not csrf_matches(request.form.get("csrf_token", "")):
        # The form's token comes with the GET; an old tab or a cross-site post lands here.
        return render_template("login.html", next=request.form.get("next", ""),
                               error=_("The form expired; please log in again.")), 400
    username = request.form.get("username", "").strip()
    user = authenticate(web_state().make_session, username, request.form.get("password", ""))
    if user is None:
        log.warning("failed log-in for %r from %s", printable(username[:NAME_MAX]), request.remote_addr)
        # The name tried (cut to the column), never the password.
        audit("login.failed", actor=printable(username)[:NAME_MAX] or None)
        return render_template("login.html", next=request.form.get("next", ""),
                               error=_("Wrong user name or password.")), 401
    login_user(user)
    audit("login.ok", actor=user.username, role=user.role)
    log.info("%s logged in (%s) from %s", user.username, user.role, request.remote_addr)
    return cast(Response, redirect(_safe_next(request.form.get("next"))))  # (typed as werkzeug's)


@bp.after_request
def _audit_lockout(resp: Response) -> Response:
    """A log-in refused by the rate limit (webui/ratelimit.py answers 429 without calling the view)
    is on the trail too: a lock-out is what an attack on a name looks like. Once per address per
    LOCKOUT_AUDIT_WINDOW, not per refused request: the trail is append-only forever, and an
    anonymous flood of 429s must not fill it (nor queue every real change behind its chain lock)."""
    if request.endpoint == "auth.login" and request.method == "POST" and resp.status_code == 429:
        address = request.remote_addr
        with web_state().make_session() as session:
            recent = session.scalar(select(AuditEntry.id).where(
                AuditEntry.action == "login.locked", AuditEntry.address == address,
                AuditEntry.at >= utcnow() - LOCKOUT_AUDIT_WINDOW).limit(1))
        if recent is None:
            audit("login.locked", actor=printable(request.form.get("username", "").strip())[:NAME_MAX] or None,
                  window_min=int(LOCKOUT_AUDIT_WINDOW.total_seconds() // 60))
    return resp


@bp.post("/logout")
def logout() -> Response:
    user = current_user()
    if user is not None:
        audit("logout", actor=user.username)
    logout_user(web_state().make_session)
    csrf_token()  # the log-in form needs a fresh one
    return cast(Response, redirect(url_for("auth.login")))
