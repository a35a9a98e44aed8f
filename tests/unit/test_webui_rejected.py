"""The rejected-messages API and admin page (webui/api/rejected.py, /admin/rejected)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from flask import Flask

from store import queries
from tests.webapp import login, make_web_app
from webui.state import web_state

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
HOSTILE = b'{"tmp_Cuve": "<img src=x onerror=alert(1)>"}'
STATIC = Path(__file__).resolve().parents[2] / "webui" / "static"


def app_with_rejections(tmp_path: Path) -> Flask:
    app = make_web_app(tmp_path)
    with web_state(app).make_session.begin() as s:
        queries.record_rejected(s, "plant/units/1/automates/2/readings", b'{"tank_temp_c": -273}',
                                "field 'tank_temp_c' = -273 is not plausible", T0, "units/1/automates/2")
        queries.record_rejected(s, "plant/units/1/automates/3/readings", HOSTILE, "not JSON we know",
                                T0 + timedelta(seconds=1), "units/1/automates/3")
        queries.record_rejected(s, "shellypro1pm-abc/events/rpc", b"\xff\xfe", "not UTF-8",
                                T0 + timedelta(seconds=2), "meters/shellypro1pm-abc")
        queries.record_rejected(s, "nowhere", b"x", "unknown topic 'nowhere'", T0 + timedelta(seconds=3))
    return app


def test_admins_list_rejections_newest_first_with_filters(tmp_path: Path) -> None:
    admin = app_with_rejections(tmp_path).test_client()
    login(admin, "admin")
    data = admin.get("/api/rejected").get_json()
    assert data["total"] == 4 and data["items"][0]["topic"] == "nowhere"
    first = data["items"][-1]
    assert (first["source"], first["payload"], first["payload_bytes"]) == (
        "units/1/automates/2", '{"tank_temp_c": -273}', 21)
    by_unit = admin.get("/api/rejected?source=units/1").get_json()["items"]
    assert {i["source"] for i in by_unit} == {"units/1/automates/2", "units/1/automates/3"}
    assert [i["source"] for i in admin.get("/api/rejected?source=units/1/automates/2").get_json()["items"]] == [
        "units/1/automates/2"]
    assert [i["topic"] for i in admin.get("/api/rejected?reason=plausible").get_json()["items"]] == [
        "plant/units/1/automates/2/readings"]
    assert admin.get("/api/rejected?reason=100%25").get_json()["total"] == 0  # a LIKE wildcard is a character
    window = admin.get("/api/rejected?start=2024-05-01T08:00:01Z&end=2024-05-01T08:00:02Z").get_json()
    assert window["total"] == 2
    paged = admin.get("/api/rejected?per_page=3&page=2").get_json()
    assert (paged["pages"], len(paged["items"])) == (2, 1)
    assert admin.get("/api/rejected?page=9").status_code == 404
    assert admin.get("/api/rejected?colour=red").status_code == 400
    assert admin.get("/api/rejected?source=").status_code == 400


def test_only_admins(tmp_path: Path) -> None:
    app = app_with_rejections(tmp_path)
    operator = app.test_client()
    login(operator, "operator")
    assert operator.get("/api/rejected").status_code == 403
    assert operator.get("/admin/rejected").status_code == 403
    assert app.test_client().get("/api/rejected").status_code == 401


def test_a_hostile_payload_is_data_never_markup(tmp_path: Path) -> None:
    admin = app_with_rejections(tmp_path).test_client()
    login(admin, "admin")
    item = next(i for i in admin.get("/api/rejected").get_json()["items"] if i["source"] == "units/1/automates/3")
    assert item["payload"] == HOSTILE.decode()  # the API gives the text as received …
    page = admin.get("/admin/rejected?source=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html  # the filter, escaped
    assert "rejected.js" in html
    # … and the page's script writes device text with textContent only, never as HTML.
    js = (STATIC / "rejected.js").read_text()
    assert "textContent" in js and "innerHTML" not in js and "insertAdjacentHTML" not in js
