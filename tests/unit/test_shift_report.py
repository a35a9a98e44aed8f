"""The shift report (store/report.py and /reports/shift) on SQLite: exact aggregates computed by the
database, completeness, energy across a counter reset, alarms with their corrective actions,
rejected messages by reason, times in the plant's zone, and the PDF."""

from __future__ import annotations

import io
import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pypdf
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from plantmodel.timezone import plant_zone
from store import models as orm
from store import report
from tests.webapp import USERS, add_user, login, new_database
from webui import create_app
from webui.report_pdf import DEFAULT_PDF_FONT, PdfFont, render_pdf
from webui.reports import ReportView
from webui.settings import WebSettings

# One hour: 09:00-10:00 in Paris (CET, UTC+1 in November).
START = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
END = START + timedelta(hours=1)
MIN = timedelta(minutes=1)
METER = "shellypro1pm-a8032ab1c2d3"
BASE = dict(tank_temp_c=3.2, ext_temp_c=11.0, milk_kg=4000.0, product_kg=12.0, ph=7.0, k_mg_l=40.0,
            nacl_g_l=1.3, salmonella_ppm=20.0, ecoli_ppm=40.0, listeria_ppm=30.0)


def reading(unit: int, automate: int, ts: datetime, seq: int, **values: float) -> orm.Reading:
    return orm.Reading(unit_id=unit, automate_no=automate, seq=seq, ts=ts, received_at=ts, stored_at=ts,
                       **{**BASE, **values})


def power(ts: datetime, energy_wh: float, offset: float | None, apower: float = 500.0) -> orm.PowerReading:
    return orm.PowerReading(meter_id=METER, ts=ts, received_at=ts, apower=apower, voltage=230.0,
                            energy_wh=energy_wh, energy_offset_wh=offset)


def alarm(measure: str, raised: datetime, cleared: datetime | None = None, acked: datetime | None = None,
          **extra: object) -> orm.Alarm:
    return orm.Alarm(source="units/1/automates/1", unit_id=1, automate_no=1, measure=measure, bound="high",
                     severity="critical", state="active" if cleared is None else "cleared", value=40.0,
                     limit_value=37.0, last_value=40.0, raised_at=raised, cleared_at=cleared,
                     acknowledged_at=acked, acknowledged_by="operator" if acked else None, **extra)


def seed(make_session: sessionmaker[Session]) -> None:
    """Unit 1: automate 1 known since before the period (45 readings in it), automate 2 first seen
    30 min in (30 readings); unit 2: one automate with a bacteria spike; unit 9 first seen after the
    period. A meter whose counter resets in the period, alarms and rejected messages around it."""
    before = START - timedelta(days=1)
    with make_session.begin() as session:
        session.add_all([orm.Unit(id=u, created_at=before) for u in (1, 2)] + [orm.Unit(id=9, created_at=END)])
        session.flush()  # no ORM relationships: the foreign keys need the units written first
        session.add_all([
            orm.Automate(unit_id=1, automate_no=1, type="0x0000BA20", created_at=before),
            orm.Automate(unit_id=1, automate_no=2, type="0x0000BA20", created_at=START + 30 * MIN),
            orm.Automate(unit_id=2, automate_no=1, type="0x0000BA21", created_at=before),
            orm.Automate(unit_id=9, automate_no=1, type="0x0000BA21", created_at=END + MIN),
        ])
        session.flush()
        # Outside the period (just before, and exactly at its end: the period is half-open).
        session.add_all([reading(1, 1, START - MIN, 1, tank_temp_c=99.0), reading(1, 1, END, 999, tank_temp_c=-5.0)])
        # Unit 1 tank temperatures: 2.0 .. 3.0 .. over 75 readings; the mean is known exactly.
        temps = [2.0 + (i % 11) / 10 for i in range(45)] + [2.5] * 30
        session.add_all([reading(1, 1, START + i * MIN, 10 + i, tank_temp_c=temps[i]) for i in range(45)])
        session.add_all([reading(1, 2, START + (30 + i) * MIN, 100 + i, tank_temp_c=temps[45 + i])
                         for i in range(30)])
        session.add_all([reading(2, 1, START + i * MIN, 500 + i, salmonella_ppm=40.0 if i == 7 else 20.0)
                         for i in range(60)])
        session.add(orm.Meter(id=METER, first_seen=before, last_seen=END))
        session.flush()
        session.add_all([
            power(START - 10 * MIN, 1000.0, 0.0, apower=9999.0),  # the baseline, not in the stats
            power(START + 5 * MIN, 1200.0, 0.0, apower=400.0),
            power(START + 20 * MIN, 1500.0, 0.0, apower=600.0),
            # The device rebooted: its counter restarted at 0, the 1500 Wh counted before are the offset.
            power(START + 21 * MIN, 20.0, 1500.0, apower=800.0),
            power(START + 50 * MIN, 120.0, 1500.0, apower=700.0),
            power(END + MIN, 300.0, 1500.0),  # after the period
        ])
        session.add_all([
            alarm("salmonella_ppm", START + 7 * MIN, START + 8 * MIN, START + 12 * MIN,
                  ack_note="Lot 4411 quarantined, tank sanitised", ack_disposition="hold"),
            alarm("listeria_ppm", START - 2 * timedelta(hours=1), START + 15 * MIN),  # cleared in it
            alarm("ecoli_ppm", START - timedelta(hours=3)),  # active throughout
            alarm("ph", START - timedelta(hours=5), START - timedelta(hours=4)),  # over before: left out
            alarm("tank_temp_c", END + MIN),  # after: left out
        ])
        for i, reason in enumerate(["tank_temp_c=-273 is outside -40..150"] * 3 + ["not JSON"] * 2):
            session.add(orm.RejectedMessage(received_at=START + i * MIN, topic="plant/units/1/automates/1",
                                            payload="{}", payload_bytes=2, reason=reason, source="units/1"))
        session.add(orm.RejectedMessage(received_at=END, topic="x", payload="", payload_bytes=0, reason="late"))


