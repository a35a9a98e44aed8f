"""Helpers of the fault suite (tests/integration/test_faults.py): a loopback TCP proxy that can cut
clients off the broker, SIGKILL-able servers, a reading spy on the broker, the completeness check
of stored readings, log marks, soft checks and a case timer that prints progress (``pytest -s``)."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt
from sqlalchemy import Engine, func, select

from devices.shelly import ShellyPro1PM
from plantmodel.mqtt import connect_async, new_client
from plantmodel.readings import format_ts
from store import models as orm
from tests.mqtt import settings_for
from tests.processes import Service
from tests.servers import MariaDBServer, MosquittoServer

Key = tuple[int, int]  # (unit, automate)


def say(message: str) -> None:
    """Progress line, shown with ``pytest -s``."""
    print(f"[faults {time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- servers that can crash ----------------------------------------------------------------------

class _Crashable:
    """``kill()`` is the crash (SIGKILL: no clean shutdown, no last save); ``start()`` again
    restarts the server on the same data directory and port."""

    proc: subprocess.Popen[bytes] | None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


class KillableMosquitto(_Crashable, MosquittoServer):
    """Our Mosquitto, crashable (no autosave at exit)."""


class KillableMariaDB(_Crashable, MariaDBServer):
    """A throwaway MariaDB, crashable (crash recovery at the next start)."""


# -- TCP proxy -------------------------------------------------------------------------------------

class TcpProxy:
    """Loopback TCP proxy (asyncio, own thread) from ``port`` to ``upstream_port``.

    ``cut(seconds)`` resets every client connection and refuses (accepts and resets) new ones for
    that long: the clients behind it lose the broker while everyone else keeps it.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.accepted = 0
        self.refused = 0
        self._refuse_until = 0.0
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)
        self._server: asyncio.Server | None = None

    def _call(self, coro: Any, timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def start(self) -> None:
        self._thread.start()

        async def _start() -> asyncio.Server:
            return await asyncio.start_server(self._handle, "127.0.0.1", 0, reuse_address=True)

        self._server = self._call(_start())
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        if not self._thread.is_alive():
            return

        async def _stop() -> None:
            if self._server is not None:
                self._server.close()
            self._abort_all()

        with suppress(Exception):
            self._call(_stop(), 5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def cut(self, seconds: float) -> int:
        """Reset all connections and refuse new ones for ``seconds``; returns how many were reset."""
        self._refuse_until = time.monotonic() + seconds

        async def _cut() -> int:
            return self._abort_all()

        return int(self._call(_cut()))

    def restore(self) -> None:
        """Accept connections again now (end a cut early)."""
        self._refuse_until = 0.0

    @property
    def cutting(self) -> bool:
        return time.monotonic() < self._refuse_until

    @property
    def connections(self) -> int:
        return len(self._writers) // 2

    def _abort_all(self) -> int:
        writers = list(self._writers)
        for w in writers:
            w.transport.abort()
        self._writers.clear()
        return len(writers) // 2

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if time.monotonic() < self._refuse_until:
            self.refused += 1
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.upstream_port), 5)
        except (OSError, TimeoutError):
            writer.transport.abort()  # broker down: the client sees its connection fail
            return
        self.accepted += 1
        pair = (writer, up_writer)
        self._writers.update(pair)
        await asyncio.gather(self._pipe(reader, up_writer, pair), self._pipe(up_reader, writer, pair))

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                    pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter]) -> None:
        try:
            while True:
                data = await src.read(65536)
                if not data:
                    break
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError, RuntimeError):
            pass
        finally:
            # One side gone: the other goes too (MQTT has no use for half-closed connections).
            for w in pair:
                self._writers.discard(w)
                w.transport.abort()


# -- what the broker saw ---------------------------------------------------------------------------

class ReadingSpy:
    """A persistent-session subscriber on every reading: the highest ``seq`` the broker passed on,
    per simulated automate (readings stamped before ``since`` are from an earlier generation of the
    simulators and ignored). It reconnects by itself after a broker restart."""

    def __init__(self, server: MosquittoServer, user: str, units: Iterable[int], topic: str,
                 client_id: str = "fault-spy") -> None:
        self._units = set(units)
        self._lock = threading.Lock()
        self._max: dict[Key, int] = {}
        self._since = ""  # ISO text; format_ts output compares like the instants
        self.received = 0
        self._topic = topic
        settings = settings_for(server, user)
        self.client = new_client(settings, client_id, clean_session=False, max_queued=100)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        connect_async(self.client, settings)

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if not reason.is_failure:
            client.subscribe(self._topic, qos=1)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            data = json.loads(msg.payload)
            key = (int(data["unit"]), int(data["automate"]))
            seq, ts = int(data["seq"]), str(data["ts"])
        except (ValueError, KeyError, TypeError):
            return
        if key[0] not in self._units:
            return
        with self._lock:
            self.received += 1
            if ts >= self._since and seq > self._max.get(key, -1):
                self._max[key] = seq

    def reset(self, since: datetime) -> None:
        with self._lock:
            self._since = format_ts(since)
            self._max.clear()

    def max_seqs(self) -> dict[Key, int]:
        with self._lock:
            return dict(self._max)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# -- completeness of stored readings ------------------------------------------------------------

