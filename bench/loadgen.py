"""Load generator for ``bench/bench_ingest.py``: simulated production units publishing real readings.

Not a command: :class:`LoadGenerator` starts one or more generator processes (multiprocessing,
spawn), lets every unit connect with its own credentials, starts them all at once and collects what
each published. A process owns a share of the units and publishes, round robin over its automates,
``Reading(...).to_json()`` (byte for byte, see :func:`reading_json`) on ``Topics().reading(unit,
automate)`` at QoS 1: ``seq`` counts from 0 per automate, one ``boot`` id per unit and run, ``ts`` is
the time of publishing (strictly increasing per automate), values inside the normal ranges.
In-flight publishes are bounded per connection (paho's own queue is capped too: an unbounded QoS 1
queue collapses throughput).
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import random
import time
import uuid
from collections import deque
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Event
from typing import Any

import paho.mqtt.client as mqtt

from plantmodel import Reading, Topics, format_ts
from plantmodel.jsonutil import dumps
from plantmodel.layout import PlantLayout
from plantmodel.mqtt import MqttSettings, new_client

_MS = timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class LoadSpec:
    """What one generator process publishes."""

    port: int
    credentials: dict[str, str]  # unit user (unit-N) -> password, for this process's units
    units: tuple[int, ...]
    automates: int  # per unit
    readings: int  # how many this process publishes
    rate: float | None  # readings/s of this process; None = burst (as fast as the broker acknowledges)
    window: int = 200  # unacknowledged publishes per unit connection
    topic_root: str = "plant"
    host: str = "127.0.0.1"
    timeout: float = 60.0  # s for any single wait (connecting, one acknowledgement, the start signal)
    seed: int = 0


@dataclass(frozen=True, slots=True)
class LoadResult:
    published: int  # acknowledged by the broker
    first: float  # time.time() of the first publish
    last_ack: float  # time.time() when the last acknowledgement had arrived
    cpu_s: float  # CPU time of the process while publishing
    error: str | None = None


@dataclass(frozen=True, slots=True)
class LoadSummary:
    published: int
    first: float
    last_ack: float
    per_process: tuple[float, ...]  # each process's own publish rate (readings/s)
    cpu_ms_per_reading: float
    errors: tuple[str, ...] = ()

    @property
    def seconds(self) -> float:
        return max(self.last_ack - self.first, 1e-9)

    @property
    def rate(self) -> float:
        """Aggregate publish rate: acknowledged readings / (last acknowledgement - first publish)."""
        return self.published / self.seconds


def plan(port: int, passwords: dict[str, str], units: int, automates: int, readings: int,
         rate: float | None, processes: int, window: int = 200, timeout: float = 60.0) -> list[LoadSpec]:
    """Split ``units`` (and the readings and the rate, in proportion) over ``processes`` specs."""
    processes = max(1, min(processes, units))
    groups = [tuple(range(1, units + 1))[i::processes] for i in range(processes)]
    counts = [readings * len(g) // units for g in groups]
    for i in range(readings - sum(counts)):
        counts[i % processes] += 1
    seed = random.SystemRandom().randrange(1 << 30)
    return [
        LoadSpec(port, {PlantLayout.unit_user(u): passwords[PlantLayout.unit_user(u)] for u in g}, g, automates,
                 n, None if rate is None else rate * len(g) / units, window, timeout=timeout, seed=seed + i)
        for i, (g, n) in enumerate(zip(groups, counts, strict=True))
    ]


_FIELDS = tuple(f.name for f in fields(Reading))


def reading_json(reading: Reading) -> str:
    """``reading.to_json()``, byte for byte, without ``dataclasses.asdict``'s deep copy (which costs a
    quarter of the generator's CPU per reading); checked against ``to_json()`` while publishing."""
    data = {name: getattr(reading, name) for name in _FIELDS}
    data["ts"] = format_ts(reading.ts)
    if reading.boot is None:
        del data["boot"]
    return dumps(data)


Values = tuple[float, float, float, float, float, float, float, float, float, float]


def _values(rng: random.Random) -> Values:
    """Plausible measures, inside every normal range (no alarm is raised)."""
    return (round(rng.uniform(2.8, 3.7), 1), round(rng.uniform(9.0, 13.0), 1), rng.randint(3700, 4400),
            rng.randint(0, 60), round(rng.uniform(6.9, 7.1), 1), rng.randint(37, 45),
            round(rng.uniform(1.2, 1.5), 1), rng.randint(20, 34), rng.randint(38, 46), rng.randint(31, 51))


def _connect(spec: LoadSpec) -> dict[int, mqtt.Client]:
    clients: dict[int, mqtt.Client] = {}
    done: dict[int, list[Any]] = {}

    def on_connect(_c: mqtt.Client, unit: int, _f: Any, reason: Any, _p: Any) -> None:
        done[unit] = [reason]

    for unit in spec.units:
        user = PlantLayout.unit_user(unit)
        client = new_client(MqttSettings(spec.host, spec.port, user, spec.credentials[user]), user,
                            max_inflight=spec.window, max_queued=2 * spec.window)
        client.user_data_set(unit)
        client.on_connect = on_connect
        client.connect(spec.host, spec.port)
        client.loop_start()
        clients[unit] = client
    deadline = time.monotonic() + spec.timeout
    while len(done) < len(clients):
        if time.monotonic() > deadline:
            missing = sorted(set(clients) - set(done))
            raise TimeoutError(f"units {missing[:5]} got no CONNACK within {spec.timeout:g} s")
        time.sleep(0.02)
    refused = {u: r[0] for u, r in done.items() if r[0].is_failure}
    if refused:
        raise ConnectionError(f"broker refused units: {refused}")
    return clients


