"""``python -m stack``: start broker, bridge, web UI, notifier and simulators together; Ctrl-C stops them all.

Each service runs as its own ``python -m <service>`` process in its own process group, logging to
``var/logs/<service>.log``; this supervisor prints where to log in and a short progress line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from devices.settings import DEMO_ENERGY_INTERVAL_S, DEMO_PERIOD_S
from plantmodel.envconf import DEFAULT_VAR_DIR, env_int, env_path, layout_from_env
from plantmodel.errors import PlantModelError
from plantmodel.readings import utcnow
from store import migrate
from store import models as orm
from store import users as user_store
from store.db import SchemaOutdated, create_db_engine, describe, make_sessionmaker, wait_for_database

log = logging.getLogger("stack")

# Stop order: simulators first (they say goodbye on MQTT), then consumers, the broker last.
START_ORDER = ("broker", "bridge", "webui", "notifier", "devices")


@dataclass(frozen=True, slots=True)
class StackSettings:
    var_dir: Path
    mqtt_port: int
    web_port: int
    database_url: str
    metrics_port: int = 9108  # the bridge's Prometheus endpoint (0: none)
    # The services talk MQTT over TLS, as deployed (0: plain MQTT on mqtt_port only).
    tls_port: int = 18883

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> StackSettings:
        var_dir = env_path(env, "PLANT_VAR_DIR", DEFAULT_VAR_DIR)
        return cls(
            var_dir=var_dir,
            # Not 1883: Debian's own mosquitto service usually holds it after apt-get install.
            mqtt_port=env_int(env, "MQTT_PORT", 18830, minimum=1),
            web_port=env_int(env, "WEBUI_PORT", 8080, minimum=1),
            # The default SQLite file lives in the var dir, which main() creates.
            database_url=env.get("DATABASE_URL", "").strip() or f"sqlite:///{var_dir / 'plant.db'}",
            metrics_port=env_int(env, "BRIDGE_METRICS_PORT", 9108, minimum=0),
            tls_port=env_int(env, "BROKER_TLS_PORT", 18883, minimum=0),
        )


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_port(wanted: int, what: str) -> int:
    if port_free(wanted):
        return wanted
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log.warning("port %d (%s) is in use; using %d instead", wanted, what, port)
    return port


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


DEMO_ADMIN = "admin"


def reset_demo_admin(sessions: sessionmaker[Session]) -> str:
    """Create the demo admin, or give it a new password; returns the password to print."""
    from webui.auth import hash_password  # argon2 loads only when the stack really starts

    password = secrets.token_urlsafe(9)
    now = utcnow()
    with sessions.begin() as session:
        user = user_store.get_user(session, DEMO_ADMIN)
        if user is None:
            user_store.add_user(session, DEMO_ADMIN, hash_password(password), "admin", now)
        else:
            user.password_hash, user.role, user.updated_at = hash_password(password), "admin", now
    return password


# Fixed tokens of the legacy HTTP senders, so that the README's curl lines work verbatim against the
# demo. Demo only: python -m stack is never how the plant runs (a real token comes from an admin:
# /admin/senders, POST /api/device-tokens or python -m webui token create).
DEMO_LEGACY_METER = "legacy-pro1pm"
DEMO_TOKENS = {"demo-unit-1": "units/1", "demo-webhook": f"meters/{DEMO_LEGACY_METER}"}


def ensure_demo_tokens(sessions: sessionmaker[Session]) -> None:
    """Create the demo's sender tokens (or make them usable again if someone revoked them)."""
    from webui.api.tokens import add_device_token  # the web UI's code loads only when the stack starts
    from webui.auth import token_hash

    with sessions.begin() as session:
        for token, device in DEMO_TOKENS.items():
            row = session.scalar(select(orm.DeviceToken).where(orm.DeviceToken.token_hash == token_hash(token)))
            if row is None:
                add_device_token(session, device, "demo (python -m stack)", "stack", token=token)
            elif row.revoked_at is not None or row.device != device:
                row.revoked_at, row.revoked_by, row.device = None, None, device


def secret_key(var_dir: Path) -> str:
    """The web UI's session key, kept in var/secrets so logins survive a restart of the demo."""
    path = var_dir / "secrets" / "webui-secret-key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_hex(32))
    return path.read_text().strip()


