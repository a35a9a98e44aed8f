"""End to end: simulators -> our Mosquitto -> bridge -> MariaDB / SQLite -> web UI (Socket.IO),
every service a real ``python -m`` process, run once per database."""

from __future__ import annotations

import json
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import socketio
from sqlalchemy import func, select

from plantmodel import AutomateSource, Reading, Topics
from plantmodel.shelly import RpcNotification, parse_rpc_frame
from plantmodel.thresholds import Alarm
from plantmodel.topics import AlarmTopic, ConfirmTopic, ReadingTopic, ShellyTopic, UnitStatusTopic
from store import models as orm
from store.db import create_db_engine, make_sessionmaker
from tests.mqtt import Client
from tests.processes import Service, wait_for
from tests.servers import MosquittoServer, find_binary, free_port
from tests.webapp import add_user, token_for

pytestmark = pytest.mark.integration
T = Topics()
PERIOD = 0.5  # simulator period (s): fast, so the test is short
# A meter's aenergy "minute" (s). An idle meter notifies nothing else, so a window of at least
# this long is what guarantees seeing its events.
ENERGY_INTERVAL = 5
FAULTY = ("units/2/automates/3", 2, 3)
# A user has one connection at a time (the broker takes the user name as the client id), so the
# simulators run every unit but the last: the tests publish as that one themselves.
SPARE_UNIT = 5


