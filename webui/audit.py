"""The security log: who changed what, from where. One line per change, after its commit, on the
``webui.audit`` logger (``AUDIT user=alice from=10.0.0.7 action=threshold.set scope=unit:3 ...``),
so a SIEM or ``grep AUDIT`` finds every change to users, tokens, thresholds and alarms. The
database keeps its own record of thresholds (``threshold_changes``) and acknowledgements."""

from __future__ import annotations

import logging

from flask import request

from plantmodel.text import printable
from webui.auth import current_user

log = logging.getLogger(__name__)


def audit(action: str, **details: object) -> None:
    user = current_user()
    fields = " ".join(f"{k}={printable(str(v))!r}" for k, v in details.items())
    log.info("AUDIT user=%r from=%s action=%s %s", user.username if user else None, request.remote_addr, action,
             fields)
