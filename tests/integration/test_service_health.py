"""Health that means something, for real: a real bridge, web UI and notifier on our mosquitto.conf.

- ``python -m bridge health`` (the compose health check) answers from the running bridge's
  /healthz: healthy while broker and database answer and messages get committed; unhealthy when
  the broker is gone, or when a received message waits for its commit longer than
  ``BRIDGE_MAX_INGEST_LAG`` (the database locked by another writer).
- The web UI's /healthz says 503 while it has lost the broker (it said 200 before).
- ``GET /api/health`` (the services page) lists the web UI, each reporting bridge and the
  notifier; a SIGKILLed bridge's report goes stale.
- ``python -m notifier health`` reads what the running notifier writes after each poll.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from plantmodel import Reading, Topics
from plantmodel.layout import PlantLayout
from plantmodel.readings import utcnow
from plantmodel.servicehealth import probe
from tests.mqtt import Client
from tests.processes import REPO, Service, wait_for
from tests.servers import MosquittoServer, free_port, wait_port
from tests.webapp import add_user, new_database, token_for

pytestmark = pytest.mark.integration


def run_health(module: str, env: dict[str, str]) -> tuple[int, dict[str, Any] | str]:
    done = subprocess.run([sys.executable, "-m", module, "health", "--timeout" if module == "bridge" else "--max-age",
                           "5" if module == "bridge" else "60"], cwd=REPO, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=30)
    try:
        return done.returncode, json.loads(done.stdout)
    except json.JSONDecodeError:
        return done.returncode, done.stdout + done.stderr


def bridge_health(port: int) -> tuple[int, dict[str, Any]]:
    """What ``python -m bridge health`` reads (:func:`probe`), in-process: quicker to poll."""
    code, text = probe(f"http://127.0.0.1:{port}/healthz", 5)
    try:
        return code, json.loads(text)
    except json.JSONDecodeError:
        return code, {"error": text}


def publish_reading(broker: MosquittoServer, seq: int) -> None:
    unit = Client(broker, "unit-1")
    try:
        unit.publish(Topics().reading(1, 1), Reading(1, 1, PlantLayout.automate_type(1, 1), seq, utcnow(), 3.4, 11.2,
                                                     3777, 35, 7.0, 41, 1.3, 22, 40, 31).to_json())
    finally:
        unit.close()


def test_each_service_reports_its_dependencies(tmp_path: Path) -> None:
    broker = MosquittoServer(tmp_path / "broker", PlantLayout(units=1, automates=1, meters=()), tls=False)
    broker.start()
    db = tmp_path / "plant.db"
    make_session = new_database(db)
    add_user(make_session, "boss", "admin", "admin-pass-12")
    token = token_for(make_session, "boss")
    web_port, metrics_port = free_port(), free_port()
    env = {**broker.env(), "DATABASE_URL": f"sqlite:///{db}"}
    bridge_env = {**env, "MQTT_USERNAME": broker.bridge_user(), "BRIDGE_METRICS_PORT": str(metrics_port),
                  "BRIDGE_HEALTH_REPORT": "0.5", "BRIDGE_MAX_INGEST_LAG": "2", "BRIDGE_BATCH_WAIT": "0.01"}
    notifier_env = {"DATABASE_URL": f"sqlite:///{db}", "NOTIFY_HEALTH_FILE": str(tmp_path / "notifier.json"),
                    "NOTIFY_POLL_S": "0.5"}
    services: list[Service] = []
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token}"
    base = f"http://127.0.0.1:{web_port}"

    def services_by_kind() -> dict[str, dict[str, Any]]:
        data = http.get(base + "/api/health", timeout=10).json()
        return {s["service"]: s for s in data["services"]}

    try:
        bridge = Service("bridge", ["bridge", "run"], bridge_env, tmp_path)
        web = Service("webui", ["webui", "run", "--port", str(web_port)], env, tmp_path)
        notifier = Service("notifier", ["notifier"], notifier_env, tmp_path)
        services += [bridge, web, notifier]
        wait_for(lambda: "connected to" in bridge.log(), 20, "the bridge", services=services)
        wait_port(web_port, 20, web.proc)
        wait_for(lambda: requests.get(base + "/healthz", timeout=5).status_code == 200, 20, "the web UI healthy",
                 services=services)

        code, body = run_health("bridge", bridge_env)
        assert code == 0, body
        assert isinstance(body, dict) and body["ok"] is True
        assert {k: c["ok"] for k, c in body["checks"].items()} == {"broker": True, "database": True, "ingest": True}
        assert body["instance"] == bridge_env["MQTT_USERNAME"]

        # The services page: the web UI itself, the bridge's retained report, the notifier's outbox.
        wait_for(lambda: "bridge" in services_by_kind(), 10, "the bridge's report in /api/health", services=services)
        seen = services_by_kind()
        assert seen["bridge"]["ok"] is True and seen["bridge"]["stale"] is False
        assert seen["webui"]["ok"] is True and seen["notifier"]["ok"] is True
        wait_for(lambda: (tmp_path / "notifier.json").exists(), 10, "the notifier's health file", services=services)
        code, text = run_health("notifier", notifier_env)
        assert code == 0, text

        # A reading is committed: the last commit's age becomes known.
        publish_reading(broker, 1)
        wait_for(lambda: bridge_health(metrics_port)[1]["values"]["last_commit_age_s"] is not None, 10,
                 "a commit in the bridge's health")

        # The database locked by another writer: the next message waits for its commit, past the limit.
        lock = sqlite3.connect(db, timeout=1)
        lock.execute("BEGIN IMMEDIATE")
        try:
            publish_reading(broker, 2)
            wait_for(lambda: bridge_health(metrics_port)[0] == 1, 15, "the ingest lag to make the bridge unhealthy")
            code, body = run_health("bridge", bridge_env)  # the command itself, as compose runs it
            assert code == 1 and isinstance(body, dict) and body["checks"]["ingest"]["ok"] is False, body
            assert body["checks"]["database"]["ok"] is True  # it answers; it just does not commit
            assert body["values"]["ingest_lag_s"] > 2
        finally:
            lock.rollback()
            lock.close()
        wait_for(lambda: bridge_health(metrics_port)[0] == 0, 15, "the bridge healthy once it committed")

        # The broker gone: both say so (the web UI said 200 before).
        broker.stop()
        wait_for(lambda: requests.get(base + "/healthz", timeout=5).status_code == 503, 15, "the web UI's 503")
        assert requests.get(base + "/healthz", timeout=5).json()["mqtt"] is False
        wait_for(lambda: bridge_health(metrics_port)[0] == 1, 15, "the bridge unhealthy without its broker")
        code, body = bridge_health(metrics_port)
        assert body["checks"]["broker"]["ok"] is False, body
        broker.start()
        wait_for(lambda: requests.get(base + "/healthz", timeout=5).status_code == 200, 30, "the web UI back",
                 services=services)
        wait_for(lambda: bridge_health(metrics_port)[0] == 0, 30, "the bridge back", services=services)

        # A SIGKILLed bridge leaves its last report: it goes stale on the services page.
        bridge.kill()
        wait_for(lambda: services_by_kind()["bridge"]["stale"] is True, 10, "the killed bridge's report stale")
        assert services_by_kind()["bridge"]["ok"] is False
        assert run_health("bridge", bridge_env)[0] == 1  # nothing answers on its port
    finally:
        for service in reversed(services):
            service.stop()
        broker.stop()
