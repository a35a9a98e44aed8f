"""Many dashboards at once: connection time and publish -> update latency per Socket.IO client.

    .venv/bin/python -m bench.bench_dashboards [--clients 10,100,300] [--markers 20] [--spacing 1.0]
        [--transport websocket|polling] [--server run|serve] [--nginx K] [--client-processes P]
        [--push-interval S] [--url URL --token TOKEN]

The measure issue 13 ("Deployed like a product") asks the web server to be chosen by. Starts our
Mosquitto (our mosquitto.conf, users, ACL) and the web UI (``python -m webui run``: the server being
measured; ``--server serve``: gunicorn) on SQLite, or with ``--nginx K`` K ``webui serve`` processes
behind Debian's nginx with our template (HTTPS, ``least_conn``: the production layout), unless
``--url`` names a running one (then ``--token`` is an API token of a user of it). For each N of
``--clients``, in this process (or spread over ``--client-processes`` P processes: one Python
process's GIL bounds how fast hundreds of clients handshake):

1. N python-socketio clients connect with the same API token (``auth={"token": …}``) on a WebSocket,
   as the browsers do (``--transport polling``: long-polling first, then the upgrade; one process only),
   and each watches the plant (``watch {"view": "plant"}``, the overview). Timed: connect + watch acknowledged,
   per client, all clients starting at once.
2. A client logged in as ``unit-1`` publishes ``--markers`` readings of automate 1/1, ``--spacing``
   seconds apart (above the web UI's 0.5 s coalescing, so each is pushed), each with its own milk
   weight. Each dashboard's ``update`` events are timed against the publish; a marker a dashboard has
   not seen 5 s after the last publish counts as lost.

Prints, per N: connect p50 / p99 / max and the time until all N were connected (all opening at the
same instant); the connect time of 10 more dashboards opened one at a time once the N are connected
(an operator opening the page on a busy server); update p50 / p99 /
max; lost; and the ratios of N's p99 latency to the smallest N's, measured in the same run.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import socketio

from bench.bench_live import start_webui
from plantmodel import Reading, Topics
from plantmodel.layout import PlantLayout
from plantmodel.readings import utcnow
from tests.mqtt import Client
from tests.processes import REPO, Service, wait_for
from tests.servers import TEST_SERVICE_USERS, MosquittoServer, NginxServer, free_port

LATE_DASHBOARDS = 10  # opened one by one once the N are connected: the connect time under load
MILK_BASE = 3600  # inside the normal range: no alarm, only the value changes


@dataclass
class Dashboard:
    client: socketio.Client | None  # None: a dashboard of a client process (--client-processes)
    connect_ms: float = math.nan
    seen: dict[int, float] = field(default_factory=dict)  # milk weight -> received (epoch ms)
    error: str = ""


def percentile(values: list[float], p: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


def open_dashboard(url: str, token: str, transport: str) -> Dashboard:
    # HTTPS through our nginx: the development CA's certificate; this measures speed, not trust.
    client = socketio.Client(reconnection=False, ssl_verify=False)
    board = Dashboard(client)

    def on_update(data: dict[str, Any]) -> None:
        now = time.time() * 1000
        for reading in data.get("readings") or []:
            if reading.get("unit") == 1 and reading.get("automate") == 1:
                board.seen.setdefault(int(reading.get("milk_kg") or 0), now)

    client.on("update", on_update)
    start = time.perf_counter()
    try:
        transports = ["websocket"] if transport == "websocket" else ["polling", "websocket"]
        client.connect(url, auth={"token": token}, transports=transports, wait_timeout=60)
        ack = client.call("watch", {"view": "plant"}, timeout=60)
        if isinstance(ack, dict) and ack.get("error"):
            board.error = str(ack["error"])
        board.connect_ms = (time.perf_counter() - start) * 1000
    except Exception as exc:
        board.error = f"{exc.__class__.__name__}: {exc}"
    return board


def open_dashboards(url: str, token: str, transport: str, n: int) -> list[Dashboard]:
    with ThreadPoolExecutor(max_workers=min(max(n, 1), 64)) as pool:
        return list(pool.map(lambda _i: open_dashboard(url, token, transport), range(n)))


def client_process(index: int, url: str, token: str, transport: str, n: int, results: Any, close: Any) -> None:
    """One of ``--client-processes``: opens ``n`` dashboards, reports their connect times, waits for
    ``close``, then reports what each saw (a :class:`Dashboard` holds a live client: not picklable)."""
    boards = open_dashboards(url, token, transport, n)
    results.put((index, [(b.connect_ms, b.error) for b in boards]))
    close.wait()
    results.put((index, [b.seen for b in boards]))
    for b in boards:
        if b.client is not None and b.client.connected:
            b.client.disconnect()


class Remote:
    """The dashboards of ``--client-processes`` processes (spreading the clients' own CPU: one Python
    process's GIL bounds how fast 500 clients can handshake), seen through what they report."""

    def __init__(self, url: str, token: str, transport: str, n: int, processes: int) -> None:
        ctx = multiprocessing.get_context("spawn")  # no thread or socket of ours in the children
        self.results: Any = ctx.Queue()
        self.close = ctx.Event()
        shares = [k for k in (n // processes + (1 if i < n % processes else 0) for i in range(processes)) if k]
        self.procs = [ctx.Process(target=client_process, args=(i, url, token, transport, k, self.results, self.close))
                      for i, k in enumerate(shares)]
        for proc in self.procs:
            proc.start()

    def _gather(self, timeout: float) -> list[Any]:
        by_index = dict(self.results.get(timeout=timeout) for _ in self.procs)
        return [item for i in sorted(by_index) for item in by_index[i]]

    def connected(self) -> list[Dashboard]:
        return [Dashboard(None, ms, {}, error) for ms, error in self._gather(600)]

    def seen(self, boards: list[Dashboard]) -> list[Dashboard]:
        """``boards`` (from :meth:`connected`, same order) with what each saw."""
        self.close.set()
        seen = self._gather(120)
        for proc in self.procs:
            proc.join(60)
        return [Dashboard(None, b.connect_ms, s, b.error) for b, s in zip(boards, seen, strict=True)]


def run(url: str, token: str, broker: MosquittoServer, n: int, markers: int, spacing: float,
        transport: str, first_seq: int, processes: int = 0) -> dict[str, Any]:
    print(f"  {n} dashboards: connecting…", flush=True)
    started = time.perf_counter()
    remote = Remote(url, token, transport, n, processes) if processes else None
    boards = remote.connected() if remote else open_dashboards(url, token, transport, n)
    all_connected_s = time.perf_counter() - started
    failed = [b for b in boards if b.error]
    if failed:
        print(f"    {len(failed)} failed to connect, e.g. {failed[0].error}", flush=True)
    # A dashboard opened while the N are connected, one at a time (an operator opening the page on a
    # busy server, rather than N opening at the same instant).
    late = [open_dashboard(url, token, transport) for _ in range(LATE_DASHBOARDS)]
    for board in late:
        if board.client is not None and board.client.connected:
            board.client.disconnect()
    late_ms = [b.connect_ms for b in late if not b.error]
    unit = Client(broker, "unit-1")
    topics = Topics()
    sent: dict[int, float] = {}
    try:
        time.sleep(1.0)  # every snapshot delivered before the first marker
        for i in range(markers):
            milk = MILK_BASE + first_seq % 900 + i
            reading = Reading(1, 1, PlantLayout.automate_type(1, 1), first_seq + i, utcnow(), 3.4, 11.2, milk, 35,
                              7.0, 41, 1.3, 22, 40, 31)
            sent[milk] = time.time() * 1000
            unit.client.publish(topics.reading(1, 1), reading.to_json(), qos=1)
            time.sleep(spacing)
        time.sleep(5.0)
    finally:
        unit.close()
    if remote is not None:
        boards = remote.seen(boards)
    latencies, lost = [], 0
    for board in boards:
        if board.error:
            continue
        for milk, at in sent.items():
            if milk in board.seen:
                latencies.append(board.seen[milk] - at)
            else:
                lost += 1
    closing = threading.Thread(target=lambda: [b.client.disconnect() for b in boards
                                               if b.client is not None and b.client.connected])
    closing.start()
    closing.join(60)
    connects = [b.connect_ms for b in boards if not b.error]
    return {"n": n, "failed": len(failed), "connect_p50": percentile(connects, 50),
            "connect_p99": percentile(connects, 99), "connect_max": max(connects, default=math.nan),
            "all_connected_s": all_connected_s, "p50": percentile(latencies, 50), "p99": percentile(latencies, 99),
            "max": max(latencies, default=math.nan), "lost": lost, "expected": (n - len(failed)) * markers,
            "late_p50": percentile(late_ms, 50), "late_max": max(late_ms, default=math.nan)}


def start_behind_nginx(broker: MosquittoServer, tmp: Path, k: int,
                       push_interval: float) -> tuple[list[Service], NginxServer, str]:
    """K `webui serve` processes on one SQLite database, each its own MQTT user, behind nginx."""
    if k > TEST_SERVICE_USERS.webuis:
        raise SystemExit(f"--nginx: at most {TEST_SERVICE_USERS.webuis} web UI processes (the broker's web UI users)")
    first, url, env = start_webui(broker, tmp, push_interval, "dashboards-1", "serve",
                                  extra={"WEBUI_HTTPS": "1", "WEBUI_TRUSTED_PROXIES": "1"})
    webs = [first]
    ports = [int(url.rsplit(":", 1)[1])]
    for i, user in enumerate(TEST_SERVICE_USERS.webui_users()[1:k], 2):
        port = free_port()
        webs.append(Service(f"webui-dashboards-{i}", ["webui", "serve", "--port", str(port)],
                            {**env, "MQTT_USERNAME": user}, tmp))
        ports.append(port)
    for web in webs:
        wait_for(lambda web=web: "MQTT connected" in web.log(), 30, web.name, services=webs)
    nginx = NginxServer(tmp / "nginx", ports, broker.tls_files)
    nginx.start()
    return webs, nginx, api_token(env)


def api_token(env: dict[str, str]) -> str:
    out = subprocess.run([sys.executable, "-m", "webui", "users", "token", "bench"], cwd=REPO,
                         env={**os.environ, **env}, capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", default="10,100,300", help="comma-separated dashboard counts (default 10,100,300)")
    parser.add_argument("--markers", type=int, default=20, help="readings timed per count (default 20)")
    parser.add_argument("--spacing", type=float, default=1.0, help="seconds between two markers (default 1.0)")
    parser.add_argument("--transport", choices=("websocket", "polling"), default="websocket",
                        help="websocket: as the browsers (default); polling: long-polling first, then the upgrade")
    parser.add_argument("--nginx", type=int, default=0, metavar="K",
                        help="K `webui serve` processes behind nginx (HTTPS, least_conn); 0: no nginx (default)")
    parser.add_argument("--push-interval", type=float, default=0.5,
                        help="the web UI's WEBUI_PUSH_INTERVAL, its coalescing window (default 0.5 s, its own default)")
    parser.add_argument("--client-processes", type=int, default=0, metavar="P",
                        help="spread the dashboards over P client processes (0: all in this one, default)")
    parser.add_argument("--server", choices=("run", "serve"), default="run",
                        help="the web UI started: run (development server, default) or serve (gunicorn)")
    parser.add_argument("--url", help="a running web UI (e.g. behind nginx) instead of starting one")
    parser.add_argument("--token", help="with --url: an API token of one of its users")
    args = parser.parse_args()
    counts = [int(c) for c in args.clients.split(",") if c.strip()]
    if args.url and not args.token:
        parser.error("--url needs --token")
    results = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        broker = MosquittoServer(tmp / "broker", PlantLayout())
        broker.start()
        web = None
        nginx: NginxServer | None = None
        webs: list[Service] = []
        try:
            if args.url:
                url, token = args.url, args.token
            elif args.nginx:
                webs, nginx, token = start_behind_nginx(broker, tmp, args.nginx, args.push_interval)
                url = nginx.https
            else:
                web, url, env = start_webui(broker, tmp, args.push_interval, "dashboards", args.server)
                token = api_token(env)
            server = "given" if args.url else f"{args.nginx} x webui serve behind nginx" if args.nginx else \
                f"webui {args.server}"
            print(f"Web UI {url} ({server}), transport {args.transport}, "
                  f"{args.markers} markers {args.spacing:g} s apart:",
                  flush=True)
            for k, n in enumerate(counts):
                results.append(run(url, token, broker, n, args.markers, args.spacing, args.transport,
                                   first_seq=100_000 + 1000 * k, processes=args.client_processes))
                r = results[-1]
                print(f"    connect p50 {r['connect_p50']:.0f} ms, p99 {r['connect_p99']:.0f} ms, all in "
                      f"{r['all_connected_s']:.1f} s; update p50 {r['p50']:.0f} ms, p99 {r['p99']:.0f} ms; "
                      f"lost {r['lost']} of {r['expected']}", flush=True)
        finally:
            if web is not None:
                web.stop()
            if nginx is not None:
                nginx.stop()
            for w in webs:
                w.stop()
            broker.stop()
    print()
    print("| dashboards | failed | connect p50 | connect p99 | connect max | all connected | one more, p50 / max | "
          "update p50 | update p99 | update max | lost |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(f"| {r['n']} | {r['failed']} | {r['connect_p50']:.0f} ms | {r['connect_p99']:.0f} ms | "
              f"{r['connect_max']:.0f} ms | {r['all_connected_s']:.1f} s | "
              f"{r['late_p50']:.0f} / {r['late_max']:.0f} ms | "
              f"{r['p50']:.0f} ms | {r['p99']:.0f} ms | {r['max']:.0f} ms | {r['lost']} / {r['expected']} |")
    base = results[0]
    for r in results[1:]:
        print(f"-> {r['n']} dashboards: update p99 {r['p99'] / base['p99']:.2f}x, connect p99 "
              f"{r['connect_p99'] / base['connect_p99']:.2f}x the {base['n']} dashboards' (same run)")
    print(f"Command: {' '.join([os.path.basename(sys.executable), '-m', 'bench.bench_dashboards', *sys.argv[1:]])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
