"""The dashboard in French for a French user and in English for an English one: the pages' texts,
numbers with a decimal comma, 24-hour times, charts' axes; the log-in page follows the browser; and
no page a French admin can open shows an English text of the catalog (a scan of every rendered page).

Screenshots: ``test-artifacts/browser/lang-<fr|en>-<page>.png``.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable

import pytest
from babel.messages.pofile import read_po
from playwright.sync_api import Browser, Page
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from plantmodel.i18n import catalog_paths
from tests.browser.conftest import Stack, screenshot
from tests.processes import wait_for

pytestmark = pytest.mark.browser

PASSWORD = "langue-pass-1"
# A user whose language is set, with a browser asking for the other one: the setting must win.
USERS = {"marie": ("fr", "en-US"), "john": ("en", "fr-FR")}
NNBSP = "\u202f"
USERNAMES = {"admin", "operator", "viewer", *USERS}  # the stack's users: their names are data

# Visible texts gathered from a rendered page: text nodes (not scripts), the attributes people read
# (tooltips, placeholders, screen-reader labels, mobile table labels), <option> labels.
COLLECT = """() => {
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const p = n.parentElement;
    // translate="no": recorded data shown as it was stored (audit details, rejection reasons).
    if (!p || p.closest("script, style, code, pre, [data-username], .who, textarea, [translate=no]")) continue;
    const t = n.textContent.trim();
    if (t) out.push(t);
  }
  for (const el of document.querySelectorAll("[title], [placeholder], [aria-label], [alt], [data-label]")) {
    if (el.closest("[data-username], code, pre, [translate=no]")) continue;
    for (const a of ["title", "placeholder", "aria-label", "alt", "data-label"]) {
      const v = (el.getAttribute(a) || "").trim();
      if (v) out.push(v);
    }
  }
  out.push(document.title);
  return out;
}"""


def _english_only() -> list[tuple[str, re.Pattern[str]]]:
    """Each English source text whose French differs, as a pattern of a whole text (placeholders
    match anything)."""
    out = []
    catalogs = []
    for domain in ("messages", "js"):
        po, _mo = catalog_paths("fr", domain)
        with po.open("rb") as f:
            catalogs.append(read_po(f, locale="fr", domain=domain))
    # A text that is also French somewhere ("active": an alarm's, while a token is "actif") proves nothing.
    french_texts = {t for c in catalogs for m in c if m.id
                    for t in ([m.string] if isinstance(m.string, str) else m.string)}
    for catalog in catalogs:
        for m in catalog:
            if not m.id:
                continue
            ids = [m.id] if isinstance(m.id, str) else list(m.id)
            texts = [m.string] if isinstance(m.string, str) else list(m.string)
            french = " ".join(texts)
            for msgid in ids:
                parts = re.split(r"\{\w+\}|%\(\w+\)[sd]", msgid)
                # Only a text with a word of its own that the French lacks can tell English from
                # French ("%(headline)s: %(source)s" would match any French text with a colon).
                own_words = [w for p in parts for w in re.findall(r"[A-Za-z]{3,}", p) if w not in french]
                if msgid in texts or msgid in french_texts or not own_words:
                    continue
                pattern = "(?:.+?)".join(re.escape(p) for p in parts)
                out.append((msgid, re.compile(pattern)))
    return out


@pytest.fixture(scope="module")
def users(stack: Stack) -> dict[str, str]:
    for name, (language, _browser) in USERS.items():
        stack.cli("webui", "users", "add", name, "--role", "admin", "--language", language, "--password-stdin",
                  "--if-missing", stdin=PASSWORD + "\n")
    return {name: language for name, (language, _b) in USERS.items()}


@pytest.fixture
def open_as(page_as: Callable[..., Page], users: dict[str, str]) -> Callable[[str], Page]:
    """A user of ``USERS`` logged in, with a browser asking for the other language."""
    return lambda name: page_as(name, locale=USERS[name][1], password=PASSWORD)


def _settle(page: Page) -> None:
    page.wait_for_selector("#connection[data-state=live]")
    with contextlib.suppress(PlaywrightTimeout):  # a page polling on a timer never idles: its first loads are done
        page.wait_for_load_state("networkidle", timeout=1_500)
    page.wait_for_timeout(300)


def _tile_values(page: Page) -> list[str]:
    """The overview's tank temperatures and pH (one decimal, below 1 000: no thousands separator)."""
    cells = page.locator("dl.values [data-measure=tank_temp_c] dd, dl.values [data-measure=ph] dd")
    wait_for(lambda: any(re.search(r"\d", t) for t in cells.all_inner_texts()), 30, "values on the overview")
    return cells.all_inner_texts()


