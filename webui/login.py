"""Log-in and log-out pages (blueprint ``auth``)."""

from __future__ import annotations

import logging
from typing import cast
from urllib.parse import urlsplit

from flask import Blueprint, Response, redirect, render_template, request, url_for

from webui.auth import authenticate, csrf_matches, csrf_token, login_user, logout_user, public
from webui.state import web_state

log = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)


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
                               error="The form expired; please log in again."), 400
    username = request.form.get("username", "").strip()
    user = authenticate(web_state().make_session, username, request.form.get("password", ""))
    if user is None:
        log.warning("failed log-in for %r from %s", username, request.remote_addr)
        return render_template("login.html", next=request.form.get("next", ""),
                               error="Wrong user name or password."), 401
    login_user(user)
    log.info("%s logged in (%s) from %s", user.username, user.role, request.remote_addr)
    return cast(Response, redirect(_safe_next(request.form.get("next"))))  # (typed as werkzeug's)


@bp.post("/logout")
def logout() -> Response:
    logout_user(web_state().make_session)
    csrf_token()  # the log-in form needs a fresh one
    return cast(Response, redirect(url_for("auth.login")))
