"""Log-in, roles, API tokens and CSRF for the web UI.

Default deny: ``install(app)`` adds a ``before_request`` hook that refuses every endpoint not
marked :func:`public` unless a user is logged in (session cookie) or presents an API token
(``Authorization: Bearer <token>``). Routes that need more than ``viewer`` add
``@require_role("operator")`` or ``@require_role("admin")``. API requests (and views marked
:func:`api_style`, e.g. ``/metrics``) get JSON 401/403; pages redirect to the log-in form.

Passwords are hashed with argon2id (salted, deliberately slow). Tokens are random and stored as
SHA-256 only. State-changing requests authenticated by the session cookie must carry the session's
CSRF token (``X-CSRF-Token`` header or ``csrf_token`` form field); token-authenticated requests are
not exposed to CSRF and need none.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar, cast

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Flask, Response, abort, g, jsonify, redirect, request, session, url_for
from flask_babel import gettext as _
from sqlalchemy.orm import Session, sessionmaker

from plantmodel.readings import utcnow
from store import users as user_store

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

_hasher = PasswordHasher()  # argon2id with the library's current recommended cost
# Verified against when the user name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))
TOKEN_PREFIX = "abb_"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class AuthUser:
    id: int
    username: str
    role: str
    via_token: bool = False
    session_version: int = 0  # of the row when read: a session must carry the same
    language: str | None = None  # the user's chosen language; None = the browser's, else the plant's

    def can(self, role: str) -> bool:
        return user_store.role_at_least(self.role, role)

    def to_dict(self) -> dict[str, Any]:
        return {"username": self.username, "role": self.role, "language": self.language}


def hash_password(password: str) -> str:
    return _hasher.hash(user_store.check_password(password))


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def new_token() -> tuple[str, str]:
    """A fresh API token and the hash to store."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, token_hash(token)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def authenticate(make_session: sessionmaker[Session], username: str, password: str) -> AuthUser | None:
    """The user if the password is right (and records the log-in time), else None."""
    with make_session.begin() as db:
        row = user_store.get_user(db, username)
        if row is None:
            verify_password(_DUMMY_HASH, password)
            return None
        if not verify_password(row.password_hash, password):
            return None
        if _hasher.check_needs_rehash(row.password_hash):  # cost parameters were raised since
            row.password_hash = _hasher.hash(password)
        row.last_login_at = utcnow()
        return AuthUser(row.id, row.username, row.role, session_version=row.session_version or 0,
                        language=row.language)


def user_for_token(make_session: sessionmaker[Session], token: str) -> AuthUser | None:
    if not token.startswith(TOKEN_PREFIX):
        return None
    with make_session() as db:
        row = user_store.get_user_by_token_hash(db, token_hash(token))
        return None if row is None else AuthUser(row.id, row.username, row.role, via_token=True,
                                                 language=row.language)


def user_for_id(make_session: sessionmaker[Session], user_id: int, version: Any) -> AuthUser | None:
    """The user of a session cookie, read on every request: a deleted user, or a session older than
    the user's last logout, password or role change (``session_version``), is nobody."""
    with make_session() as db:
        row = user_store.get_user_by_id(db, user_id)
        if row is None or version != (row.session_version or 0):
            return None
        return AuthUser(row.id, row.username, row.role, session_version=version, language=row.language)


def session_user(make_session: sessionmaker[Session]) -> AuthUser | None:
    uid = session.get("uid")
    return user_for_id(make_session, uid, session.get("sv")) if isinstance(uid, int) else None


def still_valid(make_session: sessionmaker[Session], users: list[AuthUser]) -> list[bool]:
    """Whether each user (a connection's, checked when it connected) may still be served: same
    session version, and for a token user, a token still stored (one query for all)."""
    with make_session() as db:
        rows = {row.id: row for row in user_store.list_users(db)}
    out = []
    for u in users:
        row = rows.get(u.id)
        out.append(row is not None and (row.token_hash is not None if u.via_token
                                        else (row.session_version or 0) == u.session_version))
    return out


# -- sessions -------------------------------------------------------------------------------------------

def login_user(user: AuthUser) -> None:
    session.clear()  # a new session id's worth of state: no fixation of a pre-login session
    session.permanent = True
    session["uid"] = user.id
    session["sv"] = user.session_version
    session["csrf"] = secrets.token_urlsafe(24)


