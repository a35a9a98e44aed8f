"""Alarms an operator cannot miss, in headless Chromium: the header counter that stays after an
acknowledgement until the alarm clears, critical styling and the tab title, the acknowledgement form
that refuses a critical ack without a corrective action, and the live badge that turns red when the
web UI loses its MQTT broker (on a web UI and broker of the test's own, not the shared demo stack)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from plantmodel.layout import PlantLayout
from tests.browser.conftest import Stack, screenshot
from tests.processes import Service, wait_for
from tests.servers import MosquittoServer, free_port, wait_port
from tests.webapp import add_user, new_database

pytestmark = [pytest.mark.integration, pytest.mark.browser]

SOURCE = "units/5/automates/4"  # unit 5: the unit whose tile was below the fold
MEASURE = "salmonella_ppm"  # critical by default (above 37 ppm)


def active_alarm(page: Page, stack: Stack) -> dict | None:  # type: ignore[type-arg]
    items = page.request.get(f"{stack.url}/api/alarms?state=active&unit=5&automate=4&measure={MEASURE}").json()
    return items["items"][0] if items["items"] else None


def test_critical_alarm_counter_title_and_acknowledgement_with_a_note(page_as: Callable[..., Page],
                                                                      stack: Stack) -> None:
    page = page_as("operator", width=1920, height=1080)
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    expect(page.locator("#units")).to_have_attribute("data-state", "ready")
    counter = page.locator("#alarm-counter")
    stack.cli("devices", "fault", "set", "--unit", "5", "--automate", "4", "--measure", MEASURE, "--values", "60")
    try:
        # Raised while the page is open: counter, severity styling, tab title, the unit's counts.
        expect(counter).to_have_attribute("data-level", "critical", timeout=20_000)
        expect(counter).to_contain_text(re.compile(r"\d+ active \([1-9]\d* critical\)"))
        expect(counter.locator(".icon")).to_have_text("‼")  # not colour alone
        assert re.match(r"^\(\d+‼\) ", page.title()), page.title()
        summary = page.locator('#alarm-summary li[data-unit="5"]')
        expect(summary).to_be_in_viewport()  # on 1920×1080, without scrolling
        expect(summary).to_have_attribute("data-level", "critical")
        expect(page.locator('[data-unit-alarms="5"]')).to_have_attribute("data-critical", re.compile(r"^[1-9]"))
        # The beep and notification path ran for this new critical alarm (no speakers here).
        wait_for(lambda: any(SOURCE in a["key"] for a in page.evaluate("Plant.alerts")), 5, "the alert")
        screenshot(page, "alarm-state-critical")

        alarm = active_alarm(page, stack)
        assert alarm is not None and alarm["severity"] == "critical"
        alarm_id = str(alarm["id"])
        page.goto(f"{stack.url}/alarms")
        row = page.locator(f'#open-alarms tr[data-alarm-id="{alarm_id}"]')
        posted: list[str] = []  # the form itself must refuse: nothing sent
        page.on("request", lambda r: posted.append(r.url) if r.method == "POST" and "/ack" in r.url else None)
        row.locator("button.ack").click()
        form = row.locator("form.ack-form")
        form.locator('button[type="submit"]').click()  # no note, no disposition
        expect(form.locator(".ack-error")).to_contain_text("critical alarm needs")
        form.locator("textarea[name=note]").fill("Tank 4 drained, line sanitised")
        form.locator('button[type="submit"]').click()  # a note, still no disposition
        expect(form.locator(".ack-error")).to_contain_text("disposition")
        expect(row).to_have_attribute("data-acknowledged", "false")
        assert posted == []
        # The server refuses it too, whatever the page does.
        status = page.evaluate(
            """async (id) => (await fetch(`/api/alarms/${id}/ack`, {method: "POST", headers: {
                 "Content-Type": "application/json",
                 "X-CSRF-Token": document.querySelector('meta[name="csrf-token"]').content},
                 body: JSON.stringify({note: "x"})})).status""", alarm_id)
        assert status == 400
        form.locator('input[name=disposition][value="hold"]').check()
        form.locator('button[type="submit"]').click()
        expect(row).to_have_attribute("data-acknowledged", "true")
        expect(row).to_contain_text("Tank 4 drained, line sanitised")
        expect(row.locator("[data-disposition]")).to_have_attribute("data-disposition", "hold")
        history_row = page.locator(f'#history tr[data-alarm-id="{alarm_id}"]')
        expect(history_row).to_contain_text("Tank 4 drained, line sanitised")
        expect(history_row).to_contain_text("operator")
        screenshot(page, "alarm-acknowledged-with-note")

        # Acknowledged but still active: the counter and the banner keep it, marked acknowledged.
        page.goto(stack.url + "/")
        expect(counter).to_have_attribute("data-level", "critical")
        assert re.match(r"^\(\d+‼\) ", page.title()), page.title()
        banner_item = page.locator('#alarm-banner li[data-acknowledged="true"]').filter(has_text="automate 4")
        expect(banner_item).to_contain_text("acknowledged by operator")
        page.wait_for_timeout(2500)  # a couple of reports later it is still there
        expect(counter).to_have_attribute("data-level", "critical")
    finally:
        stack.cli("devices", "fault", "clear")
    # ...until it clears: then it leaves the counter and the banner.
    wait_for(lambda: active_alarm(page, stack) is None, 30, "the alarm to clear")
    page.wait_for_function(
        "(src) => !Plant.activeAlarms().some((a) => a.source === src)", arg=SOURCE, timeout=10_000)
    expect(page.locator("#alarm-banner li").filter(has_text="automate 4")).to_have_count(0)


def test_alarm_history_filters_live_in_the_url(page_as: Callable[..., Page], stack: Stack) -> None:
    page = page_as("viewer")
    page.goto(f"{stack.url}/alarms")
    page.select_option("#f-state", "cleared")
    page.select_option("#f-unit", "2")
    page.click("#history-filters button[type=submit]")
    page.wait_for_url(re.compile(r"/alarms\?.*state=cleared"))
    assert "unit=2" in page.url
    page.reload()  # a bookmark: the filters come back from the URL
    expect(page.locator("#f-state")).to_have_value("cleared")
    expect(page.locator("#f-unit")).to_have_value("2")
    expect(page.locator("#history")).to_have_attribute("data-state", "ready")


def test_times_show_the_plant_zone(page_as: Callable[..., Page], stack: Stack) -> None:
    page = page_as("viewer")
    zone = page.evaluate("Plant.zoneName()")
    expect(page.locator("#plant-zone")).to_contain_text(zone)
    text = page.evaluate("Plant.formatTime('2026-12-02T08:15:03Z')")
    assert re.fullmatch(r"[12] Dec 2026 \d\d:15:03 " + re.escape(zone), text), text  # en-GB: "2 Dec 2026"


# -- the web UI's own health: a broker and a web UI of this test --------------------------------------------

@pytest.fixture
def own_webui(tmp_path: Path) -> Iterator[tuple[str, MosquittoServer, Service]]:
    """A real broker (our mosquitto.conf) and a real ``python -m webui run`` on a throwaway SQLite."""
    broker = MosquittoServer(tmp_path / "broker", PlantLayout(units=1, automates=1, meters=()), tls=False)
    broker.start()
    make_session = new_database(tmp_path / "plant.db")
    add_user(make_session, "viewer", "viewer", "viewer-pass-1")
    port = free_port()
    env = {**broker.env(), "DATABASE_URL": f"sqlite:///{tmp_path / 'plant.db'}", "WEBUI_PORT": str(port)}
    web = Service("webui-health", ["webui", "run", "--port", str(port)], env, tmp_path)
    try:
        wait_for(lambda: "MQTT connected" in web.log(), 20, "the web UI's MQTT connection", services=[web])
        wait_port(port, 20, web.proc)  # (its feed connects before the server binds)
        yield f"http://127.0.0.1:{port}", broker, web
    finally:
        web.stop()
        broker.stop()


def test_live_badge_turns_red_when_the_broker_stops(browser: Browser,
                                                    own_webui: tuple[str, MosquittoServer, Service]) -> None:
    url, broker, web = own_webui
    context = browser.new_context()
    context.set_default_timeout(15_000)
    try:
        page = context.new_page()
        page.goto(url + "/login")
        page.fill("input[name=username]", "viewer")
        page.fill("input[name=password]", "viewer-pass-1")
        page.click("button[type=submit]")
        page.wait_for_url(url + "/")
        badge = page.locator("#connection")
        expect(badge).to_have_attribute("data-state", "live")
        broker.stop()
        expect(badge).to_have_attribute("data-state", "down", timeout=10_000)
        expect(badge).to_have_text("MQTT broker unreachable")
        expect(page.locator("body")).to_have_attribute("data-live", "frozen")
        expect(page.locator("#frozen-note")).to_contain_text("Values are frozen")
        screenshot(page, "health-mqtt-down")
        broker.start()
        # paho retries with a back-off of 1, 2, 4... s: back within seconds
        expect(badge).to_have_attribute("data-state", "live", timeout=20_000)
        expect(badge).to_have_text("live")
        expect(page.locator("body")).to_have_attribute("data-live", "live")
        expect(page.locator("#frozen-note")).to_be_hidden()
    finally:
        context.close()
    assert web.alive()


def test_badge_and_note_turn_red_while_no_bridge_stores(browser: Browser, tmp_path: Path,
                                                        own_webui: tuple[str, MosquittoServer, Service]) -> None:
    """SIGKILL the bridge: its last will turns the badge red with the reason, a note says nothing is
    stored, tiles are not greyed (device values stay live); its return turns it green again."""
    url, broker, web = own_webui
    env = {**broker.env(), "DATABASE_URL": f"sqlite:///{tmp_path / 'plant.db'}", "MQTT_USERNAME": broker.bridge_user()}
    bridge = Service("bridge-health", ["bridge", "run"], env, tmp_path)
    context = browser.new_context()
    context.set_default_timeout(15_000)
    try:
        wait_for(lambda: "connected to" in bridge.log(), 20, "the bridge", services=[bridge])
        page = context.new_page()
        page.goto(url + "/login")
        page.fill("input[name=username]", "viewer")
        page.fill("input[name=password]", "viewer-pass-1")
        page.click("button[type=submit]")
        page.wait_for_url(url + "/")
        badge, note = page.locator("#connection"), page.locator("#frozen-note")
        page.wait_for_function("() => Plant.health.bridge === true")
        expect(badge).to_have_attribute("data-state", "live")
        bridge.kill()
        expect(badge).to_have_attribute("data-state", "down", timeout=5_000)
        expect(badge).to_have_text("bridge offline: readings are not being stored, no alarm can be raised")
        expect(note).to_contain_text("Not storing: bridge offline")
        expect(page.locator("body")).to_have_attribute("data-live", "live")  # device values are real
        expect(page.locator("body")).to_have_attribute("data-bridge", "down")
        screenshot(page, "health-bridge-down")
        bridge = Service("bridge-health", ["bridge", "run"], env, tmp_path)
        expect(badge).to_have_attribute("data-state", "live", timeout=20_000)
        expect(note).to_be_hidden()
    finally:
        context.close()
        bridge.stop()
    assert web.alive()
