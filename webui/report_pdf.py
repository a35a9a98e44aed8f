"""The shift report as a PDF (fpdf2), built from the same :class:`webui.reports.ReportView` as the
page, in the view's language (its catalog, not the request's: a PDF can be rendered outside one).
Its own module: fpdf2 takes a second to import, paid only when a PDF is asked for."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fpdf import FPDF
from fpdf.fonts import TTFFont

from store.report import MeasureStats, ReportAlarm
from webui.reports import ReportView
from webui.settings import DEFAULT_PDF_FONT

log = logging.getLogger(__name__)


PDF_FAMILY = "ReportSans"
# Typographic characters the app itself writes ("—" for no value, "·", "–" in the period, the narrow
# no-break space of French numbers "4 012,5"), printed as their Latin-1 look-alike when the PDF falls
# back to the core font. (DejaVu Sans, the default face, has them all.)
_LOOK_ALIKES = {"—": "-", "–": "-", "·": "-", "’": "'", "…": "...", "\u202f": "\u00a0"}


@dataclass(frozen=True, slots=True)
class PdfFont:
    """The TTF faces the PDF embeds (any Unicode text they cover prints as written); ``regular``
    None: the PDF's core font (Helvetica, Latin-1 only)."""

    regular: Path | None
    bold: Path | None
    # Font files already reported unusable: one warning per app, not one per report.
    warned: set[str] = field(default_factory=set, compare=False, repr=False)

    @classmethod
    def locate(cls, regular_path: str = DEFAULT_PDF_FONT, bold_path: str = "") -> PdfFont:
        """``WebSettings.pdf_font`` (DejaVu Sans) and ``pdf_font_bold`` (default: the ``-Bold``
        file next to it, else the regular face). A missing regular face: the core font, with a
        warning (the app locates its fonts once)."""
        regular = Path(regular_path or DEFAULT_PDF_FONT)
        if not regular.is_file():
            log.warning("PDF font %s not found (WEBUI_PDF_FONT; Debian package fonts-dejavu-core): PDF "
                        "reports use the core Latin-1 font, other characters are printed as [U+XXXX]", regular)
            return cls(None, None)
        bold = Path(bold_path or regular.with_name(f"{regular.stem}-Bold{regular.suffix}"))
        if not bold.is_file():
            if bold_path:
                log.warning("PDF bold font %s not found (WEBUI_PDF_FONT_BOLD): headings use %s", bold, regular)
            bold = regular
        return cls(regular, bold)


class _Printable:
    """Text as the PDF's font can print it: a character it has no glyph for becomes ``[U+XXXX]`` (its
    code point: visible, and the original text can still be told), never a silent gap or ``?``."""

    def __init__(self, covered: Callable[[int], bool], look_alikes: Mapping[str, str]) -> None:
        self._covered = covered
        self._look_alikes = look_alikes
        self.replaced = 0

    def __call__(self, text: str) -> str:
        text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", "    ")
        out = []
        for ch in text:
            if ch == "\n" or self._covered(ord(ch)):
                out.append(ch)
            elif ch in self._look_alikes:
                out.append(self._look_alikes[ch])
            else:
                self.replaced += 1
                out.append(f"[U+{ord(ch):04X}]")
        return "".join(out)


class _ReportPdf(FPDF):
    def __init__(self, footer: Callable[[int], str], font: PdfFont) -> None:
        super().__init__(orientation="L", format="A4")
        self._footer = footer  # page number -> the footer's text
        if font.regular is not None and font.bold is not None:
            try:
                self.add_font(PDF_FAMILY, "", str(font.regular))
                self.add_font(PDF_FAMILY, "B", str(font.bold))
            except Exception as exc:  # an unreadable or unsupported font file: a report all the same
                if str(font.regular) not in font.warned:
                    font.warned.add(str(font.regular))
                    log.warning("PDF font %s / %s unusable (%s): PDF reports use the core Latin-1 font, other "
                                "characters are printed as [U+XXXX]", font.regular, font.bold, exc)
                font = PdfFont(None, None, font.warned)
        if font.regular is not None and font.bold is not None:
            self.report_family = PDF_FAMILY
            faces = [f for k, f in self.fonts.items() if k.startswith(PDF_FAMILY.lower()) and isinstance(f, TTFFont)]
            glyphs = set.intersection(*(set(f.cmap) for f in faces))  # what both faces print
            self.printable = _Printable(lambda c: c in glyphs and c >= 0x20, {})
        else:
            self.report_family = "Helvetica"
            self.printable = _Printable(lambda c: 0x20 <= c <= 0xFF and not 0x7F <= c <= 0x9F, _LOOK_ALIKES)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(self.report_family, size=7)
        self.cell(0, 8, self.printable(self._footer(self.page_no())), align="C")


