"""Tokens of the legacy HTTP senders (admin only): ``/api/device-tokens``.

A token is bound to one device: ``units/<u>`` (may ``POST /collector/info`` for that unit) or
``meters/<id>`` (may call ``/webhook/`` for that meter). It is shown once, when created; only its
SHA-256 is stored. Tokens are never deleted: revoking one keeps the row, with who revoked it and
when (the web UI's database account may not delete them). Every change is audited.
"""

from __future__ import annotations

import secrets
from typing import Any

from flask import Response, jsonify
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from plantmodel import legacy
from plantmodel.errors import ValidationError
from plantmodel.i18n import N_
from plantmodel.readings import format_ts, utcnow
from plantmodel.text import printable
from store import models as orm
from webui.api import ApiError, bp, invalid_input
from webui.api.params import body_str, json_body, no_body, parse_int, query, required
from webui.audit import audit
from webui.auth import current_user, require_role, token_hash
from webui.state import web_state

TOKEN_PREFIX = "abbdev_"  # tells a device token from a user's API token (abb_) in a config file
MAX_LABEL = 64


def new_device_token() -> tuple[str, str]:
    """A fresh device token and the hash to store."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, token_hash(token)


def check_label(label: object) -> str | None:
    """An optional free-text label (where the sender is, what it is): at most 64 printable characters."""
    if label is None:
        return None
    if not isinstance(label, str):
        raise ValidationError(N_("field %(key)s must be a string"), key="'label'")
    label = label.strip()
    if len(label) > MAX_LABEL or printable(label) != label:
        raise ValidationError(N_("field %(key)s must be at most %(max)s printable characters"), key="'label'",
                              max=MAX_LABEL)
    return label or None


def add_device_token(session: Session, device: str, label: str | None, by: str, *,
                     token: str | None = None) -> tuple[orm.DeviceToken, str]:
    """Store a new token for ``device`` (``token`` given: that one, e.g. the demo's fixed tokens);
    returns the row and the token (shown once)."""
    device = legacy.check_token_device(device)
    label = check_label(label)
    if token is None:
        token, digest = new_device_token()
    else:
        digest = token_hash(token)
    row = orm.DeviceToken(device=device, token_hash=digest, label=label, created_at=utcnow(), created_by=by)
    session.add(row)
    session.flush()  # the id
    return row, token


def revoke_device_token(row: orm.DeviceToken, by: str) -> None:
    row.revoked_at = utcnow()
    row.revoked_by = by


def device_tokens(session: Session) -> list[orm.DeviceToken]:
    """Every token, active first, then newest first."""
    t = orm.DeviceToken
    return list(session.scalars(select(t).order_by(t.revoked_at.is_not(None), t.id.desc())))


def token_item(row: orm.DeviceToken) -> dict[str, Any]:
    """What the API shows of a token: never the token or its hash."""

    def ts(value: Any) -> str | None:
        return None if value is None else format_ts(value)

    kind = "unit" if legacy.token_unit(row.device) is not None else "meter"
    return {"id": row.id, "device": row.device, "kind": kind,
            "route": "/collector/info" if kind == "unit" else "/webhook/", "label": row.label,
            "active": row.revoked_at is None, "created_at": ts(row.created_at), "created_by": row.created_by,
            "revoked_at": ts(row.revoked_at), "revoked_by": row.revoked_by, "last_used_at": ts(row.last_used_at)}


def _me() -> str:
    user = current_user()
    assert user is not None  # require_role let us in
    return user.username


@bp.get("/device-tokens")
@require_role("admin")
def list_device_tokens() -> Response:
    query(())
    with web_state().make_session() as session:
        return jsonify(items=[token_item(r) for r in device_tokens(session)])


@bp.post("/device-tokens")
@require_role("admin")
def create_device_token() -> tuple[Response, int]:
    query(())
    body = json_body(("device", "label"), ("device",))
    with invalid_input():
        device = legacy.check_token_device(body_str(body, "device"))
        label = check_label(body.get("label"))
    with web_state().make_session.begin() as session:
        row, token = add_device_token(session, device, label, _me())
        item = token_item(row)
        audit("device_token.create", session=session, id=item["id"], device=device, label=label or "")
    return jsonify({**item, "token": token}), 201


@bp.delete("/device-tokens")
@require_role("admin")
def revoke_device_token_route() -> Response:
    """Revoke (never delete: the row stays, with who revoked it and when)."""
    args = query(("id",))
    no_body()
    token_id = parse_int("id", required(args, "id"), minimum=1, maximum=2**31 - 1)
    with web_state().make_session.begin() as session:
        row = session.get(orm.DeviceToken, token_id)
        if row is None:
            raise ApiError(404, _("device token %(id)s is unknown", id=token_id))
        if row.revoked_at is not None:
            raise ApiError(409, _("device token %(id)s was already revoked by %(username)s at %(when)s",
                                  id=token_id, username=row.revoked_by, when=format_ts(row.revoked_at)))
        revoke_device_token(row, _me())
        item = token_item(row)
        audit("device_token.revoke", session=session, id=token_id, device=item["device"])
    return jsonify(revoked=item)
