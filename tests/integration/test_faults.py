"""The fault suite: one running stack (our Mosquitto, a throwaway MariaDB, the bridge, simulated
units and a meter at ~160 readings/s), faults injected one after the other, and after each one:
every reading the units published is stored exactly once, no false alarm, the bridge still runs.

Faults: the bridge SIGKILLed; MariaDB SIGKILLed for 15 s; Mosquitto SIGKILLed; the units cut off
the broker for 10 s (a TCP proxy between them and the broker); Mosquitto SIGKILLed while it holds
the backlog of a stopped bridge; MariaDB and then Mosquitto SIGKILLed; poison messages in the
stream; client-id takeover attempts; future-stamped readings. Unit 3 and meter 2 are not simulated:
the test publishes as them (a second connection with a simulated device's user would kick it).

``pytest -s tests/integration/test_faults.py`` shows each step with its time.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from broker.config import DEFAULT_CONF
from plantmodel import Topics, format_ts, utcnow
from plantmodel.layout import PlantLayout, default_meter_ids
from plantmodel.shelly import SWITCH_KEY, notification, unix_to_dt
from store import models as orm
from store import queries
from store.db import create_db_engine, make_sessionmaker
from tests.faults import (
    TIMINGS,
    CaseTimer,
    Checks,
    Completeness,
    Key,
    KillableMariaDB,
    KillableMosquitto,
    LogMark,
    MeterClient,
    ReadingSpy,
    TcpProxy,
    completeness,
    connect_once,
    say,
    seq_stats,
    tails,
    timed_case,
    unique,
)
from tests.mqtt import Client
from tests.processes import Service, wait_for

pytestmark = pytest.mark.integration

T = Topics()
M1, M2 = default_meter_ids(2)
LAYOUT = PlantLayout(units=3, automates=4, meters=(M1, M2))
SIMULATED_UNITS = 2  # units 1-2 (and meter M1) are simulated; unit 3 and M2 are the test's
PERIOD = 0.05  # s between two reports of a unit: 2 units x 4 automates -> 160 readings/s
SIM_KEYS: list[Key] = [(u, a) for u in range(1, SIMULATED_UNITS + 1) for a in range(1, LAYOUT.automates + 1)]
# Client ids a takeover would try: the bridge's user name, the bridge's former fixed client id, a unit.
TAKEOVER_IDS = ("bridge", "plant-bridge", "unit-1")
BRIDGE_USER = "bridge"
# The bridge's persistent session: its client id was fixed (`plant-bridge`) before the broker took
# the user name as client id; with use_username_as_clientid any id sent by `bridge` maps to it.
BRIDGE_SESSION_ID = "plant-bridge"
COMPLETE_TIMEOUT = 60.0  # s for every reading to be stored after a fault
STALL = 20.0  # s the same seqs may stay missing while newer readings are stored, before we call it a loss


def conf_int(option: str) -> int:
    """An integer option of our mosquitto.conf."""
    match = re.search(rf"^{option}\s+(\d+)", DEFAULT_CONF.read_text(), re.M)
    if match is None:
        raise RuntimeError(f"{option} not found in {DEFAULT_CONF}")
    return int(match.group(1))


# The broker hands the bridge at most this many unacknowledged messages.
BROKER_INFLIGHT = conf_int("max_inflight_messages")
# In-range values (tests/unit/test_model.py's example), for the readings the test publishes as unit 3.
NORMAL = {"tank_temp_c": 3.4, "ext_temp_c": 11.2, "milk_kg": 4012, "product_kg": 35, "ph": 7.0, "k_mg_l": 41,
          "nacl_g_l": 1.3, "salmonella_ppm": 22, "ecoli_ppm": 40, "listeria_ppm": 31}


def reading_payload(unit: int, automate: int, seq: int, ts: datetime, **values: Any) -> str:
    """A reading as a unit sends it, built without validation (so it can carry a poison)."""
    body = {"unit": unit, "automate": automate, "type": PlantLayout.automate_type(unit, automate), "seq": seq,
            "ts": format_ts(ts), **NORMAL, **values}
    return json.dumps(body, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class FaultEnd:
    at: datetime  # wall clock when the fault was over (the units' clock is the same)
    targets: dict[Key, int]  # highest seq per simulated automate the broker had passed on by then


class FaultStack:
    """The services of the suite, started once for the module; each case makes sure they are up."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.mosquitto = KillableMosquitto(directory / "mosquitto", LAYOUT)
        self.mariadb = KillableMariaDB(directory / "mariadb")
        self.proxy = TcpProxy(self.mosquitto.port)
        self.spy: ReadingSpy | None = None
        self.bridge: Service | None = None
        self.devices: Service | None = None
        self.url = ""
        self._engine: Engine | None = None
        self.devices_since = utcnow()
        self._started: list[Service] = []
        # What an earlier (failed) case already reported, so that the next cases do not fail for it.
        self.known_missing: dict[Key, set[int]] = {}
        self.known_duplicates: dict[Key, set[int]] = {}
        self.known_alarms: set[int] = set()
        self.failed_cases: set[str] = set()
        # Bad messages the suite published (case, topic, payload): each must be rejected exactly once.
        self.bad_messages: list[tuple[str, str, str]] = []
        self.test_topics: dict[str, set[str]] = {}  # case -> topics the test itself published on

    @property
    def engine(self) -> Engine:
        """The test's own connections: no pool, so a MariaDB restart leaves nothing stale."""
        assert self._engine is not None, "the stack is not started"
        return self._engine

    # -- life cycle ----------------------------------------------------------------------------------
    def start(self) -> None:
        t0 = time.monotonic()
        self.mariadb.start()
        self.url = self.mariadb.create_database(unique("faults"))
        self._engine = create_db_engine(self.url, poolclass=NullPool, connect_args={"connect_timeout": 3})
        self.mosquitto.start()
        self.proxy.start()
        self.spy = ReadingSpy(self.mosquitto, "debug", range(1, SIMULATED_UNITS + 1),
                              "plant/units/+/automates/+/readings")
        self.start_bridge()
        self.start_devices()
        self.wait_flowing(45)
        say(f"stack up in {time.monotonic() - t0:.1f} s: broker :{self.mosquitto.port}, units via proxy "
            f":{self.proxy.port}, MariaDB :{self.mariadb.port}, logs in {self.dir}")

    def stop(self) -> None:
        """Everything this suite started, whatever state it is in."""
        for service in reversed(self._started):
            with suppress(Exception):
                service.stop(timeout=10)
        for step in (self.spy.close if self.spy else None, self.proxy.stop, self.mosquitto.stop,
                     self.mariadb.stop):
            if step is not None:
                with suppress(Exception):
                    step()

    def _service(self, kind: str, args: list[str], env: dict[str, str]) -> Service:
        n = sum(1 for s in self._started if s.name.startswith(kind)) + 1
        service = Service(f"{kind}-{n}", args, env, self.dir)
        self._started.append(service)
        return service

    def start_bridge(self) -> Service:
        env = {**self.mosquitto.env(), "DATABASE_URL": self.url, "MQTT_USERNAME": BRIDGE_USER,
               "BRIDGE_THRESHOLDS_POLL": "0.5"}
        bridge = self._service("bridge", ["bridge", "run"], env)
        self.bridge = bridge
        wait_for(lambda: "connected to" in bridge.log(), 30, "the bridge to connect", services=[bridge])
        return bridge

    def start_devices(self) -> Service:
        """Units 1-2 and meter M1, through the proxy. A new process counts seq from 0 again: from
        now on only readings stamped after its start are checked."""
        since = utcnow()
        assert self.spy is not None
        self.spy.reset(since)
        self.devices_since = since
        env = {**self.mosquitto.env(), "MQTT_PORT": str(self.proxy.port), "PLANT_UNITS": str(SIMULATED_UNITS),
               "PLANT_METERS": M1, "DEVICES_FAULT_FILE": str(self.dir / "faults.json")}
        self.devices = self._service("devices", ["devices", "run", "--period", str(PERIOD)], env)
        return self.devices

    def services(self) -> list[Service]:
        return [s for s in (self.bridge, self.devices) if s is not None]

    def wait_flowing(self, timeout: float) -> None:
        """Every simulated automate gets a reading stamped after now stored."""
        now = utcnow()

        def flowing() -> bool:
            try:
                stats = seq_stats(self.engine, SIM_KEYS, self.devices_since)
            except SQLAlchemyError:
                return False
            return all(k in stats and stats[k].newest_ts > now for k in SIM_KEYS)

        wait_for(flowing, timeout, "readings of every simulated automate to be stored", interval=0.3,
                 services=self.services())

    def ensure_up(self, t: CaseTimer) -> None:
        """Whatever an earlier case left down is brought back, so one failure does not cascade."""
        repaired = not (self.mariadb.running and self.mosquitto.running and not self.proxy.cutting
                        and self.bridge is not None and self.bridge.alive())
        if not self.mariadb.running:
            t.step("MariaDB was down: starting it")
            self.mariadb.start()
        if not self.mosquitto.running:
            t.step("Mosquitto was down: starting it")
            self.mosquitto.start()
        self.proxy.restore()
        if self.bridge is None or not self.bridge.alive():
            t.step("the bridge was not running: starting one")
            self.start_bridge()
        if self.devices is None or not self.devices.alive():
            t.step("the simulators were not running: starting them (seq from 0 again)")
            self.start_devices()
        try:
            self.wait_flowing(30)
        except AssertionError:
            t.step("readings do not flow: restarting the bridge")
            assert self.bridge is not None
            self.bridge.stop(timeout=10)
            self.start_bridge()
            try:
                self.wait_flowing(20)
            except AssertionError:
                # A message the bridge cannot get past, redelivered to every new bridge from its
                # persistent session: drop that session (what an operator would have to do).
                t.step("still stuck: wiping the bridge's persistent session and restarting it")
                self.bridge.stop(timeout=10)
                connect_once(self.mosquitto, BRIDGE_USER, BRIDGE_SESSION_ID, hold=0.5, clean_session=True)
                self.start_bridge()
                self.wait_flowing(30)
            repaired = True
        if repaired:
            self.forgive_holes(t)
        t.step("stack up, readings flowing")

    def forgive_holes(self, t: CaseTimer) -> None:
        """After a repair, what is missing now was lost by the earlier failure or by the repair:
        already reported, not the next case's fault."""
        time.sleep(3)
        found = completeness(self.engine, SIM_KEYS, self.devices_since, {}, None, self.known_missing,
                             self.known_duplicates)
        for k, v in found.missing.items():
            self.known_missing.setdefault(k, set()).update(v)
        for k, v in found.duplicates.items():
            self.known_duplicates.setdefault(k, set()).update(v)
        if found.missing or found.duplicates:
            t.step("left out from now on (lost before or by the repair): " + "; ".join(found.problems))

    @contextmanager
    def case(self, name: str) -> Iterator[tuple[CaseTimer, Checks]]:
        with timed_case(name, self.failed_cases.add) as t:
            self.ensure_up(t)
            checks = Checks(t)
            yield t, checks
            checks.raise_if_failed(tails(self.services(), 2000))

    # -- after a fault -------------------------------------------------------------------------------------
    def fault_ended(self, t: CaseTimer) -> FaultEnd:
        assert self.spy is not None
        end = FaultEnd(utcnow(), self.spy.max_seqs())
        t.step(f"fault over; the broker had passed on seqs up to {max(end.targets.values(), default=-1)}")
        return end

    def wait_complete(self, t: CaseTimer, targets: dict[Key, int], after: datetime | None,
                      timeout: float = COMPLETE_TIMEOUT) -> list[str]:
        """Wait (bounded) until every seq up to ``targets`` (and to a reading stamped after
        ``after``) is stored exactly once; the problems left, if any (they are remembered, so that
        a later case does not report the same loss again)."""
        deadline = time.monotonic() + timeout
        last: dict[Key, frozenset[int]] | None = None
        same_since = time.monotonic()
        while True:
            result: Completeness | None = None
            try:
                result = completeness(self.engine, SIM_KEYS, self.devices_since, targets, after,
                                      self.known_missing, self.known_duplicates)
            except SQLAlchemyError as exc:
                error = f"database unreachable: {exc.__class__.__name__}"
            if result is not None and result.ok:
                t.step(f"complete: every seq up to {max(targets.values(), default=-1)} stored once")
                return []
            now = time.monotonic()
            if result is not None:
                missing = {k: frozenset(v) for k, v in result.missing.items()}
                if missing != last:
                    last, same_since = missing, now
            dead = [s.name for s in self.services() if not s.alive()]
            stalled = result is not None and bool(result.missing) and not result.behind and now - same_since > STALL
            if dead or stalled or now > deadline:
                why = (f"{', '.join(dead)} exited" if dead else
                       f"the same seqs stayed missing for {STALL:g} s while newer readings were stored" if stalled
                       else f"not complete after {timeout:g} s")
                if result is not None:
                    for k, v in result.missing.items():
                        self.known_missing.setdefault(k, set()).update(v)
                    for k, v in result.duplicates.items():
                        self.known_duplicates.setdefault(k, set()).update(v)
                problems = result.problems if result is not None else [error]
                return [f"readings incomplete ({why}):\n    " + "\n    ".join(problems)]
            time.sleep(0.5)

    def new_alarms(self) -> list[str]:
        """Alarm rows of simulated automates not reported yet (the simulators stay in range)."""
        a = orm.Alarm
        with self.engine.connect() as conn:
            rows = conn.execute(select(a.id, a.source, a.measure, a.value, a.state)
                                .where(a.unit_id.between(1, SIMULATED_UNITS))).all()
        fresh = [r for r in rows if r.id not in self.known_alarms]
        self.known_alarms.update(r.id for r in fresh)
        return [f"alarm {r.state} {r.source} {r.measure} = {r.value}" for r in fresh]

    def verify(self, t: CaseTimer, checks: Checks, end: FaultEnd, timeout: float = COMPLETE_TIMEOUT) -> None:
        """The checks after every fault: completeness, no false alarm, the bridge alive."""
        for problem in self.wait_complete(t, end.targets, end.at, timeout):
            checks.check(False, problem)
        alarms = self.new_alarms()
        checks.check(not alarms, f"alarms on simulated automates (their values stay in range): {alarms}")
        checks.check(self.bridge is not None and self.bridge.alive(), "the bridge is not running")

    # -- database look-ups ------------------------------------------------------------------------------
    def rejected(self, topic: str, payload: str | None = None) -> list[orm.RejectedMessage]:
        r = orm.RejectedMessage
        stmt = select(r).where(r.topic == topic)
        if payload is not None:
            stmt = stmt.where(r.payload == payload)
        with make_sessionmaker(self.engine)() as session:
            return list(session.scalars(stmt.order_by(r.id)))

    def all_rejected(self) -> list[orm.RejectedMessage]:
        with make_sessionmaker(self.engine)() as session:
            return list(session.scalars(select(orm.RejectedMessage).order_by(orm.RejectedMessage.id)))

    def unit_seqs(self, unit: int, automate: int) -> list[int]:
        r = orm.Reading
        with self.engine.connect() as conn:
            return sorted(conn.scalars(select(r.seq).where(r.unit_id == unit, r.automate_no == automate)))

    def power_ts(self, meter: str) -> set[datetime]:
        p = orm.PowerReading
        with self.engine.connect() as conn:
            return set(conn.scalars(select(p.ts).where(p.meter_id == meter)))

    def active_alarm(self, source: str, measure: str) -> bool:
        a = orm.Alarm
        with self.engine.connect() as conn:
            return conn.scalar(select(a.id).where(a.source == source, a.measure == measure,
                                                  a.state == "active")) is not None

    def bad(self, case: str, topic: str, payload: str) -> None:
        self.bad_messages.append((case, topic, payload))

    def published(self, case: str, *topics: str) -> None:
        self.test_topics.setdefault(case, set()).update(topics)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultStack]:
    s = FaultStack(tmp_path_factory.mktemp("faults"))
    try:
        s.start()
        yield s
    finally:
        s.stop()
        total = sum(seconds for seconds, _ in TIMINGS.values())
        say("summary: " + "; ".join(f"{name}: {state} {seconds:.1f} s" for name, (seconds, state) in TIMINGS.items())
            + f"; cases total {total:.1f} s")


