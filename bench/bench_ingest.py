"""Ingest benchmark: the bridge against a bare QoS 1 subscriber (the ceiling) and a naive bridge (one
INSERT + COMMIT per message), all measured in one run on the same machine.

    .venv/bin/python -m bench.bench_ingest [--quick] [--rounds 3] [--readings 50000] [--rate 2000]
        [--seconds 30] [--backlog 200000] [--generators 2] [--no-kill] [--workdir DIR]

Starts our Mosquitto (our mosquitto.conf, generated users and ACL) and a throwaway MariaDB with
durable commits (innodb_flush_log_at_trx_commit=1). 50 simulated units x 10 automates publish real
readings at QoS 1 from generator processes, each unit with its own credentials. Measured, each with a
fresh database and its own bridge user (persistent session):

  burst        N readings as fast as the broker takes them: ceiling, naive bridge, our bridge,
               two bridges sharing the stream (repeated --rounds times; medians are printed);
  kill         our bridge SIGKILLed when publishing ends, restarted: readings lost (must be 0);
  fixed rate   R readings/s for T s through our bridge: publish -> commit latency (stored_at - ts;
               the bridge takes stored_at just before its commit, ts is the unit's publish time);
               the goal: p99 < 300 ms at an offered 2 000 readings/s;
  backlog      B readings queued by the broker while the bridge is down, then drained: rate, peak RSS.

Stored rows/s runs from the first publish to the moment every row is visible in ``readings``.
For every bridge run, database contention over the same window: MariaDB's row-lock waits (deltas of
SHOW GLOBAL STATUS Innodb_row_lock_waits / Innodb_row_lock_time / Innodb_deadlocks; nothing but the
bridges writes meanwhile) and the bridges' own metrics (each bridge serves them on a free
BRIDGE_METRICS_PORT, scraped before it stops): bridge_db_errors_total, mean batch size, mean commit ms.
Progress lines go to stdout while it runs, then Markdown tables, the ratios, the command line and
the machine.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import platform
import queue
import re
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

from sqlalchemy import Engine, inspect, text

from bench.ingest_baselines import SubscriberResult, SubscriberSpec, subscribe
from bench.loadgen import LoadGenerator, LoadSummary, plan
from bridge.settings import BridgeSettings
from plantmodel.layout import PlantLayout
from plantmodel.mqtt import MqttSettings, new_client
from plantmodel.topics import Topics
from store.db import create_db_engine, init_schema
from tests.processes import STARTED, Service, wait_for
from tests.servers import MariaDBServer, MosquittoServer, free_port

UNITS, AUTOMATES = 50, 10
STALL_S = 60.0  # a wait for rows fails when the count has not moved for this long
GOAL_P99_MS = 300.0  # the goal: p99 publish -> commit below this at an offered 2 000 readings/s
LOCK_STATUS = ("Innodb_row_lock_waits", "Innodb_row_lock_time", "Innodb_deadlocks")
# A lock conflict (deadlock victim, lock wait timeout) is retried after 5..50 ms (bridge/service.py, _handle).
RETRY_DELAY_S = 0.005
Say = Callable[[str], None]


@dataclass(frozen=True)
class Options:
    readings: int = 50_000
    naive_readings: int = 10_000
    rate: float = 2000.0
    seconds: float = 30.0
    backlog: int = 200_000
    rounds: int = 1
    generators: int = 2
    kill: bool = True
    subscriptions: tuple[str, ...] = ()
    workdir: str | None = None


QUICK = {"readings": 5_000, "naive_readings": 2_000, "rate": 2000.0, "seconds": 5.0, "backlog": 10_000}


@dataclass
class Row:
    """One measured configuration (one round), or the median of several."""

    run: str
    rate: float | None = None  # stored (or received) rows/s
    cpu_ms: float | None = None  # CPU ms per reading of the consumer process(es)
    p50: float | None = None
    p99: float | None = None
    rss_mb: float | None = None  # peak RSS of the consumer (the larger of two bridges)
    lost: int | None = None  # published - stored (or received)
    gen_rate: float | None = None  # the load generator's own publish rate
    pmax: float | None = None  # max publish -> commit ms
    error: str | None = None
    note: str = ""
    rounds: int = 1
    db: Contention | None = None  # bridge runs only


@dataclass
class Contention:
    """Database contention of one bridge run over its measured window (or the medians of several)."""

    bridges: int
    window_s: float  # from the first publish (the drain: the bridge's connection) to the last row
    lock_waits: float  # delta of Innodb_row_lock_waits
    lock_ms: float  # delta of Innodb_row_lock_time: ms spent waiting for row locks, summed over sessions
    deadlocks: float
    db_errors: float | None = None  # bridge_db_errors_total, summed over the bridges (None: not scraped)
    batches: float | None = None  # bridge_batch_size_count
    messages: float | None = None  # bridge_batch_size_sum
    commit_s: float | None = None  # bridge_commit_seconds_sum (batch transactions: process, write, commit)

    @property
    def batch_mean(self) -> float | None:
        return self.messages / self.batches if self.batches and self.messages is not None else None

    @property
    def commit_ms(self) -> float | None:
        return 1000 * self.commit_s / self.batches if self.batches and self.commit_s is not None else None

    @property
    def wait_share(self) -> float:
        """Row-lock waiting as a share of the bridges' wall time (window x bridges; one DB connection each)."""
        return self.lock_ms / max(1000 * self.window_s * self.bridges, 1e-9)

    @property
    def commit_wait_share(self) -> float | None:
        """Row-lock waiting as a share of the time spent in batch transactions."""
        return self.lock_ms / (1000 * self.commit_s) if self.commit_s else None

    def line(self) -> str:
        share = self.commit_wait_share
        return (f"row-lock waits {self.lock_waits:.0f}, {self.lock_ms:.0f} ms waiting "
                f"({100 * self.wait_share:.1f}% of {self.bridges} bridge(s) x {self.window_s:.1f} s"
                + ("" if share is None else f", {100 * share:.1f}% of their transaction time")
                + f"), deadlocks {self.deadlocks:.0f}; db errors {fmt(self.db_errors)}, batches {fmt(self.batches)}, "
                f"mean batch {fmt(self.batch_mean, 1)}, mean commit {fmt(self.commit_ms, 1)} ms")