def ranges(values: Iterable[int], limit: int = 12) -> str:
    """``[1, 2, 3, 7, 9, 10]`` -> ``"1-3, 7, 9-10"`` (the first ``limit`` runs)."""
    runs: list[tuple[int, int]] = []
    for v in sorted(values):
        if runs and v == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], v)
        else:
            runs.append((v, v))
    text = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs[:limit])
    return text + (f", ... ({len(runs) - limit} more runs)" if len(runs) > limit else "")


@dataclass(frozen=True, slots=True)
class SeqStats:
    rows: int
    distinct: int
    low: int
    high: int
    newest_ts: datetime


@dataclass(slots=True)
class Completeness:
    """Per simulated automate: missing seqs (below its highest stored), duplicated seqs, and what
    is not there yet (target seq, a reading stamped after the fault)."""

    problems: list[str] = field(default_factory=list)
    missing: dict[Key, set[int]] = field(default_factory=dict)
    duplicates: dict[Key, set[int]] = field(default_factory=dict)
    behind: list[str] = field(default_factory=list)  # still catching up (not a loss, yet)

    @property
    def ok(self) -> bool:
        return not self.problems


def seq_stats(engine: Engine, keys: Iterable[Key], since: datetime) -> dict[Key, SeqStats]:
    units = sorted({u for u, _ in keys})
    r = orm.Reading
    stmt = (select(r.unit_id, r.automate_no, func.count(), func.count(r.seq.distinct()), func.min(r.seq),
                   func.max(r.seq), func.max(r.ts))
            .where(r.ts >= since, r.unit_id.in_(units)).group_by(r.unit_id, r.automate_no))
    with engine.connect() as conn:
        return {(u, a): SeqStats(n, d, lo, hi, ts) for u, a, n, d, lo, hi, ts in conn.execute(stmt)}


def stored_seqs(engine: Engine, key: Key, since: datetime) -> list[int]:
    r = orm.Reading
    stmt = select(r.seq).where(r.unit_id == key[0], r.automate_no == key[1], r.ts >= since)
    with engine.connect() as conn:
        return list(conn.scalars(stmt))


def completeness(engine: Engine, keys: list[Key], since: datetime, targets: dict[Key, int],
                 after: datetime | None, known_missing: dict[Key, set[int]],
                 known_duplicates: dict[Key, set[int]]) -> Completeness:
    """Every seq from 0 up to the highest stored (at least ``targets[key]``) stored exactly once,
    and (``after``) a reading stamped later than ``after`` stored. Missing or duplicated seqs
    already reported by an earlier case (``known_*``) are left out."""
    out = Completeness()
    stats = seq_stats(engine, keys, since)
    for key in keys:
        label = f"units/{key[0]}/automates/{key[1]}"
        target = targets.get(key, -1)
        st = stats.get(key)
        if st is None:
            out.behind.append(f"{label}: nothing stored yet (target seq {target})")
            continue
        if st.high < target:
            out.behind.append(f"{label}: stored up to seq {st.high}, the broker saw {target}")
        if after is not None and st.newest_ts <= after:
            out.behind.append(f"{label}: newest stored ts {format_ts(st.newest_ts)} is not after the "
                              f"fault's end {format_ts(after)}")
        if st.low != 0 or st.rows != st.distinct or st.distinct != st.high + 1:
            seqs = stored_seqs(engine, key, since)
            missing = set(range(st.high + 1)) - set(seqs) - known_missing.get(key, set())
            dups = {s for s, c in Counter(seqs).items() if c > 1} - known_duplicates.get(key, set())
            if missing:
                out.missing[key] = missing
                out.problems.append(f"{label}: {len(missing)} seq(s) missing below {st.high}: {ranges(missing)}")
            if dups:
                out.duplicates[key] = dups
                out.problems.append(f"{label}: seq(s) stored more than once: {ranges(dups)}")
    out.problems.extend(out.behind)
    return out


