"""Remote switching end to end: the web UI app with its real live feed on our Mosquitto (its own
user and ACL), the simulated meters as a real ``python -m devices run --meters-only`` process (one
Gen2 Pro 1PM, one Gen1 1PM), and a third layout meter that nothing simulates (it never answers)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from plantmodel.layout import PlantLayout
from plantmodel.mqtt import MqttSettings
from plantmodel.shelly import RpcNotification, RpcResponse, parse_rpc_frame
from plantmodel.sources import MeterSource
from store import models as orm
from tests.processes import Service, wait_for
from tests.servers import MosquittoServer
from tests.webapp import USERS, add_user, new_database, token_for
from webui import create_app, web_state
from webui.settings import WebSettings

pytestmark = pytest.mark.integration

GEN2 = "shellypro1pm-a8032ab1c2d3"
GEN1 = "shelly1pm-a4cf12f45e3b"
SILENT = "shellypro1pm-0123456789ab"  # in the layout (the ACL lets the web UI write to it), never running
TIMEOUT = 1.0  # WEBUI_SWITCH_TIMEOUT for this test: the silent meter costs that much


@dataclass
class Heard:
    """Every message the web UI's live feed received (one more listener beside the switcher's)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    messages: list[tuple[str, bytes]] = field(default_factory=list)

    def __call__(self, topic: str, payload: bytes) -> None:
        with self.lock:
            self.messages.append((topic, payload))

    def on(self, topic: str) -> list[bytes]:
        with self.lock:
            return [p for t, p in self.messages if t == topic]


@dataclass
class Rig:
    app: Flask
    devices: Service
    heard: Heard
    token: str

    def switch(self, meter: str, on: bool) -> Any:
        return self.app.test_client().post(f"/api/meters/{meter}/switch", json={"on": on},
                                           headers={"Authorization": f"Bearer {self.token}"})

    def action(self, action_id: int) -> orm.SwitchAction:
        with web_state(self.app).make_session() as s:
            row = s.get(orm.SwitchAction, action_id)
            assert row is not None
            return row

    def wait(self, predicate: Any, timeout: float, what: str) -> Any:
        return wait_for(predicate, timeout, what, interval=0.05, services=[self.devices])


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    tmp = tmp_path_factory.mktemp("remote-switch")
    broker = MosquittoServer(tmp / "broker", PlantLayout(units=1, automates=1, meters=(GEN2, GEN1, SILENT)),
                             tls=False)
    broker.start()
    devices = None
    app = None
    try:
        env = {**broker.env(), "PLANT_METERS": f"{GEN2},{GEN1}", "DEVICES_METER_PERIOD": "0.2",
               "DEVICES_ENERGY_INTERVAL": "1", "DEVICES_SEED": "11", "DEVICES_FAULT_FILE": str(tmp / "faults.json")}
        devices = Service("devices", ["devices", "run", "--meters-only", "--gen1", GEN1], env, tmp)

        make_session = new_database(tmp / "plant.db")
        now = datetime.now(UTC)
        with make_session.begin() as s:
            # What the bridge would have recorded: the meters, and the Gen1 one's generation (announce).
            s.add_all([orm.Meter(id=m, first_seen=now, last_seen=now) for m in (GEN2, GEN1, SILENT)])
            s.add(orm.Device(device=MeterSource(GEN1).key, model="SHSW-PM", generation=1, disabled=False))
        add_user(make_session, "operator", *USERS["operator"])
        settings = WebSettings(database_url=f"sqlite:///{tmp / 'plant.db'}", secret_key="test",
                               mqtt=MqttSettings("127.0.0.1", broker.port, "webui", broker.users["webui"]),
                               switch_timeout=TIMEOUT, plant_language="en")
        app = create_app(settings, sessionmaker=make_session)
        web_state(app).feed.start()  # the real live feed, connected
        heard = Heard()
        web_state(app).feed.listeners.append(heard)
        rig = Rig(app, devices, heard, token_for(make_session, "operator"))
        rig.wait(lambda: web_state(app).feed.connected, 10, "the web UI's MQTT connection")
        # Each meter is up and subscribed once it publishes after its subscription: a Gen2
        # notification (every energy minute at least), a Gen1 relay state (right after its birth).
        rig.wait(lambda: heard.on(f"{GEN2}/events/rpc"), 10, "a notification of the Gen2 meter")
        rig.wait(lambda: web_state(app).switcher.relay_state(GEN1) is not None, 10, "the Gen1 relay state")
        yield rig
    finally:
        if app is not None:
            web_state(app).feed.stop()
        code = devices.stop() if devices is not None else 0
        broker.stop()
    assert code == 0, devices.log() if devices is not None else ""


