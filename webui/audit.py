"""The audit trail of the web UI: who did what, from where.

``audit(action, session=..., **details)`` appends one entry to the tamper-evident ``audit_log``
(``store/audit.py``) inside the caller's transaction, so the change and its record commit together,
and logs one ``AUDIT user=alice from=10.0.0.7 action=threshold.set ...`` line on the ``webui.audit``
logger once it is committed (a SIEM or ``grep AUDIT`` sees the same). Without ``session`` the entry
gets its own transaction (log-ins). Never a password.
"""

from __future__ import annotations

import logging

from flask import has_request_context, request
from sqlalchemy import event
from sqlalchemy.orm import Session

from plantmodel.readings import utcnow
from plantmodel.text import printable
from store import audit as trail
from webui.auth import current_user
from webui.state import web_state

log = logging.getLogger(__name__)

_KEEP = object()


def audit(action: str, *, session: Session | None = None, actor: str | object | None = _KEEP,
          **details: object) -> None:
    """Record ``action``; ``actor`` defaults to the logged-in user (a failed log-in passes the name tried)."""
    if actor is _KEEP:
        user = current_user()
        actor = user.username if user else None
    assert actor is None or isinstance(actor, str)
    address = request.remote_addr if has_request_context() else None
    line = " ".join(f"{k}={printable(str(v))!r}" for k, v in details.items())

    def log_line(*_: object) -> None:
        log.info("AUDIT user=%r from=%s action=%s %s", actor, address, action, line)

    if session is None:
        with web_state().make_session.begin() as own:
            trail.append(own, action, details, at=utcnow(), actor=actor, address=address)
        log_line()
    else:
        trail.append(session, action, details, at=utcnow(), actor=actor, address=address)
        event.listen(session, "after_commit", log_line, once=True)
