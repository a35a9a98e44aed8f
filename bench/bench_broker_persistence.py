"""Mosquitto persistence: what each autosave setting costs, and what a SIGKILL loses with it.

    .venv/bin/python -m bench.bench_broker_persistence [--backlogs 0,20000,100000] [--quick]

Mosquitto keeps queued QoS 1 messages in memory and writes its whole database to disk (a new
file, fsync, rename) from its single event loop, either every ``autosave_interval`` seconds or,
with ``autosave_on_changes true``, after ``autosave_interval`` changes (messages queued for an
offline persistent session, retained messages, subscriptions). A broker that is SIGKILLed (or
loses power) loses what it acknowledged since the last save. Devices that cannot resend (Shelly
meters) get no better guarantee than that window.

For each candidate setting a real Mosquitto is rendered from our mosquitto.conf with only the
autosave lines replaced (own data directory, own generated users), a persistent session
(clean_session=False, QoS 1, user ``bridge``) subscribes and disconnects, so the broker queues
for it, and then:

  throughput  publishers (Shelly meter users, ~600-byte NotifyStatus events, QoS 1, bounded
              in-flight window) send as fast as the broker acknowledges for --burst-seconds
              (long enough to contain the timed saves of intervals 1 and 5; at most
              --max-messages); measured: msg/s and the broker's CPU seconds (utime+stime from
              /proc/<pid>/stat) per 10 000 messages, with an empty queue and with a backlog
              already queued (a save rewrites the whole database, so its cost grows with the
              backlog; each backlog is queued once, on a broker that saves only on SIGUSR1, and
              its database copied; that SIGUSR1 save is timed too: the cost of one save).
  durability  one publisher sends at a steady --rate for --steady-seconds, the broker is
              SIGKILLed, restarted on the same data directory, the persistent session reconnects
              and we count how many PUBACKed messages it gets: lost = acked - delivered, and the
              loss window = lost / rate (cross-checked against the time since the last save
              completed, seen from the database file's inode changing).

Ratios are against the baseline (``autosave_interval 30``) measured in the same run. The
machine's other load shows up in the figures: compare ratios, not absolute rates.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from broker.config import DEFAULT_CONF, LocalBroker, render
from plantmodel.layout import PlantLayout, default_meter_ids
from plantmodel.mqtt import MqttSettings, new_client
from plantmodel.topics import Topics
from tests.servers import MosquittoServer, find_binary, wait_port

SUBSCRIBER_ID = "bench-persistence-bridge"
SUBSCRIPTION = "+/events/rpc"  # every Shelly meter's events, as the bridge subscribes them
CLK_TCK = os.sysconf("SC_CLK_TCK")
AUTOSAVE_RE = re.compile(r"^\s*autosave_(interval|on_changes)\b")


@dataclass(frozen=True)
class Candidate:
    key: str  # for --settings
    name: str
    lines: tuple[str, ...]  # what replaces the autosave lines of mosquitto.conf
    bound: str  # the loss bound the documented semantics give


CANDIDATES = (
    # loop.c (2.0.11): a timed save runs when last_save + interval < now (whole seconds), so the
    # files are written every interval + 1 s, and not at all in the first interval + 1 s.
    Candidate("30", "interval 30 (baseline)", ("autosave_interval 30",), "31 s"),
    Candidate("5", "interval 5", ("autosave_interval 5",), "6 s"),
    Candidate("1", "interval 1", ("autosave_interval 1",), "2 s"),
    Candidate("c1000", "on_changes 1000", ("autosave_on_changes true", "autosave_interval 1000"), "1000 msgs"),
    Candidate("c100", "on_changes 100", ("autosave_on_changes true", "autosave_interval 100"), "100 msgs"),
)
# Only for preparing backlogs: no timed save, the database is written on SIGUSR1 and on exit.
FILLER = Candidate("-", "filler", ("autosave_interval 0",), "-")


def conf_template(candidate: Candidate) -> str:
    """Our mosquitto.conf with only its autosave lines replaced by the candidate's (put where the
    first of them was, or after ``persistence true``)."""
    lines = DEFAULT_CONF.read_text().splitlines()
    if not any(line.strip() == "persistence true" for line in lines):
        raise SystemExit(f"{DEFAULT_CONF} no longer has `persistence true`: nothing to measure")
    anchor = next((i for i, line in enumerate(lines) if AUTOSAVE_RE.match(line)), None)
    if anchor is None:
        anchor = next(i for i, line in enumerate(lines) if line.strip() == "persistence true") + 1
    out = [line for line in lines[:anchor] if not AUTOSAVE_RE.match(line)]
    out += candidate.lines
    out += [line for line in lines[anchor:] if not AUTOSAVE_RE.match(line)]
    return "\n".join(out) + "\n"


def payload(meter: str, seq: int) -> bytes:
    """A Shelly Pro 1PM NotifyStatus event, ~600 bytes; ``seq`` identifies it."""
    event = {
        "src": meter, "dst": f"{meter}/events", "method": "NotifyStatus", "bench_seq": seq,
        "params": {
            "ts": 1_733_000_000.0 + seq / 100,
            "switch:0": {"id": 0, "source": "init", "output": True, "apower": 1234.5, "voltage": 231.4,
                         "freq": 50.0, "current": 5.338, "pf": 0.99,
                         "aenergy": {"total": 123456.789, "by_minute": [20.576, 20.571, 20.569],
                                     "minute_ts": 1_733_000_040},
                         "temperature": {"tC": 41.7, "tF": 107.1}},
            "sys": {"mac": meter[-12:].upper(), "restart_required": False, "time": "12:34", "unixtime": 1_733_000_000,
                    "uptime": 86_400, "ram_size": 246_684, "ram_free": 141_804, "fs_size": 524_288,
                    "fs_free": 196_608, "cfg_rev": 12},
        },
    }
    text = json.dumps(event, separators=(",", ":"))
    return (text + " " * max(0, 600 - len(text))).encode()


# -- processes -----------------------------------------------------------------------------------

STARTED: list[Broker] = []  # every broker this run started; all are killed on the way out


class Broker:
    """A Mosquitto from our conf with the candidate's autosave lines; restartable on its data dir."""

    def __init__(self, directory: Path, layout: PlantLayout, candidate: Candidate) -> None:
        self.server = MosquittoServer(directory, layout)  # generates users, ACL, the rendered conf
        self.data = directory / "data"
        local = LocalBroker(self.server.port, "127.0.0.1", self.server.files.passwd, self.server.files.acl, self.data)
        self.server.conf.write_text(render(conf_template(candidate), local))
        self.db = self.data / "mosquitto.db"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = self.server.port
        STARTED.append(self)

    def start(self, timeout: float = 60) -> None:
        with self.server.log.open("ab") as log:
            # Own session: a Ctrl-C reaches us, and we decide how the broker ends.
            self.proc = subprocess.Popen([find_binary("mosquitto"), "-c", str(self.server.conf)],
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_port(self.port, timeout, self.proc)  # a big database is loaded before listening

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime

    def kill(self) -> None:
        """SIGKILL: the crash (or power cut) case, nothing is saved."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def save_now(self, timeout: float = 60) -> tuple[float, float]:
        """SIGUSR1 makes Mosquitto write its database; wait until the new file is in place.
        Returns (wall seconds, broker CPU seconds) of that save."""
        assert self.proc is not None
        before = db_identity(self.db)
        cpu0, t0 = self.cpu_seconds(), time.monotonic()
        self.proc.send_signal(signal.SIGUSR1)
        while db_identity(self.db) == before:
            if time.monotonic() > t0 + timeout:
                raise TimeoutError(f"no database written within {timeout} s after SIGUSR1")
            time.sleep(0.005)
        return time.monotonic() - t0, self.cpu_seconds() - cpu0

    def stop(self, timeout: float = 120) -> None:
        """SIGTERM: Mosquitto saves its database and exits."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout)
        self.proc = None

    def settings(self, user: str) -> MqttSettings:
        return MqttSettings("127.0.0.1", self.port, user, self.server.users[user])


def db_identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


class SaveWatcher:
    """Notes when each save completes: Mosquitto renames a new file over mosquitto.db."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.saves: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last = db_identity(self.db)
        while not self._stop.wait(0.02):
            now = db_identity(self.db)
            if now != last and now is not None:
                self.saves.append(time.monotonic())
            last = now

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


# -- MQTT clients --------------------------------------------------------------------------------

def connected_client(settings: MqttSettings, client_id: str, *, clean_session: bool = True,
                     window: int = 20, on_message: Callable[[Any, Any, mqtt.MQTTMessage], None] | None = None,
                     subscribe: str | None = None) -> mqtt.Client:
    client = new_client(settings, client_id, clean_session=clean_session, max_inflight=window,
                        max_queued=window)
    ready = threading.Event()

    def on_connect(c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            return
        if subscribe:
            c.subscribe(subscribe, qos=1)
        else:
            ready.set()

    client.on_connect = on_connect
    client.on_subscribe = lambda *_a: ready.set()
    if on_message is not None:
        client.on_message = on_message
    client.connect("127.0.0.1", settings.port, keepalive=30)
    client.loop_start()
    if not ready.wait(15):
        client.loop_stop()
        raise TimeoutError(f"{client_id} could not connect/subscribe to port {settings.port}")
    return client


def close(client: mqtt.Client) -> None:
    with contextlib.suppress(Exception):
        client.disconnect()
    client.loop_stop()


def register_subscriber(broker: Broker) -> None:
    """The persistent session the broker queues for (the bridge, while it is down)."""
    close(connected_client(broker.settings("bridge"), SUBSCRIBER_ID, clean_session=False, subscribe=SUBSCRIPTION))


class Publisher:
    """One Shelly meter: QoS 1, at most ``window`` messages unacknowledged."""

    def __init__(self, broker: Broker, meter: str, window: int) -> None:
        self.meter = meter
        self.topic = Topics.shelly(meter, "events/rpc")
        self.slots = threading.Semaphore(window)
        self.acked = 0
        self._lock = threading.Lock()
        self.client = connected_client(broker.settings(meter), f"bench-{meter[-6:]}-{uuid.uuid4().hex[:4]}",
                                       window=window)
        self.client.on_publish = self._on_publish
        self.sent: list[tuple[int, mqtt.MQTTMessageInfo]] = []

    def _on_publish(self, _c: Any, _u: Any, _mid: int, _reason: Any, _p: Any) -> None:
        with self._lock:
            self.acked += 1
        self.slots.release()

    def publish(self, seq: int, keep: bool = False, timeout: float = 30) -> bool:
        if not self.slots.acquire(timeout=timeout):
            return False
        info = self.client.publish(self.topic, payload(self.meter, seq), qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self.slots.release()
            raise RuntimeError(f"publish failed: {mqtt.error_string(info.rc)}")
        if keep:
            self.sent.append((seq, info))
        return True

    def acked_seqs(self) -> set[int]:
        return {seq for seq, info in self.sent if info.is_published()}

    def wait_all_acked(self, sent: int, deadline: float) -> None:
        while self.acked < sent and time.monotonic() < deadline:
            time.sleep(0.005)


# -- measurements --------------------------------------------------------------------------------

@dataclass
class Throughput:
    acked: int
    seconds: float
    cpu: float
    saves: int

    @property
    def rate(self) -> float:
        return self.acked / self.seconds if self.seconds else 0.0

    @property
    def cpu_per_10k(self) -> float:
        return self.cpu / self.acked * 10_000 if self.acked else float("nan")


@dataclass
class Durability:
    acked: int
    delivered: int
    rate: float
    saves: int
    since_last_save: float | None  # seconds from the last completed save to the kill
    extra: int = 0  # delivered but never acknowledged to us (saved just before the kill)

    @property
    def lost(self) -> int:
        return self.acked - self.delivered


@dataclass
class Run:
    tmp: Path
    layout: PlantLayout
    publishers: int
    window: int
    progress: Callable[[str], None]
    backlog_dbs: dict[int, Path] = field(default_factory=dict)
    save_cost: dict[int, tuple[float, float, float]] = field(default_factory=dict)  # MB, wall s, CPU s

    def new_broker(self, candidate: Candidate, label: str) -> Broker:
        return Broker(self.tmp / f"{label}-{uuid.uuid4().hex[:6]}", self.layout, candidate)

    def prepare_backlogs(self, sizes: list[int]) -> None:
        """Queue each backlog once, on a broker that saves only when told, keep its database, and
        time that one save (SIGUSR1): what every autosave costs at that backlog."""
        broker = self.new_broker(FILLER, "filler")
        broker.start()
        register_subscriber(broker)
        done = 0
        try:
            for size in sorted(set(sizes)):
                t0 = time.monotonic()
                if size > done:
                    done += burst(broker, self.layout, self.publishers, self.window, size - done, 600, done).acked
                if done < size:
                    raise SystemExit(f"could not queue a backlog of {size} (only {done})")
                wall, cpu = broker.save_now()
                path = self.tmp / f"backlog-{size}.db"
                shutil.copyfile(broker.db, path)
                self.backlog_dbs[size] = path
                mb = path.stat().st_size / 1e6
                self.save_cost[size] = (mb, wall, cpu)
                self.progress(f"  backlog {size:>6} queued ({time.monotonic() - t0:4.1f} s): database {mb:5.1f} MB, "
                              f"one save {wall:.3f} s wall, {cpu:.2f} s broker CPU")
        finally:
            broker.kill()

    def throughput(self, candidate: Candidate, backlog: int, messages: int, seconds: float) -> Throughput:
        broker = self.new_broker(candidate, "tput")
        broker.data.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.backlog_dbs[backlog], broker.db)  # holds the persistent session too
        try:
            broker.start()
            return burst(broker, self.layout, self.publishers, self.window, messages, seconds, 10_000_000)
        finally:
            broker.kill()  # throwaway data: no point waiting for a save on exit

    def durability(self, candidate: Candidate, rate: float, seconds: float) -> Durability:
        broker = self.new_broker(candidate, "dur")
        meter = self.layout.meters[0]
        try:
            broker.start()
            register_subscriber(broker)
            # The bridge's session is old in real life: make sure it is on disk before we start.
            broker.save_now()
            watcher = SaveWatcher(broker.db)
            pub = Publisher(broker, meter, self.window)
            n = int(rate * seconds)
            t0 = time.monotonic()
            for seq in range(n):
                delay = t0 + seq / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                if not pub.publish(seq, keep=True):
                    break
            elapsed = time.monotonic() - t0
            time.sleep(0.05)  # let the last PUBACKs in
            killed_at = time.monotonic()
            broker.kill()
            time.sleep(0.3)  # PUBACKs already in our socket buffer are still processed
            watcher.stop()
            close(pub.client)  # before the restart, so that paho does not resend anything
            acked = pub.acked_seqs()
            saves = [t for t in watcher.saves if t <= killed_at]
            since = killed_at - saves[-1] if saves else None

            broker.start()
            got: set[int] = set()
            lock = threading.Lock()
            last_msg = [time.monotonic()]

            def on_message(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
                seq = json.loads(msg.payload)["bench_seq"]
                with lock:
                    got.add(seq)
                    last_msg[0] = time.monotonic()

            sub = connected_client(broker.settings("bridge"), SUBSCRIBER_ID, clean_session=False,
                                   on_message=on_message, subscribe=SUBSCRIPTION)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with lock:
                    if len(got) >= len(acked) or time.monotonic() - last_msg[0] > 1.5:
                        break
                time.sleep(0.05)
            close(sub)
            with lock:
                delivered = len(got & acked)
                extra = len(got - acked)
            return Durability(len(acked), delivered, len(acked) / elapsed, len(saves), since, extra)
        finally:
            broker.kill()


def burst(broker: Broker, layout: PlantLayout, publishers: int, window: int, messages: int,
          seconds: float, seq0: int) -> Throughput:
    """``publishers`` meters publish ``messages`` in all, as fast as acknowledged, at most ``seconds``."""
    pubs = [Publisher(broker, meter, window) for meter in layout.meters[:publishers]]
    watcher = SaveWatcher(broker.db)
    share = [messages // publishers + (1 if i < messages % publishers else 0) for i in range(publishers)]
    sent = [0] * publishers
    clock: dict[str, float] = {}

    def go() -> None:  # run by the last thread through the barrier, before any is released
        clock["cpu0"] = broker.cpu_seconds()
        clock["t0"] = time.monotonic()
        clock["deadline"] = clock["t0"] + seconds

    start = threading.Barrier(publishers + 1, action=go)

    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            start.wait()
            for k in range(share[i]):
                if time.monotonic() > clock["deadline"] or not pubs[i].publish(seq0 + k * publishers + i, timeout=5):
                    break
                sent[i] += 1
            pubs[i].wait_all_acked(sent[i], clock["deadline"] + 10)
        except Exception as exc:  # reported by the main thread (quietly dropped when interrupted)
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(publishers)]
    for t in threads:
        t.start()
    start.wait()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    elapsed = time.monotonic() - clock["t0"]
    cpu = broker.cpu_seconds() - clock["cpu0"]
    watcher.stop()
    for p in pubs:
        close(p.client)
    return Throughput(sum(p.acked for p in pubs), elapsed, cpu, len(watcher.saves))


# -- report --------------------------------------------------------------------------------------

def ratio(value: float, base: float) -> str:
    return f"{value / base:5.2f}x" if base else "  -  "


def print_throughput(results: dict[tuple[str, int], Throughput], backlogs: list[int]) -> None:
    print("\nThroughput (QoS 1, as fast as PUBACKed; ratios vs the baseline at the same backlog):")
    print(f"  {'setting':<24} {'backlog':>8} {'msgs':>7} {'msg/s':>8} {'ratio':>7} "
          f"{'CPU s/10k':>10} {'ratio':>7} {'saves':>6}")
    base_name = CANDIDATES[0].name
    for backlog in backlogs:
        base = results.get((base_name, backlog))
        for c in CANDIDATES:
            r = results.get((c.name, backlog))
            if r is None:
                continue
            print(f"  {c.name:<24} {backlog:>8} {r.acked:>7} {r.rate:>8.0f} "
                  f"{ratio(r.rate, base.rate) if base else '':>7} {r.cpu_per_10k:>10.2f} "
                  f"{ratio(r.cpu_per_10k, base.cpu_per_10k) if base else '':>7} {r.saves:>6}")


def print_durability(results: dict[str, list[Durability]], seconds: float) -> None:
    print(f"\nDurability (steady publisher for {seconds:g} s, then SIGKILL, restart, persistent session "
          "reconnects; one row per kill):")
    print(f"  {'setting':<24} {'acked':>6} {'deliv.':>7} {'lost':>6} {'lost %':>7} {'window s':>9} "
          f"{'since save':>11} {'bound':>10} {'saves':>6}")
    for c in CANDIDATES:
        for d in results.get(c.name, []):
            window = d.lost / d.rate if d.rate else float("nan")
            since = f"{d.since_last_save:.1f} s" if d.since_last_save is not None else "no save"
            pct = 100 * d.lost / d.acked if d.acked else float("nan")
            note = f"  (+{d.extra} unacked delivered)" if d.extra else ""
            print(f"  {c.name:<24} {d.acked:>6} {d.delivered:>7} {d.lost:>6} {pct:>6.1f}% {window:>9.2f} "
                  f"{since:>11} {c.bound:>10} {d.saves:>6}{note}")


# -- main ----------------------------------------------------------------------------------------

def _sigterm(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_broker_persistence", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--burst-seconds", type=float, default=7.0,
                        help="length of one throughput run: long enough for the timed saves of intervals 1 and 5 "
                             "(every 2 and 6 s) to happen in it (default 7)")
    parser.add_argument("--max-messages", type=int, default=60_000,
                        help="stop a throughput run earlier after this many messages; backlog + this must stay "
                             "under max_queued_messages (default 60000)")
    parser.add_argument("--backlogs", default="0,20000,100000",
                        help="queued messages before a throughput run, comma-separated (default 0,20000,100000)")
    parser.add_argument("--publishers", type=int, default=2, help="concurrent publishers (default 2)")
    parser.add_argument("--window", type=int, default=100, help="in-flight QoS 1 messages per publisher (default 100)")
    parser.add_argument("--rate", type=float, default=200.0, help="steady rate of the durability run (default 200/s)")
    parser.add_argument("--steady-seconds", type=float, default=12.0,
                        help="durability run length before the SIGKILL (default 12)")
    parser.add_argument("--baseline-steady-seconds", type=float, default=40.0,
                        help="durability run of the baseline, long enough to include one of its saves "
                             "(every 31 s) (default 40)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="SIGKILLs per setting, each 0.7 s later than the one before, so that the kill "
                             "falls elsewhere between two saves (default 1)")
    parser.add_argument("--settings", default=",".join(c.key for c in CANDIDATES),
                        help="which candidates, comma-separated from: "
                             + ", ".join(f"{c.key} = {c.name}" for c in CANDIDATES) + " (default all)")
    parser.add_argument("--only", choices=["throughput", "durability"], help="run one half only")
    parser.add_argument("--quick", action="store_true", help="smoke run: small figures, no backlog")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the brokers' data directories go (default: system temp; use the disk you "
                             "deploy on, fsync cost differs)")
    args = parser.parse_args(argv)
    if args.quick:
        args.max_messages, args.burst_seconds, args.backlogs = 20_000, 3.0, "0"
        args.steady_seconds, args.baseline_steady_seconds = 4.0, 4.0
    backlogs = sorted({int(x) for x in args.backlogs.split(",") if x.strip()})
    keys = {k.strip() for k in args.settings.split(",") if k.strip()}
    chosen = [c for c in CANDIDATES if c.key in keys]
    if unknown := keys - {c.key for c in CANDIDATES}:
        parser.error(f"unknown --settings {sorted(unknown)}")
    if any(b < 0 for b in backlogs) or args.publishers < 1 or args.window < 1 or args.rate <= 0 or args.repeats < 1:
        parser.error("backlogs >= 0, publishers >= 1, window >= 1, rate > 0, repeats >= 1")
    signal.signal(signal.SIGTERM, _sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored

    t_start = time.monotonic()

    def progress(msg: str) -> None:
        print(f"[{time.monotonic() - t_start:6.1f} s] {msg}", flush=True)

    layout = PlantLayout(meters=default_meter_ids(max(args.publishers, 1)))
    tput: dict[tuple[str, int], Throughput] = {}
    dura: dict[str, list[Durability]] = {}
    run_save_cost: dict[int, tuple[float, float, float]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-persist-", dir=args.workdir) as tmp:
            run = Run(Path(tmp), layout, args.publishers, args.window, progress)
            run_save_cost = run.save_cost
            if args.only != "durability":
                progress(f"queueing backlogs {backlogs} on a broker that saves only on SIGUSR1 ...")
                run.prepare_backlogs(backlogs)
                for backlog in backlogs:
                    for c in chosen:
                        r = run.throughput(c, backlog, args.max_messages, args.burst_seconds)
                        tput[(c.name, backlog)] = r
                        progress(f"throughput  {c.name:<24} backlog {backlog:>6}: {r.acked} msgs, {r.rate:6.0f}/s, "
                                 f"broker CPU {r.cpu_per_10k:.2f} s/10k, {r.saves} saves")
            if args.only != "throughput":
                for c in chosen:
                    for k in range(args.repeats):
                        secs = args.baseline_steady_seconds if c is CANDIDATES[0] else args.steady_seconds
                        d = run.durability(c, args.rate, secs + 0.7 * k)
                        dura.setdefault(c.name, []).append(d)
                        progress(f"durability  {c.name:<24} acked {d.acked}, delivered {d.delivered}, "
                                 f"lost {d.lost} ({d.lost / d.rate:.2f} s at {d.rate:.0f}/s), {d.saves} saves")
    except KeyboardInterrupt:
        print("\ninterrupted; brokers stopped", file=sys.stderr)
        return 130
    finally:
        for b in STARTED:
            b.kill()
    if run_save_cost:
        print("\nOne save (SIGUSR1, Mosquitto's event loop is blocked meanwhile):")
        for size, (mb, wall, cpu) in sorted(run_save_cost.items()):
            print(f"  backlog {size:>6}: database {mb:6.1f} MB, {wall:6.3f} s wall, {cpu:5.2f} s CPU")
    if tput:
        print_throughput(tput, backlogs)
    if dura:
        print_durability(dura, args.steady_seconds)
        print(f"  (baseline ran {args.baseline_steady_seconds:g} s; 'window s' = lost / rate; 'since save' = "
              "last completed save to the kill; 'bound' from Mosquitto's loop.c)")
    print(f"\ntotal {time.monotonic() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
