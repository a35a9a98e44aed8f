"""A dead bridge is visible: its last will reaches the web UI's health (Socket.IO ``health`` event,
the header badge), and its return clears it. Real parts: our mosquitto.conf and ACL, a real
``python -m bridge run`` killed with SIGKILL, a real ``python -m webui run``, a Socket.IO client."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import socketio

from plantmodel.layout import PlantLayout
from tests.processes import Service, wait_for
from tests.servers import MosquittoServer, free_port, wait_port
from tests.webapp import add_user, new_database, token_for
from webui.live import BRIDGE_DOWN

pytestmark = pytest.mark.integration


def test_a_killed_bridge_turns_the_health_red_within_seconds_and_its_return_green(tmp_path: Path) -> None:
    broker = MosquittoServer(tmp_path / "broker", PlantLayout(units=1, automates=1, meters=()), tls=False)
    broker.start()
    db = tmp_path / "plant.db"
    make_session = new_database(db)
    add_user(make_session, "viewer", "viewer", "viewer-pass-1")
    token = token_for(make_session, "viewer")
    port = free_port()
    env = {**broker.env(), "DATABASE_URL": f"sqlite:///{db}"}
    bridge_env = {**env, "MQTT_USERNAME": broker.bridge_user()}  # the web UI reads MQTT_USERNAME too
    services: list[Service] = []
    health: list[dict[str, Any]] = []
    lock = threading.Lock()
    client = socketio.Client()

    def on_health(data: dict[str, Any]) -> None:
        with lock:
            health.append(data)

    def latest() -> dict[str, Any]:
        with lock:
            return health[-1] if health else {}

    client.on("health", on_health)
    try:
        bridge = Service("bridge", ["bridge", "run"], bridge_env, tmp_path)
        services.append(bridge)
        web = Service("webui", ["webui", "run", "--port", str(port)], {**env, "WEBUI_PORT": str(port)}, tmp_path)
        services.append(web)
        wait_for(lambda: "connected to" in bridge.log(), 20, "the bridge", services=services)
        wait_for(lambda: "MQTT connected" in web.log(), 20, "the web UI's MQTT connection", services=services)
        wait_port(port, 20, web.proc)  # (its feed connects before the server binds)
        client.connect(f"http://127.0.0.1:{port}", auth={"token": token}, wait_timeout=10)
        # The bridge's retained birth message: the web UI knows a bridge is online.
        wait_for(lambda: latest().get("bridge") is True and latest().get("ok"), 10, "bridge online in the health",
                 services=services)

        bridge.kill()  # SIGKILL: no goodbye; the broker sees the socket close and sends the last will
        wait_for(lambda: latest().get("bridge") is False, 5, "the bridge's last will in the health", services=[web])
        down = latest()
        assert down["ok"] is False and down["problems"] == [BRIDGE_DOWN], down
        assert down["mqtt"] is True  # the web UI's own link is fine: only the bridge is blamed

        bridge = Service("bridge", ["bridge", "run"], bridge_env, tmp_path)  # the same user: its session
        services.append(bridge)
        wait_for(lambda: latest().get("bridge") is True, 20, "the bridge back in the health",
                 services=[web, bridge])
        assert latest()["ok"] is True and latest()["problems"] == []
    finally:
        if client.connected:
            client.disconnect()
        for service in reversed(services):
            service.stop()
        broker.stop()