@pytest.mark.parametrize("name", list(USERS))
def test_overview_charts_and_alarms_in_the_users_language(open_as: Callable[[str], Page], stack: Stack,
                                                         name: str) -> None:
    language = USERS[name][0]
    french = language == "fr"
    page = open_as(name)
    _settle(page)
    assert page.get_attribute("html", "lang") == language
    nav = page.locator("nav.main-nav").inner_text()
    assert ("Vue d'ensemble" in nav and "Alarmes" in nav) if french else ("Overview" in nav and "Alarms" in nav)
    values = " ".join(_tile_values(page))
    # Tank temperatures have one decimal: 3,4 in French, 3.4 in English; never the other way round.
    assert re.search(r"\d,\d", values) if french else re.search(r"\d\.\d", values), values
    assert not re.search(r"\d\.\d", values) if french else not re.search(r"\d,\d", values), values
    screenshot(page, f"lang-{language}-overview")

    # Plant time: 24-hour clock, French month abbreviations; no AM/PM anywhere.
    text = page.evaluate("Plant.formatTime(Date.UTC(2026, 11, 1, 19, 25, 7))")
    assert re.fullmatch(r"1 déc\. 2026 \d\d:25:07 \S+" if french else r"1 Dec 2026 \d\d:25:07 \S+", text), text
    assert page.evaluate("Plant.num(4012.5, 1)") == (f"4{NNBSP}012,5" if french else "4,012.5")
    assert not re.search(r"\b[AP]M\b", page.locator("body").inner_text())

    page.goto(stack.url + "/units/1/automates/1")
    _settle(page)
    page.wait_for_function("() => { const c = document.querySelector('canvas[data-measure=tank_temp_c]');"
                           " const ch = c && Chart.getChart(c); return ch && ch.scales.y.ticks.length > 1"
                           " && ch.data.datasets[2].data.length > 1; }")
    ticks = page.evaluate("""() => {
        const ch = Chart.getChart(document.querySelector('canvas[data-measure=tank_temp_c]'));
        return { x: ch.scales.x.ticks.map((t) => t.label), y: ch.scales.y.ticks.map((t) => t.label),
                 tooltip: ch.options.plugins.tooltip.callbacks.label.call(ch.tooltip,
                     { datasetIndex: 2, parsed: { y: 3.45 }, dataset: ch.data.datasets[2], raw: {} }) }; }""")
    assert ticks["x"] and all(re.fullmatch(r"\d\d:\d\d", str(t)) for t in ticks["x"]), ticks  # 24-hour
    decimals = [str(t) for t in ticks["y"] if not re.fullmatch(r"[\d\s\u202f]+", str(t))]
    assert all(("," in t) if french else ("." in t) for t in decimals), ticks
    assert ("3,5 °C" if french else "3.5 °C") in ticks["tooltip"], ticks
    heading = page.locator("main h1").inner_text()
    assert ("Automate" in heading and "Unité" in heading) if french else "Unit" in heading, heading
    screenshot(page, f"lang-{language}-automate")

    page.goto(stack.url + "/alarms")
    _settle(page)
    body = page.locator("main").inner_text()
    assert ("Alarmes actives" in body or "Alarmes" in body) if french else "Alarms" in body
    assert not re.search(r"\b[AP]M\b", body)
    screenshot(page, f"lang-{language}-alarms")


@pytest.mark.parametrize(("locale", "language"), [("fr-FR", "fr"), ("en-US", "en")])
def test_the_log_in_page_follows_the_browser(browser: Browser, stack: Stack, locale: str, language: str) -> None:
    context = browser.new_context(locale=locale)
    try:
        page = context.new_page()
        page.goto(stack.url + "/login")
        assert page.get_attribute("html", "lang") == language
        button = page.locator("button[type=submit]").inner_text()
        assert button == ("Se connecter" if language == "fr" else "Log in"), button
        screenshot(page, f"lang-{language}-login")
    finally:
        context.close()


