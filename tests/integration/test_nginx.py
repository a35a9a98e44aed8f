"""The web UI behind Debian's nginx with our ``deploy/nginx/webui.conf.template``, for real on loopback:
``nginx -t``, HTTP redirected to HTTPS, a log-in over HTTPS (certificate checked against the
development CA), the security headers through the proxy, static files served by nginx itself, and
a live Socket.IO update through it on a WebSocket."""

from __future__ import annotations

import os
import re
import shutil
import string
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import socketio

from plantmodel import Reading, Topics
from plantmodel.layout import PlantLayout
from plantmodel.readings import utcnow
from store.db import create_db_engine, init_schema, make_sessionmaker
from tests.mqtt import Client
from tests.processes import REPO, Service, wait_for
from tests.servers import MosquittoServer, free_port, wait_port
from tests.webapp import add_user, token_for

pytestmark = pytest.mark.integration

TEMPLATE = REPO / "deploy" / "nginx" / "webui.conf.template"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
PASSWORD = "proxy-pass-1"


@dataclass
class Proxied:
    https: str
    http: str
    ca: str
    token: str
    broker: MosquittoServer


def render(values: dict[str, str]) -> str:
    """The template as the nginx image renders it (envsubst of the given variables only: nginx's own
    ``$host``, ``$http_upgrade``... stay)."""
    return string.Template(TEMPLATE.read_text(encoding="utf-8")).safe_substitute(values)


def main_conf(prefix: Path, server_block: Path) -> str:
    # As root, nginx's workers would run as www-data, which cannot enter pytest's 0700 folders (the
    # static files, a checkout made by mktemp): the test's workers stay root. Deployed, the image's
    # nginx user reads the files it is given.
    user = "user root;\n" if os.geteuid() == 0 else ""
    return (f"daemon off;\n{user}pid {prefix}/nginx.pid;\nerror_log {prefix}/error.log warn;\n"
            "worker_processes 1;\nevents { worker_connections 1024; }\n"
            f"http {{\n  include /etc/nginx/mime.types;\n  access_log {prefix}/access.log;\n"
            f"  client_body_temp_path {prefix}/body;\n  proxy_temp_path {prefix}/proxy;\n"
            f"  fastcgi_temp_path {prefix}/fastcgi;\n  uwsgi_temp_path {prefix}/uwsgi;\n"
            f"  scgi_temp_path {prefix}/scgi;\n  include {server_block};\n}}\n")