def render_pdf(view: ReportView, *, compress: bool = True, font: PdfFont | None = None) -> bytearray:
    """The report as a PDF (A4 landscape, one section per page). ``compress=False``: readable streams;
    ``font``: the faces to embed (default: :meth:`PdfFont.locate`'s DejaVu Sans)."""
    r = view.report
    _, ngettext = view.gettext, view.ngettext
    title = _("Shift report %(period)s", period=view.title_period)
    # "{nb}": fpdf2 writes the number of pages there when the document is complete.
    pdf = _ReportPdf(lambda page: _("%(title)s (%(zone)s) - page %(page)s/%(pages)s", title=title,
                                    zone=view.zone_name, page=page, pages="{nb}"),
                     PdfFont.locate() if font is None else font)
    family, printable = pdf.report_family, pdf.printable
    pdf.compress = compress
    pdf.set_title(title)  # metadata: any Unicode, whatever the font
    pdf.set_creator(_("Au Bon Beurre telemetry"))
    pdf.set_lang(view.language)
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()

    def heading(text: str, size: int = 13) -> None:
        pdf.set_font(family, "B", size)
        pdf.multi_cell(0, size * 0.7, printable(text), new_x="LMARGIN", new_y="NEXT")

    def line(text: str, size: int = 9, style: str = "") -> None:
        pdf.set_font(family, style, size=size)
        pdf.multi_cell(0, 5, printable(text), new_x="LMARGIN", new_y="NEXT")

    def table(header: Sequence[str], rows: Iterable[Sequence[str]], widths: Sequence[int]) -> None:
        pdf.set_font(family, size=8)
        with pdf.table(col_widths=tuple(widths), text_align="LEFT", line_height=4.5, padding=1) as t:
            for row in (header, *rows):
                cells = t.row()
                for value in row:
                    cells.cell(printable(value))

    def section(title: str, first: bool = False) -> None:
        if not first:
            pdf.add_page()
        heading(title)

    heading(_("Au Bon Beurre - shift report"), 16)
    line(_("Period: %(period)s", period=view.title_period), 11)
    line(_("Plant time zone: %(zone)s. Readings per automate expected every %(seconds)s s.", zone=view.zone_name,
           seconds=view.seconds(r.report_period)), 11)
    if r.empty:
        line(_("No data was recorded in this period."), 11)

    section(_("Alarms"), first=True)
    if r.alarms:
        # Notes (up to 2000 characters, any number of lines) and details are printed in full below
        # the table: a table row must fit on one page, a note need not.
        refs = {a.id: i for i, a in enumerate((a for a in r.alarms if a.ack_note or a.detail), start=1)}
        table((_("Source"), _("Measure"), _("Severity"), _("Value / limit"), _("Raised"), _("Cleared"),
               _("Acknowledged"), _("Disposition"), _("In period"), _("Note, detail")),
              ([view.source(a.source), view.measure_label(a.measure), view.severity(a.severity),
                f"{view.num(a.value, a.measure)} / {'>' if a.bound == 'high' else '<'} "
                f"{view.num(a.limit_value, a.measure)} {view.measure_unit(a.measure)}",
                view.when(a.raised_at), view.when(a.cleared_at),
                f"{view.acknowledged_by(a)} {view.when(a.acknowledged_at)}" if a.acknowledged_at
                else _("not acknowledged"),
                view.disposition(a.ack_disposition), view.alarm_events(a), _alarm_ref(view, a, refs)]
               for a in r.alarms),
              (40, 28, 23, 30, 26, 26, 32, 20, 27, 25))  # 23: "avertissement" on one line
        if r.alarms_truncated:
            line(ngettext("Only the first %(num)s alarm is listed.", "Only the first %(num)s alarms are listed.",
                          len(r.alarms)))
        if refs:
            pdf.ln(3)
            heading(_("Corrective actions and details"), 11)
            for a in r.alarms:
                if a.id not in refs:
                    continue
                pdf.ln(1.5)
                line(_("[%(ref)s] %(source)s, %(measure)s, raised %(when)s", ref=refs[a.id],
                       source=view.source(a.source), measure=view.measure_label(a.measure),
                       when=view.when(a.raised_at)), style="B")
                if a.ack_note:
                    line(_("Corrective action (acknowledgement note by %(user)s, %(when)s): %(note)s",
                           user=view.acknowledged_by(a), when=view.when(a.acknowledged_at), note=a.ack_note))
                if a.detail:
                    line(_("Detail recorded by the system (not an operator's note): %(detail)s", detail=a.detail))
    else:
        line(_("No alarm was raised, cleared or acknowledged, and none was active."))

    section(_("Measures per unit (min / mean / max)"))
    _stats_table(view, r.unit_stats, table, line, _("No reading was stored in this period."))
    if r.meter_stats:
        heading(_("Measures per meter"))
        _stats_table(view, r.meter_stats, table, line, "")

    section(_("Completeness per automate"))
    if r.completeness:
        table((_("Automate"), _("Expected from"), _("Expected to"), _("Expected"), _("Stored"), _("Completeness")),
              ([view.source(f"units/{c.unit}/automates/{c.automate}"), view.when(c.expected_from),
                view.when(c.expected_to), view.count(c.expected), view.count(c.stored), view.percent(c)]
               for c in r.completeness),
              (70, 45, 45, 30, 30, 30))
    else:
        line(_("No automate is known to the plant for this period."))

    section(_("Rejected messages by reason"))
    if r.rejected:
        table((_("Reason"), _("Messages")), ([x.reason, view.count(x.count)] for x in r.rejected), (230, 30))
        line(_("Total: %(total)s", total=view.count(r.rejected_total)))
    else:
        line(_("No message was rejected."))

    section(_("Meter energy"))
    if r.energy:
        table((_("Meter"), _("From sample"), _("To sample"), _("Energy (kWh)"), _("Samples in period")),
              ([view.source(f"meters/{e.meter}"), view.when(e.from_ts), view.when(e.to_ts), view.kwh(e),
                view.count(e.samples)] for e in r.energy), (80, 50, 50, 40, 40))
    else:
        line(_("No meter is known to the plant for this period."))
    if printable.replaced:
        pdf.ln(4)
        line(ngettext("%(num)s character the PDF font cannot show is printed as [U+XXXX], its Unicode code point.",
                      "%(num)s characters the PDF font cannot show are printed as [U+XXXX], their Unicode "
                      "code point.", printable.replaced), style="B")
    return pdf.output()


def _alarm_ref(view: ReportView, a: ReportAlarm, refs: Mapping[int, int]) -> str:
    if a.id not in refs:
        return ""
    _ = view.gettext
    ref = refs[a.id]
    if a.ack_note and a.detail:
        return _("note and detail [%(ref)s] below", ref=ref)
    return _("note [%(ref)s] below", ref=ref) if a.ack_note else _("detail [%(ref)s] below", ref=ref)


def _stats_table(view: ReportView, rows: Sequence[MeasureStats], table: Callable[..., None],
                 line: Callable[..., None], empty: str) -> None:
    if not rows:
        if empty:
            line(empty)
        return
    _ = view.gettext
    table((_("Source"), _("Measure"), _("Unit"), _("Readings"), _("Min"), _("Mean"), _("Max")),
          ([view.source(s.source), view.measure_label(s.measure), view.measure_unit(s.measure), view.count(s.count),
            view.num(s.minimum, s.measure), view.num(s.mean, s.measure), view.num(s.maximum, s.measure)]
           for s in rows), (70, 55, 20, 25, 30, 30, 30))
