"""The road past one machine: the bridge writing to a 3-node MariaDB Galera cluster while a node dies.

    .venv/bin/python -m bench.bench_galera [--seconds 60] [--units 5] [--automates 10] [--rate 250]
        [--kill-after 20] [--kill-node 1] [--rejoin] [--no-failover] [--no-baseline]

Starts, on loopback, three MariaDB nodes with Debian's Galera provider (galera-4; installed with
apt-get when missing and run as root), our Mosquitto (tests/servers.py) and a real bridge process
(``python -m bridge run``) whose DATABASE_URL names node 1 and DATABASE_FAILOVER_HOSTS nodes 2 and
3. Simulated units (bench/loadgen.py) publish numbered readings (``seq`` per automate) at
``--rate`` for ``--seconds``; at ``--kill-after`` s node ``--kill-node`` (by default node 1, the one
the bridge writes to) is killed with SIGKILL, and with ``--rejoin`` started again ``--rejoin-after``
s later and waited for until it is back in the cluster (IST). Then every published (unit, automate,
seq) is looked up on a surviving node: stored once, lost or duplicated. Printed: the counts, the
stored throughput before and after the kill, how long the bridge took to write again after it
(first ``stored_at`` after the kill), the bridge's mean commit time; and the same stream (no kill)
against a single plain MariaDB as the baseline, with the ratios. Exit code 1 when anything is lost
or duplicated.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import pymysql
from sqlalchemy import Engine, func, select, text

from bench.loadgen import LoadGenerator, LoadSpec, LoadSummary, plan
from plantmodel.layout import PlantLayout
from store import models as orm
from store.db import create_db_engine, init_schema, make_sessionmaker
from tests.processes import Service, wait_for
from tests.servers import MariaDBServer, MosquittoServer, find_binary, free_port, terminate, wait_port

GALERA_LIB = Path("/usr/lib/galera/libgalera_smm.so")
CLUSTER_NAME = "plant-bench"
Say = Callable[[str], None]


def say(line: str) -> None:
    print(line, flush=True)


def ensure_galera(out: Say = say) -> Path:
    """The Galera provider library; ``apt-get install -y galera-4`` when it is missing and we are root."""
    if GALERA_LIB.exists():
        return GALERA_LIB
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise RuntimeError(f"{GALERA_LIB} is missing: sudo apt-get install -y galera-4 (or NEED_GALERA=1 "
                           "scripts/bootstrap.sh)")
    out("galera-4 missing: apt-get install -y galera-4")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(["apt-get", "install", "-y", "-qq", "galera-4"], env=env).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "galera-4"], env=env, check=True)
    if not GALERA_LIB.exists():
        raise RuntimeError(f"galera-4 installed but {GALERA_LIB} is still missing")
    return GALERA_LIB


SST_METHOD = "rsync_as_root"  # wsrep_sst_rsync, through the wrapper below


def rsync_as_root(folder: Path) -> None:
    """SST method ``rsync_as_root``: Debian's wsrep_sst_rsync with an ``rsync`` shim first in its PATH.
    The script's rsync daemon config names no uid, and an rsync daemon started by root drops to
    ``nobody``, who may not write the joiner's data directory: as root every state transfer fails,
    even an IST (which rsyncs a marker file). The shim keeps the daemon as the user that started it
    (``--dparam=uid``). A method of our own, not PATH for ``rsync``: mariadbd puts its own folders
    first in the SST script's PATH."""
    folder.mkdir(parents=True, exist_ok=True)
    real_rsync, real_sst = shutil.which("rsync"), shutil.which("wsrep_sst_rsync")
    if real_rsync is None or real_sst is None:
        raise RuntimeError("rsync or wsrep_sst_rsync is missing (mariadb-server, rsync): apt-get install -y rsync")
    scripts = {
        "rsync": ("#!/bin/sh\n"
                  f'case " $* " in *" --daemon "*) exec {real_rsync} "$@" --dparam=uid="$(id -u)" '
                  '--dparam=gid="$(id -g)" ;; esac\n'
                  f'exec {real_rsync} "$@"\n'),
        f"wsrep_sst_{SST_METHOD}": f'#!/bin/sh\nPATH="{folder}:$PATH" exec {real_sst} "$@"\n',
    }
    for name, body in scripts.items():
        (folder / name).write_text(body)
        (folder / name).chmod(0o755)


