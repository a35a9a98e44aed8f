"""End to end for the legacy HTTP senders: HTTP (/collector/info, /webhook/) -> the web UI publishes
on our Mosquitto -> the bridge stores it -> the REST API the dashboard reads shows it. Real
``python -m bridge`` and ``python -m webui`` processes, once on SQLite and once on MariaDB."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from plantmodel.readings import Reading, format_ts, utcnow
from plantmodel.shelly import PowerSample
from store.db import create_db_engine, init_schema, make_sessionmaker
from tests.mqtt import Client
from tests.processes import Service, wait_for
from tests.servers import MariaDBServer, MosquittoServer, free_port
from tests.webapp import add_user, token_for
from webui.api.tokens import add_device_token

pytestmark = pytest.mark.integration

UNIT_TOKEN, METER_TOKEN = "e2e-unit-1", "e2e-webhook"
METER = "legacy-pro1pm"
SEED = {"unityId": 1, "tmp_Cuve": 3.2, "tmp_Ext": 11.4, "poids_Lait_Cuve": 4000, "mesure_PH": 7.0, "mesure_K": 40,
        "concentration_NaCl": 1.3, "niv_Bact_Salmonelle": 20, "niv_Bact_Ecoli": 40, "niv_Bact_Listeria": 30}
STORE_TIMEOUT = 10  # the bridge writes within about a second


@dataclass
class Http:
    status: int
    body: Any
    headers: dict[str, str]


@dataclass
class Legacy:
    web: str
    api_token: str
    spy: Client
    services: list[Service]

    def request(self, method: str, path: str, *, json_body: Any = None, form: dict[str, str] | None = None,
                headers: dict[str, str] | None = None) -> Http:
        data, hdrs = None, dict(headers or {})
        if json_body is not None:
            data, hdrs["Content-Type"] = json.dumps(json_body).encode(), "application/json"
        elif form is not None:
            data, hdrs["Content-Type"] = urllib.parse.urlencode(form).encode(), "application/x-www-form-urlencoded"
        req = urllib.request.Request(self.web + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=15) as resp:
                return Http(resp.status, json.loads(resp.read() or b"null"), dict(resp.headers))
        except urllib.error.HTTPError as exc:
            return Http(exc.code, json.loads(exc.read() or b"null"), dict(exc.headers))

    def api(self, path: str) -> Http:
        return self.request("GET", path, headers={"Authorization": f"Bearer {self.api_token}"})

    def on_broker(self, topic: str) -> list[bytes]:
        return [p for t, p, retained in self.spy.received(topic) if t == topic and not retained]

    def wait(self, predicate, timeout: float, what: str):  # type: ignore[no-untyped-def]
        return wait_for(predicate, timeout, what, services=self.services)


@pytest.fixture(scope="module", params=["sqlite", "mariadb"])
def legacy(request: pytest.FixtureRequest, mosquitto: MosquittoServer,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Legacy]:
    tmp: Path = tmp_path_factory.mktemp(f"legacy-{request.param}")
    if request.param == "mariadb":
        server: MariaDBServer = request.getfixturevalue("mariadb")
        url = server.create_database("legacy")
    else:
        url = f"sqlite:///{tmp / 'plant.db'}"
    engine = create_db_engine(url)
    init_schema(engine)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:  # what an admin does before a sender can send
        add_device_token(session, "units/1", "e2e", "admin", token=UNIT_TOKEN)
        add_device_token(session, f"meters/{METER}", "e2e", "admin", token=METER_TOKEN)
    viewer = f"e2e-{uuid.uuid4().hex[:6]}"
    add_user(sessions, viewer, "viewer", "e2e-viewer-pass")
    api_token = token_for(sessions, viewer)
    engine.dispose()

    env = {**mosquitto.env(), "DATABASE_URL": url}
    web_port = free_port()
    spy = Client(mosquitto, mosquitto.debug_user(), ["plant/legacy/#"])
    services: list[Service] = []
    try:
        services.append(Service("bridge", ["bridge", "run"], {**env, "MQTT_USERNAME": mosquitto.bridge_user()}, tmp))
        webui = Service("webui", ["webui", "run", "--port", str(web_port)], env, tmp)  # MQTT user `webui`
        services.append(webui)
        wait_for(lambda: all("connected" in s.log() for s in services), 20, "bridge and web UI on MQTT",
                 services=services)
        wait_for(lambda: "MQTT connected" in webui.log(), 20, "the web UI's MQTT connection", services=services)
        yield Legacy(f"http://127.0.0.1:{web_port}", api_token, spy, services)
    finally:
        spy.close()
        codes = {s.name: s.stop() for s in reversed(services)}
    assert codes == {s.name: 0 for s in services}, codes


def _ts(seconds_ago: float) -> str:
    """A device timestamp of this run (unique per test and database)."""
    return format_ts(utcnow() - timedelta(seconds=seconds_ago))


# -- HTTP -> broker ------------------------------------------------------------------------------------------

def test_collector_json_and_form_are_published_on_the_broker(legacy: Legacy) -> None:
    topic = "plant/legacy/units/1/automates/3/readings"
    before = len(legacy.on_broker(topic))
    ts_json, ts_form = _ts(20), _ts(10)
    resp = legacy.request("POST", "/collector/info", json_body={**SEED, "automate": 3, "timestamp": ts_json},
                          headers={"Authorization": f"Bearer {UNIT_TOKEN}"})
    assert resp.status == 200, resp.body
    form = {**{k: str(v) for k, v in SEED.items()}, "automate": "3", "timestamp": ts_form, "tmp_Cuve": "3.4"}
    resp = legacy.request("POST", f"/collector/info?token={UNIT_TOKEN}", form=form)
    assert resp.status == 200, resp.body
    # Answered after the PUBACK: the broker has both, as seq-less readings that mosquitto_sub shows.
    legacy.wait(lambda: len(legacy.on_broker(topic)) >= before + 2, 5, "both readings on the broker")
    readings = [Reading.from_json(p) for p in legacy.on_broker(topic)[before:]]
    assert [(format_ts(r.ts), r.tank_temp_c, r.seq) for r in readings] == [(ts_json, 3.2, None), (ts_form, 3.4, None)]
    assert all(b'"seq"' not in p for p in legacy.on_broker(topic))


def test_webhook_get_and_post_are_published_on_the_broker(legacy: Legacy) -> None:
    topic = f"plant/legacy/meters/{METER}/power"
    before = len(legacy.on_broker(topic))
    resp = legacy.request("GET", f"/webhook/?token={METER_TOKEN}&power=100.3&voltage=230.0&current=0.43&energy=8.9")
    assert resp.status == 200, resp.body
    resp = legacy.request("POST", "/webhook/", json_body={"power": 120.5, "voltage": 230.1, "current": 0.52,
                                                          "energy": 10.2},
                          headers={"X-Device-Token": METER_TOKEN})
    assert resp.status == 200, resp.body
    legacy.wait(lambda: len(legacy.on_broker(topic)) >= before + 2, 5, "both samples on the broker")
    samples = [PowerSample.from_json(p) for p in legacy.on_broker(topic)[before:]]
    assert [(s.meter, s.apower, s.voltage, s.current, s.energy_wh) for s in samples] == [
        (METER, 100.3, 230.0, 0.43, 8.9), (METER, 120.5, 230.1, 0.52, 10.2)]


def test_refused_requests_publish_nothing(legacy: Legacy) -> None:
    readings, power = "plant/legacy/units/1/automates/4/readings", f"plant/legacy/meters/{METER}/power"
    before = (len(legacy.on_broker(readings)), len(legacy.on_broker(power)))
    unit = {"Authorization": f"Bearer {UNIT_TOKEN}"}
    missing = {k: v for k, v in SEED.items() if k != "mesure_PH"}
    assert legacy.request("POST", "/collector/info", json_body={**missing, "automate": 4}, headers=unit).body == {
        "error": "missing field 'mesure_PH'", "status": 400}
    bad = legacy.request("POST", "/collector/info", json_body={**SEED, "automate": 4, "tmp_Ext": "warm"}, headers=unit)
    assert (bad.status, bad.body["error"]) == (400, "field 'tmp_Ext' = 'warm' is not a number")
    assert legacy.request("POST", "/collector/info", json_body={**SEED, "automate": 4}).status == 401
    assert legacy.request("POST", "/collector/info", json_body={**SEED, "unityId": 2}, headers=unit).status == 403
    assert legacy.request("GET", f"/webhook/?token={UNIT_TOKEN}&power=1&voltage=1&current=1&energy=1").status == 403
    assert legacy.request("GET", f"/webhook/?token={METER_TOKEN}&power=1&voltage=1&current=1").status == 400
    # A valid reading after them, as a marker: once it is on the broker, nothing else came before it.
    assert legacy.request("POST", "/collector/info", json_body={**SEED, "automate": 4}, headers=unit).status == 200
    legacy.wait(lambda: len(legacy.on_broker(readings)) > before[0], 5, "the marker reading")
    assert len(legacy.on_broker(readings)) == before[0] + 1
    assert len(legacy.on_broker(power)) == before[1]


# -- broker -> bridge -> database -> API ------------------------------------------------------------------------

def test_collector_readings_are_stored_and_served(legacy: Legacy) -> None:
    ts = _ts(5)
    resp = legacy.request("POST", "/collector/info", json_body={**SEED, "automate": 5, "timestamp": ts,
                                                                "mesure_PH": 7.1},
                          headers={"Authorization": f"Token {UNIT_TOKEN}"})
    assert resp.status == 200, resp.body

    def stored() -> list[dict[str, Any]]:
        answer = legacy.api("/api/units/1/automates/5/readings?order=desc&per_page=10")
        return [r for r in answer.body["items"] if r["ts"] == ts] if answer.status == 200 else []

    (row,) = legacy.wait(stored, STORE_TIMEOUT, "the legacy reading in the database (needs the bridge's "
                                                "seq-less reading support)")
    assert (row["unit"], row["automate"], row["ph"], row["tank_temp_c"], row["milk_kg"]) == (1, 5, 7.1, 3.2, 4000)
    assert row["received_at"] and row["stored_at"]
    latest = legacy.api("/api/units/1/automates/5").body["latest"]  # what the automate page shows
    assert latest["ts"] == ts and latest["ph"] == 7.1


def test_webhook_samples_are_stored_and_served(legacy: Legacy) -> None:
    resp = legacy.request("POST", "/webhook/", json_body={"power": 777.7, "voltage": 231.0, "current": 3.4,
                                                          "energy": 55.5},
                          headers={"Authorization": f"Bearer {METER_TOKEN}"})
    assert resp.status == 200, resp.body
    timestamp = resp.body["timestamp"]  # the server's

    def stored() -> list[dict[str, Any]]:
        answer = legacy.api(f"/api/measurements/latest/?meter={METER}")
        return [m for m in answer.body if m["timestamp"] == timestamp] if answer.status == 200 else []

    (row,) = legacy.wait(stored, STORE_TIMEOUT, "the webhook's sample in the database (needs the bridge's "
                                                "plant/meters/<id>/power support)")
    assert row == {"meter": METER, "power": 777.7, "voltage": 231.0, "current": 3.4, "energy": 55.5,
                   "timestamp": timestamp}
    meter = legacy.api(f"/api/meters/{METER}").body  # what the meter page shows
    assert meter["latest"]["apower"] == 777.7


def test_tokens_never_reach_the_web_uis_log(legacy: Legacy) -> None:
    """Not even the ?token= of a query string in the access log (the earlier tests sent some)."""
    assert legacy.request("GET", f"/webhook/?token={METER_TOKEN}&power=1&voltage=230&current=0.1&energy=99").status \
        == 200
    log = next(s for s in legacy.services if s.name == "webui").log()
    assert "/webhook/?token=***&power=1" in log
    assert UNIT_TOKEN not in log and METER_TOKEN not in log
