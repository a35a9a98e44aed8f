"""The audit trail for administrators: ``GET /api/audit`` (paged) and ``GET /api/audit.csv``.

Read only: the trail is written by :func:`webui.audit.audit` with the change it records, and its
integrity is checked by ``python -m store audit verify``. Newest first; filters on the action, the
actor and the time (``start``/``end`` on ``at``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from flask import Response, jsonify
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session, sessionmaker

from plantmodel.readings import format_ts
from store.models import AuditEntry
from webui.api import bp
from webui.api.csvout import FORMAT_PARAM, csv_chunks, csv_format, csv_response
from webui.api.params import PAGE_PARAMS, page, query, text, time_range
from webui.auth import require_role
from webui.state import web_state

FILTER_PARAMS = ("action", "actor", "start", "end")
CSV_COLUMNS = ("id", "at", "actor", "address", "action", "details", "hash")
CSV_TIMES = ("at",)


def audit_item(row: AuditEntry) -> dict[str, Any]:
    return {"id": row.id, "at": format_ts(row.at), "actor": row.actor, "address": row.address,
            "action": row.action, "details": json.loads(row.details), "prev_hash": row.prev_hash, "hash": row.hash}


def _clauses(args: Mapping[str, str]) -> list[ColumnElement[bool]]:
    """``action`` matches exactly or as a prefix ending in ``.`` (``login.`` = every log-in event)."""
    e = AuditEntry
    out: list[ColumnElement[bool]] = []
    action = text(args, "action")
    if action is not None:
        out.append(e.action.startswith(action, autoescape=True) if action.endswith(".") else e.action == action)
    actor = text(args, "actor")
    if actor is not None:
        out.append(e.actor == actor)
    start, end = time_range(args)
    if start is not None:
        out.append(e.at >= start)
    if end is not None:
        out.append(e.at <= end)
    return out


@bp.get("/audit")
@require_role("admin")
def audit_entries() -> Response:
    args = query((*FILTER_PARAMS, *PAGE_PARAMS))
    clauses = _clauses(args)
    pg = page(args)
    e = AuditEntry
    with web_state().make_session() as session:
        total = int(session.scalar(select(func.count()).select_from(e).where(*clauses)) or 0)
        pages = pg.check(total)
        rows = session.scalars(select(e).where(*clauses).order_by(e.id.desc()).offset(pg.offset).limit(pg.size))
        items = [audit_item(r) for r in rows]
    return jsonify(items=items, page=pg.number, per_page=pg.size, total=total, pages=pages)


@bp.get("/audit.csv")
@require_role("admin")
def audit_csv() -> Response:
    args = query((*FILTER_PARAMS, FORMAT_PARAM))
    clauses = _clauses(args)
    fmt = csv_format(args)
    rows = _rows(web_state().make_session, clauses)
    return csv_response(csv_chunks(fmt, CSV_COLUMNS, rows, time_columns=CSV_TIMES), "audit.csv")


def _rows(make_session: sessionmaker[Session], clauses: list[ColumnElement[bool]]) -> Iterator[list[Any]]:
    """Newest first, as the page; owns its session (it outlives the request handler)."""
    e = AuditEntry
    stmt = select(e).where(*clauses).order_by(e.id.desc()).execution_options(yield_per=500)
    with make_session() as session:
        for r in session.scalars(stmt):
            yield [r.id, r.at, r.actor, r.address, r.action, r.details, r.hash]


# What the trail records (a hint for the page's action filter; any action is accepted).
KNOWN_ACTIONS = ("login.ok", "login.failed", "login.locked", "logout", "alarm.acknowledge", "threshold.set",
                 "threshold.delete", "user.create", "user.update", "user.delete", "token.create", "token.revoke",
                 "device.create", "device.update", "device.remove", "device.restore", "device_token.create",
                 "device_token.revoke", "switch.request", "meter.switch")
