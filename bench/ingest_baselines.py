"""The two baselines of ``bench/bench_ingest.py``, each run in a process of its own (multiprocessing, spawn).

- the ceiling: a bare paho-mqtt 2.x QoS 1 subscriber (persistent session, its own bridge user,
  subscribed like the bridge) that only counts the readings it receives;
- the naive bridge: the same subscriber doing one INSERT + COMMIT per reading into ``readings``
  (parse JSON, SQLAlchemy Core, the project's schema), acknowledging each message after its commit
  (paho acknowledges a QoS 1 message when ``on_message`` returns).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import resource
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.synchronize import Event
from typing import Any, cast

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Connection, Table, insert
from sqlalchemy.exc import IntegrityError

from plantmodel.layout import PlantLayout
from plantmodel.measures import AUTOMATE_MEASURES
from store import models as orm
from store.db import create_db_engine, init_schema


@dataclass(frozen=True, slots=True)
class SubscriberSpec:
    port: int
    user: str
    password: str
    subscriptions: tuple[str, ...]
    expected: int  # readings to receive before reporting
    database_url: str | None  # None: count only (the ceiling); else one INSERT + COMMIT per reading
    units: int
    automates: int
    timeout: float  # s overall
    idle_timeout: float = 60.0  # s without a new reading before giving up
    host: str = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class SubscriberResult:
    received: int
    stored: int
    duplicates: int
    first: float  # time.time() of the first reading received
    last: float  # time.time() when the last one was done (received, or committed)
    cpu_s: float  # CPU time from subscribed to done
    peak_rss_mb: float
    error: str | None = None


class _Counter:
    def __init__(self, spec: SubscriberSpec, conn: Connection | None) -> None:
        self.spec = spec
        self.conn = conn
        self.received = self.stored = self.duplicates = 0
        self.first = self.last = 0.0
        self.error: str | None = None
        self.subscribed = threading.Event()
        table = cast(Table, orm.Reading.__table__)
        self.stmt = insert(table)
        self.extra = [c for c in ("stored_at",) if c in table.c]  # added by a newer schema

    def on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if not msg.topic.endswith("/readings"):
            return  # retained status / confirmations of earlier runs
        now = time.time()
        if not self.received:
            self.first = now
        self.received += 1
        if self.conn is not None:
            try:
                self._store(msg.payload)
            except Exception as exc:  # keep the first error for the report
                self.error = self.error or f"{type(exc).__name__}: {exc}"[:300]
        self.last = time.time()

    def _store(self, payload: bytes | bytearray) -> None:
        assert self.conn is not None
        data = json.loads(payload)
        now = datetime.now(UTC)
        row = {"unit_id": data["unit"], "automate_no": data["automate"], "seq": data["seq"],
               "ts": datetime.fromisoformat(data["ts"].replace("Z", "+00:00")), "received_at": now,
               **{m: data[m] for m in AUTOMATE_MEASURES}, **dict.fromkeys(self.extra, now)}
        try:
            self.conn.execute(self.stmt, row)
            self.conn.commit()
            self.stored += 1
        except IntegrityError:  # a redelivery
            self.conn.rollback()
            self.duplicates += 1


def _prepare(url: str, units: int, automates: int) -> Connection:
    """The project's schema, and the units and automates the readings' foreign key needs."""
    engine = create_db_engine(url)
    init_schema(engine)
    conn = engine.connect()
    now = datetime.now(UTC)
    conn.execute(insert(cast(Table, orm.Unit.__table__)).prefix_with("IGNORE"),
                 [{"id": u, "created_at": now} for u in range(1, units + 1)])
    conn.execute(insert(cast(Table, orm.Automate.__table__)).prefix_with("IGNORE"),
                 [{"unit_id": u, "automate_no": a, "type": PlantLayout.automate_type(u, a), "created_at": now}
                  for u in range(1, units + 1) for a in range(1, automates + 1)])
    conn.commit()
    return conn


def subscribe(spec: SubscriberSpec, ready: Event, out: mp.Queue[SubscriberResult]) -> None:
    """Process entry point: subscribe, signal ``ready``, count (and store) until ``expected`` readings."""
    conn: Connection | None = None
    client: mqtt.Client | None = None
    try:
        if spec.database_url is not None:
            conn = _prepare(spec.database_url, spec.units, spec.automates)
        counter = _Counter(spec, conn)
        client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=spec.user,
                             clean_session=False, protocol=mqtt.MQTTv311)
        client.username_pw_set(spec.user, spec.password)
        client.max_inflight_messages_set(1000)
        client.on_message = counter.on_message
        client.on_connect = lambda c, _u, _f, reason, _p: (
            None if reason.is_failure else c.subscribe([(t, 1) for t in spec.subscriptions]))
        client.on_subscribe = lambda *_a: counter.subscribed.set()
        client.connect(spec.host, spec.port)
        client.loop_start()
        if not counter.subscribed.wait(30):
            raise TimeoutError(f"{spec.user}: no SUBACK within 30 s")
        cpu0 = time.process_time()
        ready.set()
        deadline = time.monotonic() + spec.timeout
        seen, seen_at = -1, time.monotonic()
        while counter.received < spec.expected:
            now = time.monotonic()
            if counter.received != seen:
                seen, seen_at = counter.received, now
            if now > deadline or now - seen_at > spec.idle_timeout:
                counter.error = counter.error or (
                    f"timed out: {counter.received} of {spec.expected} readings received "
                    f"({'overall limit' if now > deadline else f'nothing new for {spec.idle_timeout:g} s'})")
                break
            time.sleep(0.02)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        result = SubscriberResult(counter.received, counter.stored, counter.duplicates, counter.first,
                                  counter.last, time.process_time() - cpu0, rss, counter.error)
    except Exception as exc:
        ready.set()
        result = SubscriberResult(0, 0, 0, 0.0, 0.0, 0.0, 0.0, f"{type(exc).__name__}: {exc}")
    finally:
        if client is not None:
            client.disconnect()
            client.loop_stop()
        if conn is not None:
            conn.close()
    out.put(result)