def test_gen2_meter_switched_off_and_on_confirmed_and_audited(rig: Rig) -> None:
    resp = rig.switch(GEN2, False)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert (body["outcome"], body["on"], body["was_on"]) == ("confirmed", False, True)
    row = rig.action(body["action_id"])
    assert (row.meter_id, row.requested_by, row.remote_addr) == (GEN2, "operator", "127.0.0.1")
    assert (row.from_state, row.to_state, row.outcome) == ("on", "off", "confirmed")
    assert row.answered_at is not None and row.answered_at >= row.requested_at
    assert row.detail == '{"was_on":true}'

    # The device really switched: it notifies output false (its own NotifyStatus, not our request).
    def notified_off() -> bool:
        for payload in rig.heard.on(f"{GEN2}/events/rpc"):
            frame = parse_rpc_frame(payload)
            if isinstance(frame, RpcNotification) and (frame.switch or {}).get("output") is False:
                return True
        return False

    rig.wait(notified_off, 5, "NotifyStatus output false")

    body = rig.switch(GEN2, True).get_json()
    assert (body["outcome"], body["was_on"]) == ("confirmed", False)
    assert rig.action(body["action_id"]).from_state == "off"


def test_gen1_meter_switched_off_confirmed_by_its_relay_state(rig: Rig) -> None:
    resp = rig.switch(GEN1, False)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert (body["outcome"], body["on"], body["was_on"]) == ("confirmed", False, True)
    row = rig.action(body["action_id"])
    assert (row.requested_by, row.from_state, row.to_state, row.outcome, row.detail) == \
        ("operator", "on", "off", "confirmed", "relay/0 off")
    assert b"off" in rig.heard.on(f"shellies/{GEN1}/relay/0")
    with web_state(rig.app).make_session() as s:
        assert s.scalars(select(orm.SwitchAction.outcome).where(orm.SwitchAction.meter_id == GEN1)).all() == \
            ["confirmed"]
    assert not rig.heard.on(f"{GEN1}/webui/rpc")  # a Gen1 meter got no Gen2 RPC


def test_a_meter_that_does_not_answer_times_out_and_is_audited(rig: Rig) -> None:
    resp = rig.switch(SILENT, False)
    assert resp.status_code == 504
    body = resp.get_json()
    assert body["outcome"] == "timeout"
    assert body["error"] == f"No answer from the meter within {TIMEOUT:g} s — its state is unknown"
    row = rig.action(body["action_id"])
    assert (row.meter_id, row.requested_by, row.to_state, row.outcome, row.answered_at) == \
        (SILENT, "operator", "off", "timeout", None)
    assert row.from_state is None  # nothing known of it
    listed = rig.app.test_client().get(f"/api/meters/{SILENT}/switch-actions",
                                       headers={"Authorization": f"Bearer {rig.token}"}).get_json()
    assert [(i["id"], i["outcome"]) for i in listed["items"]] == [(row.id, "timeout")]


def test_the_gen2_answers_on_the_wire_are_the_devices(rig: Rig) -> None:
    """What the web UI received on its reply topic: JSON-RPC answers from the device, to our src."""
    answers = [parse_rpc_frame(p) for p in rig.heard.on(f"{GEN2}/webui/rpc")]
    assert answers
    for answer in answers:
        assert isinstance(answer, RpcResponse) and answer.src == GEN2 and answer.error is None
        assert answer.result is not None and set(answer.result) == {"was_on"}
    assert not rig.heard.on(f"{SILENT}/webui/rpc")
