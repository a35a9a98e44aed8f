"""Rejected messages for administrators: ``GET /api/rejected`` (paged, newest first).

Every message the bridge could not store is kept in ``rejected_messages`` with its reason and the
device its topic names (``source``). Filters: ``source`` (exactly, or a unit's key for the unit and
all its automates), ``reason`` (a substring), ``start``/``end`` on the receive time. The payload is
returned as stored (truncated, undecodable bytes escaped): it is a device's text, shown as text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Response, jsonify
from flask_babel import gettext as _
from sqlalchemy import ColumnElement, func, or_, select

from plantmodel.readings import format_ts
from store.models import RejectedMessage
from webui.api import ApiError, bp
from webui.api.params import PAGE_PARAMS, page, query, text, time_range
from webui.auth import require_role
from webui.state import web_state

FILTER_PARAMS = ("source", "reason", "start", "end")
SOURCE_MAX = 96  # rejected_messages.source
REASON_MAX = 512


def rejected_item(row: RejectedMessage) -> dict[str, Any]:
    return {"id": row.id, "received_at": format_ts(row.received_at), "source": row.source, "topic": row.topic,
            "reason": row.reason, "payload": row.payload, "payload_bytes": row.payload_bytes}


def _clauses(args: Mapping[str, str]) -> list[ColumnElement[bool]]:
    m = RejectedMessage
    out: list[ColumnElement[bool]] = []
    source = text(args, "source")
    if source is not None:
        if len(source) > SOURCE_MAX:
            raise ApiError(400, _("parameter %(name)s is longer than %(max)s characters", name="'source'",
                                  max=SOURCE_MAX))
        # units/3 also finds its automates' readings (units/3/automates/N): "which unit is faulty".
        out.append(or_(m.source == source, m.source.startswith(source.rstrip("/") + "/", autoescape=True)))
    reason = text(args, "reason")
    if reason is not None:
        if len(reason) > REASON_MAX:
            raise ApiError(400, _("parameter %(name)s is longer than %(max)s characters", name="'reason'",
                                  max=REASON_MAX))
        out.append(m.reason.contains(reason, autoescape=True))
    start, end = time_range(args)
    if start is not None:
        out.append(m.received_at >= start)
    if end is not None:
        out.append(m.received_at <= end)
    return out


@bp.get("/rejected")
@require_role("admin")
def rejected_messages() -> Response:
    args = query((*FILTER_PARAMS, *PAGE_PARAMS))
    clauses = _clauses(args)
    pg = page(args)
    m = RejectedMessage
    with web_state().make_session() as session:
        total = int(session.scalar(select(func.count()).select_from(m).where(*clauses)) or 0)
        pages = pg.check(total)
        rows = session.scalars(select(m).where(*clauses).order_by(m.received_at.desc(), m.id.desc())
                               .offset(pg.offset).limit(pg.size))
        items = [rejected_item(r) for r in rows]
    return jsonify(items=items, page=pg.number, per_page=pg.size, total=total, pages=pages)