def median_contention(items: list[Contention]) -> Contention | None:
    if not items:
        return None
    out = replace(items[0])
    for name in ("window_s", "lock_waits", "lock_ms", "deadlocks", "db_errors", "batches", "messages", "commit_s"):
        values = [getattr(c, name) for c in items]
        setattr(out, name, statistics.median(values) if all(v is not None for v in values) else None)
    return out


# -- small helpers --------------------------------------------------------------------------------

def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


def proc_status_kb(pid: int, key: str) -> int:
    """A ``kB`` line of /proc/<pid>/status (VmHWM = peak RSS, VmRSS = current)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    return sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))]


def filesystem_of(path: Path) -> str:
    best, fs = "", "?"
    for line in Path("/proc/mounts").read_text().splitlines():
        device, mount, kind, *_ = line.split()
        if str(path.resolve()).startswith(mount) and len(mount) > len(best):
            best, fs = mount, f"{kind} ({device})"
    return fs


def conf_value(conf: Path, key: str) -> str | None:
    for line in conf.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == key:
            return parts[1]
    return None


def scrape(port: int | None) -> dict[str, float] | None:
    """A bridge's Prometheus metrics, each sample name summed over its labels (None: unreadable)."""
    if port is None:
        return None
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            body = resp.read().decode()
    except OSError:
        return None
    values: dict[str, float] = {}
    for m in re.finditer(r"^([A-Za-z_:][\w:]*)(?:\{[^}]*\})?\s+(\S+)", body, re.M):
        with suppress(ValueError):
            values[m[1]] = values.get(m[1], 0.0) + float(m[2])
    return values


