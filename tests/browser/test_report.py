"""The shift report in headless Chromium against the demo stack: its sections and the plant zone,
a printout without the navigation, and the PDF link."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Stack, screenshot

pytestmark = [pytest.mark.integration, pytest.mark.browser]

SECTIONS = ("#report-alarms", "#report-measures", "#report-completeness", "#report-rejected", "#report-energy")


def test_shift_report_renders_prints_and_exports(page_as: Callable[..., Page], stack: Stack) -> None:
    page = page_as("viewer")
    page.goto(stack.url + "/reports/shift")
    expect(page.locator("h1")).to_have_text("Shift report")
    for section in SECTIONS:
        expect(page.locator(section)).to_be_visible()
    expect(page.locator("#report-zone")).to_contain_text("Plant time zone:")
    zone = page.locator("#report-zone strong").inner_text()
    assert zone  # an IANA name; the period's times carry the zone's abbreviation
    # "21 Nov 2026 09:00 CET" ("21 nov. 2026 …" in French); seconds when the period is not whole minutes.
    expect(page.locator("#report-period time").first).to_have_text(
        re.compile(r"^\d{1,2} \w+\.? \d{4} \d\d:\d\d(:\d\d)? \S+$"))
    expect(page.locator("header.top nav")).to_be_visible()
    screenshot(page, "shift-report")

    page.emulate_media(media="print")
    expect(page.locator("header.top")).to_be_hidden()
    expect(page.locator("#report-form")).to_be_hidden()
    expect(page.locator("#report-measures")).to_be_visible()
    assert page.locator("#report-completeness").evaluate("e => getComputedStyle(e).breakBefore") == "page"
    page.emulate_media(media="screen")
    expect(page.locator("header.top")).to_be_visible()

    href = page.locator("#report-pdf").get_attribute("href")
    assert href and href.startswith("/reports/shift.pdf?")
    resp = page.request.get(stack.url + href)  # the context's session cookie
    assert resp.status == 200
    assert resp.headers["content-type"] == "application/pdf"
    assert resp.body().startswith(b"%PDF")