def _publish_all(spec: LoadSpec, clients: dict[int, mqtt.Client], go: Event) -> LoadResult:
    topics = Topics(spec.topic_root)
    rng = random.Random(spec.seed)
    keys = [(u, a) for u in spec.units for a in range(1, spec.automates + 1)]
    topic_of = {k: topics.reading(*k) for k in keys}
    type_of = {k: PlantLayout.automate_type(*k) for k in keys}
    boot = {u: uuid.uuid4().hex[:12] for u in spec.units}
    last_ts: dict[tuple[int, int], datetime] = {}
    pending: dict[int, deque[mqtt.MQTTMessageInfo]] = {u: deque() for u in spec.units}
    values = [_values(rng) for _ in range(97)]

    def settle(info: mqtt.MQTTMessageInfo) -> None:
        info.wait_for_publish(spec.timeout)
        if not info.is_published():
            raise TimeoutError(f"the broker did not acknowledge a publish within {spec.timeout:g} s")

    if not go.wait(spec.timeout * 10):
        raise TimeoutError("no start signal")
    first = time.time()
    t0 = time.monotonic()
    cpu0 = time.process_time()
    n_keys = len(keys)
    for j in range(spec.readings):
        if spec.rate is not None:
            due = t0 + j / spec.rate
            delay = due - time.monotonic()
            if delay > 0.001:
                time.sleep(delay)
        key = keys[j % n_keys]
        unit, automate = key
        now = datetime.now(UTC)
        ts = now.replace(microsecond=now.microsecond // 1000 * 1000)
        prev = last_ts.get(key)
        if prev is not None and ts <= prev:
            ts = prev + _MS  # the unique key is (unit, automate, ts) at millisecond precision
        last_ts[key] = ts
        reading = Reading(unit, automate, type_of[key], j // n_keys, ts, *values[j % len(values)],
                          boot=boot[unit])
        payload = reading_json(reading)
        if j % 997 == 0 and payload != reading.to_json():
            raise AssertionError(f"reading_json differs from Reading.to_json: {payload} != {reading.to_json()}")
        info = clients[unit].publish(topic_of[key], payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise RuntimeError(f"publish refused by paho: {mqtt.error_string(info.rc)}")
        waiting = pending[unit]
        waiting.append(info)
        if len(waiting) >= spec.window:
            settle(waiting.popleft())
    for waiting in pending.values():
        while waiting:
            settle(waiting.popleft())
    return LoadResult(spec.readings, first, time.time(), time.process_time() - cpu0)


def generate(spec: LoadSpec, ready: Event, go: Event, out: mp.Queue[LoadResult]) -> None:
    """Process entry point: connect, signal ``ready``, wait for ``go``, publish, report to ``out``."""
    clients: dict[int, mqtt.Client] = {}
    try:
        clients = _connect(spec)
        ready.set()
        result = _publish_all(spec, clients, go)
    except Exception as exc:
        ready.set()  # the parent must not wait for a start that will not come
        result = LoadResult(0, 0.0, 0.0, 0.0, f"{type(exc).__name__}: {exc}")
    finally:
        for client in clients.values():
            client.disconnect()
            client.loop_stop()
    out.put(result)


@dataclass
class LoadGenerator:
    """Generator processes for one measurement (use as a context manager: they never outlive it)."""

    specs: list[LoadSpec]
    _procs: list[SpawnProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        ctx = mp.get_context("spawn")
        self._out: mp.Queue[LoadResult] = ctx.Queue()
        self._go = ctx.Event()
        self._ready = [ctx.Event() for _ in self.specs]
        self._procs = [ctx.Process(target=generate, args=(s, r, self._go, self._out), daemon=True,
                                   name=f"loadgen-{i}") for i, (s, r) in enumerate(zip(self.specs, self._ready,
                                                                                          strict=True))]

    def __enter__(self) -> LoadGenerator:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def start(self, timeout: float = 60.0) -> None:
        """Start the processes and wait until every unit is connected."""
        for p in self._procs:
            p.start()
        deadline = time.monotonic() + timeout
        for i, ready in enumerate(self._ready):
            if not ready.wait(max(deadline - time.monotonic(), 0.01)):
                raise TimeoutError(f"load generator {i} not connected after {timeout:g} s")

    def go(self) -> None:
        self._go.set()

    def wait(self, timeout: float) -> LoadSummary:
        deadline = time.monotonic() + timeout
        results: list[LoadResult] = []
        while len(results) < len(self._procs):
            try:
                results.append(self._out.get(timeout=min(max(deadline - time.monotonic(), 0.01), 1.0)))
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"load generator did not finish within {timeout:g} s "
                                       f"({len(results)} of {len(self._procs)} processes reported)") from None
                dead = [p.name for p in self._procs if p.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"load generator process(es) {dead} died") from None
        errors = tuple(r.error for r in results if r.error)
        ok = [r for r in results if not r.error]
        published = sum(r.published for r in ok)
        if not ok:
            return LoadSummary(0, time.time(), time.time(), (), 0.0, errors)
        return LoadSummary(published, min(r.first for r in ok), max(r.last_ack for r in ok),
                           tuple(r.published / max(r.last_ack - r.first, 1e-9) for r in ok),
                           1000 * sum(r.cpu_s for r in ok) / max(published, 1), errors)

    def close(self) -> None:
        for p in self._procs:
            if p.pid is not None and p.is_alive():
                p.join(2)
            if p.is_alive():
                p.terminate()
                p.join(5)
            if p.is_alive():
                p.kill()
                p.join()