@pytest.fixture(scope="module")
def proxied(mosquitto: MosquittoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxied]:
    tmp = tmp_path_factory.mktemp("nginx")
    db = tmp / "plant.db"
    engine = create_db_engine(f"sqlite:///{db}")
    init_schema(engine)
    sessions = make_sessionmaker(engine)
    add_user(sessions, "proxied", "viewer", PASSWORD)
    token = token_for(sessions, "proxied")
    engine.dispose()
    web_port, http_port, https_port = free_port(), free_port(), free_port()
    env = {**mosquitto.env(), "DATABASE_URL": f"sqlite:///{db}", "WEBUI_HTTPS": "1", "WEBUI_PUSH_INTERVAL": "0",
           "WEBUI_TRUSTED_PROXIES": "1"}
    web = Service("webui", ["webui", "serve", "--port", str(web_port)], env, tmp)
    prefix = tmp / "nginx"
    prefix.mkdir()
    tls = mosquitto.tls_files
    block = prefix / "webui.conf"
    block.write_text(render({"WEBUI_UPSTREAM": f"127.0.0.1:{web_port}", "NGINX_HTTP_PORT": str(http_port),
                             "NGINX_HTTPS_PORT": str(https_port), "TLS_CERT": str(tls.server_cert),
                             "TLS_KEY": str(tls.server_key), "STATIC_DIR": str(REPO / "webui" / "static")}))
    conf = prefix / "nginx.conf"
    conf.write_text(main_conf(prefix, block))
    check = subprocess.run([NGINX, "-t", "-c", str(conf), "-p", str(prefix)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(prefix)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)
    try:
        wait_port(https_port, 10, proc)
        wait_for(lambda: "MQTT connected" in web.log(), 30, "the web UI", services=[web])
        yield Proxied(f"https://127.0.0.1:{https_port}", f"http://127.0.0.1:{http_port}", str(tls.ca_cert), token,
                      mosquitto)
    finally:
        proc.terminate()
        proc.wait(10)
        assert web.stop() == 0, web.log()[-2000:]


def test_http_is_redirected_to_https(proxied: Proxied) -> None:
    resp = requests.get(proxied.http + "/alarms?x=1", allow_redirects=False, timeout=10)
    assert resp.status_code == 301
    assert resp.headers["Location"] == proxied.https + "/alarms?x=1"


def test_log_in_over_https_with_the_security_headers(proxied: Proxied) -> None:
    http = requests.Session()
    http.trust_env = False  # REQUESTS_CA_BUNDLE would override the CA below
    http.verify = proxied.ca  # the development CA: the certificate's names are checked
    page = http.get(proxied.https + "/login", timeout=10)
    assert page.status_code == 200
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf
    resp = http.post(proxied.https + "/login", data={"username": "proxied", "password": PASSWORD,
                                                    "csrf_token": csrf.group(1)}, allow_redirects=False, timeout=10)
    assert resp.status_code == 302, resp.text[:300]
    assert "Secure" in resp.headers["Set-Cookie"] and "HttpOnly" in resp.headers["Set-Cookie"]
    home = http.get(proxied.https + "/", timeout=10)
    assert home.status_code == 200 and 'id="page-config"' in home.text
    for header in ("Content-Security-Policy", "X-Frame-Options", "Strict-Transport-Security",
                   "X-Content-Type-Options"):
        assert header in home.headers, header
    assert home.headers.get("Server") == "nginx"  # server_tokens off: no version


def test_static_files_are_served_by_nginx(proxied: Proxied) -> None:
    resp = requests.get(proxied.https + "/static/common.js", verify=proxied.ca, timeout=10)
    assert resp.status_code == 200 and "window.Plant" in resp.text
    # nginx's own answer: its cache header, none of the web UI's page headers
    assert "max-age=3600" in resp.headers.get("Cache-Control", "")
    assert "Content-Security-Policy" not in resp.headers


def test_a_body_over_the_limit_is_refused_by_nginx(proxied: Proxied) -> None:
    resp = requests.post(proxied.https + "/api/thresholds", data=b"x" * (2 * 1024 * 1024), verify=proxied.ca,
                         headers={"Authorization": f"Bearer {proxied.token}"}, timeout=10)
    assert resp.status_code == 413


def test_a_live_update_arrives_through_nginx_on_a_websocket(proxied: Proxied) -> None:
    http = requests.Session()
    http.trust_env = False
    http.verify = proxied.ca
    client = socketio.Client(http_session=http, ssl_verify=False, reconnection=False)
    seen: list[dict[str, Any]] = []
    got = threading.Event()

    def on_update(data: dict[str, Any]) -> None:
        for reading in data.get("readings") or []:
            if reading.get("milk_kg") == 3777:
                seen.append(reading)
                got.set()

    client.on("update", on_update)
    client.connect(proxied.https, auth={"token": proxied.token}, wait_timeout=20)
    try:
        ack = client.call("watch", {"view": "plant"}, timeout=20)
        assert not (isinstance(ack, dict) and ack.get("error")), ack
        deadline = time.monotonic() + 10
        while client.transport() != "websocket" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.transport() == "websocket"  # upgraded through the proxy
        unit = Client(proxied.broker, "unit-1")
        try:
            reading = Reading(1, 1, PlantLayout.automate_type(1, 1), 500_001, utcnow(), 3.4, 11.2, 3777, 35, 7.0,
                              41, 1.3, 22, 40, 31)
            unit.client.publish(Topics().reading(1, 1), reading.to_json(), qos=1)
            assert got.wait(15), "no update through nginx"
        finally:
            unit.close()
    finally:
        client.disconnect()
    assert seen[0]["unit"] == 1 and seen[0]["automate"] == 1
