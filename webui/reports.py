"""The shift report: ``/reports/shift`` (printable HTML) and ``/reports/shift.pdf`` (or ``?format=pdf``).

The data comes from :func:`store.report.shift_report`; the page and the PDF are two renderings of
the same :class:`~store.report.ShiftReport`, every time shown in the plant's zone with the zone.
Both are in the request's language (:func:`webui.i18n.language`): texts through the catalog, numbers
and dates written the way that language writes them (``4 012,5``, ``21 nov. 2026 09:00:00 CET``).
What the plant recorded (notes, rejection reasons, a probe fault's detail) is shown as it was written.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING

from flask import Blueprint, Response, current_app, render_template, request
from flask_babel import gettext as _

from plantmodel.i18n import N_, SOURCE_LANGUAGE, format_number, format_time, translations
from plantmodel.measures import MEASURES
from plantmodel.timezone import plant_zone
from store import queries
from store import report as report_store
from store.report import Completeness, MeasureStats, MeterEnergy, ReportAlarm, ShiftReport
from webui.i18n import language
from webui.state import web_state

if TYPE_CHECKING:
    from webui.report_pdf import PdfFont

log = logging.getLogger(__name__)

bp = Blueprint("reports", __name__)

DEFAULT_SPAN = timedelta(hours=8)  # one shift
MAX_SPAN = timedelta(days=31)  # a month of per-unit aggregates stays a quick query and a short PDF
PARAMS = frozenset({"start", "end", "format"})
FONT_EXTENSION = "webui.reports.font"  # app.extensions: the PDF faces found at the first PDF

# What people read for the codes the report holds (the codes stay in the page's data-* attributes).
SEVERITY_LABELS = {"critical": N_("critical"), "warning": N_("warning"), "info": N_("info")}
DISPOSITION_LABELS = {"hold": N_("product on hold"), "release": N_("product released"),
                      "none": N_("no product action")}


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
        raise PeriodError(_("%(field)s=%(value)s is not a date and time (e.g. 2026-11-21T06:00, plant time, "
                            "or 2026-11-21T05:00Z)", field=name, value=repr(raw))) from None
    if not 1001 <= value.year <= 9998:  # MariaDB's DATETIME range
        raise PeriodError(_("%(field)s=%(value)s: the year must be within 1001..9998", field=name, value=repr(raw)))
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
        lang = language()
        raise PeriodError(_("the end (%(end)s) must be after the start (%(start)s)",
                            end=format_time(end, zone, lang, seconds=True),
                            start=format_time(start, zone, lang, seconds=True)))
    if end - start > MAX_SPAN:
        raise PeriodError(_("the period is longer than %(days)s days: ask for shorter reports", days=MAX_SPAN.days))
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
        return _bad_request(_("unknown parameter %(name)s (allowed: %(allowed)s)", name=repr(unknown[0]),
                              allowed=", ".join(sorted(PARAMS))))
    fmt = request.args.get("format", "pdf" if pdf else "html")
    if fmt not in ("html", "pdf"):
        return _bad_request(_("format=%(format)s must be html or pdf", format=repr(fmt)))
    try:
        period = parse_period(dict(request.args), zone, datetime.now(UTC))
    except PeriodError as exc:
        return _bad_request(str(exc))
    with state.make_session() as session:
        report = report_store.shift_report(session, period.start, period.end, state.settings.report_period)
        names = queries.device_names(session)
    view = ReportView(report, zone, state.settings.plant_tz, names, language())
    if fmt == "pdf":
        from webui.report_pdf import render_pdf  # fpdf2 is a second of start-up: only when a PDF is asked

        body = bytes(render_pdf(view, font=_app_font()))
        # ASCII in both languages (a header's value): e.g. rapport-de-poste-20261121-0900.pdf
        start = period.start.astimezone(zone).strftime("%Y%m%d-%H%M")
        filename = _("shift-report-%(start)s.pdf", start=start)
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
    """The report with what a reader needs around it, in ``language``: local times, labels,
    formatted numbers. Its texts come from the language's catalog (not Flask-Babel's request
    locale): the PDF is built from it too, and a view can be rendered outside a request."""

    report: ShiftReport
    zone: tzinfo
    zone_name: str
    names: dict[str, str]  # device registry names
    language: str = SOURCE_LANGUAGE

    def gettext(self, message: str, **params: object) -> str:
        """``message`` in the view's language, ``%(name)s`` placeholders filled from ``params``."""
        text = translations(self.language).gettext(message)
        return text % params if params else text

    def ngettext(self, singular: str, plural: str, num: int, **params: object) -> str:
        text = translations(self.language).ngettext(singular, plural, num)
        return text % {"num": num, **params}

    _ = gettext  # the name the message extractor looks for: self._("…")

    def when(self, ts: datetime | None) -> str:
        """An event's time (to the second) in the plant's zone, with the zone; "" for none."""
        return "" if ts is None else format_time(ts, self.zone, self.language, seconds=True)

    def period_when(self, ts: datetime) -> str:
        """A bound of the period: to the minute unless the period does not fall on whole minutes."""
        seconds = any(t.second or t.microsecond for t in (self.report.start, self.report.end))
        return format_time(ts, self.zone, self.language, seconds=seconds)

    def source(self, key: str) -> str:
        """``units/3/automates/7`` -> ``Unit 3 (Churn room) · automate 7``."""
        parts = key.split("/")
        if parts[0] == "units" and len(parts) >= 2:
            unit = f"units/{parts[1]}"
            name = self.names.get(unit)
            if len(parts) == 4:
                if name:
                    return self._("Unit %(unit)s (%(name)s) · automate %(automate)s", unit=parts[1], name=name,
                                  automate=parts[3])
                return self._("Unit %(unit)s · automate %(automate)s", unit=parts[1], automate=parts[3])
            if name:
                return self._("Unit %(unit)s (%(name)s)", unit=parts[1], name=name)
            return self._("Unit %(unit)s", unit=parts[1])
        if parts[0] == "meters":
            meter = "/".join(parts[1:])
            if key in self.names:
                return self._("Meter %(meter)s (%(name)s)", meter=meter, name=self.names[key])
            return self._("Meter %(meter)s", meter=meter)
        return key

    def unit_label(self, unit: int) -> str:
        return self.source(f"units/{unit}")

    def measure_label(self, measure: str) -> str:
        m = MEASURES.get(measure)
        return translations(self.language).gettext(m.label) if m is not None else measure.replace("_", " ")

    def measure_unit(self, measure: str) -> str:
        m = MEASURES.get(measure)
        if m is None or not m.unit:
            return ""
        return translations(self.language).gettext(m.unit)  # "periods", "messages": words; °C stays °C

    def number(self, value: float | int | None, decimals: int = 0) -> str:
        return format_number(value, decimals, self.language)

    def count(self, value: int) -> str:
        return format_number(value, 0, self.language)

    def seconds(self, value: float) -> str:
        """A duration in seconds with as many decimals as it has (up to 3): ``60``, ``2,5``."""
        decimals = next((d for d in range(4) if round(value, d) == value), 3)
        return format_number(value, decimals, self.language)

    def num(self, value: float | None, measure: str) -> str:
        if value is None:
            return "—"
        m = MEASURES.get(measure)
        decimals = m.decimals + 1 if m is not None else 2  # one more than the probe: a mean is finer
        return format_number(value, decimals, self.language)

    def percent(self, c: Completeness) -> str:
        if c.ratio is None:
            return "—"
        return self._("%(value)s %%", value=format_number(100 * c.ratio, 1, self.language))

    def kwh(self, e: MeterEnergy) -> str:
        return "—" if e.energy_wh is None else format_number(e.energy_wh / 1000, 3, self.language)

    def severity(self, code: str) -> str:
        label = SEVERITY_LABELS.get(code)
        return translations(self.language).gettext(label) if label else code

    def disposition(self, code: str | None) -> str:
        if not code:
            return ""
        label = DISPOSITION_LABELS.get(code)
        return translations(self.language).gettext(label) if label else code

    def limit_text(self, a: ReportAlarm) -> str:
        """``above 37.0`` / ``below 2.5``: the side of the limit the value crossed."""
        limit = self.num(a.limit_value, a.measure)
        return self._("above %(limit)s", limit=limit) if a.bound == "high" else self._("below %(limit)s", limit=limit)

    def acknowledged_by(self, a: ReportAlarm) -> str:
        return a.acknowledged_by or self._("unknown")

    def alarm_events(self, a: ReportAlarm) -> str:
        events = [text for text, flag in ((self._("raised"), a.raised_in), (self._("cleared"), a.cleared_in),
                                          (self._("acknowledged"), a.acknowledged_in)) if flag]
        if a.active_at_end:
            events.append(self._("active at end"))
        return ", ".join(events) or "—"

    def stats_by_source(self, rows: Sequence[MeasureStats]) -> list[tuple[str, list[MeasureStats]]]:
        out: dict[str, list[MeasureStats]] = {}
        for s in rows:
            out.setdefault(s.source, []).append(s)
        return list(out.items())

    @property
    def title_period(self) -> str:
        return f"{self.period_when(self.report.start)} – {self.period_when(self.report.end)}"
