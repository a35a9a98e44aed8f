"""Who am I, and my API token."""

from __future__ import annotations

from flask import Response, jsonify
from flask_babel import gettext as _

from plantmodel.readings import utcnow
from store import users as user_store
from webui.api import ApiError, bp, invalid_input
from webui.api.params import json_body, no_body, query
from webui.api.users import language_field
from webui.audit import audit
from webui.auth import AuthUser, current_user, new_token
from webui.state import web_state


def _me() -> AuthUser:
    user = current_user()
    assert user is not None  # auth's default deny let us in
    return user


@bp.get("/me")
def me() -> Response:
    query(())
    return jsonify(_me().to_dict())


@bp.patch("/me")
def update_me() -> Response:
    """The caller's own settings: ``language`` (``fr``, ``en``, or null: the browser's, else the plant's)."""
    query(())
    body = json_body(("language",), ("language",))
    user = _me()
    with invalid_input():
        language = language_field(body["language"])
    with web_state().make_session.begin() as session:
        row = user_store.get_user_by_id(session, user.id)
        if row is None:
            raise ApiError(404, _("user %(username)s no longer exists", username=user.username))
        user_store.set_language(row, language)
        row.updated_at = utcnow()
        audit("user.update", session=session, username=user.username, language=language)
    return jsonify({**user.to_dict(), "language": language})


@bp.post("/me/token")
def rotate_token() -> Response:
    """A new API token for the caller (the previous one stops working). Shown this once: only its
    hash is stored."""
    query(())
    no_body()
    user = _me()
    token, digest = new_token()
    with web_state().make_session.begin() as session:
        row = user_store.get_user_by_id(session, user.id)
        if row is None:  # deleted between the auth check and now
            raise ApiError(404, _("user %(username)s no longer exists", username=user.username))
        row.token_hash = digest
        row.updated_at = utcnow()
        audit("token.create", session=session)
    return jsonify(token=token)


@bp.delete("/me/token")
def revoke_token() -> Response:
    """Revoke the caller's API token (if any)."""
    query(())
    no_body()
    user = _me()
    with web_state().make_session.begin() as session:
        row = user_store.get_user_by_id(session, user.id)
        revoked = row is not None and row.token_hash is not None
        if row is not None and revoked:
            row.token_hash = None
            row.updated_at = utcnow()
            audit("token.revoke", session=session)
    return jsonify(revoked=revoked)
