"""The thresholds form inherits (issue 11, bug 4): it shows what a blank field gives at the chosen
scope and from where, saving High 5.0 alone keeps the inherited low and deadband, and removing a
limit (or widening one past the normal range) asks for confirmation in the page."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from playwright.sync_api import Page, expect

from tests.browser.conftest import Stack

SCOPE = "units/2/automates/3"
TANK = "tank_temp_c"


def effective(page: Page, stack: Stack) -> dict[str, tuple[object, object]]:
    resp = page.request.get(f"{stack.url}/api/thresholds/effective?scope={SCOPE}&measure={TANK}")
    assert resp.ok, resp.text()
    fields = resp.json()["items"][0]["effective"]
    return {k: (v["value"], v["from"]) for k, v in fields.items()}


def test_the_form_inherits_and_asks_before_weakening_a_limit(page_as: Callable[..., Page], stack: Stack) -> None:
    page = page_as("admin")
    deadline = time.monotonic() + 60  # the simulated automate must have reported (a scope must exist)
    while not page.request.get(f"{stack.url}/api/units/2/automates/3").ok:
        assert time.monotonic() < deadline, "units/2/automates/3 never reported"
        time.sleep(0.5)
    page.goto(stack.url + "/admin/thresholds")
    try:
        page.fill("#t-scope", SCOPE)
        page.select_option("#t-measure", TANK)
        expect(page.locator("#t-low-hint")).to_have_text(re.compile(r"blank: 2\.50? \(from \*\)"))
        expect(page.locator("#t-deadband-hint")).to_contain_text("(from *)")
        expect(page.locator("#t-effective")).to_contain_text(f"Applies now at {SCOPE}")

        # The steps: High 5.0 only. 5.0 is past the normal 4.0, so the page asks first.
        page.fill("#t-high", "5.0")
        page.click("#threshold-form button[type=submit]")
        confirm = page.locator("#threshold-confirm")
        expect(confirm).to_be_visible()
        expect(confirm).to_contain_text("widens the high limit")
        page.click("#threshold-confirm-yes")
        expect(page.locator("#threshold-message")).to_contain_text("low inherited")
        expect(confirm).to_be_hidden()
        assert effective(page, stack) == {"low": (2.5, "*"), "high": (5.0, SCOPE), "deadband": (0.2, SCOPE),
                                          "severity": ("warning", SCOPE)}

        # Removing the (inherited) low limit asks too; Cancel stores nothing.
        page.check("#t-low-none")
        expect(page.locator("#t-low")).to_be_disabled()
        page.click("#threshold-form button[type=submit]")
        expect(confirm).to_contain_text("removes the low limit 2.5 °C (from *)")
        page.click("#threshold-confirm-no")
        expect(page.locator("#threshold-message")).to_have_text("Not saved.")
        assert effective(page, stack)["low"] == (2.5, "*")
    finally:
        stack.cli("bridge", "thresholds", "delete", "--unit", "2", "--automate", "3", "--measure", TANK)
