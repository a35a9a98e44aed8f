"""User administration (admin only). Passwords are hashed by :mod:`webui.auth`; tokens are never
shown here (each user creates their own with ``POST /api/me/token``)."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify
from flask_babel import gettext as _
from sqlalchemy.orm import Session

from plantmodel.i18n import check_language
from plantmodel.readings import format_ts, utcnow
from store import models as orm
from store import users as user_store
from webui.api import ApiError, bp, invalid_input
from webui.api.params import body_str, json_body, no_body, query
from webui.audit import audit
from webui.auth import current_user, hash_password, require_role
from webui.state import web_state


def user_item(row: orm.User) -> dict[str, Any]:
    return {"username": row.username, "role": row.role, "created_at": format_ts(row.created_at),
            "last_login_at": None if row.last_login_at is None else format_ts(row.last_login_at),
            "has_token": row.token_hash is not None, "language": row.language}


def language_field(value: Any) -> str | None:
    """A language field: fr, en, or null (the browser's choice, else the plant's)."""
    if value is not None and not isinstance(value, str):
        raise ApiError(400, _("field %(key)s must be a string or null", key="'language'"))
    return None if value is None else check_language(value, "language")


def _user_or_404(session: Session, username: str) -> orm.User:
    row = user_store.get_user(session, username)
    if row is None:
        raise ApiError(404, _("user %(username)s is unknown", username=repr(username)))
    return row


@bp.get("/users")
@require_role("admin")
def list_users() -> Response:
    query(())
    with web_state().make_session() as session:
        return jsonify(items=[user_item(r) for r in user_store.list_users(session)])


@bp.post("/users")
@require_role("admin")
def create_user() -> tuple[Response, int]:
    query(())
    body = json_body(("username", "password", "role", "language"), ("username", "password", "role"))
    with invalid_input():
        language = language_field(body.get("language"))
        username = user_store.check_username(body_str(body, "username"))
        role = user_store.check_role(body_str(body, "role"))
        password_hash = hash_password(body_str(body, "password"))  # checks the length first
    with web_state().make_session.begin() as session:
        if user_store.get_user(session, username) is not None:
            raise ApiError(409, _("user %(username)s already exists", username=repr(username)))
        row = user_store.add_user(session, username, password_hash, role, utcnow())
        user_store.set_language(row, language)
        item = user_item(row)
        audit("user.create", session=session, username=username, role=role,
              **({"language": language} if language is not None else {}))
    return jsonify(item), 201


@bp.patch("/users/<username>")
@require_role("admin")
def update_user(username: str) -> Response:
    query(())
    body = json_body(("role", "password", "language"))
    if not body:
        raise ApiError(400, _("nothing to change: send role, password and/or language"))
    with invalid_input():
        language = language_field(body["language"]) if "language" in body else None
        role = user_store.check_role(body_str(body, "role")) if "role" in body else None
        password_hash = hash_password(body_str(body, "password")) if "password" in body else None
    with web_state().make_session.begin() as session:
        row = _user_or_404(session, username)
        if role is not None:
            with invalid_input(409):
                user_store.check_admin_remains(session, row, role)
            if role != row.role:
                user_store.set_role(row, role)  # ends the user's sessions: they log in again
        if password_hash is not None:
            user_store.set_password(row, password_hash)  # and revokes the API token
        if "language" in body:
            user_store.set_language(row, language)
        row.updated_at = utcnow()
        item = user_item(row)
        audit("user.update", session=session, username=username, **({"role": role} if role is not None else {}),
              **({"password": "changed"} if password_hash is not None else {}),
              **({"language": language} if "language" in body else {}))
    return jsonify(item)


@bp.delete("/users/<username>")
@require_role("admin")
def delete_user(username: str) -> Response:
    query(())
    no_body()
    me = current_user()
    assert me is not None
    with web_state().make_session.begin() as session:
        row = _user_or_404(session, username)
        if row.id == me.id:
            raise ApiError(409, _("you cannot delete your own account (ask another admin)"))
        with invalid_input(409):
            user_store.check_admin_remains(session, row, None)
        item = user_item(row)
        session.delete(row)
        audit("user.delete", session=session, username=username, role=item["role"])
    return jsonify(deleted=item)
