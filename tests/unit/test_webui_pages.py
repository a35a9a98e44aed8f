"""The dashboard pages (server side): who may open which page, what each page ships to the browser
(local assets only, the phone viewport, the CSRF token, the banner), and the server-rendered parts
(open alarms with ack buttons for operators, selectors, one chart per measure)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from plantmodel.measures import AUTOMATE_MEASURES
from store import history
from tests.webapp import METER, login, make_web_app
from webui.state import web_state

STATIC = Path(__file__).resolve().parents[2] / "webui" / "static"
DASHBOARD_PAGES = ["/", "/units/1", "/units/1/automates/1", "/units/2/automates/1", f"/meters/{METER}", "/alarms"]
ADMIN_PAGES = ["/admin/thresholds", "/admin/users"]
ALL_PAGES = DASHBOARD_PAGES + ADMIN_PAGES
# The vendor libraries are fetched by `python -m webui assets` (git-ignored), so only named here.
VENDOR = {"/static/vendor/socket.io.min.js", "/static/vendor/chart.umd.min.js"}


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return make_web_app(tmp_path)


def client_as(app: Flask, user: str | None) -> FlaskClient:
    client = app.test_client()
    if user is not None:
        assert login(client, user).status_code == 302
    return client


def page(client: FlaskClient, url: str) -> str:
    resp = client.get(url)
    assert resp.status_code == 200, (url, resp.status_code)
    return resp.get_data(as_text=True)


def asset_urls(html: str) -> list[str]:
    return re.findall(r'<(?:script|link|img|iframe)\b[^>]*?\b(?:src|href)="([^"]*)"', html)


@pytest.mark.parametrize("url", ALL_PAGES)
def test_pages_send_a_logged_out_browser_to_the_login_form(app: Flask, url: str) -> None:
    resp = app.test_client().get(url)
    assert resp.status_code == 302
    assert resp.headers["Location"].startswith("/login?next=")
    assert url.split("/")[1] in resp.headers["Location"]


@pytest.mark.parametrize("url", DASHBOARD_PAGES)
def test_a_viewer_sees_every_dashboard_page(app: Flask, url: str) -> None:
    html = page(client_as(app, "viewer"), url)
    assert re.search(r'<meta name="viewport" content="width=device-width, initial-scale=1">', html)
    assert re.search(r'<meta name="csrf-token" content="[^"]{20,}">', html)
    assert 'data-role="viewer"' in html and 'data-user="viewer"' in html
    assert 'id="alarm-banner"' in html
    assert 'id="connection"' in html
    assert re.search(r'<form method="post" action="/logout"[^>]*>\s*<input type="hidden" name="csrf_token"', html)
    # Nav: everyone gets the overview, the alarms and the meters; only admins the admin pages.
    assert 'href="/alarms"' in html and f'href="/meters/{METER}"' in html
    assert "/admin/" not in html


@pytest.mark.parametrize("user", ["viewer", "operator"])
@pytest.mark.parametrize("url", ADMIN_PAGES)
def test_admin_pages_are_forbidden_below_admin(app: Flask, user: str, url: str) -> None:
    assert client_as(app, user).get(url).status_code == 403


@pytest.mark.parametrize("url", ADMIN_PAGES)
def test_an_admin_gets_the_admin_pages_and_their_links(app: Flask, url: str) -> None:
    client = client_as(app, "admin")
    html = page(client, url)
    assert 'data-role="admin"' in html
    assert 'href="/admin/thresholds"' in html and 'href="/admin/users"' in html
    assert 'href="/admin/users"' in page(client, "/")


@pytest.mark.parametrize("url", [*ALL_PAGES, "/login"])
def test_pages_load_only_local_assets(app: Flask, url: str) -> None:
    client = client_as(app, None if url == "/login" else "admin")
    html = page(client, url)
    assert re.search(r'<meta name="viewport" content="width=device-width', html)
    urls = asset_urls(html)
    assert urls, "no script or stylesheet found"
    for ref in urls:
        assert not re.match(r"^(https?:)?//", ref), f"{url} loads {ref} from elsewhere"
    assert "http://" not in html.lower()
    assert "https://" not in html.lower()
    for ref in urls:
        if ref.startswith("/static/") and ref not in VENDOR:
            with client.get(ref) as resp:  # (a file response must be closed)
                assert resp.status_code == 200, ref


def test_our_scripts_and_styles_fetch_nothing_from_elsewhere() -> None:
    files = [p for p in STATIC.glob("*") if p.suffix in {".js", ".css"}]
    assert {p.name for p in files} >= {"common.js", "overview.js", "automate.js", "meter.js", "alarms.js",
                                       "dashboard.css"}
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"https?://|url\(\s*['\"]?//|@import", text), path.name


def test_live_pages_load_the_socket_client_before_the_shared_script(app: Flask) -> None:
    html = page(client_as(app, "viewer"), "/units/1/automates/1")
    scripts = re.findall(r'<script src="([^"]+)"', html)
    assert scripts == ["/static/vendor/socket.io.min.js", "/static/common.js", "/static/vendor/chart.umd.min.js",
                       "/static/charts.js", "/static/automate.js"]


def test_the_login_page_has_the_form_and_no_live_connection(app: Flask) -> None:
    html = page(app.test_client(), "/login")
    for field in ('name="username"', 'name="password"', 'name="csrf_token"', 'type="submit"'):
        assert field in html
    assert 'id="login-form"' in html
    assert "socket.io" not in html and 'id="alarm-banner"' not in html  # nobody to connect as yet


@pytest.mark.parametrize("user, can_ack", [("viewer", False), ("operator", True), ("admin", True)])
def test_ack_buttons_only_for_operators_and_admins(app: Flask, user: str, can_ack: bool) -> None:
    html = page(client_as(app, user), "/alarms")
    # The seeded active alarm (unit 1 automate 1, pH) is rendered at once, before any script runs.
    row = re.search(r'<tr data-alarm-id="(\d+)" data-state="active" data-acknowledged="false"[^>]*>(.*?)</tr>',
                    html, re.S)
    assert row, "the open alarm is not rendered"
    assert "unit 1 automate 1" in row.group(2) and "pH" in row.group(2)
    button = f'<button type="button" class="ack" data-alarm-id="{row.group(1)}">Acknowledge</button>'
    assert (button in html) is can_ack
    assert ('class="ack"' in html) is can_ack
    assert f'data-can-ack="{"true" if can_ack else "false"}"' in html


def test_an_acknowledged_alarm_shows_who_instead_of_a_button(app: Flask) -> None:
    client = client_as(app, "operator")
    alarm_id = re.search(r'data-alarm-id="(\d+)"', page(client, "/alarms"))
    assert alarm_id
    with web_state(app).make_session.begin() as session:
        history.acknowledge_once(session, int(alarm_id.group(1)), "operator",
                                 datetime(2026, 11, 21, 10, 20, tzinfo=UTC))
    html = page(client, "/alarms")
    assert 'class="ack"' not in html
    assert 'data-acknowledged="true"' in html
    assert re.search(r'operator <small><time datetime="2026-11-21T10:20:00.000Z"', html)


def test_overview_embeds_the_snapshot_it_starts_from(app: Flask) -> None:
    html = page(client_as(app, "viewer"), "/")
    match = re.search(r'<script id="snapshot" type="application/json">(.*?)</script>', html, re.S)
    assert match
    snapshot = json.loads(match.group(1))
    assert [(a["unit"], a["automate"]) for u in snapshot["units"] for a in u["automates"]] == [(1, 1), (1, 2), (2, 1)]
    assert [m["meter"] for m in snapshot["meters"]] == [METER]
    config = json.loads(re.search(r'<script id="page-config" type="application/json">(.*?)</script>', html, re.S)
                        .group(1))  # type: ignore[union-attr]
    assert config["periods"] == {"automate": 60.0, "meter": 60.0} and config["stale_after"] == 3
    assert config["measures"]["automate"]["ph"]["decimals"] == 1
    assert list(config["measures"]["automate"]) == list(AUTOMATE_MEASURES)  # the display order, not sorted
    assert 'id="units"' in html and 'id="meters"' in html
    assert "/static/overview.js" in html


def test_automate_page_has_selectors_windows_and_one_chart_per_measure(app: Flask) -> None:
    html = page(client_as(app, "viewer"), "/units/1/automates/2")
    assert re.findall(r'<canvas data-measure="([a-z_]+)" data-points="0"', html) == list(AUTOMATE_MEASURES)
    units = re.search(r'<select id="unit-select">(.*?)</select>', html, re.S)
    automates = re.search(r'<select id="automate-select">(.*?)</select>', html, re.S)
    assert units and automates
    assert re.findall(r'<option value="(\d+)"', units.group(1)) == ["1", "2"]
    assert '<option value="1" selected>' in units.group(1)
    assert re.findall(r'<option value="(\d+)"', automates.group(1)) == ["1", "2"]
    assert '<option value="2" selected>' in automates.group(1)
    assert re.findall(r'data-window="([^"]+)"', html)[:4] == ["1h", "24h", "7d", "custom"]
    assert html.count('type="datetime-local"') == 2
    config = json.loads(re.search(r'<script id="automate-config" type="application/json">(.*?)</script>', html,
                                  re.S).group(1))  # type: ignore[union-attr]
    assert config == {"unit": 1, "automate": 2, "units": {"1": [1, 2], "2": [1]}}


def test_meter_page_has_its_table_chart_and_counters(app: Flask) -> None:
    html = page(client_as(app, "viewer"), f"/meters/{METER}")
    for element in ('id="last10"', 'id="power-chart"', 'id="power"', 'id="energy"', 'id="meter-state"'):
        assert element in html
    assert f'{{"meter": "{METER}"}}' in html


def test_unit_page_starts_from_that_unit_only(app: Flask) -> None:
    html = page(client_as(app, "viewer"), "/units/1")
    snapshot = json.loads(re.search(r'<script id="snapshot" type="application/json">(.*?)</script>', html, re.S)
                          .group(1))  # type: ignore[union-attr]
    assert [(a["unit"], a["automate"]) for u in snapshot["units"] for a in u["automates"]] == [(1, 1), (1, 2)]
    assert snapshot["meters"] == []
    assert 'data-unit="1"' in html  # overview.js then watches {view: "unit", unit: 1}


@pytest.mark.parametrize("url, message", [
    ("/units/9", "Unit 9 is unknown."),
    ("/units/9/automates/1", "Unit 9 is unknown."),
    ("/units/1/automates/7", "Unit 1 has no automate 7."),
    ("/meters/shellypro1pm-000000000000", "Meter shellypro1pm-000000000000 is unknown."),
])
def test_unknown_unit_automate_or_meter_is_a_404_page(app: Flask, url: str, message: str) -> None:
    resp = client_as(app, "viewer").get(url)
    assert resp.status_code == 404
    html = resp.get_data(as_text=True)
    assert message in html and 'id="error-page"' in html
    assert 'id="alarm-banner"' in html  # still a full page with its navigation


def test_admin_pages_offer_their_forms(app: Flask) -> None:
    client = client_as(app, "admin")
    thresholds = page(client, "/admin/thresholds")
    for element in ('id="threshold-form"', 'id="thresholds"', 'id="threshold-changes"', 'id="threshold-error"'):
        assert element in thresholds
    scopes = re.findall(r'<option value="([^"]+)">', re.search(r'<datalist id="scope-list">(.*?)</datalist>',
                                                                  thresholds, re.S).group(1))  # type: ignore[union-attr]
    assert scopes == ["*", "units/1", "units/2", "units/1/automates/1", "units/1/automates/2",
                      "units/2/automates/1", f"meters/{METER}"]
    users = page(client, "/admin/users")
    for element in ('id="users"', 'id="user-form"', 'id="password-form"', 'id="users-error"'):
        assert element in users
    assert re.findall(r'<option value="(\w+)">\1</option>', users) == ["viewer", "operator", "admin"]


def test_the_health_check_stays_public(app: Flask) -> None:
    assert app.test_client().get("/healthz").status_code == 200