@pytest.fixture
def make_session(tmp_path: Path) -> sessionmaker[Session]:
    make_session = new_database(tmp_path / "plant.db")
    seed(make_session)
    return make_session


def build(make_session: sessionmaker[Session], start: datetime = START, end: datetime = END) -> report.ShiftReport:
    with make_session() as session:
        return report.shift_report(session, start, end, 60.0)


def stat(r: report.ShiftReport, source: str, measure: str) -> report.MeasureStats:
    return next(s for s in [*r.unit_stats, *r.meter_stats] if s.source == source and s.measure == measure)


def test_min_mean_max_per_unit_and_measure(make_session: sessionmaker[Session]) -> None:
    r = build(make_session)
    temps = [2.0 + (i % 11) / 10 for i in range(45)] + [2.5] * 30
    tank = stat(r, "units/1", "tank_temp_c")
    assert (tank.count, tank.minimum, tank.maximum) == (75, 2.0, 3.0)
    assert tank.mean == pytest.approx(sum(temps) / 75)
    salmonella = stat(r, "units/2", "salmonella_ppm")
    assert (salmonella.count, salmonella.minimum, salmonella.maximum) == (60, 20.0, 40.0)
    assert salmonella.mean == pytest.approx((59 * 20 + 40) / 60)
    assert {s.source for s in r.unit_stats} == {"units/1", "units/2"}
    # Only real reading measures: every automate measure once per unit, no alarm-only pseudo-measure.
    assert [s.measure for s in r.unit_stats if s.source == "units/1"] == list(report.AUTOMATE_MEASURES)
    apower = stat(r, f"meters/{METER}", "apower")
    assert (apower.count, apower.minimum, apower.maximum, apower.mean) == (4, 400.0, 800.0, 625.0)
    assert not any(s.measure in report.METER_COUNTERS for s in r.meter_stats)


def test_completeness_per_known_automate(make_session: sessionmaker[Session]) -> None:
    r = build(make_session)
    got = {(c.unit, c.automate): (c.expected, c.stored) for c in r.completeness}
    # Unit 9 appeared after the period: not expected in it. Automate 1/2 counts from when it was seen.
    assert got == {(1, 1): (60, 45), (1, 2): (30, 30), (2, 1): (60, 60)}
    one = next(c for c in r.completeness if (c.unit, c.automate) == (1, 1))
    assert one.ratio == 0.75
    late = next(c for c in r.completeness if (c.unit, c.automate) == (1, 2))
    assert late.expected_from == START + 30 * MIN


def test_a_unit_removed_in_the_period_is_expected_until_its_removal(make_session: sessionmaker[Session]) -> None:
    with make_session.begin() as session:
        session.add(orm.Device(device="units/2", disabled=False, removed_at=START + 40 * MIN))
    got = {(c.unit, c.automate): (c.expected, c.stored) for c in build(make_session).completeness}
    assert got[(2, 1)] == (40, 60)
    assert report.expected_count(timedelta(hours=8), 60.0) == 480
    assert report.expected_count(timedelta(seconds=90), 60.0) == 2  # at 0 s and at 60 s


