"""The operator's dashboard in headless Chromium, against the demo stack on MariaDB: log-in, live
overview, an injected fault's alarm, acknowledgement by an operator (not a viewer), the automate
chart, the phone layout. Screenshots: test-artifacts/browser/."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from plantmodel.layout import default_meter_ids
from plantmodel.measures import AUTOMATE_MEASURES
from tests.browser.conftest import Stack, screenshot
from tests.processes import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CELL = '#units a.cell[data-source="units/1/automates/1"]'
FAULTY = "units/2/automates/3"


def test_login_form_refuses_a_wrong_password(page_as: Callable[..., Page], stack: Stack) -> None:
    page = page_as("viewer")
    page.click("#logout-form button")
    page.wait_for_url("**/login")
    page.fill("input[name=username]", "viewer")
    page.fill("input[name=password]", "not-the-password")
    page.click("button[type=submit]")
    expect(page.locator("#login-error")).to_contain_text("Wrong user name or password")
    page.goto(stack.url + "/alarms")
    assert "/login" in page.url  # still logged out


def test_overview_updates_live_without_reload(page_as: Callable[..., Page]) -> None:
    page = page_as("viewer")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    expect(page.locator("#units")).to_have_attribute("data-state", "ready")
    expect(page.locator("#units a.cell")).to_have_count(50)
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads
    milk = page.locator(f'{CELL} [data-measure="milk_kg"]')
    expect(milk).to_have_attribute("data-value", re.compile(r"\d"))
    first = milk.get_attribute("data-value")
    # The simulators report every 2 s; the cell must change in place.
    page.wait_for_function(
        "([sel, v]) => { const el = document.querySelector(sel); return el && el.dataset.value !== v; }",
        arg=[f'{CELL} [data-measure="milk_kg"]', first], timeout=20_000)
    assert page.evaluate("window.__sameDocument") is True
    expect(page.locator(CELL)).to_have_attribute("data-state", "normal")
    expect(page.locator("#meter-table tr[data-source^='meters/']")).to_have_count(2)
    screenshot(page, "overview")

    page.click("#unit-3 h2 a")  # one unit's page: only its automates, fed by its own room
    page.wait_for_url("**/units/3")
    expect(page.locator("#units a.cell")).to_have_count(10)
    expect(page.locator("#units a.cell:not([data-source^='units/3/'])")).to_have_count(0)
    cell = '#units a.cell[data-source="units/3/automates/1"] [data-measure="milk_kg"]'
    first = page.locator(cell).get_attribute("data-value")
    page.wait_for_function("([sel, v]) => document.querySelector(sel).dataset.value !== v", arg=[cell, first],
                           timeout=20_000)


def test_fault_alarm_is_shown_and_acknowledged_by_an_operator_only(page_as: Callable[..., Page],
                                                                  stack: Stack) -> None:
    viewer = page_as("viewer")
    operator = page_as("operator")
    for page in (viewer, operator):
        expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    stack.cli("devices", "fault", "set", "--unit", "2", "--automate", "3", "--measure", "tank_temp_c",
              "--values", "4.6")
    try:
        cell = operator.locator(f'#units a.cell[data-source="{FAULTY}"]')
        expect(cell).to_have_attribute("data-state", "alarm", timeout=20_000)
        for page in (viewer, operator):  # on every page, without reload
            expect(page.locator("#alarm-banner")).to_be_visible()
            expect(page.locator("#alarm-banner")).to_contain_text("unacknowledged alarm")

        viewer.goto(stack.url + "/alarms")
        row = viewer.locator('#open-alarms tr[data-alarm-id][data-acknowledged="false"]').filter(
            has_text="tank")
        expect(row.first).to_be_visible()
        expect(viewer.locator("#open-alarms button.ack")).to_have_count(0)  # a viewer gets no button
        alarm_id = row.first.get_attribute("data-alarm-id")
        # ...and the server refuses the request even when a viewer forges it.
        status = viewer.evaluate(
            """async (id) => (await fetch(`/api/alarms/${id}/ack`, {method: "POST", headers: {
                 "X-CSRF-Token": document.querySelector('meta[name="csrf-token"]').content}})).status""",
            alarm_id)
        assert status == 403

        operator.goto(stack.url + "/alarms")
        button = operator.locator(f'#open-alarms button.ack[data-alarm-id="{alarm_id}"]')
        expect(button).to_be_visible()
        screenshot(operator, "alarms-before-ack")
        button.click()  # opens the acknowledgement form: a warning needs no note
        operator.locator(f'#open-alarms tr[data-alarm-id="{alarm_id}"] form.ack-form button[type=submit]').click()
        acked = operator.locator(f'#open-alarms tr[data-alarm-id="{alarm_id}"]')
        expect(acked).to_have_attribute("data-acknowledged", "true")
        expect(acked).to_contain_text("operator")
        for page in (operator, viewer):  # the acknowledgement reaches the other browser live...
            expect(page.locator("#alarm-banner")).to_have_attribute("data-count", "0")
            # ...but the alarm is still active: it stays in sight until the value is back in range.
            expect(page.locator("#alarm-banner")).to_contain_text("all acknowledged")
            assert int(page.locator("#alarm-counter").get_attribute("data-active") or 0) >= 1
        screenshot(operator, "alarms-after-ack")
    finally:
        stack.cli("devices", "fault", "clear")


def test_automate_view_charts_the_last_hour_and_appends_live(page_as: Callable[..., Page], stack: Stack) -> None:
    page = page_as("viewer")
    blocked: list[str] = []  # the Content Security Policy must block nothing the page needs
    page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(stack.url + "/units/1/automates/1")
    expect(page.locator("#charts")).to_have_attribute("data-state", "ready")
    assert page.locator("#charts").get_attribute("data-window") == "1h"
    expect(page.locator("#charts")).to_have_attribute("data-live", "true")
    canvases = page.locator("#charts canvas[data-measure]")
    expect(canvases).to_have_count(10)
    chart = page.locator('#charts canvas[data-measure="tank_temp_c"]')
    expect(chart).to_have_attribute("data-points", re.compile(r"^[1-9]\d*$"))
    before = int(chart.get_attribute("data-points") or 0)
    page.wait_for_function(
        "([n]) => Number(document.querySelector('#charts canvas[data-measure=\"tank_temp_c\"]').dataset.points) > n",
        arg=[before], timeout=20_000)
    # Every point is inside the last hour, and the threshold band is drawn.
    span = page.evaluate("""() => {
        const c = Chart.getChart(document.querySelector('#charts canvas[data-measure="tank_temp_c"]'));
        const xs = c.data.datasets[2].data.map((p) => p.x);
        return {min: Math.min(...xs), max: Math.max(...xs), now: Date.now(),
                limits: c.data.datasets[3].data.length + c.data.datasets[4].data.length};
    }""")
    assert span["now"] - span["min"] <= 3600_000 + 60_000
    assert span["limits"] > 0
    # The newest stored reading's times: measured, received, stored (the bridge's commit time).
    expect(page.locator("#latest-times")).to_have_text(re.compile(r"received \+\d+\.\d{3} s, stored \+\d+\.\d{3} s"))
    screenshot(page, "automate")
    assert blocked == []

    page.click('#window-buttons button[data-window="24h"]')
    expect(page.locator("#charts")).to_have_attribute("data-window", "24h")
    expect(page.locator("#charts")).to_have_attribute("data-live", "false")


def test_phone_layout_has_no_horizontal_scroll(page_as: Callable[..., Page], stack: Stack) -> None:
    page = page_as("viewer", width=375, height=812)
    for path in ("/", "/units/1/automates/1", "/alarms"):
        page.goto(stack.url + path)
        page.wait_for_timeout(800)
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 375, (path, width)
    page.goto(stack.url + "/")
    expect(page.locator("#units")).to_have_attribute("data-state", "ready")
    # The cell's short labels and the values a phone shows come from the measures' definitions.
    values = page.locator(f"{CELL} .values .value")
    expect(values.locator("dt")).to_have_text([m.short for m in AUTOMATE_MEASURES.values()])
    expect(page.locator(f"{CELL} .values .value.key")).to_have_count(
        sum(m.key for m in AUTOMATE_MEASURES.values()))
    expect(page.locator(f'{CELL} .value[data-measure="salmonella_ppm"]:not(.alarm)')).to_be_hidden()
    screenshot(page, "overview-phone")


def test_an_anonymous_socketio_connection_is_refused(browser, stack: Stack) -> None:  # type: ignore[no-untyped-def]
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(stack.url + "/login")  # public page; load the client library by hand
        page.add_script_tag(url=stack.url + "/static/vendor/socket.io.min.js")
        error = page.evaluate("""() => new Promise((resolve) => {
            const s = io({transports: ["websocket"], reconnection: false});
            s.on("connect", () => resolve("connected"));
            s.on("connect_error", (e) => resolve(e.message));
            setTimeout(() => resolve("timeout"), 10000);
        })""")
        assert error == "unauthorized"
    finally:
        context.close()


def test_admin_edits_a_threshold_and_the_audit_shows_it(page_as: Callable[..., Page], stack: Stack) -> None:
    page = page_as("admin")
    page.on("dialog", lambda dialog: dialog.accept())  # the delete button asks for confirmation
    page.goto(stack.url + "/admin/thresholds")
    page.fill("#t-scope", "units/4")
    page.select_option("#t-measure", "ph")
    page.fill("#t-low", "6.5")
    page.fill("#t-high", "7.5")
    page.click("#threshold-form button[type=submit]")
    page.click("#threshold-confirm-yes")  # 6.5-7.5 is wider than pH's normal range: the page asks first
    expect(page.locator("#threshold-message")).to_be_visible()
    row = page.locator('#thresholds tr[data-scope="units/4"][data-measure="ph"]')
    expect(row).to_contain_text("7.5")
    expect(page.locator("#threshold-changes")).to_contain_text("admin")
    expect(page.locator("#threshold-changes")).to_contain_text("units/4")
    expect(page.locator("#changes-page")).to_have_text("Page 1 of 1")  # the shared pager, driven
    expect(page.locator("#changes-next")).to_be_disabled()
    screenshot(page, "thresholds")
    row.locator("button.delete").click()
    expect(row).to_have_count(0)
    audit = stack.cli("bridge", "thresholds", "list")
    assert "units/4" not in audit  # deleted for the bridge too


def test_the_energy_figure_keeps_counting_across_a_counter_reset(page_as: Callable[..., Page],
                                                                 stack: Stack) -> None:
    meter = default_meter_ids(2)[0]
    page = page_as("viewer")
    page.goto(f"{stack.url}/meters/{meter}")
    expect(page.locator("#energy")).to_have_attribute("data-wh", re.compile(r"\d"))
    before = float(page.locator("#energy").get_attribute("data-wh") or "nan")
    # The meter's counter restarts from 0.5 Wh, as after a reboot.
    stack.cli("devices", "fault", "set", "--meter", meter, "--measure", "energy_wh", "--values", "0.5")
    try:
        def reset_stored() -> bool:
            latest = page.request.get(f"{stack.url}/api/meters/{meter}").json()["latest"]
            return latest is not None and latest["energy_wh"] == 0.5 and latest["energy_offset_wh"] > 0
        wait_for(reset_stored, 30, "the counter reset to be stored")
        # Live, then after a reload: the figure shown never went back.
        expect(page.locator("#energy")).not_to_have_attribute("data-wh", str(before))
        assert float(page.locator("#energy").get_attribute("data-wh") or "nan") >= before
        page.reload()
        expect(page.locator("#energy")).to_have_attribute("data-wh", re.compile(r"\d"))
        assert float(page.locator("#energy").get_attribute("data-wh") or "nan") >= before
        screenshot(page, "meter-after-counter-reset")
    finally:
        stack.cli("devices", "fault", "clear")