def _distinct_ports(n: int, taken: set[int]) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        port = free_port()
        if port not in taken:
            taken.add(port)
            ports.append(port)
    return ports


@dataclass
class GaleraNode:
    """One mariadbd of the cluster: own data directory, SQL port, Galera group port (base_port),
    IST and SST (rsync) receive ports."""

    directory: Path
    number: int  # 1-based
    port: int
    base_port: int
    ist_port: int
    sst_port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        return f"node{self.number}"

    @property
    def socket(self) -> Path:
        return self.directory / "mysqld.sock"

    @property
    def log(self) -> Path:
        return self.directory / "mariadb.log"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _command(self, cluster_address: str, *extra: str) -> list[str]:
        options = (f"base_port={self.base_port};gmcast.listen_addr=tcp://127.0.0.1:{self.base_port};"
                   f"ist.recv_addr=127.0.0.1:{self.ist_port};gcache.size=256M")
        return [
            find_binary("mariadbd"), "--no-defaults", f"--datadir={self.directory / 'data'}", f"--port={self.port}",
            f"--tmpdir={self.directory / 'tmp'}", "--bind-address=127.0.0.1", f"--socket={self.socket}",
            f"--pid-file={self.directory}/mysqld.pid", "--innodb-buffer-pool-size=64M", "--skip-name-resolve",
            "--innodb-flush-log-at-trx-commit=2", "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_unicode_ci", "--local-infile=0",
            # What Galera needs: row events, InnoDB, interleaved auto-increment locks.
            "--binlog-format=ROW", "--default-storage-engine=InnoDB", "--innodb-autoinc-lock-mode=2",
            "--wsrep-on=ON", f"--wsrep-provider={ensure_galera()}", f"--wsrep-cluster-name={CLUSTER_NAME}",
            f"--wsrep-cluster-address={cluster_address}", f"--wsrep-node-name={self.name}",
            "--wsrep-node-address=127.0.0.1", f"--wsrep-node-incoming-address=127.0.0.1:{self.port}",
            f"--wsrep-provider-options={options}", f"--wsrep-sst-method={SST_METHOD}",
            f"--wsrep-sst-receive-address=127.0.0.1:{self.sst_port}",
            *(["--user=root"] if os.geteuid() == 0 else []), *extra]

    def _env(self) -> dict[str, str]:
        return {**os.environ, "PATH": f"{self.directory.parent / 'bin'}:{os.environ.get('PATH', '')}"}

    def start(self, cluster_address: str, *, bootstrap: bool, timeout: float = 180) -> None:
        """Start (a first start creates the data directory). A node that crashed first recovers its
        position from InnoDB (``--wsrep-recover``, as mysqld_safe / galera_recovery do) and starts
        from it, so that it can rejoin by IST instead of a full SST."""
        data = self.directory / "data"
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "tmp").mkdir(exist_ok=True)
        extra = ["--wsrep-new-cluster"] if bootstrap else []
        with self.log.open("ab") as log:
            if not data.exists():
                as_root = ["--user=root"] if os.geteuid() == 0 else []
                subprocess.run([find_binary("mariadb-install-db"), "--no-defaults", f"--datadir={data}",
                                "--auth-root-authentication-method=normal", "--skip-test-db", *as_root],
                               check=True, stdout=log, stderr=subprocess.STDOUT)
            elif (position := self.recover_position(cluster_address)) is not None:
                extra.append(f"--wsrep-start-position={position}")
            self.proc = subprocess.Popen(self._command(cluster_address, *extra), stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True, env=self._env())
        wait_port(self.port, timeout, self.proc)

    def recover_position(self, cluster_address: str) -> str | None:
        """``uuid:seqno`` from ``mariadbd --wsrep-recover`` when grastate.dat does not know it (seqno
        -1 after a crash); None when it does, or when nothing could be recovered."""
        grastate = self.directory / "data" / "grastate.dat"
        if grastate.exists() and "seqno:   -1" not in grastate.read_text():
            return None
        log = self.directory / "recover.log"
        log.unlink(missing_ok=True)
        subprocess.run(self._command(cluster_address, "--wsrep-recover", f"--log-error={log}"),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=self._env(), timeout=300)
        found = re.findall(r"Recovered position: ([0-9a-f-]{36}:-?\d+)", log.read_text(errors="replace")
                           if log.exists() else "")
        return found[-1] if found and not found[-1].endswith(":-1") else None

    def admin(self) -> pymysql.connections.Connection:
        return pymysql.connect(unix_socket=str(self.socket), user="root", autocommit=True, connect_timeout=5)

    def status(self) -> dict[str, str]:
        """wsrep_* status variables (empty when the node does not answer)."""
        try:
            with self.admin() as conn, conn.cursor() as cur:
                cur.execute("SHOW STATUS LIKE 'wsrep%'")
                return {str(k): str(v) for k, v in cur.fetchall()}
        except pymysql.MySQLError:
            return {}

    def synced(self, size: int) -> bool:
        s = self.status()
        return (s.get("wsrep_local_state_comment") == "Synced" and s.get("wsrep_cluster_size") == str(size)
                and s.get("wsrep_ready") == "ON")

    def kill(self) -> None:
        """SIGKILL: a crash, no clean leave from the group."""
        if self.alive():
            assert self.proc is not None
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        terminate(self.proc, 60)
        self.proc = None


