"""Socket.IO connections opened and closed at a high rate: how many fail, with and without nginx.

    .venv/bin/python -m bench.bench_socket_churn [--cycles 300] [--parallel 8] [--server serve|run]

Reproduces the connection resets seen through nginx (README "Dashboard"): each of ``--parallel``
threads opens a WebSocket client (API token), asks to watch the plant, and closes, ``--cycles``
times in all, first directly against one web UI (plain HTTP), then through our nginx template in
front of the same kind of web UI (HTTPS). Prints the failures of each, with the first reasons, and
nginx's error log lines about upstream resets.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import socketio

from bench.bench_dashboards import api_token
from bench.bench_live import start_webui
from plantmodel.layout import PlantLayout
from tests.servers import MosquittoServer, NginxServer


def churn(url: str, token: str, cycles: int, parallel: int) -> tuple[list[str], float]:
    failures: list[str] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        client = socketio.Client(reconnection=False, ssl_verify=False)  # the development CA
        try:
            client.connect(url, auth={"token": token}, transports=["websocket"], wait_timeout=5)
            client.call("watch", {"view": "plant"}, timeout=5)
        except Exception as exc:  # what failed is the measure
            with lock:
                failures.append(f"#{i}: {exc.__class__.__name__} {exc}".strip())
        finally:
            client.disconnect()

    def worker(k: int) -> None:
        for i in range(k, cycles, parallel):
            one(i)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(parallel)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return failures, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=300, help="connections opened and closed (default 300)")
    parser.add_argument("--parallel", type=int, default=8, help="at the same time (default 8)")
    parser.add_argument("--server", choices=("serve", "run"), default="serve", help="the web UI's server (serve)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        broker = MosquittoServer(tmp / "broker", PlantLayout())
        broker.start()
        web, url, env = start_webui(broker, tmp, 0.5, "churn", args.server,
                                    extra={"WEBUI_HTTPS": "1", "WEBUI_TRUSTED_PROXIES": "1"})
        nginx = NginxServer(tmp / "nginx", [int(url.rsplit(":", 1)[1])], broker.tls_files)
        try:
            token = api_token(env)
            nginx.start()
            for name, target in (("direct (plain HTTP)", url), ("through nginx (HTTPS)", nginx.https)):
                print(f"{name}: {args.cycles} connections, {args.parallel} at a time…", flush=True)
                failures, seconds = churn(target, token, args.cycles, args.parallel)
                print(f"  {len(failures)} failed of {args.cycles} in {seconds:.1f} s "
                      f"({100 * len(failures) / args.cycles:.1f} %){': ' if failures else ''}"
                      + "; ".join(failures[:3]), flush=True)
            resets = [line for line in (nginx.directory / "error.log").read_text().splitlines()
                      if "reset by peer" in line and "upgraded" in line]
            print(f"nginx: {len(resets)} 'connection reset by peer while proxying upgraded connection' lines")
        finally:
            nginx.stop()
            web.stop()
            broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