def test_energy_across_a_counter_reset(make_session: sessionmaker[Session]) -> None:
    (energy,) = build(make_session).energy
    # From the last sample before the period (1000 Wh) to the last in it (120 + 1500 offset):
    # the reset at START+21 min does not make it negative.
    assert (energy.from_wh, energy.to_wh, energy.energy_wh) == (1000.0, 1620.0, 620.0)
    assert (energy.from_ts, energy.to_ts, energy.samples) == (START - 10 * MIN, START + 50 * MIN, 4)
    # Two consecutive periods add up to the whole.
    first = build(make_session, START, START + 20 * MIN).energy[0].energy_wh
    second = build(make_session, START + 20 * MIN, END).energy[0].energy_wh
    assert first is not None and second is not None and first + second == 620.0


def test_alarms_raised_cleared_acknowledged_with_notes(make_session: sessionmaker[Session]) -> None:
    r = build(make_session)
    by_measure = {a.measure: a for a in r.alarms}
    assert set(by_measure) == {"salmonella_ppm", "listeria_ppm", "ecoli_ppm"}
    salmonella = by_measure["salmonella_ppm"]
    assert (salmonella.ack_note, salmonella.ack_disposition, salmonella.acknowledged_by) == (
        "Lot 4411 quarantined, tank sanitised", "hold", "operator")
    assert (salmonella.raised_in, salmonella.cleared_in, salmonella.acknowledged_in) == (True, True, True)
    listeria = by_measure["listeria_ppm"]
    assert (listeria.raised_in, listeria.cleared_in, listeria.active_at_end) == (False, True, False)
    assert by_measure["ecoli_ppm"].active_at_end
    assert [a.measure for a in r.alarms] == ["ecoli_ppm", "listeria_ppm", "salmonella_ppm"]  # oldest first


def test_rejected_messages_by_reason(make_session: sessionmaker[Session]) -> None:
    r = build(make_session)
    assert [(x.reason, x.count) for x in r.rejected] == [("tank_temp_c=-273 is outside -40..150", 3), ("not JSON", 2)]
    assert r.rejected_total == 5


def test_a_period_without_data(make_session: sessionmaker[Session]) -> None:
    r = build(make_session, START - timedelta(days=30), START - timedelta(days=29))
    assert r.empty
    assert (r.alarms, r.unit_stats, r.meter_stats, r.rejected, r.completeness, r.energy) == ([], [], [], [], [], [])
    with pytest.raises(ValueError):
        build(make_session, END, START)


# -- the page and the PDF ---------------------------------------------------------------------------

@pytest.fixture
def app(tmp_path: Path, make_session: sessionmaker[Session]) -> Flask:
    for name, (role, password) in USERS.items():
        add_user(make_session, name, role, password)
    app = create_app(WebSettings(database_url=f"sqlite:///{tmp_path / 'plant.db'}", secret_key="test",
                                 plant_tz="Europe/Paris", plant_language="en"),
                     sessionmaker=make_session)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def viewer(app: Flask) -> FlaskClient:
    client = app.test_client()
    assert login(client, "viewer").status_code == 302
    return client


def test_the_page_shows_the_period_in_the_plant_zone(viewer: FlaskClient) -> None:
    # A datetime-local value is plant time: 09:00 in Paris is 08:00 UTC.
    resp = viewer.get("/reports/shift?start=2026-11-21T09:00&end=2026-11-21T10:00")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert "21 Nov 2026 09:00 CET" in html and "21 Nov 2026 10:00 CET" in html
    assert "Europe/Paris" in html
    assert "Lot 4411 quarantined, tank sanitised" in html and ">product on hold<" in html
    assert 'data-source="units/1" data-measure="tank_temp_c"' in html
    assert "75.0 %" in html  # automate 1/1: 45 of 60
    assert "0.620" in html  # kWh across the reset
    assert "tank_temp_c=-273 is outside -40..150" in html
    # The same period given in ISO with an offset.
    same = viewer.get("/reports/shift?start=2026-11-21T08:00:00Z&end=2026-11-21T10:00:00%2B01:00")
    assert "21 Nov 2026 09:00 CET" in same.get_data(as_text=True)


def test_the_page_refuses_bad_periods(viewer: FlaskClient) -> None:
    for query in ("start=2026-11-21T10:00&end=2026-11-21T09:00", "start=2026-11-21T10:00&end=2026-11-21T10:00",
                  "start=2026-10-01T00:00&end=2026-11-21T00:00", "start=yesterday", "colour=red", "format=doc"):
        resp = viewer.get(f"/reports/shift?{query}")
        assert resp.status_code == 400, query
        assert 'data-status="400"' in resp.get_data(as_text=True)