# -- logs -------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class LogMark:
    """A position in a service's log: what it wrote since."""

    service: Service
    offset: int

    @classmethod
    def now(cls, service: Service) -> LogMark:
        return cls(service, len(service.log()))

    def since(self) -> str:
        return self.service.log()[self.offset:]

    def lines(self, needle: str) -> list[str]:
        return [line for line in self.since().splitlines() if needle in line]


def tails(services: Iterable[Service | None], chars: int = 2500) -> str:
    return "".join(f"\n--- {s.name} log (tail) ---\n{s.log()[-chars:]}" for s in services if s is not None)


# -- soft checks and timing ---------------------------------------------------------------------------

AFTER_FAILURE_TIMEOUT = 5.0


class Checks:
    """Collects failed expectations so that one case reports all of them at once."""

    def __init__(self, case: CaseTimer) -> None:
        self.case = case
        self.failures: list[str] = []

    def check(self, ok: object, message: str) -> bool:
        if not ok:
            self.failures.append(message)
            self.case.step(f"FAILED: {message}")
        return bool(ok)

    def wait(self, predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.2) -> bool:
        if self.failures:  # the case already failed (often: the stack is stuck): do not wait as long again
            timeout = min(timeout, AFTER_FAILURE_TIMEOUT)
        deadline = time.monotonic() + timeout
        while True:
            if predicate():
                self.case.step(f"ok: {what}")
                return True
            if time.monotonic() > deadline:
                return self.check(False, f"timed out after {timeout:g} s waiting for {what}")
            time.sleep(interval)

    def raise_if_failed(self, extra: str = "") -> None:
        if self.failures:
            raise AssertionError("\n".join(f"- {f}" for f in self.failures) + extra)


TIMINGS: dict[str, tuple[float, str]] = {}  # case -> (seconds, "ok" / "FAILED")


class CaseTimer:
    def __init__(self, name: str) -> None:
        self.name = name
        self.t0 = time.monotonic()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def step(self, message: str) -> None:
        say(f"{self.name} +{self.elapsed:5.1f}s {message}")


@contextmanager
def timed_case(name: str, on_failure: Callable[[str], None] | None = None) -> Iterator[CaseTimer]:
    timer = CaseTimer(name)
    say(f"{name}: start")
    try:
        yield timer
    except BaseException:
        TIMINGS[name] = (timer.elapsed, "FAILED")
        say(f"{name}: FAILED after {timer.elapsed:.1f} s")
        if on_failure is not None:
            on_failure(name)
        raise
    TIMINGS[name] = (timer.elapsed, "ok")
    say(f"{name}: ok in {timer.elapsed:.1f} s")


# -- MQTT clients the test plays devices with --------------------------------------------------------

class MeterClient:
    """Plays a Shelly Pro 1PM with the meter's own credentials: answers the RPC requests it gets
    on ``<id>/rpc`` as the Gen2 device does (the simulator's logic, see devices/shelly.py) and
    publishes what the test wants."""

    def __init__(self, server: MosquittoServer, meter: str) -> None:
        self.meter = meter
        self.sim = ShellyPro1PM(meter, random.Random(20260101))
        self.requests: list[bytes] = []
        self.answers = 0
        self._subscribed = threading.Event()
        self.client = new_client(settings_for(server, meter), meter)
        self.client.on_connect = lambda c, *_: c.subscribe(f"{meter}/rpc", qos=1)
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", server.port)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise TimeoutError(f"{meter} could not subscribe to its rpc topic")

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self.requests.append(bytes(msg.payload))
        answer = self.sim.handle_rpc(bytes(msg.payload))
        if answer is not None:
            client.publish(*answer, qos=1)  # no waiting on paho's own thread
            self.answers += 1

    def publish(self, topic: str, payload: str) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def connect_once(server: MosquittoServer, user: str, client_id: str, hold: float,
                 clean_session: bool = True) -> str:
    """Connect as ``user`` with ``client_id``, stay ``hold`` seconds, disconnect; the CONNACK
    reason (or "no answer")."""
    result: list[str] = []
    done = threading.Event()
    client = new_client(settings_for(server, user), client_id, clean_session=clean_session)

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        result.append(str(reason))
        done.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", server.port)
    client.loop_start()
    try:
        done.wait(5)
        time.sleep(hold)
    finally:
        client.disconnect()
        client.loop_stop()
    return result[0] if result else "no answer"


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"