# -- the cases, in order ---------------------------------------------------------------------------------

def test_1_bridge_sigkilled_and_restarted(stack: FaultStack) -> None:
    with stack.case("1 bridge SIGKILL") as (t, checks):
        assert stack.bridge is not None
        stack.bridge.kill()
        t.step("bridge SIGKILLed")
        stack.start_bridge()
        t.step("bridge restarted")
        stack.verify(t, checks, stack.fault_ended(t))


def test_2_mariadb_sigkilled_for_15s(stack: FaultStack) -> None:
    with stack.case("2 MariaDB SIGKILL 15 s") as (t, checks):
        stack.mariadb.kill()
        t.step("MariaDB SIGKILLed")
        time.sleep(15)
        stack.mariadb.start()
        t.step("MariaDB restarted (crash recovery) on the same data dir")
        stack.verify(t, checks, stack.fault_ended(t), timeout=75)


def test_3_mosquitto_sigkilled(stack: FaultStack) -> None:
    with stack.case("3 Mosquitto SIGKILL") as (t, checks):
        stack.mosquitto.kill()
        t.step("Mosquitto SIGKILLed")
        stack.mosquitto.start()
        t.step("Mosquitto restarted on the same data dir and port")
        stack.verify(t, checks, stack.fault_ended(t))