class Supervisor:
    def __init__(self, settings: StackSettings, demo: bool) -> None:
        self.settings = settings
        self.demo = demo
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs = settings.var_dir / "logs"
        self.admin_password = ""

    def env(self) -> dict[str, str]:
        s = self.settings
        tls = ({"MQTT_TLS": "1", "MQTT_PORT": str(s.tls_port),
                "MQTT_CA_FILE": str(s.var_dir / "secrets" / "tls" / "ca.crt")} if s.tls_port
               else {"MQTT_PORT": str(s.mqtt_port)})
        return {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "MQTT_HOST": "127.0.0.1",
            **tls,
            "MQTT_CREDENTIALS_FILE": str(s.var_dir / "secrets" / "credentials.json"),
            "SECRETS_DIR": str(s.var_dir / "secrets"),
            "BROKER_DIR": str(s.var_dir / "broker"),
            "DATABASE_URL": s.database_url,
            "WEBUI_PORT": str(s.web_port),
            "BRIDGE_METRICS_PORT": str(s.metrics_port),
            "DEVICES_FAULT_FILE": str(s.var_dir / "faults.json"),
            "SECRET_KEY": os.environ.get("SECRET_KEY") or secret_key(s.var_dir),
            # The web UI marks a source stale after 3 periods: tell it the simulators' real ones.
            "WEBUI_REPORT_PERIOD": str(DEMO_PERIOD_S if self.demo else 60.0),
            "WEBUI_METER_PERIOD": str(DEMO_ENERGY_INTERVAL_S if self.demo else 60.0),
            # The demo's no-data timer looks every second (production: every 5 s).
            **({"BRIDGE_HEALTH_TICK": "1"} if self.demo else {}),
        }

    def spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        self.logs.mkdir(parents=True, exist_ok=True)
        with (self.logs / f"{name}.log").open("ab") as out:
            proc = subprocess.Popen([sys.executable, "-m", *args], env=self.env(), stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[name] = proc
        log.info("started %-8s pid %d, log %s", name, proc.pid, self.logs / f"{name}.log")
        return proc

    def start(self) -> None:
        s = self.settings
        tls = ["--tls", "--tls-port", str(s.tls_port)] if s.tls_port else []
        broker = self.spawn("broker", ["broker", "run", "--port", str(s.mqtt_port), *tls])
        for port in (s.mqtt_port, *((s.tls_port,) if s.tls_port else ())):
            if not wait_port(port, broker, 15):
                raise RuntimeError(f"the broker did not start; see {self.logs / 'broker.log'}")
        self.spawn("bridge", ["bridge", "run"])
        # The production server (gunicorn, python -m webui serve), as in compose.
        webui = self.spawn("webui", ["webui", "serve", "--port", str(s.web_port)])
        self.spawn("notifier", ["notifier"])  # alarm e-mails and webhooks, as routed at /admin/notifications
        self.spawn("devices", ["devices", "run", *(["--demo"] if self.demo else [])])
        if not wait_port(s.web_port, webui, 30):
            raise RuntimeError(f"the web UI did not start; see {self.logs / 'webui.log'}")

    def banner(self) -> str:
        s = self.settings
        creds = json.loads((s.var_dir / "secrets" / "credentials.json").read_text())["users"]
        return "\n".join([
            "",
            "Au Bon Beurre telemetry is running.",
            f"  Dashboard:   http://127.0.0.1:{s.web_port}/",
            f"  Log in:      user {DEMO_ADMIN!r}, password {self.admin_password!r} (new on every start;"
            " add users with python -m webui users add NAME --role viewer|operator|admin)",
            f"  Database:    {describe(s.database_url)}",
            *([f"  Metrics:     http://127.0.0.1:{s.metrics_port}/metrics (bridge), /metrics on the dashboard "
               "(with an API token)"] if s.metrics_port else []),
            f"  Logs:        {self.logs}/",
            "  Watch MQTT:  mosquitto_sub -h 127.0.0.1 -p {port} -u debug -P '{pw}' -v -t '#'".format(
                port=s.mqtt_port, pw=creds["debug"]),
            *([f"  MQTT TLS:    127.0.0.1:{s.tls_port}, what the services use (mosquitto_sub … -p {s.tls_port} "
               f"--cafile {s.var_dir / 'secrets' / 'tls' / 'ca.crt'})"] if s.tls_port else []),
            f"  Notify:      routes at http://127.0.0.1:{s.web_port}/admin/notifications; mail needs NOTIFY_SMTP_HOST "
            "(README: Notifications)",
            "  Show alarms: python -m devices fault set --unit 2 --automate 3 --measure tank_temp_c --values 4.6",
            f"  Legacy HTTP: demo tokens {', '.join(f'{t!r} ({d})' for t, d in DEMO_TOKENS.items())} for "
            "POST /collector/info and /webhook/ (README: Legacy HTTP senders)",
            "Press Ctrl-C to stop everything.",
            "",
        ])

    def crashed(self) -> str | None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                return f"{name} exited with code {proc.returncode}; see {self.logs / (name + '.log')}"
        return None

    def stop(self) -> None:
        for name in reversed(START_ORDER):
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in 15 s; killing it", name)
            # Kill the whole group too: nothing of ours may outlive the stack.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            log.info("stopped %s", name)


def progress(sessions: object, layout_total: int) -> str:
    try:
        with sessions() as session:  # type: ignore[operator]
            automates = session.scalar(select(func.count()).select_from(
                select(orm.Reading.unit_id, orm.Reading.automate_no).distinct().subquery()))
            readings = session.scalar(select(func.count()).select_from(orm.Reading))
            meters = session.scalar(select(func.count(func.distinct(orm.PowerReading.meter_id))))
            alarms = session.scalar(select(func.count()).select_from(orm.Alarm).where(orm.Alarm.state == "active"))
    except SQLAlchemyError as exc:
        return f"database not readable yet ({exc.__class__.__name__})"
    return (f"{readings} readings from {automates}/{layout_total} automates, "
            f"{meters} meter(s) reporting, {alarms} active alarm(s)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m stack",
        description="Run broker, bridge, web UI and simulators locally until Ctrl-C. Environment: "
        "MQTT_PORT (18830, plain MQTT on loopback), BROKER_TLS_PORT (18883, MQTT over TLS, which the services "
        "use; 0 = none), WEBUI_PORT (8080), DATABASE_URL (sqlite:///<PLANT_VAR_DIR>/plant.db), PLANT_VAR_DIR (var), "
        "PLANT_UNITS, PLANT_AUTOMATES, PLANT_METER_COUNT / PLANT_METERS, SECRET_KEY (default: a key kept in "
        "var/secrets).",
    )
    parser.add_argument("--no-demo", action="store_true", help="simulators at the real rate (60 s)")
    parser.add_argument("--progress", type=float, default=10, help="seconds between progress lines (0: none)")
    parser.add_argument("--history", type=history_days, metavar="SPAN",
                        help="before starting, load that much generated history ending now (e.g. 7d, 12h, 1y: "
                        "python -m store generate-history) into the database, if it holds no readings yet")
    return parser


def history_days(text: str) -> float:
    """``7d``, ``12h``, ``1y``, ``2w`` or a plain number of days -> days."""
    units = {"h": 1 / 24, "d": 1.0, "w": 7.0, "y": 365.0}
    raw = text.strip().lower()
    try:
        days = float(raw[:-1]) * units[raw[-1]] if raw and raw[-1] in units else float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a span such as 7d, 12h or 1y") from None
    if not days > 0:
        raise argparse.ArgumentTypeError("the history must be longer than 0")
    return days


def load_demo_history(url: str, days: float, sessions: sessionmaker[Session]) -> None:
    """Generated history before the services start (they would write readings of their own)."""
    from store.generate import HistoryRefused, load_history  # only when asked for

    with sessions() as session:
        if session.scalar(select(orm.Reading.id).limit(1)) is not None:
            log.info("--history: skipped, the database already holds readings")
            return
    log.info("--history: loading %g days of generated history into %s ...", days, describe(url))
    try:
        result = load_history(url, days)
    except HistoryRefused as exc:  # e.g. power readings but no readings yet
        log.info("--history: skipped: %s", exc)
        return
    log.info("--history: %d readings and %d power readings loaded in %.0f s (%.0f rows/s)", result.readings,
             result.power_readings, result.seconds, result.rate)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s stack: %(message)s", datefmt="%H:%M:%S")

    try:
        settings = StackSettings.from_env(os.environ)
        layout = layout_from_env(os.environ)
        # Only the var dir is created, for the default SQLite file; a DATABASE_URL naming a missing
        # folder is refused by create_db_engine.
        try:
            settings.var_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PlantModelError(f"cannot create PLANT_VAR_DIR {settings.var_dir}: {exc.strerror}") from None
        engine = create_db_engine(settings.database_url)
    except PlantModelError as exc:
        log.error("error: %s", exc)
        return 2
    settings = StackSettings(settings.var_dir, pick_port(settings.mqtt_port, "MQTT"),
                             pick_port(settings.web_port, "web UI"), settings.database_url,
                             pick_port(settings.metrics_port, "bridge metrics") if settings.metrics_port else 0,
                             pick_port(settings.tls_port, "MQTT over TLS") if settings.tls_port else 0)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sup = Supervisor(settings, demo=not args.no_demo)
    code = 0
    try:
        # Before the services, so they do not race to create tables; a MariaDB may still be starting.
        try:
            if not wait_for_database(engine, stop=stop, log=log):
                return 0
        except SchemaOutdated:
            # The demo's own database, from an older release: upgraded here (services only refuse).
            before, after = migrate.upgrade(engine)
            log.warning("upgraded the schema of %s from %s to revision %s", describe(engine.url),
                        before.revision or before.status, after.revision)
        sessions = make_sessionmaker(engine)
        if args.history:
            load_demo_history(settings.database_url, args.history, sessions)
        sup.admin_password = reset_demo_admin(sessions)
        ensure_demo_tokens(sessions)
        sup.start()
        print(sup.banner(), flush=True)
        next_progress = time.monotonic() + args.progress
        while not stop.is_set():
            problem = sup.crashed()
            if problem:
                log.error(problem)
                code = 1
                break
            if args.progress and time.monotonic() >= next_progress:
                next_progress += args.progress
                log.info(progress(sessions, layout.units * layout.automates))
            time.sleep(0.2)
    except (RuntimeError, SQLAlchemyError) as exc:
        log.error("%s", exc)
        code = 1
    finally:
        log.info("stopping...")
        sup.stop()
    return code


if __name__ == "__main__":
    sys.exit(main())
