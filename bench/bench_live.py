"""Live push to the browser: publish -> shown latency, and bytes pushed per minute.

    .venv/bin/python -m bench.bench_live [--samples 100] [--minutes 1]

Starts our Mosquitto (our mosquitto.conf, users, ACL), the web UI on SQLite and headless Chromium
(Debian's /usr/bin/chromium) logged in through the form.

1. Latency. The browser shows the plant overview. A client logged in as ``unit-1`` publishes
   ``--samples`` readings of automate 1/1, one at a time, each with a distinct milk weight; a
   MutationObserver in the page records when the automate's cell shows that value. Measured with
   WEBUI_PUSH_INTERVAL=0 (baseline: every message pushed at once) and with the default 0.5 s
   coalescing; prints median and worst of each, and the ratio. Then ``--alarms`` out-of-range
   readings, each timed until the cell shows the alarm (bridge included), each cleared after.
2. Bytes. The simulators run at the real rate (a report per automate every 60 s, meters every
   second). One browser watches one unit (/units/1), another the whole plant (baseline). The
   WebSocket frames each receives are summed for ``--minutes``; prints bytes per minute and the ratio.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

from plantmodel import Reading, Topics
from plantmodel.layout import PlantLayout
from plantmodel.readings import utcnow
from tests.mqtt import Client
from tests.processes import REPO, Service, wait_for
from tests.servers import MosquittoServer, free_port

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PASSWORD = "bench-password-1"
CELL = '[data-source="units/1/automates/1"]'

OBSERVE = """() => {
  window.__seen = {};
  const watch = () => {
    const cell = document.querySelector('CELL [data-measure="milk_kg"]');
    if (cell) window.__seen[cell.textContent.replace(/[^0-9.]/g, '')] = Date.now();
  };
  new MutationObserver(watch).observe(document.body, {childList: true, characterData: true, subtree: true});
}""".replace("CELL", CELL)


def start_webui(broker: MosquittoServer, tmp: Path, push_interval: float,
                name: str, command: str = "run", extra: dict[str, str] | None = None,
                ) -> tuple[Service, str, dict[str, str]]:
    db = tmp / f"plant-{name}.db"
    env = {**broker.env(), "DATABASE_URL": f"sqlite:///{db}", "WEBUI_PUSH_INTERVAL": str(push_interval),
           **(extra or {})}
    subprocess.run([sys.executable, "-m", "webui", "users", "add", "bench", "--role", "viewer", "--password-stdin"],
                   cwd=REPO, env={**os.environ, **env}, input=PASSWORD + "\n", text=True, check=True,
                   capture_output=True)
    port = free_port()
    web = Service(f"webui-{name}", ["webui", command, "--port", str(port)], env, tmp)
    wait_for(lambda: "MQTT connected" in web.log(), 30, "the web UI", services=[web])
    return web, f"http://127.0.0.1:{port}", env


def login(browser: Browser, url: str, path: str) -> Page:
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(url + "/login")
    page.fill("input[name=username]", "bench")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(url + "/")
    if path != "/":
        page.goto(url + path)
    page.wait_for_timeout(1500)  # connected, watching, snapshot drawn
    return page


def latency(browser: Browser, broker: MosquittoServer, tmp: Path, push_interval: float, samples: int) -> list[float]:
    web, url, _ = start_webui(broker, tmp, push_interval, f"latency-{push_interval:g}")
    unit = Client(broker, "unit-1")
    topics = Topics()
    try:
        page = login(browser, url, "/")
        page.evaluate(OBSERVE)
        out = []
        rng = random.Random(7)
        for i in range(samples):
            milk = 3600 + i  # inside the normal range: no alarm, only the value changes
            reading = Reading(1, 1, PlantLayout.automate_type(1, 1), 10_000 + i, utcnow(), 3.4, 11.2, milk, 35,
                              7.0, 41, 1.3, 22, 40, 31)
            sent = time.time() * 1000
            unit.client.publish(topics.reading(1, 1), reading.to_json(), qos=1)
            deadline = time.monotonic() + 10
            seen = None
            while seen is None and time.monotonic() < deadline:
                seen = page.evaluate(f"() => window.__seen['{milk}']")
                if seen is None:
                    time.sleep(0.01)
            if seen is None:
                raise SystemExit(f"reading {i} (milk {milk}) never shown; see {web.log_path}")
            out.append(seen - sent)
            # A random pause, so publications fall anywhere in the coalescing interval.
            time.sleep(rng.uniform(0.2, 0.8))
        page.context.close()
        return out
    finally:
        unit.close()
        web.stop()


def alarm_latency(browser: Browser, broker: MosquittoServer, tmp: Path, samples: int) -> list[float]:
    """Out-of-range reading published -> the automate's cell shows the alarm (through the bridge:
    threshold check, commit, alarm published, web UI, browser). Each sample raises and clears."""
    web, url, env = start_webui(broker, tmp, 0.5, "alarms")
    bridge = Service("bridge-alarms", ["bridge", "run"], {**env, "MQTT_USERNAME": broker.bridge_user()}, tmp)
    unit = Client(broker, "unit-1")
    cell = f"document.querySelector('{CELL}')"
    try:
        wait_for(lambda: "connected to" in bridge.log(), 30, "the bridge", services=[bridge])
        page = login(browser, url, "/")
        out = []
        for i in range(2 * samples):
            raise_it = i % 2 == 0  # 4.6 °C is above the tank's 4.0 limit; 3.0 clears it (deadband 0.2)
            reading = Reading(1, 1, PlantLayout.automate_type(1, 1), 20_000 + i, utcnow(), 4.6 if raise_it else 3.0,
                              11.2, 4000, 35, 7.0, 41, 1.3, 22, 40, 31)
            sent = time.time() * 1000
            unit.client.publish(Topics().reading(1, 1), reading.to_json(), qos=1)
            want = "alarm" if raise_it else "normal"
            page.wait_for_function(f"() => {cell} && {cell}.dataset.state === '{want}'", timeout=10_000,
                                   polling="raf")
            if raise_it:
                out.append(time.time() * 1000 - sent)
            time.sleep(0.3)
        page.context.close()
        return out
    finally:
        unit.close()
        bridge.stop()
        web.stop()


def bytes_per_minute(browser: Browser, broker: MosquittoServer, tmp: Path, minutes: float) -> dict[str, float]:
    web, url, env = start_webui(broker, tmp, 0.5, "bytes")
    # The bridge stores what the unit page starts from (a unit that never reported is a 404 page).
    # Its own bridge user, so its own persistent session (not the alarm run's).
    bridge = Service("bridge", ["bridge", "run"], {**env, "MQTT_USERNAME": broker.bridge_user()}, tmp)
    devices = Service("devices", ["devices", "run"], broker.env(), tmp)  # real rate: 60 s, meters 1 s
    try:
        probe = login(browser, url, "/")
        wait_for(lambda: probe.request.get(url + "/api/units/1").status == 200, 120, "unit 1 in the database",
                 services=[web, bridge, devices])
        probe.context.close()
        totals = {"one unit (/units/1)": 0, "whole plant (/)": 0}
        pages = {}
        for name, path in (("one unit (/units/1)", "/units/1"), ("whole plant (/)", "/")):
            page = login(browser, url, path)
            pages[name] = page

            def on_ws(ws, name=name) -> None:  # type: ignore[no-untyped-def]
                ws.on("framereceived", lambda payload: totals.__setitem__(
                    name, totals[name] + len(payload if isinstance(payload, bytes) else payload.encode())))

            # Reload so the handler sees the socket from its start, then let the snapshot pass.
            page.on("websocket", on_ws)
            page.reload()
            page.wait_for_timeout(3000)
        for name in totals:
            totals[name] = 0
        t0 = time.monotonic()
        end = t0 + minutes * 60
        while time.monotonic() < end:
            for page in pages.values():
                page.wait_for_timeout(250)  # lets Playwright deliver the frame events
        elapsed_min = (time.monotonic() - t0) / 60
        return {name: total / elapsed_min for name, total in totals.items()}
    finally:
        devices.stop()
        bridge.stop()
        web.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=100, help="readings timed per configuration")
    parser.add_argument("--alarms", type=int, default=20, help="alarms raised (and cleared) for their latency")
    parser.add_argument("--minutes", type=float, default=1.0, help="how long the bytes are counted")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name, sync_playwright() as pw:
        tmp = Path(tmp_name)
        broker = MosquittoServer(tmp / "broker", PlantLayout())
        broker.start()
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            print(f"Publish -> shown in the browser, {args.samples} readings each:", flush=True)
            results = {}
            for interval in (0.0, 0.5):
                ms = latency(browser, broker, tmp, interval, args.samples)
                results[interval] = ms
                print(f"  WEBUI_PUSH_INTERVAL={interval:<4g} median {statistics.median(ms):6.0f} ms, "
                      f"worst {max(ms):6.0f} ms, best {min(ms):4.0f} ms", flush=True)
            print(f"  -> coalescing (0.5 s) multiplies the median latency by "
                  f"{statistics.median(results[0.5]) / statistics.median(results[0.0]):.0f}x against pushing every "
                  "message at once; it bounds what a busy plant sends a browser", flush=True)
            alarms = alarm_latency(browser, broker, tmp, args.alarms)
            print(f"Out-of-range reading published -> alarm shown (via the bridge), {args.alarms} alarms: "
                  f"median {statistics.median(alarms):.0f} ms, worst {max(alarms):.0f} ms", flush=True)
            print(f"Bytes pushed per minute (simulators at the real rate, {args.minutes:g} min):", flush=True)
            rates = bytes_per_minute(browser, broker, tmp, args.minutes)
            for name, rate in rates.items():
                print(f"  {name:22} {rate:9.0f} bytes/min", flush=True)
            unit, plant = rates["one unit (/units/1)"], rates["whole plant (/)"]
            print(f"  -> a browser on one unit receives {unit / plant:.2f}x what the plant view receives", flush=True)
        finally:
            browser.close()
            broker.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
