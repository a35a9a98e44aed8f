"""Browser tests: headless Debian Chromium (driven by Playwright) against the demo stack
(``python -m stack``: our Mosquitto, bridge, web UI, simulators) on a throwaway MariaDB.

Screenshots land in ``test-artifacts/browser/``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from tests.processes import REPO, Service, wait_for
from tests.servers import MariaDBServer, free_port

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# The flags Debian's Chromium needs as root in a container without a display or network.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = REPO / "test-artifacts" / "browser"
PASSWORDS = {"operator": "operator-pass-1", "viewer": "viewer-pass-1"}


@dataclass
class Stack:
    url: str
    var: Path
    database_url: str
    admin_password: str
    service: Service
    env: dict[str, str] = field(default_factory=dict)

    def cli(self, *args: str, stdin: str = "") -> str:
        proc = subprocess.run([sys.executable, "-m", *args], cwd=REPO, env={**os.environ, **self.env},
                              input=stdin, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, f"{args}: {proc.stderr}"
        return proc.stdout

    def password(self, user: str) -> str:
        return self.admin_password if user == "admin" else PASSWORDS[user]


@pytest.fixture(scope="session")
def stack(mariadb: MariaDBServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The README's demo command, pointed at MariaDB; its banner gives the demo admin's password."""
    tmp = tmp_path_factory.mktemp("browser-stack")
    var = tmp / "var"
    web_port, mqtt_port = free_port(), free_port()
    database_url = mariadb.create_database("browser")
    # Every port its own: another stack may run at once (on the other pytest-xdist worker). No bridge
    # metrics port: no browser test reads it, and a port picked free can be taken before it is bound.
    env = {"PLANT_VAR_DIR": str(var), "MQTT_PORT": str(mqtt_port), "WEBUI_PORT": str(web_port),
           "BROKER_TLS_PORT": str(free_port()), "BRIDGE_METRICS_PORT": "0",
           "DATABASE_URL": database_url, "DEVICES_FAULT_FILE": str(var / "faults.json")}
    service = Service("stack", ["stack", "--progress", "0"], env, tmp)
    try:
        wait_for(lambda: "Press Ctrl-C" in service.log(), 90, "the stack's banner", services=[service])
        match = re.search(r"Log in: +user 'admin', password '([^']+)'", service.log())
        assert match, service.log()
        stack = Stack(f"http://127.0.0.1:{web_port}", var, database_url, match.group(1), service, env)
        for user, password in PASSWORDS.items():
            stack.cli("webui", "users", "add", user, "--role", user, "--password-stdin", stdin=password + "\n")
        yield stack
    finally:
        code = service.stop(timeout=60)
    assert code == 0, service.log()[-3000:]


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (scripts/test.sh does when root)")
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def page_as(browser: Browser, stack: Stack) -> Iterator[Callable[..., Page]]:
    """``page_as("operator")``: a fresh browser context logged in through the form."""
    contexts = []

    def open_page(user: str, *, width: int = 1280, height: int = 900, locale: str | None = None,
                  password: str | None = None) -> Page:
        # locale: the browser's language (its Accept-Language); None = Chromium's, en-US.
        context = browser.new_context(viewport={"width": width, "height": height},
                                      **({"locale": locale} if locale else {}))
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        page.goto(stack.url + "/")
        assert "/login" in page.url  # not logged in yet: sent to the form
        page.fill("input[name=username]", user)
        page.fill("input[name=password]", password or stack.password(user))
        page.click("button[type=submit]")
        page.wait_for_url(stack.url + "/")
        return page

    yield open_page
    for context in contexts:
        context.close()


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path