# Common English words that are not French: a text that was never marked is not in the catalog, so
# the catalog scan cannot see it; these words can.
ENGLISH_WORDS = {"the", "and", "with", "from", "not", "yes", "none", "unknown", "cleared", "live", "stale",
                 "offline", "online", "loading", "never", "disabled", "enabled", "save", "delete", "cancel",
                 "edit", "show", "hide", "close", "since", "until", "sound", "acknowledged", "acknowledge",
                 "alarm", "alarms", "meter", "meters", "unit", "units", "value", "values", "limit", "severity",
                 "warning", "critical", "of", "by", "at", "to", "is", "are", "was", "no", "off"}


def test_no_page_shows_an_english_text_to_a_french_admin(open_as: Callable[[str], Page], stack: Stack) -> None:
    """Every page of the menus, as a French admin: no text node or visible attribute is one of the
    catalog's English texts (whose French differs)."""
    english = _english_only()
    page = open_as("marie")
    _settle(page)
    links = page.evaluate("() => [...new Set([...document.querySelectorAll('header a[href^=\"/\"]')]"
                          ".map((a) => a.getAttribute('href')))]")
    urls = ["/", "/units/1", "/units/1/automates/1", *links]
    assert any(u.startswith("/meters/") for u in urls) and "/audit" in " ".join(urls), urls
    seen: dict[str, list[str]] = {}
    for url in dict.fromkeys(urls):
        page.goto(stack.url + url)
        _settle(page)
        for menu in page.locator("details.menu").all():
            menu.evaluate("(d) => { d.open = true; }")
        for text in page.evaluate(COLLECT):
            if text in USERNAMES:
                continue  # a user's name (the audit trail's "who"), not a role label
            for msgid, pattern in english:
                if pattern.fullmatch(text):
                    seen.setdefault(url, []).append(f"{text!r} (= {msgid!r})")
            # Codes (units/3, no_data, meters/<id>, ABB-SIM-UNIT) are the same in every language: not words.
            prose = " ".join(t for t in text.split() if not re.search(r"[/_<>]", t) and not t.isupper())
            words = {w.lower() for w in re.findall(r"[^\W\d_]+", prose)} & ENGLISH_WORDS
            if words:
                seen.setdefault(url, []).append(f"{text!r} (English words {sorted(words)})")
    assert seen == {}, seen


def test_choosing_a_language_in_the_menus(open_as: Callable[[str], Page], stack: Stack) -> None:
    """The header's menu changes the user's own language; the users page sets another user's."""
    stack.cli("webui", "users", "add", "paul", "--role", "viewer", "--password-stdin", "--if-missing",
              stdin=PASSWORD + "\n")
    page = open_as("john")  # English, whatever his browser asks for
    _settle(page)
    assert page.get_attribute("html", "lang") == "en"
    with page.expect_navigation():
        page.select_option("#language-select", "fr")
    _settle(page)
    assert page.get_attribute("html", "lang") == "fr" and "Vue d'ensemble" in page.locator("nav.main-nav").inner_text()
    assert page.locator("#language-select").input_value() == "fr"

    page.goto(stack.url + "/admin/users")
    _settle(page)
    select = page.locator("select.language[data-username=paul]")
    select.wait_for()
    assert select.input_value() == ""  # automatic
    select.select_option("en")
    page.wait_for_function("() => document.querySelector('#users-message').textContent.includes('paul')")
    assert page.locator("#users-message").inner_text() == "Langue de paul modifiée."
    users = page.evaluate("async () => (await Plant.api('GET', '/api/users')).items")
    assert {u["username"]: u["language"] for u in users}["paul"] == "en"
    # The same row's role select (one handler serves both): a role shown by its French name.
    page.locator("select.role[data-username=paul]").select_option("operator")
    page.wait_for_function("() => document.querySelector('#users-message').textContent.includes('opérateur')")
    assert page.locator("#users-message").inner_text() == "paul est maintenant opérateur."
    users = page.evaluate("async () => (await Plant.api('GET', '/api/users')).items")
    assert {u["username"]: u["role"] for u in users}["paul"] == "operator"
    screenshot(page, "lang-fr-users")
    with page.expect_navigation():  # back to English for the other tests of this module
        page.select_option("#language-select", "en")