@dataclass
class GaleraCluster:
    directory: Path
    size: int = 3
    user: str = "plant"
    password: str = "plant-bench-pw"
    nodes: list[GaleraNode] = field(default_factory=list)

    def __post_init__(self) -> None:
        taken: set[int] = set()
        for i in range(1, self.size + 1):
            self.nodes.append(GaleraNode(self.directory / f"node{i}", i, *_distinct_ports(4, taken)))

    @property
    def address(self) -> str:
        return "gcomm://" + ",".join(f"127.0.0.1:{n.base_port}" for n in self.nodes)

    def start(self, out: Say = say, timeout: float = 180) -> None:
        """Bootstrap node 1 (``--wsrep-new-cluster``), create the bench's account, then join the
        others one by one (each a full state transfer from a donor: rsync SST) until all are Synced."""
        ensure_galera(out)
        rsync_as_root(self.directory / "bin")
        first = self.nodes[0]
        t0 = time.monotonic()
        out(f"  {first.name}: bootstrapping a new cluster (SQL port {first.port}, group port {first.base_port})")
        first.start(self.address, bootstrap=True, timeout=timeout)
        self.wait_synced(first, 1, timeout)
        with first.admin() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE USER IF NOT EXISTS '{self.user}'@'%' IDENTIFIED BY '{self.password}'")
            cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{self.user}'@'%'")
        for n, node in enumerate(self.nodes[1:], start=2):
            out(f"  {node.name}: joining (SQL port {node.port}, group port {node.base_port}; rsync SST) ...")
            node.start(self.address, bootstrap=False, timeout=timeout)
            self.wait_synced(node, n, timeout)
        out(f"  cluster up: wsrep_cluster_size={self.size}, all Synced ({time.monotonic() - t0:.1f} s)")

    def wait_synced(self, node: GaleraNode, size: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not node.synced(size):
            if not node.alive():
                raise RuntimeError(f"{node.name} exited; its log: {node.log}\n{_tail(node.log)}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{node.name} not Synced in a cluster of {size} after {timeout:g} s "
                                   f"({node.status().get('wsrep_local_state_comment')}); log: {node.log}")
            time.sleep(0.2)

    def rejoin(self, node: GaleraNode, timeout: float = 180) -> tuple[float, str]:
        """Start a killed node again and wait until it is Synced; (seconds, "IST" or "SST")."""
        t0 = time.monotonic()
        mark = node.log.stat().st_size if node.log.exists() else 0
        node.start(self.address, bootstrap=False, timeout=timeout)
        self.wait_synced(node, self.size, timeout)
        with node.log.open("rb") as f:
            f.seek(mark)
            log = f.read().decode(errors="replace")
        # An IST runs the SST script too, in IST mode: it ends with "rsync IST completed on joiner".
        method = "IST" if "IST completed on joiner" in log else "SST" if "SST completed on joiner" in log else "?"
        return time.monotonic() - t0, method

    def create_database(self, name: str = "plant") -> None:
        with self.nodes[0].admin() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")

    def url(self, node: GaleraNode, database: str = "plant") -> str:
        return f"mariadb+pymysql://{self.user}:{self.password}@127.0.0.1:{node.port}/{database}?charset=utf8mb4"

    def failover_hosts(self, first: GaleraNode) -> str:
        """DATABASE_FAILOVER_HOSTS for a bridge whose URL names ``first``: the other nodes in order."""
        return ",".join(f"127.0.0.1:{n.port}" for n in self.nodes if n is not first)

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()


def _tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


# --- the stream -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    seconds: float = 60.0
    units: int = 5
    automates: int = 10
    rate: float = 250.0  # readings/s, all units together
    kill_after: float | None = 20.0  # None: no kill
    kill_node: int = 1
    rejoin_after: float | None = None  # s after the kill; None: the node stays down
    failover: bool = True
    baseline: bool = True
    settle: float = 60.0  # s to wait after the last publish for the bridge to store everything
    progress_every: float = 5.0


@dataclass
class Timeline:
    """What the bench saw during one stream: (s since the start, readings stored) samples on the
    reading node, and when the kill happened."""

    samples: list[tuple[float, int]] = field(default_factory=list)
    kill_t: float | None = None
    stream_end: float = 0.0
    rate: float = 0.0  # published readings/s
    readings: int = 0  # planned

    def at_kill(self) -> int:
        before = [n for t, n in self.samples if self.kill_t is not None and t <= self.kill_t]
        return before[-1] if before else 0

    def resume(self) -> float | None:
        """s from the kill until stored readings grow again, by more than a quarter second's worth
        (what the survivors were still applying of the killed node's last commits is less)."""
        if self.kill_t is None:
            return None
        threshold = self.at_kill() + max(25, self.rate / 4)
        return next((t - self.kill_t for t, n in self.samples if t > self.kill_t and n > threshold), None)

    def caught_up(self) -> float | None:
        """s from the start until, after the resume, the stored count is back within half a second
        of what was published by then (the backlog is drained)."""
        resume = self.resume()
        if resume is None or self.kill_t is None:
            return None
        return next((t for t, n in self.samples if t >= self.kill_t + resume
                     and n >= min(t * self.rate, self.readings) - self.rate / 2), None)


@dataclass
class StreamResult:
    label: str
    published: int
    stored: int
    lost: int
    duplicated: int
    unexpected: int
    timeline: Timeline
    drained_s: float | None  # end of publishing -> everything stored (None: never)
    commit_ms: float  # the bridge's mean batch transaction time, before the kill time
    batch_rows: float  # mean messages per batch, same window
    db_errors: int  # the bridge's retried transient failures (whole run)
    failover_s: float | None  # kill -> the bridge's first connection to a failover host (its log)
    rejoin: tuple[float, str] | None = None
    node_counts: dict[str, int] = field(default_factory=dict)
    errors: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.duplicated == 0 and self.unexpected == 0 and not self.errors

    def summary(self) -> str:
        return (f"published {self.published}, stored {self.stored}, lost {self.lost}, "
                f"duplicated {self.duplicated}")

    @property
    def before_rate(self) -> float:
        """Stored readings/s from 2 s into the stream to the kill (or the end of the stream)."""
        tl = self.timeline
        end = tl.kill_t if tl.kill_t is not None else tl.stream_end
        return rate_between(tl.samples, min(2.0, end / 2), end)


def expected_keys(specs: list[LoadSpec]) -> set[tuple[int, int, int]]:
    """Every (unit, automate, seq) the load generator publishes for ``specs`` (see loadgen's order:
    round robin over the process's (unit, automate) pairs, seq counting per pair from 0)."""
    keys: set[tuple[int, int, int]] = set()
    for spec in specs:
        pairs = [(u, a) for u in spec.units for a in range(1, spec.automates + 1)]
        for j in range(spec.readings):
            unit, automate = pairs[j % len(pairs)]
            keys.add((unit, automate, j // len(pairs)))
    return keys


def compare(expected: set[tuple[int, int, int]], stored: dict[tuple[int, int, int], int]) -> tuple[int, int, int]:
    """(lost, duplicated, unexpected): published keys not stored, extra copies of stored ones,
    stored keys no one published."""
    lost = sum(1 for k in expected if k not in stored)
    duplicated = sum(n - 1 for n in stored.values() if n > 1)
    unexpected = sum(1 for k in stored if k not in expected)
    return lost, duplicated, unexpected


def rate_between(samples: list[tuple[float, int]], start: float, end: float) -> float:
    """Stored readings/s between two times of the (time, count) samples (nearest samples inside)."""
    inside = [s for s in samples if start <= s[0] <= end]
    if len(inside) < 2 or inside[-1][0] - inside[0][0] <= 0:
        return 0.0
    return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])


def scrape(port: int) -> dict[str, float]:
    """The bridge's Prometheus metrics (unlabelled series only)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            body = resp.read().decode()
    except OSError:
        return {}
    values: dict[str, float] = {}
    for line in body.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, _, value = line.partition(" ")
            with contextlib.suppress(ValueError):
                values[name] = float(value)
    return values


def count(engine: Engine, *, causal: bool = False) -> int | None:
    """Readings stored (None: the node does not answer). ``causal``: on a Galera node, first wait
    until it has applied everything the cluster committed before the query (wsrep_sync_wait)."""
    try:
        with engine.connect() as conn:
            if causal:
                conn.exec_driver_sql("SET SESSION wsrep_sync_wait = 1")
            return int(conn.scalar(text("SELECT COUNT(*) FROM readings")) or 0)
    except Exception:
        return None


def first_failover(log: str, since: datetime) -> float | None:
    """s from ``since`` (local time) to the bridge's first "connected to failover host" line after it."""
    for line in log.splitlines():
        if "connected to failover host" in line:
            with contextlib.suppress(ValueError):
                at = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
                if at >= since:
                    return (at - since).total_seconds()
    return None


def run_stream(label: str, opts: Options, broker: MosquittoServer, url: str, failover_hosts: str,
               read_url: str, workdir: Path, out: Say = say, kill: Callable[[], None] | None = None,
               rejoin: Callable[[], tuple[float, str]] | None = None,
               node_urls: Callable[[], dict[str, str]] | None = None) -> StreamResult:
    """One stream of readings through a real bridge into ``url`` (``failover_hosts``: its
    DATABASE_FAILOVER_HOSTS), counted on ``read_url``. At ``opts.kill_after`` s the bridge's
    metrics are read (the pre-kill commit times) and ``kill`` is called; ``rejoin``
    ``opts.rejoin_after`` s after that. ``node_urls``: the live nodes to count on at the end."""
    metrics_port = free_port()
    env = {**broker.env(), "DATABASE_URL": url, "MQTT_USERNAME": broker.bridge_user(),
           "BRIDGE_METRICS_PORT": str(metrics_port), "BRIDGE_METRICS_HOST": "127.0.0.1"}
    if failover_hosts:
        env["DATABASE_FAILOVER_HOSTS"] = failover_hosts
    reader = create_db_engine(read_url)
    bridge = Service(f"bridge-{label}", ["bridge", "run"], env, workdir)
    errors: list[str] = []
    readings = int(opts.rate * opts.seconds)
    tl = Timeline(rate=opts.rate, readings=readings)
    metrics: dict[str, float] = {}
    rejoined: list[tuple[float, str]] = []
    kill_local: datetime | None = None
    published = 0
    drained_s: float | None = None
    try:
        wait_for(lambda: "connected to" in bridge.log(), 60, f"the bridge ({label})", services=[bridge])
        specs = plan(broker.port, broker.users, opts.units, opts.automates, readings, opts.rate, 1)
        summary: list[LoadSummary] = []
        with LoadGenerator(specs) as gen:
            gen.start()
            gen.go()
            t0 = time.monotonic()
            waiter = threading.Thread(target=lambda: summary.append(gen.wait(opts.seconds + 300)), daemon=True)
            waiter.start()
            out(f"  [{label}] streaming {readings} readings: {opts.units} units x {opts.automates} automates at "
                f"{opts.rate:g}/s for {opts.seconds:g} s")
            rejoin_thread: threading.Thread | None = None
            next_report = opts.progress_every
            while waiter.is_alive():
                now = time.monotonic() - t0
                n = count(reader)
                if n is not None:
                    tl.samples.append((now, n))
                if opts.kill_after is not None and not metrics and now >= opts.kill_after:
                    metrics = scrape(metrics_port)  # commit times so far: before any kill
                    if kill is not None:
                        kill_local = datetime.now()
                        kill()
                        tl.kill_t = time.monotonic() - t0
                        out(f"  [{label}] t={tl.kill_t:5.1f} s  SIGKILL node {opts.kill_node} (stored so far: {n})")
                if (rejoin is not None and tl.kill_t is not None and rejoin_thread is None
                        and opts.rejoin_after is not None and now >= tl.kill_t + opts.rejoin_after):
                    out(f"  [{label}] t={now:5.1f} s  restarting node {opts.kill_node} (recovery, then IST) ...")

                    def _rejoin() -> None:
                        assert rejoin is not None
                        try:
                            rejoined.append(rejoin())
                        except Exception as exc:
                            errors.append(f"rejoin failed: {exc}")
                    rejoin_thread = threading.Thread(target=_rejoin, daemon=True)
                    rejoin_thread.start()
                if now >= next_report:
                    next_report += opts.progress_every
                    out(f"  [{label}] t={now:5.1f} s  stored {n if n is not None else '?'} "
                        f"(published ~{min(int(now * opts.rate), readings)})")
                time.sleep(0.25)
            tl.stream_end = time.monotonic() - t0
            load = summary[0] if summary else None
            if load is None or load.errors:
                errors.append(f"load generator: {load.errors if load else 'no result'}")
            published = load.published if load else 0
            out(f"  [{label}] publishing done ({published} acknowledged by the broker, {tl.stream_end:.1f} s); "
                f"waiting up to {opts.settle:g} s for the bridge to store them")
        settle_end = time.monotonic() + opts.settle
        next_report = time.monotonic() + opts.progress_every
        while True:
            n = count(reader)
            now = time.monotonic() - t0
            if n is not None:
                tl.samples.append((now, n))
                if n >= published:
                    drained_s = now - tl.stream_end
                    break
            if time.monotonic() > settle_end:
                out(f"  [{label}] gave up waiting: stored {n} of {published}")
                break
            if time.monotonic() >= next_report:
                next_report += opts.progress_every
                out(f"  [{label}] +{now - tl.stream_end:4.1f} s after the stream: stored {n} of {published}")
            time.sleep(0.25)
        if rejoin_thread is not None:
            rejoin_thread.join()
        metrics = metrics or scrape(metrics_port)
        final_metrics = scrape(metrics_port)
    finally:
        bridge_exit = bridge.stop(timeout=30)
    if bridge_exit != 0:
        errors.append(f"the bridge exited with {bridge_exit}; log: {bridge.log_path}")
    with make_sessionmaker(reader)() as s:
        rows = s.execute(select(orm.Reading.unit_id, orm.Reading.automate_no, orm.Reading.seq, func.count())
                         .group_by(orm.Reading.unit_id, orm.Reading.automate_no, orm.Reading.seq)).all()
    reader.dispose()
    stored_map = {(int(u), int(a), int(q)): int(c) for u, a, q, c in rows}
    lost, duplicated, unexpected = compare(expected_keys(specs), stored_map)
    node_counts = {name: c for name, u in (node_urls() if node_urls else {}).items() if (c := _count_at(u)) is not None}
    commits = metrics.get("bridge_commit_seconds_count", 0.0)
    return StreamResult(
        label, published, sum(stored_map.values()), lost, duplicated, unexpected, tl, drained_s,
        1000 * metrics.get("bridge_commit_seconds_sum", 0.0) / max(commits, 1),
        metrics.get("bridge_batch_size_sum", 0.0) / max(metrics.get("bridge_batch_size_count", 0.0), 1),
        int(final_metrics.get("bridge_db_errors_total", 0)),
        first_failover(bridge.log(), kill_local) if kill_local is not None else None,
        rejoined[0] if rejoined else None, node_counts, tuple(errors))


def _count_at(url: str) -> int | None:
    engine = create_db_engine(url)
    try:
        return count(engine, causal=True)
    finally:
        engine.dispose()


def report(r: StreamResult, out: Say = say) -> None:
    tl = r.timeline
    out(f"[{r.label}] {r.summary()}" + (f", unexpected {r.unexpected}" if r.unexpected else ""))
    window = "before the kill" if tl.kill_t is not None else "steady"
    out(f"[{r.label}] throughput {window}: {r.before_rate:.0f} readings/s stored (published at {tl.rate:g}/s); "
        f"mean batch transaction {r.commit_ms:.1f} ms for {r.batch_rows:.1f} messages")
    if tl.kill_t is not None:
        resume, caught = tl.resume(), tl.caught_up()
        failover = f"{r.failover_s:.2f} s" if r.failover_s is not None else "never"
        if resume is None:
            out(f"[{r.label}] after the kill: the bridge did NOT write again within the run "
                f"(connection to a failover host: {failover}; {r.db_errors} batch transaction(s) failed and were "
                "retried)")
        else:
            out(f"[{r.label}] after the kill: the bridge wrote again {resume:.1f} s after it (connected to a "
                f"failover host after {failover}; the commit waits until the survivors evict the dead node); "
                f"{r.db_errors} batch transaction(s) failed and were retried, nothing acknowledged before its commit")
            resumed = tl.kill_t + resume
            if caught is not None and caught > resumed:
                backlog = tl.rate * resume
                out(f"[{r.label}] throughput after the kill: backlog of ~{backlog:.0f} caught up at "
                    f"{rate_between(tl.samples, resumed, caught):.0f} readings/s in {caught - resumed:.1f} s, then "
                    f"{rate_between(tl.samples, caught, tl.stream_end):.0f} readings/s to the end of the stream")
    drained = f"{r.drained_s:.1f} s after the last publish" if r.drained_s is not None else "NEVER (settle timeout)"
    out(f"[{r.label}] everything stored: {drained}")
    if r.rejoin is not None:
        out(f"[{r.label}] killed node back in the cluster (Synced) {r.rejoin[0]:.1f} s after its restart, "
            f"by {r.rejoin[1]}")
    if r.node_counts:
        counts = ", ".join(f"{k} {v}" for k, v in r.node_counts.items())
        out(f"[{r.label}] readings per live node at the end: {counts}")
    for e in r.errors:
        out(f"[{r.label}] ERROR {e}")


def run(opts: Options, workdir: Path, out: Say = say) -> tuple[StreamResult, StreamResult | None]:
    """The whole bench: the Galera run (with its kill) and, with ``opts.baseline``, the single-server run."""
    if not 1 <= opts.kill_node <= 3:
        raise ValueError("kill_node must be 1..3")
    layout = PlantLayout(units=max(opts.units, 1), automates=max(opts.automates, 1))
    broker = MosquittoServer(workdir / "broker", layout, tls=False)
    cluster = GaleraCluster(workdir / "galera")
    single: StreamResult | None = None
    broker.start()
    try:
        try:
            out("Starting a 3-node MariaDB Galera cluster on loopback:")
            cluster.start(out)
            cluster.create_database()
            first = cluster.nodes[0]
            victim = cluster.nodes[opts.kill_node - 1]
            reader = next(n for n in reversed(cluster.nodes) if n is not victim)
            engine = create_db_engine(cluster.url(first))
            init_schema(engine)
            engine.dispose()
            failover = cluster.failover_hosts(first) if opts.failover else ""
            out(f"Bridge: DATABASE_URL -> {first.name} (127.0.0.1:{first.port}), "
                f"DATABASE_FAILOVER_HOSTS={failover or '(none)'}")
            rejoin = (lambda: cluster.rejoin(victim)) if opts.rejoin_after is not None else None
            galera = run_stream("galera", opts, broker, cluster.url(first), failover, cluster.url(reader),
                                workdir, out, kill=victim.kill if opts.kill_after is not None else None,
                                rejoin=rejoin,
                                node_urls=lambda: {n.name: cluster.url(n) for n in cluster.nodes if n.alive()})
        finally:
            cluster.stop()
        if opts.baseline:
            # Same options, kill_after included: its metrics are read at the same time, nothing is killed.
            out("Baseline: the same stream into a single plain MariaDB (no Galera, no kill):")
            db = MariaDBServer(workdir / "single")
            try:
                db.start()
                url = db.create_database()
                engine = create_db_engine(url)
                init_schema(engine)
                engine.dispose()
                single = run_stream("single", replace(opts, rejoin_after=None), broker, url, "", url, workdir, out)
            finally:
                db.stop()
    finally:
        broker.stop()
    return galera, single


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_galera", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="streaming time (s) [60]")
    parser.add_argument("--units", type=int, default=5, help="simulated production units [5]")
    parser.add_argument("--automates", type=int, default=10, help="automates per unit [10]")
    parser.add_argument("--rate", type=float, default=250.0, help="readings/s, all units together [250]")
    parser.add_argument("--kill-after", type=float, default=20.0,
                        help="SIGKILL a node this many s into the stream; negative: no kill [20]")
    parser.add_argument("--kill-node", type=int, default=1, choices=(1, 2, 3),
                        help="which node to kill [1: the one DATABASE_URL names, the bridge's]")
    parser.add_argument("--rejoin", action="store_true", help="restart the killed node and wait until it is "
                        "Synced again (IST from the survivors)")
    parser.add_argument("--rejoin-after", type=float, default=15.0, help="s after the kill to restart it [15]")
    parser.add_argument("--no-failover", action="store_true",
                        help="give the bridge node 1 only (no DATABASE_FAILOVER_HOSTS): the failure case")
    parser.add_argument("--no-baseline", action="store_true", help="skip the single-MariaDB baseline run")
    parser.add_argument("--settle", type=float, default=60.0,
                        help="s to wait after the last publish for everything to be stored [60]")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, data)")
    args = parser.parse_args(argv)
    opts = Options(seconds=args.seconds, units=args.units, automates=args.automates, rate=args.rate,
                   kill_after=args.kill_after if args.kill_after >= 0 else None, kill_node=args.kill_node,
                   rejoin_after=args.rejoin_after if args.rejoin else None, failover=not args.no_failover,
                   baseline=not args.no_baseline, settle=args.settle)
    workdir = Path(tempfile.mkdtemp(prefix="bench-galera-"))
    say(f"work directory (logs): {workdir}")
    ok = False
    try:
        galera, single = run(opts, workdir)
        say("")
        say("Results:")
        for r in (galera, single):
            if r is not None:
                report(r)
        if galera is not None and single is not None and single.before_rate > 0:
            say(f"Galera / single MariaDB: throughput {galera.before_rate / single.before_rate:.2f}x "
                f"(before the kill), mean batch transaction {galera.commit_ms / max(single.commit_ms, 1e-9):.2f}x "
                f"as long ({galera.commit_ms:.1f} vs {single.commit_ms:.1f} ms)")
        ok = galera is not None and galera.ok and (single is None or single.ok)
        say("OK: every published reading stored exactly once" if ok else "FAILED: readings lost or duplicated")
    finally:
        if args.keep or not ok:
            say(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
