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
from store.accounts import ACCOUNTS
from tests.processes import REPO

COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
APP_IMAGE = "abb-telemetry:latest"
OURS = {name: s for name, s in SERVICES.items() if s.get("image") == APP_IMAGE}  # our Python services
PACKAGES = ["plantmodel", "store", "broker", "bridge", "devices", "webui", "stack", "notifier"]


def env_vars_read_by_code() -> set[str]:
    call = r"(?:env_(?:str|int|float|path)\(env, |env\.get\(|environ\.get\(|claim_candidates\(env, )"
    pattern = re.compile(call + r'"([A-Z][A-Z0-9_]+)"')
    found: set[str] = set()
    for pkg in PACKAGES:
        for path in (REPO / pkg).rglob("*.py"):
            found |= set(pattern.findall(path.read_text()))
    return found


def interpolate(value: str) -> str:
    """Compose's ${VAR:-default} / ${VAR:?error} with the defaults (or a placeholder)."""
    return re.sub(r"\$\{([A-Z_]+)(?::[-?]([^}]*))?\}", lambda m: m.group(2) or "x", value)


def test_expected_services() -> None:
    assert set(SERVICES) == {"credentials", "mariadb", "mosquitto", "bridge", "webui", "nginx", "devices", "backup",
                             "notifier", "retention", "prometheus"}
    assert SERVICES["devices"]["profiles"] == ["demo"]  # simulators only for a trial
    assert SERVICES["prometheus"]["profiles"] == ["monitoring"]
    assert [n for n, s in SERVICES.items() if "profiles" in s] == ["devices", "prometheus"]


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


def test_each_service_has_its_own_database_account() -> None:
    """The bridge is the collector, the web UI datavision (accounts.sql); nothing uses root or an
    all-privileges account, and the MariaDB image creates no such user (MARIADB_USER)."""
    accounts = {name: make_url(interpolate(s["environment"]["DATABASE_URL"]))
                for name, s in OURS.items() if "DATABASE_URL" in s["environment"]}
    assert {n: u.username for n, u in accounts.items() if n in ("bridge", "webui")} == {
        "bridge": "plant_collector", "webui": "plant_datavision"}
    # The notifier needs no more than the web UI's rights (accounts.sql: routes, outbox, attempts).
    assert accounts["notifier"].username == "plant_datavision"
    assert all(u.drivername == "mariadb+pymysql" for u in accounts.values())
    assert "devices" not in accounts and "credentials" not in accounts  # they never touch the database
    assert accounts["backup"].username == "plant_delegate"  # reads every table, no DDL
    # Purges old readings, rollups and rejected messages: SELECT and DELETE there, nothing else
    # (accounts.sql); never the administrator's all privileges and DDL in a long-running container.
    assert accounts["retention"].username == "plant_retention"
    assert "DB_RETENTION_PASSWORD" in OURS["retention"]["environment"]["DATABASE_URL"]
    assert not [n for n, u in accounts.items() if u.username == "plant_admin"]
    maria = SERVICES["mariadb"]["environment"]
    assert "MARIADB_USER" not in maria and "MARIADB_PASSWORD" not in maria
    init = {t: src for t, src in mounts(SERVICES["mariadb"]).items() if t.startswith("/docker-entrypoint-initdb.d/")}
    assert init == {"/docker-entrypoint-initdb.d/01-schema.sql": "./schema.sql",
                    "/docker-entrypoint-initdb.d/02-accounts.sh": "./accounts.sh"}
    assert mounts(SERVICES["mariadb"])[maria["ACCOUNTS_SQL"]] == "./accounts.sql"


# Secrets a site may not have at all (an SMTP relay without log-in): empty by default, never a value.
OPTIONAL_SECRETS = {"NOTIFY_SMTP_PASSWORD"}