def test_4_units_cut_off_the_broker_for_10s(stack: FaultStack) -> None:
    # 10 s: several of the units' reconnect attempts refused (back-off from 1 s) and ~10 readings per
    # automate buffered; longer adds suite time, not coverage.
    with stack.case("4 units cut off 10 s") as (t, checks):
        reset = stack.proxy.cut(10)
        t.step(f"proxy cut: {reset} connection(s) reset, new ones refused for 10 s")
        time.sleep(10)
        t.step(f"proxy open again ({stack.proxy.refused} connection attempt(s) refused meanwhile)")
        stack.verify(t, checks, stack.fault_ended(t))


def test_5_broker_killed_holding_the_backlog_of_a_stopped_bridge(stack: FaultStack) -> None:
    with stack.case("5 bridge down + Mosquitto SIGKILL") as (t, checks):
        assert stack.bridge is not None and stack.spy is not None
        code = stack.bridge.stop()
        checks.check(code == 0, f"the bridge exited with {code} on SIGTERM")
        t.step("bridge stopped (SIGTERM); the broker queues for its persistent session")
        before = sum(stack.spy.max_seqs().values())
        time.sleep(6)
        t.step(f"backlog of ~{sum(stack.spy.max_seqs().values()) - before} readings held by the broker")
        stack.mosquitto.kill()
        t.step("Mosquitto SIGKILLed")
        stack.mosquitto.start()
        t.step("Mosquitto restarted")
        stack.start_bridge()
        t.step("bridge restarted")
        stack.verify(t, checks, stack.fault_ended(t))


