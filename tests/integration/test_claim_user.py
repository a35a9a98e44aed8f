"""``BRIDGE_CLAIM_USER=1`` / ``WEBUI_CLAIM_USER=1`` (compose's ``--scale bridge=N``, ``webui=N``), for
real on MariaDB and our broker: identical processes each claim their own MQTT user from one
credentials file, one too many is refused with a clear error, and a SIGKILLed process's user is
free for its replacement at once."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from plantmodel.mqtt import load_credentials
from store.claim import lock_name
from tests.integration.test_bridge import Spawn
from tests.processes import wait_for
from tests.servers import MariaDBServer, MosquittoServer, free_port

pytestmark = pytest.mark.integration

CLAIMED = re.compile(r"claimed MQTT user (\S+)")


def claimed(log: str) -> str | None:
    found = CLAIMED.search(log)
    return found.group(1) if found else None


def test_scaled_bridges_each_claim_a_user_and_a_killed_ones_is_taken_over(
        mosquitto: MosquittoServer, mariadb: MariaDBServer, spawn: Spawn, tmp_path: Path) -> None:
    url = mariadb.create_database()
    users = [mosquitto.bridge_user(), mosquitto.bridge_user()]  # fresh sessions, no other test's
    known = load_credentials(mosquitto.files.credentials)
    creds = tmp_path / "bridge-credentials.json"
    creds.write_text(json.dumps({"users": {u: known[u] for u in users}}))
    env = {**mosquitto.env(), "DATABASE_URL": url, "MQTT_CREDENTIALS_FILE": str(creds), "BRIDGE_CLAIM_USER": "1",
           "BRIDGE_SHARE_GROUP": f"g{uuid.uuid4().hex[:8]}"}
    a = spawn("bridge-a", ["bridge", "run"], env)
    wait_for(lambda: "connected to" in a.log(), 20, "bridge a", services=[a])
    b = spawn("bridge-b", ["bridge", "run"], env)
    wait_for(lambda: "connected to" in b.log(), 20, "bridge b", services=[b])
    assert sorted([claimed(a.log()), claimed(b.log())]) == sorted(users)
    assert f"as {claimed(a.log())}" in a.log() and f"as {claimed(b.log())}" in b.log()

    # A third has no user left: it says so and exits (compose's restart policy retries it later).
    c = spawn("bridge-c", ["bridge", "run"], env)
    wait_for(lambda: not c.alive(), 20, "the third bridge to give up", services=[c])
    assert c.proc.returncode == 2
    assert "BRIDGE_CLAIM_USER: every user is held by a running process" in c.log()

    # SIGKILL: the server frees the named lock with the connection; the replacement takes the user.
    freed = claimed(a.log())
    a.kill()
    d = spawn("bridge-d", ["bridge", "run"], env)
    wait_for(lambda: "connected to" in d.log(), 20, "the replacement bridge", services=[d])
    assert claimed(d.log()) == freed
    # The survivor was never disconnected by a second client with its id.
    assert "disconnected from broker" not in b.log()

    # The claim's connection lost (a DBA's KILL, a network cut): another bridge could take the user
    # now, so this one stops with 3 (the restart policy starts it again) instead of going on.
    database = make_url(url).database or ""
    with mariadb.admin() as conn, conn.cursor() as cur:
        cur.execute("SELECT IS_USED_LOCK(%s)", (lock_name(database, freed or ""),))
        (holder,) = cur.fetchone()
        assert holder is not None
        cur.execute(f"KILL {int(holder)}")
    wait_for(lambda: not d.alive(), 20, "the bridge that lost its claim to stop", services=[d])
    assert d.proc.returncode == 3, d.log()[-2000:]
    assert f"the lock on MQTT user {freed} is lost" in d.log()
    assert b.stop() == 0


def test_two_web_uis_behind_one_proxy_each_claim_a_web_ui_user(
        mosquitto: MosquittoServer, mariadb: MariaDBServer, spawn: Spawn, tmp_path: Path) -> None:
    """Two `webui serve` processes (gunicorn; the claim is made in its worker) on one credentials
    file: each its own user, so neither disconnects the other."""
    url = mariadb.create_database()
    known = load_credentials(mosquitto.files.credentials)
    users = ["webui-2", "webui-3"]  # the test broker's spare web UI users (no other test uses them)
    creds = tmp_path / "webui-credentials.json"
    creds.write_text(json.dumps({"users": {u: known[u] for u in users}}))
    env = {**mosquitto.env(), "DATABASE_URL": url, "MQTT_CREDENTIALS_FILE": str(creds), "WEBUI_CLAIM_USER": "1"}
    webs = [spawn(f"webui-{i}", ["webui", "serve", "--port", str(free_port())], env) for i in (1, 2)]
    for web in webs:
        wait_for(lambda web=web: "MQTT connected" in web.log(), 30, "a web UI's MQTT connection", services=webs)
    assert sorted(claimed(w.log()) or "" for w in webs) == users
    assert all("MQTT disconnected" not in w.log() for w in webs)
    assert all(w.stop() == 0 for w in webs)
