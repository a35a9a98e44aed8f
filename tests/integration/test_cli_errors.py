"""Every command line says what is wrong in one line, never with a traceback: configuration errors
exit 2, a database that cannot be reached by a one-shot command exits 1 at once (no waiting). And
``bridge rejected`` shows device-controlled text escaped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from store import models as orm
from store.db import create_db_engine, init_schema, make_sessionmaker
from tests.processes import REPO
from tests.servers import free_port

pytestmark = pytest.mark.integration

# Every one-shot command that touches the database.
DB_COMMANDS = [
    ["bridge", "thresholds", "list"],
    ["bridge", "thresholds", "set", "--measure", "ph", "--high", "7.4"],
    ["bridge", "thresholds", "delete", "--measure", "ph", "--unit", "1"],
    ["bridge", "rejected"],
    ["webui", "users", "list"],
    ["webui", "users", "add", "alice", "--generate"],
    ["webui", "users", "token", "alice"],
]
# Long-running services: configuration errors only (an unreachable database is waited for).
SERVICES = [["bridge", "run"], ["webui", "run", "--port", "0"], ["stack", "--progress", "0"]]


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # No credentials file and no MQTT password unless a case sets one: nothing else can go wrong.
    full = {**os.environ, "PYTHONPATH": str(REPO), "MQTT_CREDENTIALS_FILE": str(cwd / "none.json"), **env}
    # Own process group: a command that wrongly keeps running (the stack starts children) is
    # killed whole when the time is up.
    with subprocess.Popen([sys.executable, "-m", *args], env=full, cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, errors="replace",
                          start_new_session=True) as proc:
        try:
            out, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def assert_one_line(result: subprocess.CompletedProcess[str], code: int, *expected: str) -> str:
    lines = [line for line in result.stderr.splitlines() if " WARNING " not in line]  # log lines aside
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == code, result.stderr
    assert len(lines) == 1, result.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("args", DB_COMMANDS, ids=" ".join)
def test_unreachable_mariadb_fails_at_once(args: list[str], tmp_path: Path) -> None:
    port = free_port()
    url = f"mariadb+pymysql://plant:s3cret@127.0.0.1:{port}/plant?charset=utf8mb4"
    line = assert_one_line(run(args, {"DATABASE_URL": url}, tmp_path), 1,
                           f"database mariadb+pymysql://plant:***@127.0.0.1:{port}/plant?charset=utf8mb4 "
                           "not reachable: OperationalError: (2003,")
    assert "s3cret" not in line


@pytest.mark.parametrize("args", DB_COMMANDS + SERVICES, ids=" ".join)
def test_sqlite_folder_missing_is_a_configuration_error(args: list[str], tmp_path: Path) -> None:
    result = run(args, {"DATABASE_URL": "sqlite:///typo/plant.db", "PLANT_VAR_DIR": str(tmp_path / "var")},
                 tmp_path)
    assert_one_line(result, 2, f"folder {tmp_path / 'typo'} does not exist")
    assert not (tmp_path / "typo").exists()  # no new, empty database created anywhere


@pytest.mark.parametrize("args", [DB_COMMANDS[0], DB_COMMANDS[4], *SERVICES], ids=" ".join)
def test_invalid_database_url_is_a_configuration_error(args: list[str], tmp_path: Path) -> None:
    result = run(args, {"DATABASE_URL": "plant:s3cret@db:3306/plant", "PLANT_VAR_DIR": str(tmp_path / "var")},
                 tmp_path)
    assert "s3cret" not in assert_one_line(result, 2, "DATABASE_URL is not a database URL")


GARBLED = '{"users": {"bridge": "pw"'


@pytest.mark.parametrize(("args", "env", "expected"), [
    (["bridge", "run"], {"BRIDGE_BATCH_SIZE": "abc"}, "BRIDGE_BATCH_SIZE='abc' is not an integer"),
    (["bridge", "thresholds", "list"], {"BRIDGE_THRESHOLDS_POLL": "often"}, "BRIDGE_THRESHOLDS_POLL='often'"),
    (["bridge", "run"], {"MQTT_CREDENTIALS_FILE": "garbled.json"}, "cannot read credentials file garbled.json"),
    (["bridge", "run"], {"MQTT_CREDENTIALS_FILE": "list.json"}, 'credentials file list.json has no "users"'),
    (["webui", "run"], {"WEBUI_PORT": "http"}, "WEBUI_PORT='http' is not an integer"),
    (["webui", "run"], {"MQTT_CREDENTIALS_FILE": "garbled.json"}, "cannot read credentials file garbled.json"),
    (["webui", "run"], {"MQTT_CREDENTIALS_FILE": "list.json"}, 'credentials file list.json has no "users"'),
    (["devices", "run"], {"DEVICES_PERIOD": "abc"}, "DEVICES_PERIOD='abc' is not a number"),
    (["devices", "run"], {"MQTT_CREDENTIALS_FILE": "garbled.json"}, "cannot read credentials file garbled.json"),
    (["devices", "run"], {"MQTT_CREDENTIALS_FILE": "list.json"}, 'credentials file list.json has no "users"'),
    (["devices", "fault", "list"], {"PLANT_UNITS": "five"}, "PLANT_UNITS='five' is not an integer"),
    (["broker", "credentials"], {"PLANT_UNITS": "five"}, "PLANT_UNITS='five' is not an integer"),
    (["broker", "credentials"], {"SECRETS_DIR": "garbled"}, "cannot read credentials file garbled/credentials.json"),
    (["broker", "credentials"], {"PLANT_TOPIC_ROOT": "a/#"}, "invalid topic root 'a/#'"),
    (["stack"], {"MQTT_PORT": "abc"}, "MQTT_PORT='abc' is not an integer"),
    (["stack"], {"PLANT_VAR_DIR": "/proc/no/var"}, "cannot create PLANT_VAR_DIR /proc/no/var"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_bad_configuration_is_one_line(args: list[str], env: dict[str, str], expected: str, tmp_path: Path) -> None:
    (tmp_path / "garbled.json").write_text(GARBLED)
    (tmp_path / "list.json").write_text('["bridge", "pw"]')
    (tmp_path / "var").mkdir()
    (tmp_path / "garbled").mkdir()
    (tmp_path / "garbled" / "credentials.json").write_text(GARBLED)
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'plant.db'}", "PLANT_VAR_DIR": str(tmp_path / "var"),
           "SECRETS_DIR": str(tmp_path / "secrets"), **env}
    assert_one_line(run(args, env, tmp_path), 2, expected)


def test_rejected_shows_control_characters_escaped(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'plant.db'}"
    engine = create_db_engine(url)
    init_schema(engine)
    with make_sessionmaker(engine).begin() as session:
        session.add(orm.RejectedMessage(
            received_at=datetime.now(UTC), topic="plant/units/1/\x1b[2Jx", payload='{"a": "\x1b]0;owned\x07\x9b31m"}',
            payload_bytes=24, reason="field 'a' = '\x1b[1A' is unknown"))
    engine.dispose()
    result = run(["bridge", "rejected"], {"DATABASE_URL": url}, tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert not any(c in out for c in "\x1b\x07\x9b"), repr(out)
    assert "plant/units/1/\\x1b[2Jx" in out
    assert '{"a": "\\x1b]0;owned\\x07\\x9b31m"}' in out
    assert "reason: field 'a' = '\\x1b[1A' is unknown" in out


@pytest.mark.parametrize(("key", "expected"), [
    ("", "SECRET_KEY is not set"),
    ("change-me-to-64-hex-characters", "SECRET_KEY is a placeholder"),
    ("0123456789abcdef", "SECRET_KEY is too short or too simple"),
    ("a" * 64, "SECRET_KEY is too short or too simple"),
])
def test_webui_refuses_a_forgeable_secret_key(key: str, expected: str, tmp_path: Path) -> None:
    """Whoever knows the key forges any log-in (an admin's, with the .env.example placeholder)."""
    result = run(["webui", "run", "--port", "0"], {"SECRET_KEY": key, "DATABASE_URL": f"sqlite:///{tmp_path}/p.db"},
                 tmp_path)
    assert_one_line(result, 2, expected, "generate one with")


@pytest.mark.parametrize(("command", "env", "expected"), [
    (["bridge", "run"], {"MQTT_PASSWORD": "change-me"}, "MQTT_PASSWORD is a placeholder"),
    (["bridge", "run"], {"DATABASE_URL": "mariadb+pymysql://plant_collector:change-me-collector@127.0.0.1:1/plant"},
     "the password in DATABASE_URL is a placeholder"),
    (["webui", "run", "--port", "0"],
     {"DATABASE_URL": "mariadb+pymysql://plant_datavision:change-me-datavision@127.0.0.1:1/plant",
      "SECRET_KEY": "k" * 20 + "0123456789abcdef"},
     "the password in DATABASE_URL is a placeholder"),
    (["store", "backup"], {"DATABASE_URL": "mariadb+pymysql://plant_delegate:CHANGE-ME@127.0.0.1:1/plant"},
     "the password in DATABASE_URL is a placeholder"),
    (["bridge", "run"], {"DATABASE_URL": "mariadb+pymysql://plant_collector@127.0.0.1:1/plant?password=change-me"},
     "the password in DATABASE_URL is a placeholder"),
])
def test_services_refuse_the_env_example_placeholders(command: list[str], env: dict[str, str], expected: str,
                                                      tmp_path: Path) -> None:
    """compose's ${VAR:?} only catches a missing password: a copied .env.example is refused here,
    at start, without echoing the password."""
    result = run(command, env, tmp_path)
    line = assert_one_line(result, 2, expected)
    assert "change-me" not in line.lower()