def test_6_mariadb_then_mosquitto_sigkilled(stack: FaultStack) -> None:
    with stack.case("6 MariaDB + Mosquitto SIGKILL") as (t, checks):
        assert stack.bridge is not None
        mark = LogMark.now(stack.bridge)
        stack.mariadb.kill()
        t.step("MariaDB SIGKILLed")
        checks.wait(lambda: mark.lines("database write failed"), 20, "the bridge to fail a write")
        # Long enough that the broker holds more than the bridge has in hand: beyond the in-flight
        # window, what the bridge cannot commit waits in the broker's queue.
        hold = BROKER_INFLIGHT / (len(SIM_KEYS) / PERIOD) + 2
        time.sleep(hold)
        t.step(f"database down {hold:.1f} s: more than {BROKER_INFLIGHT} messages are waiting for the bridge")
        stack.mosquitto.kill()
        t.step("Mosquitto SIGKILLed while the bridge holds uncommitted messages")
        stack.mosquitto.start()
        t.step("Mosquitto restarted")
        stack.mariadb.start()
        t.step("MariaDB restarted")
        stack.verify(t, checks, stack.fault_ended(t), timeout=75)


def test_7_poison_reading_and_bad_meter_frames(stack: FaultStack) -> None:
    name = "7 poison messages"
    with stack.case(name) as (t, checks):
        now = utcnow()
        unit = Client(stack.mosquitto, LAYOUT.unit_user(3))
        try:
            topic = T.reading(3, 1)
            poison = reading_payload(3, 1, 2**63, now + timedelta(milliseconds=100))
            stack.published(name, topic)
            unit.publish(topic, reading_payload(3, 1, 0, now))
            unit.publish(topic, poison)
            stack.bad(name, topic, poison)
            unit.publish(topic, reading_payload(3, 1, 1, now + timedelta(milliseconds=200)))
            t.step("unit 3: seq 0, seq 2**63, seq 1 published")
        finally:
            unit.close()

        meter = MeterClient(stack.mosquitto, M2)
        events = T.shelly(M2, "events/rpc")
        odd_topic = f"{M2}/events/rpc/x"
        stack.published(name, T.shelly(M2, "online"), events, odd_topic, T.shelly(M2, "bridge/rpc"))
        try:
            meter.publish(T.shelly(M2, "online"), "true")
            checks.wait(lambda: meter.answers > 0, 15, "the bridge to ask the meter that came online for its status")
            t0 = int(time.time()) + 0.25  # never equal to the whole-second clock of a GetStatus answer
            full = dict(meter.sim.status)
            meter.publish(events, notification(M2, "NotifyFullStatus", {"ts": t0, SWITCH_KEY: full}))
            checks.wait(lambda: unix_to_dt(t0) in stack.power_ts(M2), 15, "the full status to be stored")
            bad_partial = notification(M2, "NotifyStatus", {"ts": t0 + 1, SWITCH_KEY: {"id": 0, "voltage": 5000}})
            meter.publish(events, bad_partial)
            stack.bad(name, events, bad_partial)
            checks.wait(lambda: stack.rejected(events, bad_partial), 15, "the voltage 5000 partial to be rejected")
            valid_ts = [t0 + 2, t0 + 3, t0 + 4]
            for i, ts in enumerate(valid_ts):
                apower = round(full["apower"] + 25.0 * (i + 1), 1)
                current = round(apower / (full["voltage"] * max(full["pf"], 0.5)), 3)
                meter.publish(events, notification(M2, "NotifyStatus", {
                    "ts": ts, SWITCH_KEY: {"id": 0, "apower": apower, "current": current}}))
            t.step("meter 2: online, full status, a voltage 5000 partial, 3 valid partials published")
            odd = notification(M2, "NotifyEvent", {"ts": t0 + 5, "events": [{"component": "sys", "event": "x"}]})
            meter.publish(odd_topic, odd)
            stack.bad(name, odd_topic, odd)
            t.step(f"meter 2: a message on {odd_topic} published")
        finally:
            meter.close()
        end = stack.fault_ended(t)

        checks.wait(lambda: stack.rejected(topic, poison), 15, "the seq 2**63 reading in rejected_messages")
        rows = stack.rejected(topic, poison)
        checks.check(not rows or rows[0].reason, "the seq 2**63 reading was rejected without a reason")
        checks.wait(lambda: stack.unit_seqs(3, 1) == [0, 1], 15, "unit 3 automate 1: seq 0 and 1 stored")
        expected = {unix_to_dt(ts) for ts in valid_ts}
        checks.wait(lambda: expected <= stack.power_ts(M2), 15,
                    "the valid partials after the bad one to be stored in power_readings")
        odd_rows: list[orm.RejectedMessage] = []

        def odd_recorded() -> bool:
            odd_rows[:] = stack.rejected(odd_topic)
            return bool(odd_rows)

        checks.wait(odd_recorded, 15, f"the message on {odd_topic} (not subscribed) in rejected_messages")
        checks.check(not odd_rows or odd_rows[0].reason, f"the message on {odd_topic} was rejected without a reason")
        if checks.failures:
            rejected = [(r.topic, r.reason) for r in stack.all_rejected()]
            t.step(f"rejected_messages now: {rejected}")
        stack.verify(t, checks, end)


