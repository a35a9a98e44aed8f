"""The CSV downloads (readings of automates and meters, alarms, audit trail) in their two variants:
the standard one unchanged byte for byte (scripts read it), the spreadsheet one (``?format=spreadsheet``)
parsed back as a French spreadsheet would: ``;``, decimal comma, UTF-8 BOM, local times in the
plant's zone named in the header."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from flask import Flask
from flask.testing import FlaskClient

from store import queries
from tests.webapp import METER, TS, csrf, login, make_reading, make_web_app
from webui import web_state
from webui.api.csvout import BOM, CsvFormat, csv_chunks

PARIS = ZoneInfo("Europe/Paris")
SUMMER = datetime(2026, 7, 1, 10, 0, 0, 125000, tzinfo=UTC)

# What the readings CSVs were before the spreadsheet variant (produced by the previous code): unchanged.
AUTOMATE_STANDARD = (
    "ts,received_at,stored_at,seq,tank_temp_c,ext_temp_c,milk_kg,product_kg,ph,k_mg_l,nacl_g_l,salmonella_ppm,"
    "ecoli_ppm,listeria_ppm\n"
    "2026-11-21T10:14:00.000Z,2026-11-21T10:15:01.000Z,,1,3.2,11.4,4000.0,12.0,6.9,40.0,1.3,20.0,40.0,30.0\n"
    "2026-11-21T10:15:00.000Z,2026-11-21T10:15:01.000Z,,1,3.2,11.4,4000.0,12.0,7.4,40.0,1.3,20.0,40.0,30.0\n"
    "2026-11-21T10:16:00.000Z,2026-11-21T10:16:01.000Z,,1,3.25,11.4,4000.0,12.0,7.0,40.0,1.3,20.0,40.0,30.0\n")
METER_STANDARD = (
    "ts,received_at,stored_at,output,apower,voltage,current,freq,pf,energy_wh,ret_energy_wh,temperature_c\n"
    "2026-11-21T10:15:00.000Z,2026-11-21T10:15:01.000Z,,true,812.5,230.1,3.6,50.0,0.98,1234.5,0.0,41.2\n")


def _app(tmp_path: Path) -> Flask:
    app = make_web_app(tmp_path, plant_tz="Europe/Paris")
    with web_state(app).make_session.begin() as session:
        later = TS + timedelta(minutes=1)
        queries.insert_readings(session, [(make_reading(1, 1, later, tank_temp_c=3.25), later + timedelta(seconds=1))])
    return app


def _client(app: Flask, who: str = "viewer") -> FlaskClient:
    client = app.test_client()
    login(client, who)
    return client


def _sheet(raw: bytes) -> list[dict[str, str]]:
    """Read as a spreadsheet does: the BOM says UTF-8, ``;`` separates."""
    assert raw.startswith(BOM.encode("utf-8"))
    return list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig")), delimiter=";"))


def test_the_standard_readings_csv_is_unchanged(tmp_path: Path) -> None:
    client = _client(_app(tmp_path))
    for url, expected in [("/api/units/1/automates/1/readings.csv", AUTOMATE_STANDARD),
                          ("/api/units/1/automates/1/readings.csv?format=standard", AUTOMATE_STANDARD),
                          (f"/api/meters/{METER}/readings.csv", METER_STANDARD)]:
        resp = client.get(url)
        assert resp.status_code == 200 and resp.mimetype == "text/csv"
        assert resp.get_data() == expected.encode("ascii"), url


def test_the_spreadsheet_readings_csv(tmp_path: Path) -> None:
    client = _client(_app(tmp_path))
    resp = client.get("/api/units/1/automates/1/readings.csv?format=spreadsheet")
    assert resp.status_code == 200
    rows = _sheet(resp.get_data())
    assert list(rows[0])[:4] == ["ts (Europe/Paris)", "received_at (Europe/Paris)", "stored_at (Europe/Paris)", "seq"]
    last = rows[-1]
    assert last["tank_temp_c"] == "3,25" and last["milk_kg"] == "4000,0" and last["stored_at (Europe/Paris)"] == ""
    # 10:16 UTC in November is 11:16 in Paris (CET, +01:00), read back to the same instant.
    assert last["ts (Europe/Paris)"] == "2026-11-21 11:16:00,000"
    local = datetime.strptime(last["ts (Europe/Paris)"].split(",")[0], "%Y-%m-%d %H:%M:%S").replace(tzinfo=PARIS)
    assert local == TS + timedelta(minutes=1)
    meter = _sheet(client.get(f"/api/meters/{METER}/readings.csv?format=spreadsheet").get_data())
    assert meter[0]["output"] == "true" and meter[0]["pf"] == "0,98"
    assert client.get("/api/units/1/automates/1/readings.csv?format=excel").status_code == 400


def test_summer_time_and_formulas_in_the_writer() -> None:
    fmt = CsvFormat(PARIS, "Europe/Paris")
    text = "".join(csv_chunks(fmt, ("at", "value", "note", "n"), [(SUMMER, -3.25, "=HYPERLINK(1)", 7)],
                              time_columns=("at",)))
    [row] = list(csv.reader(io.StringIO(text.removeprefix(BOM)), delimiter=";"))[1:]
    # CEST, +02:00; a negative number stays a number; a text that would run as a formula does not.
    assert row == ["2026-07-01 12:00:00,125", "-3,25", "'=HYPERLINK(1)", "7"]
    standard = "".join(csv_chunks(CsvFormat(), ("at", "value", "note"), [(SUMMER, -3.25, "=x")], time_columns=("at",)))
    assert standard == "at,value,note\n2026-07-01T10:00:00.125Z,-3.25,=x\n"


def test_the_alarms_csv_has_the_acknowledgement_and_the_filters(tmp_path: Path) -> None:
    app = _app(tmp_path)
    op = _client(app, "operator")
    [alarm] = op.get("/api/alarms").get_json()["items"]
    body = {"note": "Sonde nettoyée; pH contrôlé", "disposition": "none"}
    assert op.post(f"/api/alarms/{alarm['id']}/ack", json=body, headers=csrf(op)).status_code == 200
    standard = op.get("/api/alarms.csv?state=all&unit=1").get_data(as_text=True)
    [row] = list(csv.DictReader(io.StringIO(standard)))
    assert row["id"] == str(alarm["id"]) and row["measure"] == "ph" and row["value"] == "7.4"
    assert row["raised_at"] == "2026-11-21T10:15:00.000Z" and row["cleared_at"] == ""
    assert row["acknowledged_by"] == "operator" and row["ack_note"] == "Sonde nettoyée; pH contrôlé"
    assert row["ack_disposition"] == "none" and row["acknowledged_at"].endswith("Z")
    [sheet] = _sheet(op.get("/api/alarms.csv?format=spreadsheet").get_data())
    assert sheet["raised_at (Europe/Paris)"] == "2026-11-21 11:15:00,000" and sheet["limit"] == "7,2"
    assert sheet["ack_note"] == "Sonde nettoyée; pH contrôlé"
    assert op.get("/api/alarms.csv?state=cleared").get_data(as_text=True).count("\n") == 1  # the header only
    assert op.get("/api/alarms.csv?unit=9").status_code == 404
    assert op.get("/api/alarms.csv?page=2").status_code == 400  # not paged


def test_the_audit_csv_spreadsheet_variant(tmp_path: Path) -> None:
    app = _app(tmp_path)
    admin = _client(app, "admin")
    rows = _sheet(admin.get("/api/audit.csv?format=spreadsheet&action=login.ok").get_data())
    assert [r["action"] for r in rows] == ["login.ok"] and rows[0]["actor"] == "admin"
    assert "at (Europe/Paris)" in rows[0] and len(rows[0]["hash"]) == 64