@dataclass
class Pipeline:
    mosquitto: MosquittoServer
    url: str
    web_port: int
    spy: Client
    services: list[Service]
    env: dict[str, str]

    def session(self):  # type: ignore[no-untyped-def]
        return make_sessionmaker(self.engine)()

    def __post_init__(self) -> None:
        self.engine = create_db_engine(self.url)

    def count(self, model: type, *where: object) -> int:
        with self.session() as s:
            return s.scalar(select(func.count()).select_from(model).where(*where)) or 0

    def cli(self, *args: str) -> str:
        import os
        import sys

        proc = subprocess.run([sys.executable, "-m", *args], env={**os.environ, **self.env}, capture_output=True,
                              text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def wait(self, predicate, timeout: float, what: str):  # type: ignore[no-untyped-def]
        return wait_for(predicate, timeout, what, services=self.services)

    def alarm_rows(self, source: str, measure: str) -> list[orm.Alarm]:
        with self.session() as s:
            return list(s.scalars(select(orm.Alarm).where(orm.Alarm.source == source, orm.Alarm.measure == measure)
                                  .order_by(orm.Alarm.id)))

    def live(self, prefix: str) -> list[tuple[str, bytes]]:
        """Messages published while we watched (not retained copies from earlier runs)."""
        return [(t, p) for t, p, retained in self.spy.received(prefix) if not retained]


@pytest.fixture(scope="module", params=["mariadb", "sqlite"])
def pipeline(request: pytest.FixtureRequest, mosquitto: MosquittoServer,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    assert mosquitto.layout.units == SPARE_UNIT
    tmp = tmp_path_factory.mktemp(f"pipeline-{request.param}")
    url = (request.getfixturevalue("mariadb").create_database() if request.param == "mariadb"
           else f"sqlite:///{tmp / 'plant.db'}")
    web_port = free_port()
    # As deployed, the MariaDB run talks MQTT over TLS (every service verifies the broker's
    # certificate against its CA and host name); the SQLite run over the plain loopback listener.
    env = {**mosquitto.env(tls=request.param == "mariadb"), "DATABASE_URL": url,
           "BRIDGE_THRESHOLDS_POLL": "0.5", "DEVICES_FAULT_FILE": str(tmp / "faults.json"),
           "DEVICES_METER_PERIOD": str(PERIOD), "DEVICES_ENERGY_INTERVAL": str(ENERGY_INTERVAL), "DEVICES_SEED": "7"}
    spy = Client(mosquitto, mosquitto.debug_user(), ["#"])
    services: list[Service] = []
    try:
        # A bridge user of its own: its own (persistent) session, none left over from the other run.
        # Only the bridge's environment: the web UI reads MQTT_USERNAME too.
        bridge = Service("bridge", ["bridge", "run"], {**env, "MQTT_USERNAME": mosquitto.bridge_user()}, tmp)
        services.append(bridge)
        wait_for(lambda: "connected to" in bridge.log(), 20, "the bridge", services=services)
        # The MariaDB run serves the web UI as deployed (gunicorn, `webui serve`), the SQLite run as
        # the demo does (`webui run`): every test of this module goes through both servers.
        server = "serve" if request.param == "mariadb" else "run"
        services.append(Service("webui", ["webui", server, "--port", str(web_port)], env, tmp))
        services.append(Service("devices", ["devices", "run", "--period", str(PERIOD),
                                            "--units", str(SPARE_UNIT - 1)], env, tmp))
        yield Pipeline(mosquitto, url, web_port, spy, services, env)
    finally:
        spy.close()
        codes = {s.name: s.stop() for s in reversed(services)}
    assert codes == {s.name: 0 for s in services}, codes


def test_every_automate_and_meter_lands_with_the_published_values(pipeline: Pipeline) -> None:
    layout = pipeline.mosquitto.layout
    automates = (SPARE_UNIT - 1) * layout.automates
    pipeline.wait(lambda: len(_automates_with_rows(pipeline)) == automates, 60,
                  f"readings from all {automates} simulated automates")
    pipeline.wait(lambda: _meters_with_rows(pipeline) == set(layout.meters), 30, "power readings of every meter")

    # Every automate: the last reading seen on MQTT is stored with exactly its values.
    published: dict[tuple[int, int], Reading] = {}
    for _, payload in pipeline.live("plant/units/"):
        if b'"seq"' in payload:
            r = Reading.from_json(payload)
            published[(r.unit, r.automate)] = r
    assert len(published) == automates

    def all_stored() -> bool:
        with pipeline.session() as s:
            n = 0
            for (u, a), r in published.items():
                row = s.scalar(select(orm.Reading).where(orm.Reading.unit_id == u, orm.Reading.automate_no == a,
                                                         orm.Reading.ts == r.ts))
                if row is None:
                    return False
                assert row.seq == r.seq
                assert {k: getattr(row, k) for k in r.measures()} == r.measures()
                n += 1
            return n == automates

    pipeline.wait(all_stored, 10, "the published readings in the database")

    # Meters: a NotifyStatus seen on MQTT is stored under its device timestamp with its power.
    def notified_power_stored() -> int:
        checked = 0
        with pipeline.session() as s:
            for topic, payload in pipeline.live("shellypro1pm-"):
                frame = parse_rpc_frame(payload) if topic.endswith("/events/rpc") else None
                if not isinstance(frame, RpcNotification) or "apower" not in (frame.switch or {}):
                    continue
                row = s.scalar(select(orm.PowerReading).where(orm.PowerReading.meter_id == topic.split("/")[0],
                                                              orm.PowerReading.ts == frame.ts))
                if row is not None:  # (the first ones arrive before the bridge has the full status)
                    assert row.apower == frame.switch["apower"]
                    checked += 1
        return checked

    pipeline.wait(notified_power_stored, 30, "a NotifyStatus stored with its power")


def _automates_with_rows(p: Pipeline) -> set[tuple[int, int]]:
    with p.session() as s:
        return {(u, a) for u, a in s.execute(select(orm.Reading.unit_id, orm.Reading.automate_no).distinct())}


def _meters_with_rows(p: Pipeline) -> set[str]:
    with p.session() as s:
        return set(s.scalars(select(orm.PowerReading.meter_id).distinct()))


def test_alarm_raises_once_while_jittering_and_clears_after_recovery(pipeline: Pipeline) -> None:
    source, unit, automate = FAULTY
    alarm_topic = T.alarm(AutomateSource(unit, automate), "tank_temp_c")
    # Jitter around the 4.0 °C limit, never back past the 0.2 deadband.
    pipeline.cli("devices", "fault", "set", "--unit", str(unit), "--automate", str(automate),
                 "--measure", "tank_temp_c", "--values", "4.1,4.0,4.1,3.9")
    pipeline.wait(lambda: pipeline.alarm_rows(source, "tank_temp_c"), 20, "the alarm")
    raised = pipeline.alarm_rows(source, "tank_temp_c")[0]
    assert (raised.state, raised.value, raised.limit_value, raised.bound) == ("active", 4.1, 4.0, "high")

    def readings_since_raise() -> int:
        return pipeline.count(orm.Reading, orm.Reading.unit_id == unit, orm.Reading.automate_no == automate,
                              orm.Reading.ts > raised.raised_at)

    pipeline.wait(lambda: readings_since_raise() >= 8, 20, "8 jittering readings after the alarm")
    rows = pipeline.alarm_rows(source, "tank_temp_c")
    assert [r.state for r in rows] == ["active"], "the alarm flapped"

    pipeline.cli("devices", "fault", "set", "--unit", str(unit), "--automate", str(automate),
                 "--measure", "tank_temp_c", "--values", "3.2")
    pipeline.wait(lambda: pipeline.alarm_rows(source, "tank_temp_c")[0].state == "cleared", 20, "the clear")
    pipeline.cli("devices", "fault", "clear")
    rows = pipeline.alarm_rows(source, "tank_temp_c")
    assert len(rows) == 1 and rows[0].last_value == 3.2 and rows[0].cleared_at > rows[0].raised_at

    # On MQTT: exactly one 'active' then one 'cleared', retained, readable JSON.
    pipeline.wait(lambda: len(pipeline.live(alarm_topic)) >= 2, 10, "the alarm messages")
    states = [Alarm.from_json(p).state for _, p in pipeline.live(alarm_topic)]
    assert states == ["active", "cleared"]
    retained = Client(pipeline.mosquitto, pipeline.mosquitto.debug_user(), [alarm_topic])
    try:
        wait_for(lambda: retained.received(), 5, "the retained alarm state")
        (_, payload, was_retained), = retained.received()
        assert was_retained and json.loads(payload)["state"] == "cleared"
    finally:
        retained.close()


def test_malformed_messages_are_rejected_while_readings_keep_flowing(pipeline: Pipeline) -> None:
    u = SPARE_UNIT
    intruder = Client(pipeline.mosquitto, f"unit-{u}")
    bad = {b"{not json": "not valid JSON", b'{"unit": %d}' % u: "missing field",
           b'{"unit": %d, "ph": NaN}' % u: "NaN"}
    try:
        before = pipeline.count(orm.RejectedMessage)
        for payload in bad:
            intruder.publish(T.reading(u, 1), payload)
        intruder.publish(f"plant/units/{u}/automates/1/nonsense", b"{}")
        sent_at = datetime.now(UTC)
    finally:
        intruder.close()
    pipeline.wait(lambda: pipeline.count(orm.RejectedMessage) >= before + 4, 15, "4 rejected messages")
    with pipeline.session() as s:
        reasons = list(s.scalars(select(orm.RejectedMessage.reason).order_by(orm.RejectedMessage.id)))[-4:]
    for (_, expected), reason in zip(bad.items(), reasons[:3], strict=True):
        assert expected in reason
    assert "unknown topic" in reasons[3]
    # The flow went on: the simulated units keep storing readings received after the rejects.
    pipeline.wait(lambda: pipeline.count(orm.Reading, orm.Reading.unit_id == 1, orm.Reading.received_at > sent_at)
                  >= 20, 15, "readings after the rejects")
    assert all(s.alive() for s in pipeline.services)


def test_threshold_change_applies_without_restart(pipeline: Pipeline) -> None:
    source = "units/4/automates/1"
    out = pipeline.cli("bridge", "thresholds", "set", "--unit", "4", "--automate", "1", "--measure", "ph",
                       "--low", "6.0", "--high", "6.5", "--deadband", "0.1", "--confirm")  # 6.0: past the normal 6.8
    assert "set units/4/automates/1 ph" in out
    pipeline.wait(lambda: pipeline.alarm_rows(source, "ph"), 20, "an alarm under the new threshold")
    row = pipeline.alarm_rows(source, "ph")[0]
    assert row.limit_value == 6.5 and row.value > 6.5
    assert pipeline.alarm_rows("units/4/automates/2", "ph") == []  # the override is that automate's only
    pipeline.cli("bridge", "thresholds", "delete", "--unit", "4", "--automate", "1", "--measure", "ph")
    # Back to the default 6.8-7.2 (deadband 0.2): the simulator's pH wanders back to <= 7.0.
    pipeline.wait(lambda: pipeline.alarm_rows(source, "ph")[0].state == "cleared", 40, "the alarm to clear")


def test_socketio_client_receives_live_updates(pipeline: Pipeline) -> None:
    """A browser on one unit gets that unit's readings (coalesced ``update`` events) and no other's."""
    make_session = make_sessionmaker(pipeline.engine)
    username = f"live-{uuid.uuid4().hex[:8]}"
    add_user(make_session, username, "viewer", "live-viewer-pass-1")
    token = token_for(make_session, username)
    meter = pipeline.mosquitto.layout.meters[0]
    pipeline.wait(lambda: meter in _meters_with_rows(pipeline), 30, f"power readings of {meter}")
    url = f"http://127.0.0.1:{pipeline.web_port}"
    wait_for(lambda: _port_open(pipeline.web_port), 20, "the web UI", services=pipeline.services)

    anonymous = socketio.Client()
    with pytest.raises(socketio.exceptions.ConnectionError):
        anonymous.connect(url, wait_timeout=10)

    client = socketio.Client()
    events: dict[str, list[dict[str, Any]]] = {"hello": [], "update": []}
    lock = threading.Lock()

    def on(name: str) -> Callable[[dict[str, Any]], None]:
        def record(data: dict[str, Any]) -> None:
            with lock:
                events[name].append(data)
        return record

    def items(kind: str) -> list[dict[str, Any]]:
        with lock:
            return [item for update in events["update"] for item in update.get(kind, [])]

    for name in events:
        client.on(name, on(name))
    client.connect(url, auth={"token": token}, wait_timeout=10)
    try:
        wait_for(lambda: events["hello"], 10, "hello")
        answer = client.call("watch", {"view": "unit", "unit": 1}, timeout=10)
        assert answer["room"] == "units/1", answer
        assert [u["unit"] for u in answer["snapshot"]["units"]] == [1]
        wait_for(lambda: len({r["automate"] for r in items("readings")}) >= 3, 20, "updates of unit 1")
        answer = client.call("watch", {"view": "meter", "meter": meter}, timeout=10)
        assert answer["room"] == f"meters/{meter}", answer
        wait_for(lambda: items("power"), ENERGY_INTERVAL + 15, f"power updates of {meter}")
    finally:
        client.disconnect()
    assert events["hello"][0]["user"] == {"username": username, "role": "viewer", "language": None}
    readings = items("readings")
    assert {r["unit"] for r in readings} == {1}, "a browser on unit 1 got another unit's readings"
    Reading.from_dict(readings[-1])  # a complete, valid reading
    assert {p["meter"] for p in items("power")} == {meter}


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_mosquitto_sub_shows_readable_json_on_every_topic(pipeline: Pipeline) -> None:
    """What an engineer sees with `mosquitto_sub -v -t '#'` and debug credentials (a debug user of its
    own: the spy is connected as another one)."""
    meter = pipeline.mosquitto.layout.meters[0]
    debug = pipeline.mosquitto.debug_user()
    proc = subprocess.run(
        [find_binary("mosquitto_sub"), "-h", "127.0.0.1", "-p", str(pipeline.mosquitto.port), "-u", debug,
         "-P", pipeline.mosquitto.users[debug], "-v", "-t", "#", "-W", str(ENERGY_INTERVAL + 3)],
        capture_output=True, text=True)
    lines = [line.split(" ", 1) for line in proc.stdout.splitlines() if line]
    assert lines, proc.stderr
    kinds = set()
    for topic, payload in lines:
        json.loads(payload)  # every payload is JSON (Shelly's online is the JSON literal true/false)
        kinds.add(_kind(topic))
    for retained_or_live in ("reading", "unit status", "bridge status", "bridge health", "meter online",
                             "meter events"):
        assert retained_or_live in kinds, (retained_or_live, kinds)
    # RPC request and answer: seen by our spy when the bridge first met each meter.
    topics = {t for t, _ in pipeline.live("")}
    assert f"{meter}/rpc" in topics and f"{meter}/bridge/rpc" in topics


def _kind(topic: str) -> str:
    if topic == T.bridge_status():
        return "bridge status"
    if topic.startswith(T.bridge_health("")):
        return "bridge health"
    if topic == T.webui_alarm_changes():
        return "web UI alarm change"
    parts = topic.split("/")
    if parts[-1] == "rpc" and (len(parts) == 2 or parts[1:] == ["bridge", "rpc"]):
        return "meter rpc"  # a status request to a meter (the bridge asks a quiet one), or its answer
    parsed = T.parse(topic)
    if isinstance(parsed, ShellyTopic):
        return "meter online" if parsed.kind == "online" else "meter events"
    return {ReadingTopic: "reading", UnitStatusTopic: "unit status", AlarmTopic: "alarm",
            ConfirmTopic: "confirmation"}[type(parsed)]


def test_every_service_talks_over_the_listener_it_was_given(pipeline: Pipeline) -> None:
    """The MariaDB run is over TLS: bridge, web UI and simulators connected to the TLS port,
    having verified the broker's certificate (a failed verification never connects)."""
    url = f"{'mqtts' if pipeline.env.get('MQTT_TLS') == '1' else 'mqtt'}://{pipeline.env['MQTT_HOST']}:" \
          f"{pipeline.env['MQTT_PORT']}"
    expected = {"bridge": "connected to " + url, "webui": "MQTT connected", "devices": "connected to " + url}
    for service in pipeline.services:
        pipeline.wait(lambda s=service: expected[s.name] in s.log(), 20, f"{service.name} connected via {url}")
    webui = next(s for s in pipeline.services if s.name == "webui")
    assert f"connecting to {url} " in webui.log()
    assert all("cannot connect" not in s.log() for s in pipeline.services)