def test_8_client_id_takeover(stack: FaultStack) -> None:
    with stack.case("8 client-id takeover") as (t, checks):
        assert stack.bridge is not None and stack.devices is not None
        bridge_mark, devices_mark = LogMark.now(stack.bridge), LogMark.now(stack.devices)
        broker_log = stack.mosquitto.log.read_text(errors="replace")
        for client_id in TAKEOVER_IDS:
            reason = connect_once(stack.mosquitto, LAYOUT.unit_user(3), client_id, hold=1.0)
            t.step(f"connected as unit-3 with client id {client_id!r}, clean session: {reason}")
        time.sleep(2)
        end = stack.fault_ended(t)
        takeovers = [line for line in stack.mosquitto.log.read_text(errors="replace")[len(broker_log):].splitlines()
                     if "already connected" in line]
        if takeovers:
            t.step("broker log: " + " | ".join(takeovers))
        lost = bridge_mark.lines("disconnected from broker")
        checks.check(not lost, f"the bridge was disconnected: {lost}")
        lost = devices_mark.lines("connection lost")
        checks.check(not lost, f"simulated devices were disconnected: {lost}")
        stack.verify(t, checks, end)


def test_9_future_timestamps_do_not_mask_alarms(stack: FaultStack) -> None:
    name = "9 future timestamps"
    with stack.case(name) as (t, checks):
        now = utcnow()
        unit = Client(stack.mosquitto, LAYOUT.unit_user(3))
        a2, a3 = T.reading(3, 2), T.reading(3, 3)
        stack.published(name, a2, a3)
        future = reading_payload(3, 2, 1, now + timedelta(hours=23))
        try:
            unit.publish(a2, reading_payload(3, 2, 0, now))
            unit.publish(a2, future)
            stack.bad(name, a2, future)
            unit.publish(a2, reading_payload(3, 2, 2, now + timedelta(seconds=1), salmonella_ppm=80))
            unit.publish(a3, reading_payload(3, 3, 0, now + timedelta(minutes=4)))
            unit.publish(a3, reading_payload(3, 3, 1, now + timedelta(seconds=1), salmonella_ppm=80))
            t.step("unit 3: automate 2 seq 0 / +23 h / salmonella 80, automate 3 +4 min / salmonella 80 published")
        finally:
            unit.close()
        end = stack.fault_ended(t)

        checks.wait(lambda: stack.rejected(a2, future), 15, "the reading stamped now + 23 h in rejected_messages")
        checks.wait(lambda: stack.active_alarm("units/3/automates/2", "salmonella_ppm"), 15,
                    "an active salmonella_ppm alarm on units/3/automates/2")
        checks.wait(lambda: stack.unit_seqs(3, 3) == [0, 1], 15,
                    "units/3/automates/3 seq 0 (now + 4 min, within the skew) and seq 1 stored")
        checks.wait(lambda: stack.active_alarm("units/3/automates/3", "salmonella_ppm"), 15,
                    "an active salmonella_ppm alarm on units/3/automates/3 despite its earlier reading "
                    "stamped 4 min ahead")
        with make_sessionmaker(stack.engine)() as session:
            latest = {(r.unit_id, r.automate_no): r.seq for r in queries.latest_readings(session)}
        checks.check(latest.get((3, 3)) == 1,
                     f"the dashboard's latest reading of units/3/automates/3 is seq {latest.get((3, 3))}, "
                     f"not seq 1 (the 4 min future-stamped seq 0 hides the newer one)")
        stack.verify(t, checks, end)