def test_passwords_have_no_default() -> None:
    """`${VAR:?}`: compose refuses to start with a password left out of .env (and the services
    refuse the .env.example placeholders themselves)."""
    text = (REPO / "docker-compose.yml").read_text()
    secrets = {v for v in re.findall(r"\$\{([A-Z_]+)", text) if "PASSWORD" in v or v == "SECRET_KEY"}
    assert secrets >= {"MARIADB_ROOT_PASSWORD", "DB_COLLECTOR_PASSWORD", "DB_DATAVISION_PASSWORD",
                       "DB_RETENTION_PASSWORD", "SECRET_KEY"}
    for var in secrets & OPTIONAL_SECRETS:
        assert re.findall(rf"\$\{{{var}(?::[-?][^}}]*)?\}}", text) == [f"${{{var}:-}}"], var
    for var in secrets - OPTIONAL_SECRETS:
        assert not re.search(rf"\$\{{{var}:-", text), var
        assert re.search(rf"\$\{{{var}:\?", text), var


def test_every_account_password_reaches_accounts_sh() -> None:
    """The MariaDB image runs accounts.sh at the first start with the mariadb service's environment:
    each account's password must be there (and listed in .env.example), or that start fails."""
    variables = {variable for _, variable in ACCOUNTS.values()}
    assert "DB_RETENTION_PASSWORD" in variables and len(variables) == 5
    maria = SERVICES["mariadb"]["environment"]
    for variable in variables:
        assert maria[variable] == f"${{{variable}:?set {variable} in .env}}", variable
    # The same variables in accounts.sh's loop, and the same user variables in accounts.sql.
    script = (REPO / "accounts.sh").read_text()
    loop = re.search(r"for var in ([^;]+); do", script)
    assert loop and set(loop.group(1).replace("\\", " ").split()) == variables
    sql = (REPO / "accounts.sql").read_text()
    for role, (user, _) in ACCOUNTS.items():
        assert f"COALESCE(@{role}_password, '') = ''" in sql, role
        assert f"CREATE USER IF NOT EXISTS {user}@" in sql and f"FROM {user}@'%';" in sql, user
    example = dict(line.split("=", 1) for line in (REPO / ".env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    assert all(variable in example for variable in variables)


def test_the_bridge_and_the_retention_job_agree_on_the_raw_retention() -> None:
    """A reading older than what the retention job keeps is rejected by the bridge, never stored
    again after its original was purged (and counted twice in the rollups)."""
    assert OURS["bridge"]["environment"]["RETENTION_RAW_DAYS"] == OURS["retention"]["environment"][
        "RETENTION_RAW_DAYS"] == "${RETENTION_RAW_DAYS:-730}"
    assert OURS["retention"]["command"] == ["python", "-m", "store", "retention", "--every", "3600"]


def dockerfile_stages() -> dict[str, str]:
    """stage name -> its lines (``FROM ... AS name``)."""
    parts = re.split(r"^FROM \S+ AS (\w+)$", (REPO / "Dockerfile").read_text(), flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_containers_run_as_an_unprivileged_user() -> None:
    stages = dockerfile_stages()
    assert set(stages) == {"app", "proxy"}
    for stage in stages.values():  # each image ends as a user of its own
        users = re.findall(r"^USER (\S+)$", stage, re.M)
        assert users and users[-1].split(":")[0] not in ("0", "root")
    users = re.findall(r"^USER (\S+)$", stages["app"], re.M)
    assert all(s["build"]["target"] == "app" for s in OURS.values())
    assert SERVICES["nginx"]["build"]["target"] == "proxy"
    # The proxy's secrets are handed to nginx-unprivileged's user.
    proxy_user = re.findall(r"^USER (\S+)$", stages["proxy"], re.M)[-1]
    command = OURS["credentials"]["command"]
    assert command[command.index("--proxy-owner") + 1] == f"{proxy_user}:{proxy_user}"
    assert [n for n, s in OURS.items() if "user" in s] == ["credentials"]  # the one-shot that hands out secrets
    owner = OURS["credentials"]["command"][OURS["credentials"]["command"].index("--owner") + 1]
    assert owner.split(":")[0] == users[-1].split(":")[0]


def test_interpolated_variables_are_documented_in_env_example() -> None:
    used = set(re.findall(r"\$\{([A-Z_]+)", (REPO / "docker-compose.yml").read_text()))
    example = {line.split("=")[0] for line in (REPO / ".env.example").read_text().splitlines()
               if line and not line.startswith("#")}
    assert used <= example


def listeners() -> list[tuple[int, str | None]]:
    conf = directives((REPO / "mosquitto.conf").read_text())
    out = []
    for name, value in conf:
        if name == "listener":
            port, _, bind = value.partition(" ")
            out.append((int(port), bind or None))
    return out


def published() -> dict[str, list[str]]:
    return {name: s["ports"] for name, s in SERVICES.items() if s.get("ports")}


def test_ports_agree() -> None:
    """Only TLS is published: plain MQTT listens on the broker container's loopback, the web UI is
    reached through nginx (443; 80 only redirects), Prometheus on the server's loopback."""
    (plain, plain_bind), (tls, tls_bind) = listeners()
    assert plain_bind == "127.0.0.1" and tls_bind is None
    assert SERVICES["mosquitto"]["ports"] == [f"{tls}:{tls}"]
    for name, s in OURS.items():
        env = s["environment"]
        if name in ("backup", "notifier", "retention"):  # the database only
            assert "MQTT_HOST" not in env
            continue
        assert env["MQTT_HOST"] == "mosquitto" and int(env["MQTT_PORT"]) == tls and env["MQTT_TLS"] == "1"
    assert f"127.0.0.1 {plain}" in " ".join(SERVICES["mosquitto"]["healthcheck"]["test"])
    names = OURS["credentials"]["environment"]["BROKER_TLS_NAMES"].split(",")
    assert "mosquitto" in names  # the name the services verify
    web = SERVICES["webui"]
    port = int(web["command"][web["command"].index("--port") + 1])
    assert web["expose"] == [str(port)] and "ports" not in web
    assert f"127.0.0.1:{port}/healthz" in " ".join(web["healthcheck"]["test"])
    nginx = SERVICES["nginx"]["environment"]
    assert nginx["WEBUI_UPSTREAM"] == f"webui:{port}"
    assert published() == {"mosquitto": [f"{tls}:{tls}"],
                           "nginx": [f"{nginx['NGINX_PUBLIC_HTTPS_PORT']}:{nginx['NGINX_HTTPS_PORT']}",
                                     f"80:{nginx['NGINX_HTTP_PORT']}"],
                           "prometheus": ["127.0.0.1:9090:9090"]}
    assert f"https://127.0.0.1:{nginx['NGINX_HTTPS_PORT']}/" in SERVICES["nginx"]["healthcheck"]["test"][1]


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
    for key in ("password_file", "acl_file", "persistence_location", "cafile", "certfile", "keyfile"):
        folder = str(PurePosixPath(conf[key]).parent if key != "persistence_location" else conf[key].rstrip("/"))
        assert folder in mq, f"{key} {conf[key]} is not on a mounted volume"
    creds = SERVICES["credentials"]
    out = PurePosixPath(creds["command"][creds["command"].index("--out") + 1])
    # `provision` writes each role's folder where that container reads it.
    assert mounts(creds)[str(out / "broker")] == mq[str(PurePosixPath(conf["password_file"]).parent)]
    assert mounts(creds)[creds["environment"]["SECRETS_DIR"] + "/tls"] == "./certs"
    for name in ("bridge", "webui", "devices"):
        app = OURS[name]
        folder = str(PurePosixPath(app["environment"]["MQTT_CREDENTIALS_FILE"]).parent)
        assert str(PurePosixPath(app["environment"]["MQTT_CA_FILE"]).parent) == folder
        assert mounts(app)[folder] == mounts(creds)[str(out / name)] == f"{name}-secrets"
        assert any(v.endswith(f":{folder}:ro") for v in app["volumes"])


def test_no_container_holds_another_ones_secrets() -> None:
    """The old finding: every service's MQTT password was mounted into every container."""
    creds = SERVICES["credentials"]
    master = mounts(creds)[creds["environment"]["SECRETS_DIR"]]
    for name, service in SERVICES.items():
        sources = set(mounts(service).values())
        if name != "credentials":
            assert master not in sources, name
        own = {"mosquitto": "broker", "nginx": "proxy"}.get(name, name)
        others = {f"{n}-secrets" for n in ("broker", "bridge", "webui", "devices", "proxy")} - {f"{own}-secrets"}
        if name != "credentials":
            assert not sources & others, name


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


def test_nginx_renders_the_template_with_every_variable_and_finds_its_files() -> None:
    """The image renders /etc/nginx/templates/*.template with envsubst of the container's variables:
    each ${VAR} of our template must be set, or nginx gets an empty value (and a broken config)."""
    template = (REPO / "deploy" / "nginx" / "webui.conf.template").read_text()
    wanted = set(re.findall(r"\$\{([A-Z_]+)\}", template))
    env = SERVICES["nginx"]["environment"]
    assert wanted and wanted <= set(env), wanted - set(env)
    proxy = dockerfile_stages()["proxy"]
    assert "COPY deploy/nginx/webui.conf.template /etc/nginx/templates/" in proxy
    assert f"COPY --from=app /app/webui/static {env['STATIC_DIR']}" in proxy
    tls = mounts(SERVICES["nginx"])
    folder = str(PurePosixPath(env["TLS_CERT"]).parent)
    assert str(PurePosixPath(env["TLS_KEY"]).parent) == folder and tls[folder] == "proxy-secrets"
    creds = SERVICES["credentials"]
    out = PurePosixPath(creds["command"][creds["command"].index("--out") + 1])
    assert mounts(creds)[str(out / "proxy")] == "proxy-secrets"


def test_long_running_services_have_real_health_checks_and_start_in_order() -> None:
    """Each service's health check runs a real command of ours (parsed as the code would), and a
    service waits for what it needs to be healthy, not just started."""
    for name in ("bridge", "webui", "notifier", "mariadb", "mosquitto", "nginx"):
        assert SERVICES[name]["healthcheck"]["test"], name
    for name in ("bridge", "notifier"):
        test = SERVICES[name]["healthcheck"]["test"]
        assert test[:4] == ["CMD", "python", "-m", name] and test[4] == "health"
        importlib.import_module(f"{name}.__main__").build_parser().parse_args(test[4:])
    assert SERVICES["notifier"]["environment"]["NOTIFY_HEALTH_FILE"]
    for name, service in SERVICES.items():
        for dep, cond in service.get("depends_on", {}).items():
            if cond["condition"] == "service_healthy":
                assert "healthcheck" in SERVICES[dep], (name, dep)
    assert SERVICES["nginx"]["depends_on"]["webui"]["condition"] == "service_healthy"
    assert SERVICES["bridge"]["depends_on"]["mariadb"]["condition"] == "service_healthy"
    assert all(s.get("restart") == "unless-stopped" for n, s in SERVICES.items() if n != "credentials")


@pytest.mark.parametrize(("name", "count"), [("bridge", "BROKER_BRIDGES"), ("webui", "BROKER_WEBUIS")])
def test_bridges_and_web_uis_scale_with_a_claimed_user_each(name: str, count: str) -> None:
    """`--scale bridge=N` / `webui=N`: identical replicas, so none may name its MQTT user (one client
    id for N containers would have them disconnect each other); each claims one (store/claim.py)."""
    env = OURS[name]["environment"]
    assert env[f"{name.upper()}_CLAIM_USER"] == "1" and "MQTT_USERNAME" not in env and "MQTT_PASSWORD" not in env
    assert "container_name" not in SERVICES[name] and "ports" not in SERVICES[name]
    assert OURS["credentials"]["environment"][count] == f"${{{count}:-1}}"


def test_prometheus_scrapes_what_compose_runs() -> None:
    conf = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in conf["scrape_configs"]}
    bridge = jobs["bridge"]["dns_sd_configs"][0]
    assert bridge["names"] == ["bridge"] and bridge["port"] == 9108  # BridgeSettings' default metrics port
    assert OURS["bridge"]["environment"]["BRIDGE_METRICS_HOST"] == "0.0.0.0"
    web = jobs["webui"]
    assert web["dns_sd_configs"][0]["names"] == ["webui"] and web["dns_sd_configs"][0]["port"] == 8080
    token = PurePosixPath(web["authorization"]["credentials_file"])
    assert mounts(SERVICES["prometheus"])[str(token.parent)] == "./deploy/prometheus/secrets"
    ignore = (REPO / "deploy" / "prometheus" / "secrets" / ".gitignore").read_text()
    assert ignore.splitlines()[1:] == ["*", "!.gitignore"]
