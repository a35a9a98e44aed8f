"""The Shelly collector's original API (Django REST Framework shapes), kept so its clients keep
working: ``/api/measurements/`` (paginated, newest first) and ``/api/measurements/latest/``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Response, jsonify, url_for
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from plantmodel.readings import format_ts
from store import models as orm
from webui.api import bp
from webui.api.devices import meter_or_404
from webui.api.params import page, query, text, time_range
from webui.state import web_state

PAGE_SIZE = 100  # DRF's PageNumberPagination as the original collector configured it
LATEST_COUNT = 10


def measurement(row: orm.PowerReading) -> dict[str, Any]:
    return {"meter": row.meter_id, "power": row.apower, "voltage": row.voltage, "current": row.current,
            "energy": row.energy_wh, "timestamp": format_ts(row.ts)}


def _filters(session: Session, args: Mapping[str, str]) -> list[ColumnElement[bool]]:
    start, end = time_range(args)
    meter = text(args, "meter")
    p = orm.PowerReading
    clauses: list[ColumnElement[bool]] = []
    if meter is not None:
        meter_or_404(session, meter)
        clauses.append(p.meter_id == meter)
    if start is not None:
        clauses.append(p.ts >= start)
    if end is not None:
        clauses.append(p.ts <= end)
    return clauses


def _newest_first(clauses: list[ColumnElement[bool]]) -> Any:
    p = orm.PowerReading
    return select(p).where(*clauses).order_by(p.ts.desc(), p.id.desc())


@bp.get("/measurements/")
def measurements() -> Response:
    args = query(("page", "start", "end", "meter"))
    pg = page(args, default_size=PAGE_SIZE)  # DRF's page size is fixed: query() refused per_page
    with web_state().make_session() as session:
        clauses = _filters(session, args)
        count = int(session.scalar(select(func.count()).select_from(orm.PowerReading).where(*clauses)) or 0)
        pages = pg.check(count)
        rows = session.scalars(_newest_first(clauses).offset(pg.offset).limit(pg.size))
        results = [measurement(r) for r in rows]
    return jsonify({
        "count": count,
        "next": _page_url(args, pg.number + 1) if pg.number < pages else None,
        "previous": _page_url(args, pg.number - 1) if pg.number > 1 else None,
        "results": results,
    })


def _page_url(args: Mapping[str, str], number: int) -> str:
    # As DRF does: the same filters, and no page parameter for page 1.
    params = {k: v for k, v in args.items() if k != "page"}
    if number > 1:
        params["page"] = str(number)
    return url_for("api.measurements", _external=True, **params)


@bp.get("/measurements/latest/")
def latest_measurements() -> Response:
    args = query(("meter", "start", "end"))
    with web_state().make_session() as session:
        rows = session.scalars(_newest_first(_filters(session, args)).limit(LATEST_COUNT))
        return jsonify([measurement(r) for r in rows])

