"""History of one automate or meter: pages of readings, chart series and streamed CSV exports."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from flask import Response, jsonify
from flask_babel import gettext as _
from sqlalchemy.orm import Session, sessionmaker

from plantmodel.readings import format_ts, utcnow
from plantmodel.thresholds import ThresholdSet
from store import history, queries
from webui.api import ApiError, bp
from webui.api.csvout import FORMAT_PARAM, csv_chunks, csv_format, csv_response, typed_rows
from webui.api.devices import automate_or_404, meter_or_404, power_item, reading_item
from webui.api.params import PAGE_PARAMS, choice, page, parse_int, query, time_range
from webui.state import web_state

DEFAULT_WINDOW = timedelta(minutes=60)
DEFAULT_POINTS, MAX_POINTS = 1500, 5000
READINGS_PARAMS = ("start", "end", "order", *PAGE_PARAMS)
SERIES_PARAMS = ("start", "end", "points")
CSV_PARAMS = ("start", "end", FORMAT_PARAM)
TIME_COLUMNS = ("ts", "received_at", "stored_at")
BOOL_COLUMNS = ("output",)


# -- automates ---------------------------------------------------------------------------------------

@bp.get("/units/<int:unit>/automates/<int:automate>/readings")
def automate_readings(unit: int, automate: int) -> Response:
    args = query(READINGS_PARAMS)
    with web_state().make_session() as session:
        a = automate_or_404(session, unit, automate)
        return _readings_page(session, args, history.automate_source(unit, automate),
                              lambda row: reading_item(row, a.type))


@bp.get("/units/<int:unit>/automates/<int:automate>/series")
def automate_series(unit: int, automate: int) -> Response:
    args = query(SERIES_PARAMS)
    with web_state().make_session() as session:
        automate_or_404(session, unit, automate)
        return _series(session, args, history.automate_source(unit, automate))


@bp.get("/units/<int:unit>/automates/<int:automate>/readings.csv")
def automate_csv(unit: int, automate: int) -> Response:
    args = query(CSV_PARAMS)
    start, end = time_range(args)
    with web_state().make_session() as session:
        automate_or_404(session, unit, automate)
    src = history.automate_source(unit, automate)
    columns = ("ts", "received_at", "stored_at", "seq", *src.measures)
    return _csv_response(args, src, columns, start, end, f"unit{unit}-automate{automate}")


# -- meters -------------------------------------------------------------------------------------------

@bp.get("/meters/<meter>/readings")
def meter_readings(meter: str) -> Response:
    args = query(READINGS_PARAMS)
    with web_state().make_session() as session:
        meter_or_404(session, meter)
        return _readings_page(session, args, history.meter_source(meter), power_item)


@bp.get("/meters/<meter>/series")
def meter_series(meter: str) -> Response:
    args = query(SERIES_PARAMS)
    with web_state().make_session() as session:
        meter_or_404(session, meter)
        return _series(session, args, history.meter_source(meter))


@bp.get("/meters/<meter>/readings.csv")
def meter_csv(meter: str) -> Response:
    args = query(CSV_PARAMS)
    start, end = time_range(args)
    with web_state().make_session() as session:
        meter_or_404(session, meter)
    src = history.meter_source(meter)
    columns = ("ts", "received_at", "stored_at", "output", *src.measures)
    return _csv_response(args, src, columns, start, end, f"meter-{meter}")


# -- shared -------------------------------------------------------------------------------------------

def _readings_page(session: Session, args: Mapping[str, str], src: history.SeriesSource,
                   item: Callable[[Any], dict[str, Any]]) -> Response:
    start, end = time_range(args)
    descending = choice(args, "order", ("asc", "desc"), "asc") == "desc"
    pg = page(args)
    total = history.count_rows(session, src, start, end)
    pages = pg.check(total)
    rows = history.rows_page(session, src, start, end, offset=pg.offset, limit=pg.size, descending=descending)
    return jsonify(items=[item(r) for r in rows], page=pg.number, per_page=pg.size, total=total, pages=pages)


def series_window(args: Mapping[str, str], now: datetime) -> tuple[datetime, datetime]:
    """``start``/``end`` with the defaults: ending now, starting 60 min before the end."""
    start, end = time_range(args)
    if end is None:
        end = now
        if start is not None and start > end:
            raise ApiError(400, _("start (%(start)s) is after end (now, %(now)s)", start=args["start"],
                                  now=format_ts(now)))
    return (end - DEFAULT_WINDOW if start is None else start), end


def _series(session: Session, args: Mapping[str, str], src: history.SeriesSource) -> Response:
    start, end = series_window(args, utcnow())
    points = parse_int("points", args["points"], minimum=1, maximum=MAX_POINTS) if "points" in args \
        else DEFAULT_POINTS
    data = history.series(session, src, start, end, points)
    # After the rows: MariaDB's streaming cursor must be done before the next query.
    limits = ThresholdSet(queries.load_thresholds(session)).limits(src.key, src.measures)
    alarms = [queries.alarm_dict(r) for r in history.alarms_overlapping(session, src.key, start, end)]
    return jsonify({
        "source": src.key, "start": format_ts(start), "end": format_ts(end),
        "bucket_ms": data.bucket_ms, "aggregated": data.aggregated, "limits": limits, "alarms": alarms,
        "t": data.t, "measures": data.measures_dict(),
    })


def _csv_response(args: Mapping[str, str], src: history.SeriesSource, columns: Sequence[str],
                  start: datetime | None, end: datetime | None, name: str) -> Response:
    fmt = csv_format(args)
    rows = _csv_rows(web_state().make_session, src, columns, start, end)
    # Types known per column: one converter chosen per column, not a type test per value.
    formatter = typed_rows(fmt, columns, time_columns=TIME_COLUMNS, bool_columns=BOOL_COLUMNS)
    return csv_response(csv_chunks(fmt, columns, rows, time_columns=TIME_COLUMNS, formatter=formatter),
                        f"{name}-readings.csv")


def _csv_rows(make_session: sessionmaker[Session], src: history.SeriesSource, columns: Sequence[str],
              start: datetime | None, end: datetime | None) -> Iterator[Sequence[Any]]:
    """The rows (times naive UTC, booleans as the driver gives them), read as the download proceeds;
    this generator owns its session because it outlives the request handler."""
    with make_session() as session:
        yield from history.stream_rows(session, src, columns, start, end, naive_times=True)
