"""The shift report: ``/reports/shift`` (printable HTML) and ``/reports/shift.pdf`` (or ``?format=pdf``).

The data comes from :func:`store.report.shift_report`; the page and the PDF are two renderings of
the same :class:`~store.report.ShiftReport`, every time shown in the plant's zone with the zone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING

from flask import Blueprint, Response, current_app, render_template, request

from plantmodel.measures import MEASURES
from plantmodel.timezone import local_text, plant_zone
from store import queries
from store import report as report_store
from store.report import Completeness, MeasureStats, MeterEnergy, ReportAlarm, ShiftReport
from webui.state import web_state

if TYPE_CHECKING:
    from webui.report_pdf import PdfFont

log = logging.getLogger(__name__)

bp = Blueprint("reports", __name__)

DEFAULT_SPAN = timedelta(hours=8)  # one shift
MAX_SPAN = timedelta(days=31)  # a month of per-unit aggregates stays a quick query and a short PDF
PARAMS = frozenset({"start", "end", "format"})
FONT_EXTENSION = "webui.reports.font"  # app.extensions: the PDF faces found at the first PDF


class PeriodError(ValueError):
    """A period the report refuses (answered as a 400 page saying why)."""


@dataclass(frozen=True, slots=True)
class Period:
    start: datetime  # aware UTC
    end: datetime


def parse_when(name: str, raw: str, zone: tzinfo) -> datetime:
    """``2026-11-21T06:00`` (a ``datetime-local`` field: the plant's local time) or ISO 8601 with a
    zone (``…Z``, ``…+01:00``) -> aware UTC."""
    text = raw.strip()
    try:
        value = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise PeriodError(f"{name}={raw!r} is not a date and time (e.g. 2026-11-21T06:00, plant time, "
                          f"or 2026-11-21T05:00Z)") from None
    if not 1001 <= value.year <= 9998:  # MariaDB's DATETIME range
        raise PeriodError(f"{name}={raw!r}: the year must be within 1001..9998")
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)  # fold=0: an ambiguous autumn hour is its first pass
    return value.astimezone(UTC)


def parse_period(args: dict[str, str], zone: tzinfo, now: datetime) -> Period:
    """``start``/``end`` (each optional): none -> the last 8 h; start only -> 8 h from it; end only ->
    the 8 h before it. Refuses end <= start and periods over :data:`MAX_SPAN`."""
    start = parse_when("start", args["start"], zone) if args.get("start") else None
    end = parse_when("end", args["end"], zone) if args.get("end") else None
    if end is None:
        end = now if start is None else start + DEFAULT_SPAN
    if start is None:
        start = end - DEFAULT_SPAN
    if end <= start:
        raise PeriodError(f"the end ({local_text(end, zone)}) must be after the start ({local_text(start, zone)})")
    if end - start > MAX_SPAN:
        raise PeriodError(f"the period is longer than {MAX_SPAN.days} days: ask for shorter reports")
    return Period(start, end)


@bp.get("/reports/shift")
def shift_report() -> Response | tuple[str, int] | str:
    return _shift_report(pdf=False)


@bp.get("/reports/shift.pdf")
def shift_report_pdf() -> Response | tuple[str, int] | str:
    return _shift_report(pdf=True)


def _shift_report(*, pdf: bool) -> Response | tuple[str, int] | str:
    state = web_state()
    zone = plant_zone(state.settings.plant_tz)
    unknown = sorted(set(request.args) - PARAMS)
    if unknown:
        return _bad_request(f"unknown parameter {unknown[0]!r} (allowed: {', '.join(sorted(PARAMS))})")
    fmt = request.args.get("format", "pdf" if pdf else "html")
    if fmt not in ("html", "pdf"):
        return _bad_request(f"format={fmt!r} must be html or pdf")
    try:
        period = parse_period(dict(request.args), zone, datetime.now(UTC))
    except PeriodError as exc:
        return _bad_request(str(exc))
    with state.make_session() as session:
        report = report_store.shift_report(session, period.start, period.end, state.settings.report_period)
        names = queries.device_names(session)
    view = ReportView(report, zone, state.settings.plant_tz, names)
    if fmt == "pdf":
        from webui.report_pdf import render_pdf  # fpdf2 is a second of start-up: only when a PDF is asked

        body = bytes(render_pdf(view, font=_app_font()))
        filename = f"shift-report-{period.start.astimezone(zone):%Y%m%d-%H%M}.pdf"
        return Response(body, mimetype="application/pdf",
                        headers={"Content-Disposition": f'inline; filename="{filename}"'})
    return render_template("report_shift.html", r=view, report=report,
                           start_input=_input_value(period.start, zone), end_input=_input_value(period.end, zone))


def _app_font() -> PdfFont:
    """The app's PDF faces, located at its first PDF (a missing font is warned about once)."""
    from webui.report_pdf import PdfFont

    font = current_app.extensions.get(FONT_EXTENSION)
    if not isinstance(font, PdfFont):
        settings = web_state().settings
        font = current_app.extensions[FONT_EXTENSION] = PdfFont.locate(settings.pdf_font, settings.pdf_font_bold)
    return font


def _bad_request(message: str) -> tuple[str, int]:
    return render_template("error.html", status=400, message=message), 400


def _input_value(ts: datetime, zone: tzinfo) -> str:
    return ts.astimezone(zone).strftime("%Y-%m-%dT%H:%M")


# -- what both renderings show ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ReportView:
    """The report with what a reader needs around it: local times, labels, formatted numbers."""

    report: ShiftReport
    zone: tzinfo
    zone_name: str
    names: dict[str, str]  # device registry names

    def when(self, ts: datetime | None) -> str:
        return "" if ts is None else local_text(ts, self.zone)

    def source(self, key: str) -> str:
        """``units/3/automates/7`` -> ``Unit 3 (Churn room) · automate 7``."""
        parts = key.split("/")
        if parts[0] == "units":
            unit = f"units/{parts[1]}"
            text = f"Unit {parts[1]}" + (f" ({self.names[unit]})" if unit in self.names else "")
            return text + (f" · automate {parts[3]}" if len(parts) == 4 else "")
        if parts[0] == "meters":
            meter = "/".join(parts[1:])
            return f"Meter {meter}" + (f" ({self.names[key]})" if key in self.names else "")
        return key

    def unit_label(self, unit: int) -> str:
        return self.source(f"units/{unit}")

    @staticmethod
    def measure_label(measure: str) -> str:
        m = MEASURES.get(measure)
        return m.label if m is not None else measure.replace("_", " ")

    @staticmethod
    def measure_unit(measure: str) -> str:
        m = MEASURES.get(measure)
        return m.unit if m is not None else ""

    @staticmethod
    def num(value: float | None, measure: str) -> str:
        if value is None:
            return "—"
        m = MEASURES.get(measure)
        decimals = m.decimals + 1 if m is not None else 2  # one more than the probe: a mean is finer
        return f"{value:.{decimals}f}"

    @staticmethod
    def percent(c: Completeness) -> str:
        return "—" if c.ratio is None else f"{100 * c.ratio:.1f} %"

    @staticmethod
    def kwh(e: MeterEnergy) -> str:
        return "—" if e.energy_wh is None else f"{e.energy_wh / 1000:.3f}"

    def alarm_events(self, a: ReportAlarm) -> str:
        events = [name for name, flag in (("raised", a.raised_in), ("cleared", a.cleared_in),
                                          ("acknowledged", a.acknowledged_in)) if flag]
        if a.active_at_end:
            events.append("active at end")
        return ", ".join(events) or "—"

    def stats_by_source(self, rows: Sequence[MeasureStats]) -> list[tuple[str, list[MeasureStats]]]:
        out: dict[str, list[MeasureStats]] = {}
        for s in rows:
            out.setdefault(s.source, []).append(s)
        return list(out.items())

    @property
    def title_period(self) -> str:
        return f"{self.when(self.report.start)} – {self.when(self.report.end)}"
