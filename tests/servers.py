"""Real servers for the integration tests: Mosquitto started from *our* mosquitto.conf (with our
generated users and ACL) and a throwaway MariaDB (own data directory, free port)."""

from __future__ import annotations

import os
import shutil
import socket
import string
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pymysql

from broker.config import DEFAULT_CONF, LocalBroker, TlsListener, render
from broker.credentials import CredentialFiles, ServiceUsers, generate
from broker.tls import DEFAULT_NAMES, TlsFiles
from broker.tls import generate as generate_certs
from plantmodel.layout import PlantLayout
from plantmodel.topics import Topics

APT_HINT = "apt-get update && apt-get install -y mosquitto mosquitto-clients mariadb-server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout} s")


def terminate(proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def find_binary(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/usr/bin")
    if path is None:
        raise RuntimeError(f"{name} is not installed; run: {APT_HINT} (scripts/test.sh does it)")
    return path


# The broker ties client ids to users (use_username_as_clientid), so every concurrent client and
# every separate persistent session needs its own user: plenty of spare bridges and debug users.
TEST_SERVICE_USERS = ServiceUsers(bridges=40, debug=40, webuis=4)


@dataclass
class MosquittoServer:
    directory: Path
    layout: PlantLayout
    topics: Topics = field(default_factory=Topics)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    services: ServiceUsers = TEST_SERVICE_USERS
    # As deployed: a TLS listener (development certificates for tls_names) beside the plain one.
    tls: bool = True
    tls_port: int = field(default_factory=free_port)
    tls_names: tuple[str, ...] = DEFAULT_NAMES

    def __post_init__(self) -> None:
        self.files = CredentialFiles(self.directory / "secrets")
        self.tls_files = TlsFiles(self.directory / "secrets" / "tls")
        listener = None
        if self.tls:
            generate_certs(self.tls_files, self.tls_names)
            listener = TlsListener(self.tls_port, self.tls_files.ca_cert, self.tls_files.server_cert,
                                   self.tls_files.server_key)
        self.users, _ = generate(self.layout, self.topics, self.files, self.services)
        # Numbered users only: the plain `bridge` and `debug` stay free for tests naming them.
        self._spare = {"bridge": iter(self.services.bridge_users()[1:]),
                       "debug": iter(self.services.debug_users()[1:])}
        self._spare_lock = threading.Lock()
        data = self.directory / "data"
        data.mkdir(parents=True, exist_ok=True)
        local = LocalBroker(self.port, "127.0.0.1", self.files.passwd, self.files.acl, data, listener)
        self.conf = self.directory / "mosquitto.conf"
        self.conf.write_text(render(DEFAULT_CONF.read_text(), local))
        self.log = self.directory / "mosquitto.log"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([find_binary("mosquitto"), "-c", str(self.conf)],
                                         stdout=log, stderr=subprocess.STDOUT)
        wait_port(self.port, 10, self.proc)
        if self.tls:
            wait_port(self.tls_port, 10, self.proc)

    def stop(self) -> None:
        terminate(self.proc, 10)
        self.proc = None

    def bridge_user(self) -> str:
        """A bridge user no one has used yet on this broker: its own client id, so its own
        persistent session (run the bridge with ``MQTT_USERNAME=<it>``)."""
        return self._next_spare("bridge")

    def debug_user(self) -> str:
        """A read-everything user no one has used yet: a connection no other client kicks off."""
        return self._next_spare("debug")

    def _next_spare(self, role: str) -> str:
        with self._spare_lock:
            user = next(self._spare[role], None)
        if user is None:
            raise RuntimeError(f"all spare {role} users of this broker are taken; raise TEST_SERVICE_USERS")
        return user

    def env(self, *, tls: bool = False) -> dict[str, str]:
        """Environment for a service process talking to this broker (over TLS with ``tls``,
        verifying the certificate against this broker's CA)."""
        link = ({"MQTT_TLS": "1", "MQTT_CA_FILE": str(self.tls_files.ca_cert), "MQTT_PORT": str(self.tls_port),
                 "MQTT_HOST": self.tls_names[0]} if tls
                else {"MQTT_HOST": "127.0.0.1", "MQTT_PORT": str(self.port)})
        return {**link, "MQTT_CREDENTIALS_FILE": str(self.files.credentials),
                "PLANT_UNITS": str(self.layout.units), "PLANT_AUTOMATES": str(self.layout.automates),
                "PLANT_METERS": ",".join(self.layout.meters)}


@dataclass
class MariaDBServer:
    directory: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    user: str = "plant"
    password: str = "plant-test-pw"
    _counter: int = 0

    @property
    def socket(self) -> Path:
        return self.directory / "mysqld.sock"

    def start(self) -> None:
        data = self.directory / "data"
        as_root = ["--user=root"] if os.geteuid() == 0 else []
        self.directory.mkdir(parents=True, exist_ok=True)
        log = (self.directory / "mariadb.log").open("ab")
        first_start = not data.exists()
        if first_start:
            subprocess.run(
                [find_binary("mariadb-install-db"), "--no-defaults", f"--datadir={data}",
                 "--auth-root-authentication-method=normal", "--skip-test-db", *as_root],
                check=True, stdout=log, stderr=subprocess.STDOUT,
            )
        # Its own temporary directory: information_schema's temporary tables (DESCRIBE) are files
        # there, out of reach of whatever else cleans /tmp (a failed one crashed 10.11.19 once).
        (self.directory / "tmp").mkdir(exist_ok=True)
        self.proc = subprocess.Popen(
            [find_binary("mariadbd"), "--no-defaults", f"--datadir={data}", f"--port={self.port}",
             f"--tmpdir={self.directory / 'tmp'}",
             "--bind-address=127.0.0.1", f"--socket={self.socket}", f"--pid-file={self.directory}/mysqld.pid",
             "--skip-log-bin", "--innodb-buffer-pool-size=64M", "--skip-name-resolve",
             # Throwaway data: skip the fsync per commit to keep the suite fast.
             "--innodb-flush-log-at-trx-commit=2", "--character-set-server=utf8mb4",
             "--collation-server=utf8mb4_unicode_ci",
             # As deployed (docker-compose.yml): LOAD DATA LOCAL would skip column-level INSERT grants.
             "--local-infile=0", *as_root],
            stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()  # the server has its own copy of the descriptor
        wait_port(self.port, 30, self.proc)
        if not first_start:
            return
        with self.admin() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE USER IF NOT EXISTS '{self.user}'@'%' IDENTIFIED BY '{self.password}'")
            cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{self.user}'@'%'")

    def admin(self) -> pymysql.connections.Connection:
        return pymysql.connect(unix_socket=str(self.socket), user="root", autocommit=True)

    def create_database(self, prefix: str = "plant") -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        self._counter += 1
        name = f"{prefix}_{self._counter}"
        with self.admin() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        return self.url(name)

    def url(self, database: str) -> str:
        return f"mariadb+pymysql://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}?charset=utf8mb4"

    def root_url(self, database: str = "") -> str:
        """root's SQLAlchemy URL (unix socket): the account that may create users and grant."""
        return f"mariadb+pymysql://root@localhost/{database}?unix_socket={self.socket}&charset=utf8mb4"

    def stop(self) -> None:
        terminate(self.proc, 30)  # InnoDB may need a while to shut down cleanly
        self.proc = None


NGINX_TEMPLATE = Path(__file__).resolve().parent.parent / "deploy" / "nginx" / "webui.conf.template"


@dataclass
class NginxServer:
    """Debian's nginx in front of web UI processes, with our ``deploy/nginx/webui.conf.template``
    rendered as the nginx image renders it (envsubst of our variables only), on free loopback ports."""

    directory: Path
    upstreams: list[int]  # the web UI processes' ports
    tls: TlsFiles
    static_dir: Path = Path(__file__).resolve().parent.parent / "webui" / "static"
    http_port: int = field(default_factory=free_port)
    https_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def https(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def render(self) -> str:
        # The template's explicit list: `host:port; server host:port`.
        values = {"WEBUI_UPSTREAM": "; server ".join(f"127.0.0.1:{port}" for port in self.upstreams),
                  "NGINX_HTTP_PORT": str(self.http_port), "NGINX_HTTPS_PORT": str(self.https_port),
                  "NGINX_PUBLIC_HTTPS_PORT": str(self.https_port), "TLS_CERT": str(self.tls.server_cert),
                  "TLS_KEY": str(self.tls.server_key), "STATIC_DIR": str(self.static_dir)}
        return string.Template(NGINX_TEMPLATE.read_text(encoding="utf-8")).safe_substitute(values)

    def main_conf(self, server_block: Path) -> str:
        prefix = self.directory
        # As root, nginx's workers would run as www-data, which cannot enter pytest's 0700 folders (the
        # static files, a checkout made by mktemp): the test's workers stay root. Deployed, the image's
        # nginx user reads the files it is given.
        user = "user root;\n" if os.geteuid() == 0 else ""
        return (f"daemon off;\n{user}pid {prefix}/nginx.pid;\nerror_log {prefix}/error.log warn;\n"
                "worker_processes 1;\nworker_rlimit_nofile 8192;\nevents { worker_connections 4096; }\n"
                f"http {{\n  include /etc/nginx/mime.types;\n  access_log {prefix}/access.log;\n"
                f"  client_body_temp_path {prefix}/body;\n  proxy_temp_path {prefix}/proxy;\n"
                f"  fastcgi_temp_path {prefix}/fastcgi;\n  uwsgi_temp_path {prefix}/uwsgi;\n"
                f"  scgi_temp_path {prefix}/scgi;\n  include {server_block};\n}}\n")

    def check(self) -> subprocess.CompletedProcess[str]:
        """``nginx -t`` of the rendered configuration (written by the first call)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        block = self.directory / "webui.conf"
        block.write_text(self.render())
        conf = self.directory / "nginx.conf"
        conf.write_text(self.main_conf(block))
        return subprocess.run([find_binary("nginx"), "-t", "-c", str(conf), "-p", str(self.directory)],
                              capture_output=True, text=True)

    def start(self) -> None:
        checked = self.check()
        if checked.returncode != 0:
            raise RuntimeError(f"nginx -t failed: {checked.stderr}")
        self.proc = subprocess.Popen([find_binary("nginx"), "-c", str(self.directory / "nginx.conf"), "-p",
                                      str(self.directory)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_port(self.https_port, 10, self.proc)

    def stop(self) -> None:
        terminate(self.proc, 10)
        self.proc = None
