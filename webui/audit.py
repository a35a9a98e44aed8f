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

    if session is None:
        with web_state().make_session.begin() as own:
            entry = trail.append(own, action, details, at=utcnow(), actor=actor, address=address)
            chained = entry.hash
        _log_line(actor, address, action, line, chained)
    else:
        entry = trail.append(session, action, details, at=utcnow(), actor=actor, address=address)
        chained = entry.hash
        event.listen(session, "after_commit", lambda *_: _log_line(actor, address, action, line, chained),
                     once=True)


def _log_line(actor: str | None, address: str | None, action: str, line: str, chained: str) -> None:
    # The entry's hash goes to the log (and a SIEM) too: a copy of the chain's heads outside the
    # database, so a rewrite of its newest entries cannot pass `python -m store audit verify` unseen.
    log.info("AUDIT user=%r from=%s action=%s %s hash=%s", actor, address, action, line, chained)