def machine_facts(load: tuple[float, float, float]) -> str:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    mem = next((line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal:")), None) if Path("/proc/meminfo").exists() else None
    return (f"{os.cpu_count()} CPUs ({usable} usable by this process), load average before the run "
            f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1 / 5 / 15 min), "
            f"{'?' if mem is None else int(mem) >> 10} MB RAM, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


def version_line(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"? ({exc})"
    return ((out.stdout or out.stderr).strip().splitlines() or ["?"])[0]


def bridge_defaults(env: dict[str, str]) -> tuple[str | None, tuple[str, ...]]:
    """(share group, topic filters) of a bridge run with this environment and its *own* defaults: the
    group of BRIDGE_SHARE_GROUP's default (None for a bridge without the setting: it subscribes plainly)."""
    settings = BridgeSettings.from_env({k: v for k, v in env.items() if k != "BRIDGE_SHARE_GROUP"}
                                       | {"DATABASE_URL": "sqlite://"})
    topics = Topics(settings.topic_root).bridge_subscriptions()
    group: str | None = getattr(settings, "share_group", None)
    return group, tuple(f"$share/{group}/{t}" for t in topics) if group else tuple(topics)


@dataclass(frozen=True)
class Settled:
    """How a wait for ``n`` readings ended."""

    n: int
    at: float  # time.time() when the n-th was settled, or (incomplete) when the last row appeared
    stored: int
    rejected: int  # rows of rejected_messages (nothing else is published, so: readings)
    first_reason: str | None = None  # of the first rejected message
    problem: str | None = None  # why the wait ended incomplete (with the services' log tails)

    @property
    def note(self) -> str:
        return f"{self.rejected} rejected, e.g. {self.first_reason}" if self.rejected else ""


class Database:
    """A fresh database with the project's schema, and the queries the measurements need."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = create_db_engine(url)
        init_schema(self.engine)
        self.has_stored_at = "stored_at" in {c["name"] for c in inspect(self.engine).get_columns("readings")}

    def scalar(self, sql: str) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(text(sql)).scalar()

    def count(self) -> int:
        return int(self.scalar("SELECT COUNT(*) FROM readings"))

    def rejected(self) -> int:
        return int(self.scalar("SELECT COUNT(*) FROM rejected_messages"))

    def latencies_ms(self) -> list[float] | None:
        """stored_at - ts of every reading, sorted (None when the schema has no stored_at yet)."""
        if not self.has_stored_at:
            return None
        with self.engine.connect() as conn:
            rows = conn.execute(text("SELECT TIMESTAMPDIFF(MICROSECOND, ts, stored_at) FROM readings"))
            return sorted(r[0] / 1000 for r in rows)

    def first_rejection(self) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(text("SELECT reason FROM rejected_messages ORDER BY id LIMIT 1")).scalar()

    def wait_settled(self, n: int, timeout: float, services: list[Service], stall: float = STALL_S) -> Settled:
        """Poll until ``n`` readings are settled (stored, or recorded in rejected_messages), cheaply
        (MAX(id), then COUNT(*) once the ids reach ``n``). Gives up, saying why, when nothing moves
        for ``stall`` s, after ``timeout`` s, or when a service dies."""
        deadline = time.monotonic() + timeout
        last, moved, moved_at = (-1, -1), time.monotonic(), time.time()
        while True:
            top, rejected = int(self.scalar("SELECT COALESCE(MAX(id), 0) FROM readings")), self.rejected()
            if top + rejected >= n and (stored := self.count()) + rejected >= n:
                return Settled(n, time.time(), stored, rejected, self.first_rejection() if rejected else None)
            now = time.monotonic()
            if (top, rejected) != last:
                last, moved, moved_at = (top, rejected), now, time.time()
            problem = next((f"{s.name} exited with {s.proc.returncode}" for s in services if not s.alive()), None)
            if problem is None and now > deadline:
                problem = f"still missing after {timeout:g} s"
            if problem is None and now - moved > stall:
                problem = f"no new row for {stall:g} s"
            if problem:
                stored = self.count()
                return Settled(n, moved_at, stored, rejected, self.first_rejection() if rejected else None,
                               f"{stored} of {n} readings stored ({rejected} rejected), {problem}"
                               f"{log_tails(services)}")
            time.sleep(0.05)

    def dispose(self) -> None:
        self.engine.dispose()


def log_tails(services: list[Service], chars: int = 1500) -> str:
    return "".join(f"\n--- {s.name} log (tail) ---\n{s.log()[-chars:]}" for s in services)


def has_connected(service: Service) -> bool:
    """The bridge logged its connection (it subscribes in the same callback)."""
    return "connected to" in service.log()


def bridge_stats(service: Service) -> str:
    """The bridge's own counters from its last stats line (printed when it stops)."""
    found = re.findall(r"(?:stopped|stats): (received=\d+.*)", service.log())
    return found[-1].strip() if found else "no stats line"


# -- the benchmark ---------------------------------------------------------------------------------

@dataclass
class IngestBench:
    opts: Options
    tmp: Path
    say: Say
    broker: MosquittoServer = field(init=False)
    db: MariaDBServer = field(init=False)
    _users: dict[str, str] = field(default_factory=dict)
    _services: int = 0
    _metrics_ports: dict[str, int] = field(default_factory=dict)  # bridge service name -> metrics port
    subscriptions: tuple[str, ...] = ()
    share_group: str | None = None

    def __post_init__(self) -> None:
        self.broker = MosquittoServer(self.tmp / "broker", PlantLayout(units=UNITS, automates=AUTOMATES))
        self.db = MariaDBServer(self.tmp / "mariadb")

    # -- servers ---------------------------------------------------------------------------------------
    def start(self) -> None:
        self.broker.start()
        self.db.start()
        with self.db.admin() as conn, conn.cursor() as cur:
            # tests/servers.py starts MariaDB with 2 (no fsync per commit) to keep the suite fast: the
            # benchmark wants a production server's durable commits, and the variable is dynamic.
            cur.execute("SET GLOBAL innodb_flush_log_at_trx_commit = 1")
            cur.execute("SELECT @@GLOBAL.innodb_flush_log_at_trx_commit, @@GLOBAL.innodb_buffer_pool_size, "
                        "@@GLOBAL.log_bin, @@version")
            flush, pool, log_bin, version = cur.fetchone()
        if int(flush) != 1:
            raise RuntimeError(f"innodb_flush_log_at_trx_commit is {flush}, not 1: commits would not be durable")
        conf = self.broker.conf
        max_queued = conf_value(conf, "max_queued_messages")
        self.share_group, subscriptions = bridge_defaults(self.broker.env())
        self.subscriptions = self.opts.subscriptions or subscriptions
        self.say(f"machine: {os.cpu_count()} CPUs; work directory {self.tmp} on {filesystem_of(self.tmp)}")
        self.say(f"MariaDB {version}: innodb_flush_log_at_trx_commit={flush} (durable: the redo log is "
                 f"flushed to disk at every commit), buffer pool {int(pool) >> 20} MB, binary log "
                 f"{'on' if log_bin else 'off'}")
        self.say(f"{version_line(['mosquitto', '-h'])}: our mosquitto.conf, max_queued_messages={max_queued}, "
                 f"max_inflight_messages={conf_value(conf, 'max_inflight_messages')}, "
                 f"autosave_interval={conf_value(conf, 'autosave_interval')}")
        if max_queued not in (None, "0") and self.opts.backlog + 1 > int(max_queued):
            self.say(f"WARNING: --backlog {self.opts.backlog} + the bridge's own will message exceeds "
                     f"max_queued_messages {max_queued}: the broker will drop the excess")
        self.say(f"bridges run with BRIDGE_SHARE_GROUP={self.share_group!r} (the bridge's own default, set "
                 "explicitly whatever the test helpers default to); baselines subscribe to "
                 f"{', '.join(self.subscriptions)}")
        if not any(s.startswith("$share/") for s in self.subscriptions):
            self.say("  note: not a shared subscription: two bridges will each receive every reading")

    def close(self) -> None:
        for s in STARTED:
            with suppress(OSError):
                s.stop(timeout=10)
        self.db.stop()
        self.broker.stop()

    # -- users, sessions, services ---------------------------------------------------------------------------
    def user(self, role: str) -> str:
        """One bridge user per role for the whole run (its session is wiped before and after use)."""
        if role not in self._users:
            self._users[role] = self.broker.bridge_user()
        return self._users[role]

    def wipe(self, user: str) -> None:
        """Drop the user's persistent session (queue and subscriptions): connect with a clean session.
        An offline session left behind would keep queueing every reading of the later runs (and, with
        a shared subscription, take its share of them)."""
        done: list[Any] = []
        client = new_client(MqttSettings("127.0.0.1", self.broker.port, user, self.broker.users[user]), user,
                            clean_session=True)

        def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
            done.append(reason)

        client.on_connect = on_connect
        client.connect("127.0.0.1", self.broker.port)
        client.loop_start()
        try:
            wait_for(lambda: done, 5, f"CONNACK to wipe the session of {user}", interval=0.02)
        finally:
            client.disconnect()
            client.loop_stop()
        if done[0].is_failure:
            raise RuntimeError(f"cannot wipe the session of {user}: {done[0]}")

    @contextmanager
    def session_of(self, role: str) -> Iterator[str]:
        user = self.user(role)
        self.wipe(user)
        try:
            yield user
        except Exception:
            self._wipe_quietly(user)
            raise
        else:
            self._wipe_quietly(user)
        # Interrupted (KeyboardInterrupt): no wipe, everything is about to stop.

    def _wipe_quietly(self, user: str) -> None:
        try:
            self.wipe(user)
        except (OSError, AssertionError, RuntimeError) as exc:
            self.say(f"  (could not wipe the session of {user}: {str(exc).splitlines()[0]})")

    def bridge(self, name: str, user: str, url: str, partition: str | None = None, *,
               module: str = "bridge") -> Service:
        self._services += 1
        env = {**self.broker.env(), "DATABASE_URL": url, "MQTT_USERNAME": user}
        if partition is not None:
            env["BRIDGE_PARTITION"] = partition
        if self.share_group is not None:
            env["BRIDGE_SHARE_GROUP"] = self.share_group  # the production default: the bridges share the stream
        port = free_port()
        env["BRIDGE_METRICS_PORT"] = str(port)  # the test helpers default to none; scraped by contention()
        service = Service(f"{name}-{self._services}", [module, "run"], env, self.tmp)
        self._metrics_ports[service.name] = port
        return service

    def lock_status(self) -> dict[str, int]:
        """MariaDB's cumulative row-lock counters (LOCK_STATUS), server-wide."""
        with self.db.admin() as conn, conn.cursor() as cur:
            cur.execute(f"SHOW GLOBAL STATUS WHERE Variable_name IN ({', '.join(['%s'] * len(LOCK_STATUS))})",
                        LOCK_STATUS)
            found = {name: int(value) for name, value in cur.fetchall()}
        return {name: found.get(name, 0) for name in LOCK_STATUS}

    def contention(self, before: dict[str, int], window_s: float, bridges: list[Service]) -> Contention:
        """Lock counters since ``before`` and the metrics of ``bridges`` (call while they still run)."""
        after = self.lock_status()
        delta = {k: after[k] - before[k] for k in LOCK_STATUS}
        scraped = [scrape(self._metrics_ports.get(s.name)) if s.alive() else None for s in bridges]

        def total(name: str) -> float | None:
            return sum(m[name] for m in scraped) if scraped and all(m and name in m for m in scraped) else None

        c = Contention(len(bridges), window_s, delta["Innodb_row_lock_waits"], delta["Innodb_row_lock_time"],
                       delta["Innodb_deadlocks"], total("bridge_db_errors_total"), total("bridge_batch_size_count"),
                       total("bridge_batch_size_sum"), total("bridge_commit_seconds_sum"))
        self.say(f"  database: {c.line()}")
        if len(bridges) > 1:
            for s, m in zip(bridges, scraped, strict=True):
                if m and m.get("bridge_batch_size_count"):
                    n = m["bridge_batch_size_count"]
                    self.say(f"    {s.name}: {m.get('bridge_batch_size_sum', 0):.0f} messages in {n:.0f} batches "
                             f"(mean {m.get('bridge_batch_size_sum', 0) / n:.1f}), mean commit "
                             f"{1000 * m.get('bridge_commit_seconds_sum', 0) / n:.1f} ms, db errors "
                             f"{m.get('bridge_db_errors_total', 0):.0f}")
        return c

    def wait_connected(self, services: list[Service], timeout: float = 60) -> None:
        for s in services:
            wait_for(partial(has_connected, s), timeout, f"{s.name} to connect", services=[s])
        time.sleep(1.0)  # its SUBSCRIBE is on the wire right after the log line

    def new_db(self) -> Database:
        return Database(self.db.create_database())

    # -- load ------------------------------------------------------------------------------------------
    def load(self, readings: int, rate: float | None) -> LoadGenerator:
        procs = self.opts.generators
        return LoadGenerator(plan(self.broker.port, self.broker.users, UNITS, AUTOMATES, readings, rate, procs))

    def publish(self, gen: LoadGenerator, readings: int, rate: float | None) -> LoadSummary:
        limit = 120 + (readings / 200 if rate is None else 2 * readings / rate)
        gen.go()
        summary = gen.wait(limit)
        if summary.errors:
            raise RuntimeError(f"load generator: {'; '.join(summary.errors)}")
        per = ", ".join(f"{r:.0f}" for r in summary.per_process)
        self.say(f"  published {summary.published} readings in {summary.seconds:.2f} s: generator "
                 f"{summary.rate:.0f}/s ({len(summary.per_process)} process(es): {per}/s; "
                 f"{summary.cpu_ms_per_reading:.3f} CPU ms/reading)")
        return summary

    @staticmethod
    def rows_timeout(n: int) -> float:
        return 120 + n / 50

    # -- baselines ----------------------------------------------------------------------------------------
    def subscriber(self, name: str, role: str, n: int, naive: bool) -> Row:
        ctx = mp.get_context("spawn")
        out: mp.Queue[SubscriberResult] = ctx.Queue()
        ready = ctx.Event()
        db = self.new_db() if naive else None
        with self.session_of(role) as user, self.load(n, None) as gen:
            spec = SubscriberSpec(self.broker.port, user, self.broker.users[user], self.subscriptions, n,
                                  db.url if db else None, UNITS, AUTOMATES, timeout=self.rows_timeout(n),
                                  idle_timeout=STALL_S)
            proc = ctx.Process(target=subscribe, args=(spec, ready, out), daemon=True, name=name)
            proc.start()
            try:
                if not ready.wait(60):
                    raise TimeoutError(f"{name}: not subscribed after 60 s")
                gen.start()
                summary = self.publish(gen, n, None)
                try:
                    res = out.get(timeout=spec.timeout + 30)
                except queue.Empty:
                    raise TimeoutError(f"{name}: no result after {spec.timeout + 30:g} s") from None
            finally:
                proc.join(10)
                if proc.is_alive():
                    proc.kill()
                    proc.join()
        if res.error and not res.received:
            raise RuntimeError(f"{name}: {res.error}")
        done = res.received if db is None else (stored := db.count())
        elapsed = max(res.last - summary.first, 1e-9)
        rate = done / elapsed
        if db is not None:
            self.say(f"  naive: {stored} stored ({res.duplicates} duplicates) in {elapsed:.2f} s = {rate:.0f} rows/s")
            db.dispose()
        else:
            self.say(f"  ceiling: {res.received} received in {elapsed:.2f} s = {rate:.0f} msg/s")
        if res.error:
            self.say(f"  {name}: {res.error}")
        return Row(name, rate, 1000 * res.cpu_s / max(done, 1), rss_mb=res.peak_rss_mb, lost=n - done,
                   gen_rate=summary.rate, error=res.error if done < n else None)

    def ceiling(self, n: int) -> Row:
        return self.subscriber("ceiling: paho QoS 1 subscriber, counts only", "ceiling", n, naive=False)

    def naive(self, n: int) -> Row:
        return self.subscriber("naive bridge: 1 INSERT + COMMIT per message", "naive", n, naive=True)

    # -- our bridge ------------------------------------------------------------------------------------
    def finish(self, name: str, st: Settled, start: float, **values: Any) -> Row:
        """The row of a bridge run from how its wait ended (rate from ``start``, time.time())."""
        if st.rejected:
            self.say(f"  {st.rejected} readings recorded in rejected_messages; the first: {st.first_reason}")
        if st.problem:
            self.say(f"  INCOMPLETE: {st.problem}")
        rate = st.stored / max(st.at - start, 1e-9)
        return Row(name, rate, lost=st.n - st.stored, error=st.problem.splitlines()[0] if st.problem else None,
                   note=st.note[:160], **values)

    def bridges_burst(self, name: str, count: int, n: int, partitioned: bool = False, *,
                      module: str = "bridge") -> Row:
        """``count`` bridges (own users, one database) ingesting a burst of ``n`` readings;
        ``partitioned``: each with BRIDGE_PARTITION=k/count (disjoint units) instead of one shared stream;
        ``module``: ``bench.bridge_without_rollups`` for the bridge without its rollup upkeep."""
        db = self.new_db()
        services: list[Service] = []
        try:
            with ExitStack() as stack:
                users = [stack.enter_context(self.session_of(f"bridges-{count}-{i}")) for i in range(count)]
                gen = stack.enter_context(self.load(n, None))
                services = [self.bridge(f"bridge{count}x", u, db.url,
                                        partition=f"{k}/{count}" if partitioned else None, module=module)
                            for k, u in enumerate(users, start=1)]
                self.wait_connected(services)
                gen.start()
                pids = [s.proc.pid for s in services]
                cpu0 = [proc_cpu_s(p) for p in pids]
                locks0 = self.lock_status()
                summary = self.publish(gen, n, None)
                st = db.wait_settled(n, self.rows_timeout(n), services)
                contention = self.contention(locks0, st.at - summary.first, services)
                alive = all(s.alive() for s in services)
                cpu = sum(proc_cpu_s(p) - c for p, c in zip(pids, cpu0, strict=True)) if alive else None
                rss = max(proc_status_kb(p, "VmHWM") for p in pids) / 1024 if alive else None
                for s in services:
                    s.stop()
        finally:
            for s in services:
                s.stop()
            db.dispose()
        elapsed = st.at - summary.first
        cpu_ms = None if cpu is None else 1000 * cpu / n
        stats = [bridge_stats(s) for s in services]
        self.say(f"  {st.stored} stored in {elapsed:.2f} s = {st.stored / elapsed:.0f} rows/s, "
                 f"{fmt(cpu_ms, 3)} CPU ms/reading, peak RSS {fmt(rss)} MB"
                 + "".join(f"\n  {s.name}: {line}" for s, line in zip(services, stats, strict=True)))
        row = self.finish(name, st, summary.first, cpu_ms=cpu_ms, rss_mb=rss, gen_rate=summary.rate, db=contention)
        handled = [sum(int(v) for v in re.findall(r"\b(?:readings|duplicates)=(\d+)", line)) for line in stats]
        if count > 1 and not partitioned and all(h >= n for h in handled):
            row.note = "; ".join(filter(None, [row.note, "NOT shared: each bridge received every reading"]))
            self.say("  WARNING: not shared: each bridge received every reading")
        return row

    def kill_test(self, n: int) -> Row:
        """SIGKILL the bridge as soon as the last reading is acknowledged by the broker, restart it."""
        name = "bridge SIGKILLed at end of publishing, restarted"
        db = self.new_db()
        services: list[Service] = []
        try:
            with self.session_of("kill") as user, self.load(n, None) as gen:
                services.append(self.bridge("bridge-kill", user, db.url))
                self.wait_connected(services)
                gen.start()
                locks0 = self.lock_status()
                summary = self.publish(gen, n, None)
                before = db.count()
                services[0].kill()
                killed_at = time.time()
                self.say(f"  SIGKILL with {before} of {n} stored; restarting")
                services.append(self.bridge("bridge-restarted", user, db.url))
                st = db.wait_settled(n, self.rows_timeout(n), services[1:])
                self.say("  (database metrics: the restarted bridge's only)")
                contention = self.contention(locks0, st.at - summary.first, services[1:])
                rss = proc_status_kb(services[1].proc.pid, "VmHWM") / 1024 if services[1].alive() else None
        finally:
            for s in services:
                s.stop()
            db.dispose()
        self.say(f"  after restart: {st.stored} of {n} stored, lost {n - st.stored}, rejected {st.rejected}; "
                 f"the last row {st.at - killed_at:.2f} s after the kill")
        return self.finish(name, st, summary.first, rss_mb=rss, gen_rate=summary.rate, db=contention)

    def fixed_rate(self, rate: float, seconds: float) -> Row:
        n = max(int(rate * seconds), 1)
        name = f"bridge at a fixed {rate:g} readings/s for {seconds:g} s"
        db = self.new_db()
        services: list[Service] = []
        try:
            with self.session_of("rate") as user, self.load(n, rate) as gen:
                services.append(self.bridge("bridge-rate", user, db.url))
                self.wait_connected(services)
                gen.start()
                pid = services[0].proc.pid
                cpu0 = proc_cpu_s(pid)
                locks0 = self.lock_status()
                summary = self.publish(gen, n, rate)
                st = db.wait_settled(n, self.rows_timeout(n), services)
                contention = self.contention(locks0, st.at - summary.first, services)
                alive = services[0].alive()
                cpu = proc_cpu_s(pid) - cpu0 if alive else None
                rss = proc_status_kb(pid, "VmHWM") / 1024 if alive else None
                services[0].stop()
                lat = db.latencies_ms()
        finally:
            for s in services:
                s.stop()
            db.dispose()
        if summary.rate < 0.95 * rate:
            self.say(f"  WARNING: the generator reached only {summary.rate:.0f} of {rate:g} readings/s")
        p50 = p99 = pmax = None
        if lat:
            p50, p99, pmax = percentile(lat, 0.50), percentile(lat, 0.99), lat[-1]
            self.say(f"  publish -> commit (stored_at - ts) over {len(lat)} rows: p50 {p50:.0f} ms, "
                     f"p99 {p99:.0f} ms, max {pmax:.0f} ms (goal: p99 < {GOAL_P99_MS:g} ms at 2 000/s)")
        else:
            self.say("  publish -> commit latency: n/a (readings has no stored_at column yet)")
        cpu_ms = None if cpu is None else 1000 * cpu / n
        self.say(f"  {fmt(cpu_ms, 3)} CPU ms/reading at this rate, peak RSS {fmt(rss)} MB")
        row = self.finish(name, st, summary.first, cpu_ms=cpu_ms, p50=p50, p99=p99, pmax=pmax, rss_mb=rss,
                          gen_rate=summary.rate, db=contention)
        row.rate = None  # the offered rate, not a measurement
        if lat is None:
            row.note = "; ".join(filter(None, [row.note, "latency n/a: no stored_at column"]))
        return row

    def backlog(self, n: int) -> Row:
        """The bridge's session exists, the bridge is down, ``n`` readings are queued; then it drains."""
        name = f"bridge draining a backlog of {n}"
        db = self.new_db()
        services: list[Service] = []
        dropped_log = "Outgoing messages are being dropped"
        try:
            with self.session_of("backlog") as user, self.load(n, None) as gen:
                first = self.bridge("bridge-backlog-first", user, db.url)
                services.append(first)
                self.wait_connected(services)  # its persistent session (and subscription) now exists
                first.stop()
                drops_before = self.broker.log.read_text(errors="replace").count(dropped_log)
                gen.start()
                summary = self.publish(gen, n, None)
                drops = self.broker.log.read_text(errors="replace").count(dropped_log) - drops_before
                if drops:
                    self.say(f"  WARNING: the broker logged '{dropped_log}': its queue limit was hit, readings "
                             "were dropped (the offline session holds more than the backlog: e.g. the bridge's own "
                             "last status message)")
                started = time.time()
                drain = self.bridge("bridge-backlog", user, db.url)
                services.append(drain)
                pid = drain.proc.pid
                wait_for(partial(has_connected, drain), 60, f"{drain.name} to connect", interval=0.01, services=[drain])
                connected, cpu0 = time.time(), proc_cpu_s(pid)
                locks0 = self.lock_status()
                st = db.wait_settled(n, self.rows_timeout(n), [drain], stall=15 if drops else STALL_S)
                contention = self.contention(locks0, st.at - connected, [drain])
                alive = drain.alive()
                rss = proc_status_kb(pid, "VmHWM") / 1024 if alive else None
                cpu = proc_cpu_s(pid) - cpu0 if alive else None
                drain.stop()
                # Mosquitto's log to a file is buffered: its notice may only show up now.
                drops = self.broker.log.read_text(errors="replace").count(dropped_log) - drops_before
        finally:
            for s in services:
                s.stop()
            db.dispose()
        elapsed = st.at - connected
        cpu_ms = None if cpu is None else 1000 * cpu / n
        self.say(f"  drained {st.stored} in {elapsed:.2f} s from the bridge's connection = {st.stored / elapsed:.0f} "
                 f"rows/s (start-up to connection {connected - started:.2f} s), {fmt(cpu_ms, 3)} CPU ms/reading, "
                 f"peak RSS {fmt(rss)} MB")
        row = self.finish(name, st, connected, cpu_ms=cpu_ms, rss_mb=rss, gen_rate=summary.rate, db=contention)
        if drops and st.stored < n:
            row.error = (f"the broker dropped {n - st.stored} readings: it logged '{dropped_log}' "
                         f"(max_queued_messages {conf_value(self.broker.conf, 'max_queued_messages')})")
            self.say(f"  {row.error}")
        row.note = "; ".join(filter(None, [row.note, "rate from the bridge's connection"]))
        return row


# -- running and reporting -----------------------------------------------------------------------------------

def attempt(say: Say, run: str, fn: Callable[[], Row]) -> Row:
    """Run one measurement; a failure becomes a row that says how it failed, and the run goes on."""
    say(f"{run}:")
    try:
        return fn()
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}"
        say(f"  FAILED: {message}")
        return Row(run, error=message.splitlines()[0][:200])


def median_row(rows: list[Row]) -> Row:
    ok = [r for r in rows if r.error is None] or rows
    out = replace(ok[0], rounds=len(ok))
    for name in ("rate", "cpu_ms", "p50", "p99", "pmax", "rss_mb", "gen_rate"):
        values = [getattr(r, name) for r in ok]
        if all(v is not None for v in values):
            setattr(out, name, statistics.median(values))
    out.db = median_contention([r.db for r in ok if r.db is not None])
    losts = [r.lost for r in rows if r.lost is not None]
    out.lost = max(losts) if losts else None
    rates = [r.rate for r in ok if r.rate is not None]
    if len(rates) > 1:
        spread = f"range {fmt(min(rates))}–{fmt(max(rates))} rows/s"
        out.note = f"{out.note}; {spread}" if out.note else spread
    errors = [r.error for r in rows if r.error]
    if errors and len(errors) < len(rows):
        out.note = (out.note + "; " if out.note else "") + f"{len(errors)} of {len(rows)} rounds failed"
    return out


def fmt(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}".replace(",", " ")


def ratio(a: float | None, b: float | None) -> str:
    return "—" if a is None or not b else f"{a / b:.2f}"


def run_label(r: Row) -> str:
    return r.run + (f" (median of {r.rounds})" if r.rounds > 1 else "")


def pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def table(rows: list[Row], ceiling: float | None, naive: float | None) -> str:
    lines = ["| run | stored rows/s | x ceiling | x naive | CPU ms/reading | p50 ms | p99 ms | max ms | peak RSS MB "
             "| lost | generator msg/s |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        run = run_label(r)
        if r.error:
            run += f" — FAILED: {r.error}"
        if r.note:
            run += f" ({r.note})"
        lines.append(f"| {run} | {fmt(r.rate)} | {ratio(r.rate, ceiling)} | {ratio(r.rate, naive)} | "
                     f"{fmt(r.cpu_ms, 3)} | {fmt(r.p50)} | {fmt(r.p99)} | {fmt(r.pmax)} | {fmt(r.rss_mb)} | "
                     f"{'—' if r.lost is None else r.lost} | {fmt(r.gen_rate)} |")
    return "\n".join(lines)


def contention_table(rows: list[Row]) -> str:
    lines = ["| run | bridges | window s | row-lock waits | lock wait ms | waiting, % of bridge time "
             "| waiting, % of transaction time | deadlocks | db errors | batches | mean batch | mean commit ms |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        if (c := r.db) is not None:
            lines.append(f"| {run_label(r)} | {c.bridges} | {c.window_s:.1f} | {fmt(c.lock_waits)} | "
                         f"{fmt(c.lock_ms)} | {pct(c.wait_share)} | {pct(c.commit_wait_share)} | {fmt(c.deadlocks)} | "
                         f"{fmt(c.db_errors)} | {fmt(c.batches)} | {fmt(c.batch_mean, 1)} | {fmt(c.commit_ms, 1)} |")
    return "\n".join(lines)


def run_all(bench: IngestBench, opts: Options, say: Say) -> list[Row]:
    n = opts.readings
    names = ["ceiling", "naive", "one", "two", "two-partitioned", "one-no-rollups"]
    per_round: dict[str, list[Row]] = {k: [] for k in names}
    once: list[Row] = []
    for rnd in range(1, opts.rounds + 1):
        tag = f" [round {rnd}/{opts.rounds}]" if opts.rounds > 1 else ""
        per_round["ceiling"].append(attempt(say, f"ceiling, burst of {n}{tag}", lambda: bench.ceiling(n)))
        per_round["naive"].append(attempt(say, f"naive bridge, burst of {opts.naive_readings}{tag}",
                                          lambda: bench.naive(opts.naive_readings)))
        per_round["one"].append(attempt(say, f"one bridge, burst of {n}{tag}",
                                        lambda: bench.bridges_burst("bridge (1 process)", 1, n)))
        per_round["two"].append(attempt(say, f"two bridges, burst of {n}{tag}",
                                        lambda: bench.bridges_burst("2 bridges, shared stream, one database", 2, n)))
        per_round["two-partitioned"].append(attempt(
            say, f"two partitioned bridges, burst of {n}{tag}",
            lambda: bench.bridges_burst("2 bridges, partitioned (BRIDGE_PARTITION=k/2)", 2, n, partitioned=True)))
        per_round["one-no-rollups"].append(attempt(
            say, f"one bridge without rollup upkeep, burst of {n}{tag}",
            lambda: bench.bridges_burst("bridge without rollup upkeep (baseline of that upkeep)", 1, n,
                                        module="bench.bridge_without_rollups")))
        if opts.kill and rnd == 1:
            once.append(attempt(say, f"kill test, burst of {n}", lambda: bench.kill_test(n)))
    once.append(attempt(say, f"fixed rate {opts.rate:g}/s for {opts.seconds:g} s",
                        lambda: bench.fixed_rate(opts.rate, opts.seconds)))
    once.append(attempt(say, f"backlog of {opts.backlog}", lambda: bench.backlog(opts.backlog)))
    return [median_row(per_round[k]) for k in names] + once


def report(rows: list[Row], opts: Options) -> str:
    ceiling, naive, one, two, parted = rows[0].rate, rows[1].rate, rows[2], rows[3], rows[4]
    out = [table(rows, ceiling, naive), "",
           "Database contention during each bridge run (lock counters: MariaDB, server-wide deltas; batches, "
           "commits, db errors: the bridges' metrics, summed; % of bridge time = lock wait ms / (window x bridges); "
           "kill test: lock counters over both bridges, metrics of the restarted one):", "",
           contention_table(rows), "", "Ratios:"]
    out.append(f"- our bridge: {ratio(one.rate, ceiling)}x the ceiling, {ratio(one.rate, naive)}x the naive bridge "
               f"(rows/s); CPU per reading {ratio(one.cpu_ms, rows[1].cpu_ms)}x the naive bridge's, "
               f"{ratio(one.cpu_ms, rows[0].cpu_ms)}x the bare subscriber's")
    out.append(f"- two bridges: {ratio(two.rate, one.rate)}x one bridge (combined stored rows/s); lost {two.lost}")
    bare = rows[5]
    out.append(f"- rollup upkeep: our bridge stores {ratio(one.rate, bare.rate)}x the rows/s of the same bridge "
               f"without it, at {ratio(one.cpu_ms, bare.cpu_ms)}x its CPU per reading")
    out.append(f"- two partitioned bridges: {ratio(parted.rate, one.rate)}x one bridge; lost {parted.lost}; "
               f"row lock waits {fmt(parted.db.lock_ms if parted.db else None)} ms")
    if one.db is not None and two.db is not None:
        c1, c2 = one.db, two.db
        out.append(f"- row locks: one bridge waited {fmt(c1.lock_ms)} ms in {fmt(c1.lock_waits)} waits "
                   f"({pct(c1.wait_share)} of its time); two bridges waited {fmt(c2.lock_ms)} ms in "
                   f"{fmt(c2.lock_waits)} waits = {pct(c2.wait_share)} of each bridge's time and "
                   f"{pct(c2.commit_wait_share)} of their transaction time: waiting for each other's locks on "
                   f"source_versions (every batch touches nearly every source); deadlocks {fmt(c2.deadlocks)}, "
                   f"db errors (retried batches) {fmt(c2.db_errors)}; mean commit {fmt(c2.commit_ms, 1)} ms vs "
                   f"{fmt(c1.commit_ms, 1)} ms alone, mean batch {fmt(c2.batch_mean, 1)} vs {fmt(c1.batch_mean, 1)}")
        if c2.db_errors:
            stalled = RETRY_DELAY_S * c2.db_errors
            out.append(f"- and the deadlocks: a victim is rolled back at once (not in the lock wait ms) and its bridge "
                       f"retries after >= {RETRY_DELAY_S:g} s: {fmt(c2.db_errors)} db errors = >= {stalled:.3f} s of "
                       f"stalled bridge time, {pct(stalled / max(c2.window_s * c2.bridges, 1e-9))} of the bridges' "
                       f"time (a lower bound: consecutive failures double the delay)")
    for r in rows[5:]:
        if r.run.startswith("bridge draining"):
            out.append(f"- backlog drain: {ratio(r.rate, one.rate)}x the burst rate of one bridge; "
                       f"peak RSS {fmt(r.rss_mb)} MB vs {fmt(one.rss_mb)} MB in the burst; lost {r.lost}")
        elif r.run.startswith("bridge SIGKILLed"):
            out.append(f"- SIGKILL at the end of publishing: lost {r.lost} (must be 0)")
        elif r.run.startswith("bridge at a fixed"):
            verdict = ("—" if r.p99 is None else "met" if r.p99 < GOAL_P99_MS else "NOT met")
            offered = "" if opts.rate == 2000 else f"; note: offered {opts.rate:g}/s, the goal is at 2 000/s"
            out.append(f"- at {opts.rate:g}/s for {opts.seconds:g} s (generator {fmt(r.gen_rate)}/s): "
                       f"publish -> commit p50 {fmt(r.p50)} ms, p99 {fmt(r.p99)} ms, max {fmt(r.pmax)} ms; goal p99 < "
                       f"{GOAL_P99_MS:g} ms: {verdict}{offered}; CPU {fmt(r.cpu_ms, 3)} ms/reading")
    if ceiling and rows[0].gen_rate and ceiling > 0.9 * rows[0].gen_rate:
        out.append("- note: the ceiling is close to the generator's own rate: it may be bounded by the generator")
    out.append(f"(burst: {opts.readings} readings, naive: {opts.naive_readings}; medians of {opts.rounds} round(s); "
               f"{opts.generators} generator process(es); 50 units x 10 automates; MariaDB with durable commits)")
    return "\n".join(out)


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_ingest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    d = Options()
    parser.add_argument("--readings", type=int, help=f"burst size (default {d.readings}; --quick {QUICK['readings']})")
    parser.add_argument("--naive-readings", type=int,
                        help=f"burst size for the naive bridge, which commits once per message (default "
                             f"{d.naive_readings}; --quick {QUICK['naive_readings']})")
    parser.add_argument("--rate", type=float, help=f"fixed rate, readings/s (default {d.rate:g})")
    parser.add_argument("--seconds", type=float, help=f"fixed-rate duration (default {d.seconds:g})")
    parser.add_argument("--backlog", type=int,
                        help=f"readings queued while the bridge is down (default {d.backlog}; must not exceed "
                             "mosquitto.conf's max_queued_messages)")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the burst measurements; medians (default 1)")
    parser.add_argument("--generators", type=int, default=d.generators,
                        help=f"load generator processes (default {d.generators})")
    parser.add_argument("--no-kill", action="store_true", help="skip the SIGKILL test")
    parser.add_argument("--subscription", action="append", default=[],
                        help="topic filter(s) of the baselines (default: the bridge's own)")
    parser.add_argument("--quick", action="store_true", help="small smoke run (about 2 minutes): " +
                        ", ".join(f"{k.replace('_', '-')} {v:g}" for k, v in QUICK.items()))
    parser.add_argument("--workdir", help="where the servers' data directories go (default: the system temp dir)")
    args = parser.parse_args(argv)
    base: dict[str, Any] = dict(QUICK) if args.quick else {}
    for key in ("readings", "naive_readings", "rate", "seconds", "backlog"):
        if getattr(args, key) is not None:
            base[key] = getattr(args, key)
    opts = Options(**base, rounds=args.rounds, generators=args.generators, kill=not args.no_kill,
                   subscriptions=tuple(args.subscription), workdir=args.workdir)
    if min(opts.readings, opts.naive_readings, opts.backlog, opts.rounds, opts.generators) < 1 or opts.rate <= 0:
        parser.error("sizes, --rounds, --generators and --rate must be positive")
    return opts


def command_line(argv: list[str] | None) -> str:
    if argv is not None:
        return shlex.join([sys.executable, "-m", "bench.bench_ingest", *argv])
    return shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))


def main(argv: list[str] | None = None) -> int:
    load = os.getloadavg()  # before anything of ours runs
    opts = parse_args(argv)
    t0 = time.monotonic()

    def say(message: str) -> None:
        print(f"[{time.monotonic() - t0:7.1f} s] {message}", flush=True)

    def on_term(_sig: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    with tempfile.TemporaryDirectory(prefix="bench-ingest-", dir=opts.workdir) as tmp:
        bench = IngestBench(opts, Path(tmp), say)
        try:
            bench.start()
            rows = run_all(bench, opts, say)
        except KeyboardInterrupt:
            say("interrupted; stopping every process and server started")
            return 130
        except Exception as exc:
            say(f"FAILED: {type(exc).__name__}: {exc}")
            return 1
        finally:
            bench.close()
    say("done")
    print()
    print(report(rows, opts), flush=True)
    print(f"\ncommand: {command_line(argv)} (cwd {os.getcwd()})")
    print(f"machine: {machine_facts(load)}; load average at the end "
          + " / ".join(f"{v:.2f}" for v in os.getloadavg()), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