def logout_user(make_session: sessionmaker[Session]) -> None:
    """End this user's sessions everywhere: a copy of the cookie (stolen, or a shared computer's
    other tab) is refused from now on, not only this browser's."""
    user = current_user()
    if user is not None and not user.via_token:
        with make_session.begin() as db:
            row = user_store.get_user_by_id(db, user.id)
            if row is not None:
                user_store.end_sessions(row)
    session.clear()


def csrf_token() -> str:
    """The session's CSRF token (created on first use, e.g. by the log-in form)."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return session["csrf"]


def csrf_matches(sent: str) -> bool:
    expected = session.get("csrf", "")
    return bool(expected) and hmac.compare_digest(str(sent), str(expected))


def current_user() -> AuthUser | None:
    """Who is making this request (cached for the request)."""
    if "auth_user" not in g:
        g.auth_user = _load_user(_make_session())
    return g.auth_user


def _make_session() -> sessionmaker[Session]:
    from webui.state import web_state  # late: state imports live, which must not import auth's app bits

    return web_state().make_session


def _load_user(make_session: sessionmaker[Session]) -> AuthUser | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return user_for_token(make_session, header[7:].strip())
    return session_user(make_session)


def socket_user(make_session: sessionmaker[Session], auth: Any) -> AuthUser | None:
    """The user of a Socket.IO connection: the browser's session cookie, or ``auth={"token": ...}``."""
    if isinstance(auth, Mapping) and isinstance(auth.get("token"), str):
        return user_for_token(make_session, auth["token"])
    return session_user(make_session)


# -- route protection -------------------------------------------------------------------------------------

def public(view: F) -> F:
    """Mark a view as reachable without logging in (log-in form, health check)."""
    view.public = True  # type: ignore[attr-defined]
    return view


def require_role(role: str) -> Callable[[F], F]:
    user_store.check_role(role)

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            user = current_user()
            if user is None:
                return _unauthenticated()
            if not user.can(role):
                return _forbidden(_("this needs the %(role)s role; %(username)s is %(user_role)s",
                                    role=_role_name(role), username=user.username,
                                    user_role=_role_name(user.role)))
            return view(*args, **kwargs)

        wrapper.required_role = role  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def _role_name(role: str) -> str:
    """A role as people read it (the code itself in English)."""
    from webui.i18n import role_names  # late: webui.i18n imports this module

    return role_names().get(role, role)


def api_style(view: F) -> F:
    """Mark a view outside ``/api`` that machines call (the metrics endpoint) to be answered like the
    API: a refusal is a 401/403 status, never a redirect to the log-in form a scraper cannot fill."""
    view.api_style = True  # type: ignore[attr-defined]
    return view


def is_api_request() -> bool:
    if request.path.startswith("/api/") or request.path == "/api":
        return True
    view = current_app_view()
    return view is not None and getattr(view, "api_style", False)


def _unauthenticated() -> Response:
    if is_api_request():
        resp = jsonify(error=_("log in first: a session cookie or 'Authorization: Bearer <token>' is required"),
                       status=401)
        resp.status_code = 401
        resp.headers["WWW-Authenticate"] = 'Bearer realm="plant"'
        return resp
    # (flask's redirect is typed as werkzeug's Response; it builds the app's, a flask Response)
    return cast(Response, redirect(url_for("auth.login",
                                           next=request.full_path if request.query_string else request.path)))


def _forbidden(message: str) -> Response:
    if is_api_request():
        resp = jsonify(error=message, status=403)
        resp.status_code = 403
        return resp
    abort(403, message)


def _check_request() -> Response | None:
    view = current_app_view()
    if view is None or getattr(view, "public", False):
        return None
    user = current_user()
    if user is None:
        return _unauthenticated()
    sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token", "")
    if request.method not in SAFE_METHODS and not user.via_token and not csrf_matches(sent):
        return _forbidden(_("missing or wrong CSRF token (send the page's X-CSRF-Token header)"))
    return None


def current_app_view() -> Callable[..., Any] | None:
    from flask import current_app

    if request.endpoint is None:
        return None  # 404/405: let the error handlers answer
    return current_app.view_functions.get(request.endpoint)


def install(app: Flask) -> None:
    """Default-deny for every endpoint of ``app`` (static files are public: CSS and JS only)."""
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    # Lax: the cookie is not sent on cross-site POSTs (CSRF defence in depth, with the token).
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=12)  # about a shift
    app.before_request(_check_request)
    static = app.view_functions.get("static")
    if static is not None:
        public(static)

    @app.context_processor
    def _inject() -> dict[str, Any]:
        return {"current_user": current_user(), "csrf_token": csrf_token}
