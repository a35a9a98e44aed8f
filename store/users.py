"""User accounts: the queries behind log-in, API tokens and user administration. Hashing is the
caller's business (``webui.auth``); this module only stores and finds rows."""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from plantmodel.errors import ValidationError
from plantmodel.i18n import N_, check_language
from store import models as orm

# Ordered: each role can do everything the ones before it can.
ROLES = ("viewer", "operator", "admin")
_USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MIN_PASSWORD_LENGTH = 8


def check_username(username: str) -> str:
    if not _USERNAME.fullmatch(username):  # match's $ would let a final newline in
        raise ValidationError(N_("user name %(username)s must be 1-64 letters, digits or _ . @ -"),
                              username=repr(username))
    return username


def check_role(role: str) -> str:
    if role not in ROLES:
        raise ValidationError(N_("role %(role)s is not one of %(roles)s"), role=repr(role), roles=", ".join(ROLES))
    return role


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(N_("a password needs at least %(min)s characters"), min=MIN_PASSWORD_LENGTH)
    return password


def role_at_least(role: str, needed: str) -> bool:
    return ROLES.index(role) >= ROLES.index(needed)


def get_user(session: Session, username: str) -> orm.User | None:
    return session.scalar(select(orm.User).where(orm.User.username == username))


def get_user_by_id(session: Session, user_id: int) -> orm.User | None:
    return session.get(orm.User, user_id)


def get_user_by_token_hash(session: Session, token_hash: str) -> orm.User | None:
    return session.scalar(select(orm.User).where(orm.User.token_hash == token_hash))


def list_users(session: Session) -> list[orm.User]:
    return list(session.scalars(select(orm.User).order_by(orm.User.username)))


def add_user(session: Session, username: str, password_hash: str, role: str, now: datetime) -> orm.User:
    check_username(username)
    check_role(role)
    if get_user(session, username) is not None:
        raise ValidationError(N_("user %(username)s already exists"), username=repr(username))
    user = orm.User(username=username, password_hash=password_hash, role=role, token_hash=None,
                    created_at=now, updated_at=now, last_login_at=None)
    session.add(user)
    session.flush()  # assigns the id
    return user


def end_sessions(user: orm.User) -> None:
    """Every session of ``user`` so far is refused from now on (web UI pages, API, Socket.IO)."""
    user.session_version = (user.session_version or 0) + 1


def set_password(user: orm.User, password_hash: str) -> None:
    """A new password ends the user's sessions and revokes the API token: whoever stole either
    with the old password loses it."""
    user.password_hash = password_hash
    user.token_hash = None
    end_sessions(user)


def set_role(user: orm.User, role: str) -> None:
    user.role = check_role(role)
    end_sessions(user)


def set_language(user: orm.User, language: str | None) -> None:
    """The user's language (one of plantmodel.i18n.LANGUAGES), or None: the browser's choice."""
    user.language = None if language is None else check_language(language, "language")


def count_admins(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(orm.User).where(orm.User.role == "admin")) or 0


def check_admin_remains(session: Session, user: orm.User, new_role: str | None) -> None:
    """Refuse to demote (``new_role``) or delete (``None``) the last admin: nobody could manage
    users any more."""
    if user.role == "admin" and new_role != "admin" and count_admins(session) <= 1:
        raise ValidationError(N_("%(username)s is the last admin: make someone else admin first"),
                              username=user.username)