def test_the_page_of_an_empty_period_and_the_default(viewer: FlaskClient) -> None:
    resp = viewer.get("/reports/shift?start=2020-01-01T00:00&end=2020-01-01T08:00")
    assert resp.status_code == 200
    assert 'id="report-empty"' in resp.get_data(as_text=True)
    assert viewer.get("/reports/shift").status_code == 200  # the last 8 h


def test_the_report_needs_a_log_in(app: Flask) -> None:
    resp = app.test_client().get("/reports/shift")
    assert resp.status_code == 302 and resp.headers["Location"].startswith("/login")


def pdf_text(pdf: bytes) -> str:
    """The PDF's text as a reader sees it (with a TTF font the content streams hold glyph ids: the
    text comes back through the font's ToUnicode map), without the page footers (a note may run
    onto the next page)."""
    text = "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf)).pages)
    return re.sub(r"^Shift report .* - page \d+/\d+$", "", text, flags=re.M)


def squeezed(text: str) -> str:
    """Without whitespace: a long note is wrapped at the column's width."""
    return "".join(text.split())


@pytest.fixture
def dejavu() -> PdfFont:
    font = PdfFont.locate()
    assert font.regular is not None and font.regular == Path(DEFAULT_PDF_FONT), (
        f"{DEFAULT_PDF_FONT} is missing: install fonts-dejavu-core (scripts/bootstrap.sh does)")
    return font


def view_of(make_session: sessionmaker[Session]) -> ReportView:
    return ReportView(build(make_session), plant_zone("Europe/Paris"), "Europe/Paris", {"units/1": "Churn room"})


def add_alarm(make_session: sessionmaker[Session], measure: str = "nacl_g_l", **extra: object) -> None:
    with make_session.begin() as session:
        session.add(alarm(measure, START + 20 * MIN, START + 25 * MIN, START + 30 * MIN, **extra))


def test_pdf_from_the_report(make_session: sessionmaker[Session], viewer: FlaskClient, dejavu: PdfFont) -> None:
    pdf = bytes(render_pdf(view_of(make_session), compress=False, font=dejavu))
    assert pdf.startswith(b"%PDF")
    text = pdf_text(pdf)
    assert "Tank temperature" in text and "Unit 1 (Churn room)" in text
    assert "Europe/Paris" in text and "21 Nov 2026 09:00 CET" in text
    assert "Lot 4411 quarantined, tank sanitised" in text
    for url in ("/reports/shift.pdf?start=2026-11-21T09:00&end=2026-11-21T10:00",
                "/reports/shift?start=2026-11-21T09:00&end=2026-11-21T10:00&format=pdf"):
        resp = viewer.get(url)
        assert resp.status_code == 200 and resp.mimetype == "application/pdf", url
        assert resp.data.startswith(b"%PDF")
    empty = viewer.get("/reports/shift.pdf?start=2020-01-01T00:00&end=2020-01-01T08:00")
    assert empty.status_code == 200 and empty.data.startswith(b"%PDF")


# The API accepts notes of up to 2000 characters (webui/api/alarms.py NOTE_MAX), of any number of lines.
LONG_NOTE = " ".join(f"step{i:04d}" for i in range(222))[:2000]
MANY_LINES = "\n".join(f"{i:02d}: valve {i} flushed, signed" for i in range(60))


@pytest.mark.parametrize("note", [LONG_NOTE, MANY_LINES, "x" * 2000], ids=["2000-chars", "60-lines", "one-word"])
def test_pdf_prints_a_note_of_any_length_whole(make_session: sessionmaker[Session], viewer: FlaskClient,
                                              dejavu: PdfFont, note: str) -> None:
    assert len(note) <= 2000
    add_alarm(make_session, ack_note=note, ack_disposition="hold")
    text = pdf_text(bytes(render_pdf(view_of(make_session), compress=False, font=dejavu)))
    assert squeezed(note) in squeezed(text)  # all of it, in order, never cut
    assert "Lot 4411 quarantined, tank sanitised" in text
    resp = viewer.get("/reports/shift.pdf?start=2026-11-21T09:00&end=2026-11-21T10:00")
    assert resp.status_code == 200 and resp.data.startswith(b"%PDF")


UNICODE_NOTE = "Cœur de lot: 1 500 € perdus, œufs → rebut ✅ 🧈"


