"""Start in any order: the bridge and the web UI started before MariaDB wait for it (one log line
per attempt, with back-off) instead of exiting, then work once it is up; a signal during the wait
stops them cleanly."""

from __future__ import annotations

import json
import signal
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select

from store import models as orm
from store.db import create_db_engine, make_sessionmaker
from tests.processes import Service, wait_for
from tests.servers import MariaDBServer, free_port

pytestmark = pytest.mark.integration
Spawn = Callable[[str, list[str], dict[str, str]], Service]


def offline_env(url: str) -> dict[str, str]:
    """No broker on purpose (the services keep retrying it by themselves): only the database matters."""
    return {"DATABASE_URL": url, "MQTT_HOST": "127.0.0.1", "MQTT_PORT": str(free_port()), "MQTT_PASSWORD": "unused"}


def database_healthy(port: int) -> bool:
    """The web UI's /healthz says its database answers (it is 503 all along here: no broker)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
            body = answer.read()
    except urllib.error.HTTPError as exc:
        body = exc.read()
    except (urllib.error.URLError, OSError):
        return False
    return bool(json.loads(body)["db"])


@pytest.mark.parametrize("service", ["bridge", "webui"])
def test_started_before_mariadb_waits_then_works(service: str, tmp_path: Path, spawn: Spawn) -> None:
    server = MariaDBServer(tmp_path / "mariadb")  # its port is chosen, nothing listens on it yet
    url = server.url("plant_late")
    web_port = free_port()
    args = ["bridge", "run"] if service == "bridge" else ["webui", "run", "--port", str(web_port)]
    proc = spawn(service, args, offline_env(url))
    try:
        # Two attempts refused, the back-off doubling, and still running.
        wait_for(lambda: "not reachable (OperationalError: (2003," in proc.log() and "retrying in 2 s" in proc.log(),
                 10, "retry lines", services=[proc])
        assert "plant-test-pw" not in proc.log()
        assert "Traceback" not in proc.log()

        server.start()
        with server.admin() as conn, conn.cursor() as cur:
            cur.execute("CREATE DATABASE plant_late CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        wait_for(lambda: "plant_late?charset=utf8mb4 reachable" in proc.log(), 15, "the database to be reachable",
                 services=[proc])
        engine = create_db_engine(url)
        try:
            if service == "bridge":
                # Bridge.start() ran after the wait: it seeded the default thresholds.
                def seeded() -> int:
                    with make_sessionmaker(engine)() as session:
                        return session.scalar(select(func.count()).select_from(orm.Threshold)) or 0

                wait_for(seeded, 10, "default thresholds seeded", services=[proc])
            else:
                wait_for(lambda: database_healthy(web_port), 10, "/healthz: database reachable", services=[proc])
            assert {"readings", "alarms", "users"} <= set(inspect(engine).get_table_names())
        finally:
            engine.dispose()
        assert proc.stop(signal.SIGTERM) == 0, proc.log()[-3000:]
        assert "Traceback" not in proc.log()
    finally:
        proc.kill()
        server.stop()


@pytest.mark.parametrize(("name", "args", "sig"), [
    ("bridge", ["bridge", "run"], signal.SIGTERM),
    ("bridge", ["bridge", "run"], signal.SIGINT),
    ("webui", ["webui", "run", "--port", "0"], signal.SIGTERM),
    ("webui", ["webui", "run", "--port", "0"], signal.SIGINT),
    ("stack", ["stack", "--progress", "0"], signal.SIGTERM),
])
def test_a_signal_during_the_wait_stops_cleanly(name: str, args: list[str], sig: int, tmp_path: Path,
                                                spawn: Spawn) -> None:
    url = f"mariadb+pymysql://plant:pw@127.0.0.1:{free_port()}/plant"
    env = {**offline_env(url), "PLANT_VAR_DIR": str(tmp_path / "var"), "WEBUI_PORT": str(free_port())}
    proc = spawn(name, args, env)
    wait_for(lambda: "retrying in 1 s" in proc.log(), 10, "a retry line", services=[proc])
    assert proc.stop(sig, timeout=10) == 0, proc.log()[-3000:]
    assert "Traceback" not in proc.log()
