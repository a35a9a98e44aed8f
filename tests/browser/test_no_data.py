"""The no-data alarm in headless Chromium, on the shared demo stack: an automate silenced by the
simulator's ``silent`` fault raises "No data" once it has gone without a reading for its threshold
(here 0.08 of the bridge's 60 s report period = 4.8 s, set for that automate alone through the API),
seen on the dashboard's banner and the alarms page; it clears when the automate reports again. The
threshold and the fault are removed afterwards, so the shared stack is left as found."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Stack, screenshot
from tests.processes import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.browser]

UNIT, AUTOMATE = 3, 8  # no other browser test touches it
SOURCE = f"units/{UNIT}/automates/{AUTOMATE}"
MEASURE = "no_data"
PERIODS = 0.08  # of BRIDGE_REPORT_PERIOD (60 s): 4.8 s without a reading; the demo reports every 2 s


def no_data_alarm(page: Page, stack: Stack, state: str) -> dict[str, Any] | None:
    resp = page.request.get(f"{stack.url}/api/alarms?state={state}&unit={UNIT}&automate={AUTOMATE}&measure={MEASURE}")
    assert resp.ok, resp.text()
    items = resp.json()["items"]
    return items[0] if items else None


def test_a_silent_automate_raises_no_data_and_clears_when_it_reports(page_as: Callable[..., Page],
                                                                     stack: Stack) -> None:
    page = page_as("admin")
    deadline = time.monotonic() + 60  # the scope must exist: the automate must have reported
    while not page.request.get(f"{stack.url}/api/units/{UNIT}/automates/{AUTOMATE}").ok:
        assert time.monotonic() < deadline, f"{SOURCE} never reported"
        time.sleep(0.5)
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content") or ""
    banner = page.locator("#alarm-banner li").filter(has_text=f"unit {UNIT} automate {AUTOMATE}")
    made = False
    try:
        resp = page.request.put(f"{stack.url}/api/thresholds", headers={"X-CSRF-Token": csrf},
                                data={"scope": SOURCE, "measure": MEASURE, "high": PERIODS})
        assert resp.status in (200, 201), resp.text()
        made = True
        assert resp.json()["inherit_low"] is True  # low left out: inherited (none at *)
        assert no_data_alarm(page, stack, "active") is None  # it reports every 2 s: nothing yet

        stack.cli("devices", "fault", "set", "--unit", str(UNIT), "--automate", str(AUTOMATE), "--silent")
        # 4.8 s of silence, then the bridge's next health tick (1 s in the demo), then the page, live.
        expect(banner.filter(has_text="No data")).to_be_visible(timeout=30_000)
        expect(banner.first).to_contain_text(f"above {PERIODS:.2f}")
        alarm = no_data_alarm(page, stack, "active")
        assert alarm is not None and alarm["value"] > PERIODS and alarm["limit"] == PERIODS, alarm
        page.goto(f"{stack.url}/alarms")
        row = page.locator(f'#open-alarms tr[data-alarm-id="{alarm["id"]}"]')
        expect(row).to_have_attribute("data-state", "active")
        expect(row.locator('td[data-label="Measure"]')).to_have_text("No data")
        screenshot(page, "no-data-alarm")

        stack.cli("devices", "fault", "clear", "--unit", str(UNIT), "--automate", str(AUTOMATE), "--silent")
        # The automate reports again (same sequence, nothing lost): the next health tick clears it.
        wait_for(lambda: no_data_alarm(page, stack, "active") is None, 20, "the no-data alarm to clear")
        cleared = no_data_alarm(page, stack, "cleared")
        assert cleared is not None and cleared["id"] == alarm["id"], cleared
        expect(page.locator("#alarm-banner li").filter(has_text="No data")).to_have_count(0)
        expect(page.locator(f'#open-alarms tr[data-alarm-id="{alarm["id"]}"][data-state="active"]')).to_have_count(0)
    finally:
        stack.cli("devices", "fault", "clear", "--unit", str(UNIT), "--automate", str(AUTOMATE), "--silent")
        if made:
            stack.cli("bridge", "thresholds", "delete", "--unit", str(UNIT), "--automate", str(AUTOMATE),
                      "--measure", MEASURE)