def test_pdf_prints_unicode_text_as_written(make_session: sessionmaker[Session], dejavu: PdfFont) -> None:
    add_alarm(make_session, ack_note=UNICODE_NOTE, ack_disposition="hold")
    text = pdf_text(bytes(render_pdf(view_of(make_session), compress=False, font=dejavu)))
    assert "Cœur de lot: 1 500 € perdus, œufs → rebut" in text
    # DejaVu Sans has no ✅ nor 🧈: their code points are printed instead, never a silent gap or "?".
    assert "rebut [U+2705] [U+1F9C8]" in text
    assert "2 characters the PDF font cannot show are printed as [U+XXXX]" in text
    assert "?" not in text


def test_pdf_without_its_font_falls_back_to_latin1_and_says_so(make_session: sessionmaker[Session],
                                                                tmp_path: Path, caplog: pytest.LogCaptureFixture
                                                                ) -> None:
    add_alarm(make_session, ack_note=UNICODE_NOTE, ack_disposition="hold")
    missing = tmp_path / "nowhere" / "DejaVuSans.ttf"
    caplog.set_level(logging.WARNING, logger="webui.reports")
    font = PdfFont.locate(str(missing))  # once per app
    assert font.regular is None
    for _ in range(2):
        text = pdf_text(bytes(render_pdf(view_of(make_session), compress=False, font=font)))
        assert "C[U+0153]ur de lot: 1 500 [U+20AC] perdus, [U+0153]ufs [U+2192] rebut [U+2705] [U+1F9C8]" in text
    assert len([r for r in caplog.records if str(missing) in r.message]) == 1  # once, not per report
    # A file that is no font: the same fallback, warned once.
    broken = tmp_path / "Broken.ttf"
    broken.write_bytes(b"not a font")
    unusable = PdfFont(broken, broken)  # as the app holds it: located once
    for _ in range(2):
        text = pdf_text(bytes(render_pdf(view_of(make_session), compress=False, font=unusable)))
        assert "C[U+0153]ur de lot" in text
    assert len([r for r in caplog.records if str(broken) in r.message]) == 1
    # A bold face missing next to a present regular one: the regular face prints the headings.
    regular_only = tmp_path / "Regular.ttf"
    regular_only.write_bytes(Path(DEFAULT_PDF_FONT).read_bytes())
    font = PdfFont.locate(str(regular_only))
    assert (font.regular, font.bold) == (regular_only, regular_only)
    assert "Cœur de lot" in pdf_text(bytes(render_pdf(view_of(make_session), compress=False, font=font)))


PROBE_DETAIL = "tank_temp_c=-273 is outside -40..150"


def test_a_probe_faults_detail_is_not_shown_as_a_corrective_action(make_session: sessionmaker[Session],
                                                                   viewer: FlaskClient, dejavu: PdfFont) -> None:
    add_alarm(make_session, "probe_fault", detail=PROBE_DETAIL)
    text = pdf_text(bytes(render_pdf(view_of(make_session), compress=False, font=dejavu)))
    assert re.search(r"Detail recorded by the system[^:\n]*:\s*" + re.escape(PROBE_DETAIL), text)
    assert not re.search(r"Corrective action[^:\n]*:\s*" + re.escape(PROBE_DETAIL), text)
    html = viewer.get("/reports/shift?start=2026-11-21T09:00&end=2026-11-21T10:00").get_data(as_text=True)
    row = re.search(r'<tr data-alarm-id="\d+"[^>]*>(?:(?!</tr>).)*probe fault(?:(?!</tr>).)*</tr>', html,
                    re.S | re.I)
    assert row, "the probe fault's row"
    note = re.search(r'<td [^>]*data-col="note"[^>]*>(.*?)</td>', row.group(0), re.S)
    detail = re.search(r'<td [^>]*data-col="detail"[^>]*>(.*?)</td>', row.group(0), re.S)
    assert note and detail and note.group(1).strip() == "" and detail.group(1).strip() == PROBE_DETAIL
    assert re.search(r'<th scope="col"[^>]*>Detail', html)


def test_the_pdf_font_is_configured_from_the_environment() -> None:
    assert WebSettings.from_env({}).pdf_font == DEFAULT_PDF_FONT
    custom = WebSettings.from_env({"WEBUI_PDF_FONT": "/opt/fonts/Plant.ttf", "WEBUI_PDF_FONT_BOLD": "/opt/b.ttf"})
    assert (custom.pdf_font, custom.pdf_font_bold) == ("/opt/fonts/Plant.ttf", "/opt/b.ttf")
