"""docker-compose.yml cannot be started here (no Docker engine), so check it statically: every
service, command, port, volume and environment variable it names must exist and agree with the code."""

from __future__ import annotations

import importlib
import re
import subprocess
from pathlib import Path, PurePosixPath

import pytest
import yaml
from sqlalchemy.engine import make_url

from broker.config import directives
from tests.processes import REPO

COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
OURS = {name: s for name, s in SERVICES.items() if "build" in s}
PACKAGES = ["plantmodel", "store", "broker", "bridge", "devices", "webui", "stack"]


def env_vars_read_by_code() -> set[str]:
    pattern = re.compile(r"""(?:env_(?:str|int|float|path)\(env, |env\.get\(|environ\.get\()"([A-Z][A-Z0-9_]+)\"""")
    found: set[str] = set()
    for pkg in PACKAGES:
        for path in (REPO / pkg).rglob("*.py"):
            found |= set(pattern.findall(path.read_text()))
    return found


def interpolate(value: str) -> str:
    """Compose's ${VAR:-default} / ${VAR:?error} with the defaults (or a placeholder)."""
    return re.sub(r"\$\{([A-Z_]+)(?::[-?]([^}]*))?\}", lambda m: m.group(2) or "x", value)


def test_expected_services() -> None:
    assert set(SERVICES) == {"credentials", "mariadb", "mosquitto", "bridge", "webui", "devices"}


@pytest.mark.parametrize("name", sorted(OURS))
def test_command_is_a_real_entry_point_with_valid_arguments(name: str) -> None:
    command = OURS[name]["command"]
    assert command[:2] == ["python", "-m"]
    module = importlib.import_module(f"{command[2]}.__main__")
    module.build_parser().parse_args(command[3:])  # SystemExit (a failure) on a bad argument


@pytest.mark.parametrize("name", sorted(OURS))
def test_environment_variables_are_read_by_the_code(name: str) -> None:
    known = env_vars_read_by_code()
    assert {"DATABASE_URL", "MQTT_HOST", "MQTT_CREDENTIALS_FILE", "WEBUI_PORT"} <= known  # the scan works
    env = OURS[name]["environment"]
    assert set(env) - known == set()
    assert make_url(interpolate(env["DATABASE_URL"])).drivername == "mariadb+pymysql"


def test_interpolated_variables_are_documented_in_env_example() -> None:
    used = set(re.findall(r"\$\{([A-Z_]+)", (REPO / "docker-compose.yml").read_text()))
    example = {line.split("=")[0] for line in (REPO / ".env.example").read_text().splitlines()
               if line and not line.startswith("#")}
    assert used <= example


def test_ports_agree() -> None:
    conf = dict(directives((REPO / "mosquitto.conf").read_text()))
    listener = int(conf["listener"].split()[0])
    assert SERVICES["mosquitto"]["ports"] == [f"{listener}:{listener}"]
    for s in OURS.values():
        assert s["environment"]["MQTT_HOST"] == "mosquitto" and int(s["environment"]["MQTT_PORT"]) == listener
    web = SERVICES["webui"]
    port = int(web["command"][web["command"].index("--port") + 1])
    assert web["ports"] == [f"{port}:{port}"]
    assert f"127.0.0.1:{port}/healthz" in " ".join(web["healthcheck"]["test"])


def mounts(service: dict) -> dict[str, str]:
    """container path -> source (host path or named volume)"""
    out = {}
    for v in service.get("volumes", []):
        source, target = v.split(":")[:2]
        out[target] = source
    return out


def test_volumes_exist_and_hold_the_paths_the_config_names() -> None:
    declared = set(COMPOSE["volumes"])
    for service in SERVICES.values():
        for source in mounts(service).values():
            if source.startswith("./"):
                assert (REPO / source).exists(), source
            else:
                assert source in declared, source
    mq = mounts(SERVICES["mosquitto"])
    assert mq["/mosquitto/config/mosquitto.conf"] == "./mosquitto.conf"
    conf = dict(directives((REPO / "mosquitto.conf").read_text()))
    for key in ("password_file", "acl_file", "persistence_location"):
        folder = str(PurePosixPath(conf[key]).parent if key != "persistence_location" else conf[key].rstrip("/"))
        assert folder in mq, f"{key} {conf[key]} is not on a mounted volume"
    # The credentials service writes where mosquitto and the apps read.
    creds = SERVICES["credentials"]
    secrets_dir = creds["environment"]["SECRETS_DIR"]
    assert mounts(creds)[secrets_dir] == mq[str(PurePosixPath(conf["password_file"]).parent)]
    for name in ("bridge", "webui", "devices"):
        app = OURS[name]
        cred_file = PurePosixPath(app["environment"]["MQTT_CREDENTIALS_FILE"])
        assert mounts(app)[str(cred_file.parent)] == mounts(creds)[secrets_dir]
    assert mounts(SERVICES["mariadb"])["/docker-entrypoint-initdb.d/01-schema.sql"] == "./schema.sql"


def test_dockerfile_copies_every_package() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\S+) \./\1$", dockerfile, re.M))
    assert set(PACKAGES) <= copied
    for line in re.findall(r"^COPY (.+) \./$", dockerfile, re.M):
        for name in line.split():
            assert (REPO / name).exists(), name
    assert all((REPO / p / "__main__.py").exists() or p in ("plantmodel", "store") for p in PACKAGES)


def test_gitignored_secrets_are_not_in_the_repo() -> None:
    ignored = (REPO / ".gitignore").read_text()
    assert "/var/" in ignored and ".env" in ignored
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert not [f for f in tracked.splitlines() if Path(f).name in ("passwd", "acl", "credentials.json", ".env")]