def test_10_clean_stop_everything_stored_once(stack: FaultStack) -> None:
    with stack.case("final clean stop") as (t, checks):
        assert stack.devices is not None and stack.spy is not None
        devices = stack.devices
        mark = LogMark.now(devices)
        code = devices.stop(timeout=20)
        checks.check(code == 0, f"the simulators exited with {code} on SIGTERM")
        t.step("simulators stopped (SIGTERM)")
        time.sleep(1)  # the spy receives the last ones
        targets = stack.spy.max_seqs()
        for problem in stack.wait_complete(t, targets, None):
            checks.check(False, problem)
        undelivered = mark.lines("stopping with") + mark.lines("not delivered") + mark.lines("dropped")
        checks.check(not undelivered, f"the simulators stopped with readings not delivered: {undelivered}")
        alarms = stack.new_alarms()
        checks.check(not alarms, f"alarms on simulated automates: {alarms}")
        if stack.known_missing:
            lost = {f"units/{u}/automates/{a}": len(v) for (u, a), v in stack.known_missing.items()}
            t.step(f"readings lost in earlier (failed) cases, not counted again here: {lost}")

        rows = stack.all_rejected()
        matched: set[int] = set()
        for case, topic, payload in stack.bad_messages:
            hits = [r for r in rows if r.topic == topic and r.payload == payload]
            matched.update(r.id for r in hits)
            checks.check(len(hits) == 1, f"bad message of case {case!r} on {topic} is in rejected_messages "
                                         f"{len(hits)} time(s), not once: {payload[:120]}")
            checks.check(all(r.reason for r in hits), f"bad message of case {case!r} rejected without a reason")
        for r in rows:
            if r.id in matched:
                continue
            by = [c for c, topics in stack.test_topics.items() if r.topic in topics]
            if by and set(by) <= stack.failed_cases:
                t.step(f"also rejected (already reported by case {by[0]!r}): {r.topic} {r.reason}")
                continue
            checks.check(False, f"rejected although nobody sent it as a bad message: {r.topic} "
                                f"{r.payload[:120]!r}: {r.reason}")
