"""The shift report (page and PDF) in the reader's language: French for a French request (the plant's
default, or the browser's choice), English for ``Accept-Language: en``. Texts from the catalog,
numbers with the language's separators (``4 000,0`` with a narrow no-break space in French), dates
written the language's way (``21 nov. 2026 11:15:00 CET``). Needs the compiled French catalog."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from pathlib import Path

import pypdf
import pytest
from flask import Flask
from flask.testing import FlaskClient

from plantmodel.timezone import plant_zone
from store import report
from tests.webapp import login, make_web_app
from webui.report_pdf import PdfFont, render_pdf
from webui.reports import ReportView
from webui.state import web_state

NNBSP = "\u202f"  # French thousands separator (CLDR)
# tests/webapp.py's plant: readings at 2026-11-21 10:15 UTC (11:15 in Paris), milk 4000 kg, a pH alarm.
PERIOD = "start=2026-11-21T11:00&end=2026-11-21T12:00"


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return make_web_app(tmp_path, plant_language="fr", plant_tz="Europe/Paris")


@pytest.fixture
def viewer(app: Flask) -> FlaskClient:
    client = app.test_client()
    assert login(client, "viewer").status_code == 302
    return client


def page_text(html: str) -> str:
    """The report's visible text, one space between words."""
    main = html[html.index("<article"):html.index("</article>")]
    text = re.sub(r"<[^>]+>", " ", main).replace("&#39;", "'").replace("&amp;", "&")
    return re.sub(r"[ \t\r\n]+", " ", text).strip()  # not str.split(): it would take U+202F for a space


def pdf_text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf)).pages)


def test_the_page_is_in_french_for_a_french_request(viewer: FlaskClient) -> None:
    resp = viewer.get(f"/reports/shift?{PERIOD}")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert '<html lang="fr">' in html
    text = page_text(html)
    for heading in ("Rapport de poste", "Alarmes", "Mesures par unité", "Mesures par compteur",
                    "Complétude par automate", "Messages rejetés", "Énergie des compteurs"):
        assert heading in text, heading
    assert "Fuseau horaire de l'usine :" in text
    # Dates: French month, 24-hour clock, the zone; the period to the minute, events to the second.
    assert "21 nov. 2026 11:00 CET – 21 nov. 2026 12:00 CET" in text
    assert "21 nov. 2026 11:15:00 CET" in text
    # Numbers: decimal comma, narrow no-break space between thousands.
    assert f"4{NNBSP}000,0" in text  # milk in tank, mean
    assert "3,20" in text and "3.20" not in text  # tank temperature
    assert re.search(r"\d,\d\u202f%", text)  # completeness, "4,3 %" (a narrow no-break space before %)
    # Measure labels, severity and events: translated; the codes stay in the markup.
    assert "Température cuve" in text and "Tank temperature" not in text
    assert 'class="sev sev-warning" data-severity="warning">avertissement<' in html
    assert "au-dessus de 7,20" in text and "non acquittée" in text and "active à la fin" in text
    assert 'data-source="units/1" data-measure="tank_temp_c"' in html


def test_the_page_is_in_english_for_accept_language_en(viewer: FlaskClient) -> None:
    html = viewer.get(f"/reports/shift?{PERIOD}", headers={"Accept-Language": "en"}).get_data(as_text=True)
    text = page_text(html)
    for heading in ("Shift report", "Alarms", "Measures per unit", "Completeness per automate", "Meter energy"):
        assert heading in text, heading
    assert "21 Nov 2026 11:00 CET – 21 Nov 2026 12:00 CET" in text and "21 Nov 2026 11:15:00 CET" in text
    assert "4,000.0" in text and "3.20" in text
    assert "Tank temperature" in text and ">warning<" in html and "above 7.20" in text
    assert "Rapport de poste" not in text and "nov." not in text


def test_the_pdf_is_in_the_requests_language(viewer: FlaskClient) -> None:
    resp = viewer.get(f"/reports/shift.pdf?{PERIOD}")
    assert resp.status_code == 200 and resp.mimetype == "application/pdf"
    assert 'filename="rapport-de-poste-20261121-1100.pdf"' in resp.headers["Content-Disposition"]
    text = pdf_text(resp.data)
    assert "Au Bon Beurre - rapport de poste" in text
    assert "Période : 21 nov. 2026 11:00 CET – 21 nov. 2026 12:00 CET" in text
    for heading in ("Alarmes", "Mesures par unité (min / moyenne / max)", "Complétude par automate",
                    "Messages rejetés par motif", "Énergie des compteurs"):
        assert heading in text, heading
    # DejaVu Sans prints the narrow no-break space as it is: nothing replaced by [U+202F].
    assert f"4{NNBSP}000,0" in text and "[U+" not in text
    assert "Température cuve" in text and "21 nov. 2026 11:15:00 CET" in text
    assert re.search(r"Rapport de poste .* - page 1/\d+", text)

    english = pdf_text(viewer.get(f"/reports/shift.pdf?{PERIOD}", headers={"Accept-Language": "en"}).data)
    assert "Au Bon Beurre - shift report" in english and "Period: 21 Nov 2026 11:00 CET" in english
    assert "4,000.0" in english and "Tank temperature" in english and "Rapport" not in english


def test_errors_about_the_period_are_in_the_requests_language(viewer: FlaskClient) -> None:
    resp = viewer.get("/reports/shift?start=yesterday")
    assert resp.status_code == 400
    assert "n&#39;est pas une date et heure" in resp.get_data(as_text=True)
    resp = viewer.get("/reports/shift?start=2026-11-21T10:00&end=2026-11-21T09:00")
    assert "doit être postérieure au début (21 nov. 2026 10:00:00 CET)" in resp.get_data(as_text=True)
    english = viewer.get("/reports/shift?start=yesterday", headers={"Accept-Language": "en"})
    assert "is not a date and time" in english.get_data(as_text=True)


def test_a_view_renders_its_language_outside_a_request(app: Flask) -> None:
    """The PDF takes its language from the view (the catalog), not from Flask-Babel's request."""
    with web_state(app).make_session() as session:
        r = report.shift_report(session, datetime(2026, 11, 21, 10, 0, tzinfo=UTC),
                                datetime(2026, 11, 21, 11, 0, tzinfo=UTC), 60.0)
    zone = plant_zone("Europe/Paris")
    french = ReportView(r, zone, "Europe/Paris", {}, "fr")
    assert french.source("units/1/automates/2").startswith("Unité 1")
    assert french.when(datetime(2026, 12, 1, 19, 25, tzinfo=UTC)) == "1 déc. 2026 20:25:00 CET"
    assert ReportView(r, zone, "Europe/Paris", {}).language == "en"  # no language given: the source's
    text = pdf_text(bytes(render_pdf(french, compress=False, font=PdfFont.locate())))
    assert "rapport de poste" in text and f"4{NNBSP}000,0" in text
    # The core (Latin-1) font has no U+202F: a (no-break) space instead, never "[U+202F]".
    core = pdf_text(bytes(render_pdf(french, compress=False, font=PdfFont(None, None))))
    assert re.search("4[\u00a0 ]000,0", core) and "[U+" not in core
