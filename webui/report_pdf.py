"""The shift report as a PDF (fpdf2), built from the same :class:`webui.reports.ReportView` as the
page. Its own module: fpdf2 takes a second to import, paid only when a PDF is asked for."""

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
# Typographic characters the app itself writes ("—" for no value, "·", "–" in the period), printed as
# their ASCII look-alike when the PDF falls back to the core (Latin-1) font.
_LOOK_ALIKES = {"—": "-", "–": "-", "·": "-", "’": "'", "…": "..."}


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
    def __init__(self, footer_text: str, font: PdfFont) -> None:
        super().__init__(orientation="L", format="A4")
        self._footer_text = footer_text
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
        self.cell(0, 8, self.printable(f"{self._footer_text} - page {self.page_no()}/{{nb}}"), align="C")


def render_pdf(view: ReportView, *, compress: bool = True, font: PdfFont | None = None) -> bytearray:
    """The report as a PDF (A4 landscape, one section per page). ``compress=False``: readable streams;
    ``font``: the faces to embed (default: :meth:`PdfFont.locate`'s DejaVu Sans)."""
    r = view.report
    pdf = _ReportPdf(f"Shift report {view.title_period} ({view.zone_name})",
                     PdfFont.locate() if font is None else font)
    family, printable = pdf.report_family, pdf.printable
    pdf.compress = compress
    pdf.set_title(f"Shift report {view.title_period}")  # metadata: any Unicode, whatever the font
    pdf.set_creator("Au Bon Beurre telemetry")
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

    heading("Au Bon Beurre - shift report", 16)
    line(f"Period: {view.title_period}", 11)
    line(f"Plant time zone: {view.zone_name}. Readings per automate expected every {r.report_period:g} s.", 11)
    if r.empty:
        line("No data was recorded in this period.", 11)

    section("Alarms", first=True)
    if r.alarms:
        # Notes (up to 2000 characters, any number of lines) and details are printed in full below
        # the table: a table row must fit on one page, a note need not.
        refs = {a.id: i for i, a in enumerate((a for a in r.alarms if a.ack_note or a.detail), start=1)}
        table(("Source", "Measure", "Severity", "Value / limit", "Raised", "Cleared", "Acknowledged",
               "Disposition", "In period", "Note, detail"),
              ([view.source(a.source), view.measure_label(a.measure), a.severity,
                f"{view.num(a.value, a.measure)} / {'>' if a.bound == 'high' else '<'} "
                f"{view.num(a.limit_value, a.measure)} {view.measure_unit(a.measure)}",
                view.when(a.raised_at), view.when(a.cleared_at),
                f"{a.acknowledged_by} {view.when(a.acknowledged_at)}" if a.acknowledged_at else "not acknowledged",
                a.ack_disposition or "", view.alarm_events(a), _alarm_ref(a, refs)] for a in r.alarms),
              (40, 28, 16, 30, 28, 28, 34, 20, 27, 26))
        if r.alarms_truncated:
            line(f"Only the first {len(r.alarms)} alarms are listed.")
        if refs:
            pdf.ln(3)
            heading("Corrective actions and details", 11)
            for a in r.alarms:
                if a.id not in refs:
                    continue
                pdf.ln(1.5)
                line(f"[{refs[a.id]}] {view.source(a.source)}, {view.measure_label(a.measure)}, "
                     f"raised {view.when(a.raised_at)}", style="B")
                if a.ack_note:
                    line(f"Corrective action (acknowledgement note by {a.acknowledged_by or 'unknown'}, "
                         f"{view.when(a.acknowledged_at)}): {a.ack_note}")
                if a.detail:
                    line(f"Detail recorded by the system (not an operator's note): {a.detail}")
    else:
        line("No alarm was raised, cleared or acknowledged, and none was active.")

    section("Measures per unit (min / mean / max)")
    _stats_table(view, r.unit_stats, table, line, "No reading was stored in this period.")
    if r.meter_stats:
        heading("Measures per meter")
        _stats_table(view, r.meter_stats, table, line, "")

    section("Completeness per automate")
    if r.completeness:
        table(("Automate", "Expected from", "Expected to", "Expected", "Stored", "Completeness"),
              ([view.source(f"units/{c.unit}/automates/{c.automate}"), view.when(c.expected_from),
                view.when(c.expected_to), str(c.expected), str(c.stored), view.percent(c)] for c in r.completeness),
              (70, 45, 45, 30, 30, 30))
    else:
        line("No automate is known to the plant for this period.")

    section("Rejected messages by reason")
    if r.rejected:
        table(("Reason", "Messages"), ([x.reason, str(x.count)] for x in r.rejected), (230, 30))
        line(f"Total: {r.rejected_total}")
    else:
        line("No message was rejected.")

    section("Meter energy")
    if r.energy:
        table(("Meter", "From sample", "To sample", "Energy (kWh)", "Samples in period"),
              ([view.source(f"meters/{e.meter}"), view.when(e.from_ts), view.when(e.to_ts), view.kwh(e),
                str(e.samples)] for e in r.energy), (80, 50, 50, 40, 40))
    else:
        line("No meter is known to the plant for this period.")
    if printable.replaced:
        pdf.ln(4)
        line(f"{printable.replaced} characters the PDF font cannot show are printed as [U+XXXX], their Unicode "
             "code point.", style="B")
    return pdf.output()


def _alarm_ref(a: ReportAlarm, refs: Mapping[int, int]) -> str:
    if a.id not in refs:
        return ""
    what = " and ".join(w for w, v in (("note", a.ack_note), ("detail", a.detail)) if v)
    return f"{what} [{refs[a.id]}] below"


def _stats_table(view: ReportView, rows: Sequence[MeasureStats], table: Callable[..., None],
                 line: Callable[..., None], empty: str) -> None:
    if not rows:
        if empty:
            line(empty)
        return
    table(("Source", "Measure", "Unit", "Readings", "Min", "Mean", "Max"),
          ([view.source(s.source), view.measure_label(s.measure), view.measure_unit(s.measure), str(s.count),
            view.num(s.minimum, s.measure), view.num(s.mean, s.measure), view.num(s.maximum, s.measure)]
           for s in rows), (70, 55, 20, 25, 30, 30, 30))
