"""The admin lists whose filters live in the URL (common.js urlList): the audit trail and the
rejected messages load, filter through the form into a bookmarkable URL, and reload from it."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page, expect

from tests.browser.conftest import Stack, screenshot


def test_audit_and_rejected_lists_filter_into_the_url(page_as: Callable[..., Page], stack: Stack) -> None:
    page = page_as("admin")  # a log-in: the audit trail has at least this entry
    page.goto(stack.url + "/admin/audit")
    expect(page.locator("#audit")).to_have_attribute("data-state", "ready")
    page.fill("#f-action", "login.ok")
    page.click("#audit-filters button[type=submit]")
    expect(page).to_have_url(f"{stack.url}/admin/audit?action=login.ok")
    expect(page.locator("#audit")).to_have_attribute("data-state", "ready")
    assert int(page.locator("#audit").get_attribute("data-count") or 0) >= 1
    expect(page.locator("#audit tbody tr").first).to_have_attribute("data-action", "login.ok")
    assert page.locator("#audit-csv").get_attribute("href") == "/api/audit.csv?action=login.ok"

    page.goto(stack.url + "/admin/rejected?reason=no-such-reason-anywhere")
    expect(page.locator("#rejected")).to_have_attribute("data-state", "ready")
    expect(page.locator("#f-reason")).to_have_value("no-such-reason-anywhere")
    expect(page.locator("#rejected tbody tr.empty")).to_have_text("No rejected message matches.")
    expect(page.locator("#rejected-page")).to_contain_text("(0 messages)")


def test_the_services_page_shows_each_service_healthy(page_as: Callable[..., Page], stack: Stack) -> None:
    """The demo stack's web server, its bridge (its retained health report) and the notifier, each
    with its checks: what an admin looks at first when something seems off."""
    page = page_as("admin")
    page.goto(stack.url + "/admin/services")
    expect(page.locator("#services")).to_have_attribute("data-state", "ready")
    for service in ("webui", "bridge", "notifier"):
        expect(page.locator(f'#services tbody tr[data-service="{service}"]')).to_have_attribute("data-ok", "true")
    bridge = page.locator('#services tbody tr[data-service="bridge"]')
    expect(bridge).to_contain_text("broker: OK")
    expect(bridge).to_contain_text("ingest lag")
    screenshot(page, "services")
