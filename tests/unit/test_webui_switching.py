"""Remote switching: the :class:`~webui.switching.Switcher` with a fake publisher and clock (answers,
device errors, timeouts, answers that are not ours, concurrent requests), and the API on SQLite
(roles, CSRF, validation, 404, 502/503/504, the audit rows and log lines, the meter page)."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from plantmodel.errors import ValidationError
from plantmodel.shelly import error_response, notification, parse_request, response
from plantmodel.sources import MeterSource
from store import models as orm
from tests.webapp import METER, csrf, login, make_web_app, token_for
from webui import web_state
from webui.live import MqttUnavailable
from webui.settings import WebSettings
from webui.switching import MAX_ID, Switcher

T0 = datetime(2026, 11, 21, 10, 15, 2, tzinfo=UTC)
OTHER = "shellypro1pm-0123456789ab"


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class Bus:
    """What the switcher published, and an optional device answering synchronously (as the paho
    thread would, possibly before the request's thread starts waiting)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.device: Callable[[str, str], None] | None = None
        self.lock = threading.Lock()

    def __call__(self, topic: str, payload: str) -> None:
        with self.lock:
            self.sent.append((topic, payload))
        if self.device is not None:
            self.device(topic, payload)


def gen2_device(switcher: Switcher, *, was_on: bool = True, error: tuple[int, str] | None = None,
                noise: bool = False) -> Callable[[str, str], None]:
    def answer(topic: str, payload: str) -> None:
        req_id, src, method, params = parse_request(payload)
        meter = topic.removesuffix("/rpc")
        assert (src, method) == (f"{meter}/webui", "Switch.Set") and params["id"] == 0
        reply = f"{src}/rpc"
        if noise:  # what else arrives on the reply topic first: none of it is the answer
            switcher.handle(reply, b"{not json")
            switcher.handle(reply, response(req_id + 1, meter, src, {"was_on": not was_on}).encode())
            switcher.handle(reply, response(True, meter, src, {"was_on": not was_on}).encode())
            switcher.handle(reply, response(str(req_id), meter, src, {"was_on": not was_on}).encode())
            switcher.handle(f"{OTHER}/webui/rpc", response(req_id, OTHER, src, {"was_on": not was_on}).encode())
            switcher.handle(f"{meter}/bridge/rpc", response(req_id, meter, src, {"was_on": not was_on}).encode())
            switcher.handle(reply, notification(meter, "NotifyStatus", {"switch:0": {"output": False}}).encode())
        if error is not None:
            switcher.handle(reply, error_response(req_id, meter, src, *error).encode())
        else:
            switcher.handle(reply, response(req_id, meter, src, {"was_on": was_on}).encode())
    return answer


def make_switcher(timeout: float = 0.3, **kw: Any) -> tuple[Switcher, Bus, FakeClock]:
    bus, clock = Bus(), FakeClock()
    return Switcher(bus, timeout=timeout, clock=clock, **kw), bus, clock


# -- Switcher: Gen2 ----------------------------------------------------------------------------------

def test_gen2_switch_set_request_and_confirmed_answer() -> None:
    switcher, bus, _ = make_switcher()
    bus.device = gen2_device(switcher, was_on=True)
    answer = switcher.switch(METER, False)
    assert (answer.outcome, answer.on, answer.was_on, answer.answered_at) == ("confirmed", False, True, T0)
    assert json.loads(answer.detail) == {"was_on": True}
    (topic, payload), = bus.sent
    assert topic == f"{METER}/rpc"
    request = json.loads(payload)
    assert request["src"] == f"{METER}/webui" and request["method"] == "Switch.Set"
    assert request["params"] == {"id": 0, "on": False}
    assert isinstance(request["id"], int) and 1 <= request["id"] <= MAX_ID
    assert switcher.waiting == 0


def test_unknown_generation_is_gen2_and_answers_that_are_not_ours_are_ignored() -> None:
    switcher, bus, _ = make_switcher()
    bus.device = gen2_device(switcher, was_on=False, noise=True)
    answer = switcher.switch(METER, True, generation=None)
    assert (answer.outcome, answer.was_on) == ("confirmed", False)
    answer = switcher.switch(METER, True, generation=3)  # Gen3/Gen4 speak the Gen2 API
    assert answer.outcome == "confirmed" and bus.sent[-1][0] == f"{METER}/rpc"


def test_gen2_device_error_is_the_answer() -> None:
    switcher, bus, _ = make_switcher()
    bus.device = gen2_device(switcher, error=(-103, "Missing or invalid argument 'on'!"))
    answer = switcher.switch(METER, True)
    assert (answer.outcome, answer.code, answer.was_on, answer.answered_at) == ("error", -103, None, T0)
    assert answer.detail == "Missing or invalid argument 'on'! (code -103)"


def test_no_answer_times_out_and_a_late_answer_is_ignored() -> None:
    switcher, bus, _ = make_switcher(timeout=0.05)
    started = time.monotonic()
    answer = switcher.switch(METER, False)
    assert time.monotonic() - started >= 0.05
    assert (answer.outcome, answer.answered_at, answer.was_on) == ("timeout", None, None)
    assert answer.detail == "no answer within 0.05 s"
    assert switcher.waiting == 0
    req_id, src, _, _ = parse_request(bus.sent[0][1])
    switcher.handle(f"{src}/rpc", response(req_id, METER, src, {"was_on": True}).encode())  # late: no effect


def test_publish_failure_propagates_and_leaves_no_waiter() -> None:
    def down(topic: str, payload: str) -> None:
        raise MqttUnavailable("the web UI is not connected to the MQTT broker")

    switcher = Switcher(down, timeout=5)
    with pytest.raises(MqttUnavailable):
        switcher.switch(METER, True)
    with pytest.raises(MqttUnavailable):
        switcher.switch(METER, True, generation=1)
    assert switcher.waiting == 0


def test_request_ids_are_never_reused_within_the_process() -> None:
    draws = iter([7, 7, 0, MAX_ID + 1, 7, 8])
    switcher, bus, _ = make_switcher(new_id=lambda: next(draws))
    bus.device = gen2_device(switcher)
    switcher.switch(METER, False)
    switcher.switch(METER, True)
    assert [json.loads(p)["id"] for _, p in bus.sent] == [7, 8]
    # The default: random 31-bit ids.
    ids = {Switcher(Bus())._draw_id() for _ in range(50)}
    assert len(ids) == 50 and all(1 <= i <= MAX_ID for i in ids)


def test_concurrent_requests_each_get_their_own_answer() -> None:
    """Eight requests on two meters wait at once; the devices answer in another order (and in another
    thread, like paho's); each request gets the answer to its own id."""
    switcher, bus, _ = make_switcher(timeout=5)
    n = 8
    all_sent = threading.Event()

    def record(topic: str, payload: str) -> None:
        if len(bus.sent) == n:
            all_sent.set()

    bus.device = record
    results: dict[int, Any] = {}

    def request(i: int) -> None:
        results[i] = switcher.switch(METER if i % 2 else OTHER, i % 3 == 0)

    threads = [threading.Thread(target=request, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    assert all_sent.wait(5)
    with bus.lock:
        sent = list(bus.sent)
    random.Random(1).shuffle(sent)

    def devices() -> None:
        for topic, payload in sent:
            req_id, src, _, params = parse_request(payload)
            meter = topic.removesuffix("/rpc")
            # was_on encodes the request: the opposite of what it asked for
            switcher.handle(f"{src}/rpc", response(req_id, meter, src, {"was_on": not params["on"]}).encode())

    paho = threading.Thread(target=devices)
    paho.start()
    for t in threads:
        t.join(5)
    paho.join(5)
    assert len(results) == n
    for i, answer in results.items():
        assert answer.outcome == "confirmed" and answer.on == (i % 3 == 0) and answer.was_on == (i % 3 != 0)
    assert switcher.waiting == 0
    assert len({json.loads(p)["id"] for _, p in sent}) == n


# -- Switcher: Gen1 ----------------------------------------------------------------------------------

def gen1_relay(meter: str) -> str:
    return f"shellies/{meter}/relay/0"


def test_gen1_command_confirmed_by_the_relay_state() -> None:
    switcher, bus, clock = make_switcher()
    relay = gen1_relay(METER)
    assert switcher.relay_state(METER) is None
    switcher.handle(relay, b"on")
    assert switcher.relay_state(METER) is True

    def device(topic: str, payload: str) -> None:
        assert (topic, payload) == (f"{relay}/command", "off")
        clock.now = T0 + timedelta(seconds=1)
        switcher.handle(f"{relay}/power", b"0.00")  # not the state
        switcher.handle(relay, b"overpower")  # not a state either
        switcher.handle(gen1_relay(OTHER), b"off")  # another meter
        switcher.handle(relay, b"on")  # a periodic report already under way
        switcher.handle(relay, b"off")  # the answer

    bus.device = device
    answer = switcher.switch(METER, False, generation=1)
    assert (answer.outcome, answer.on, answer.was_on) == ("confirmed", False, None)
    assert answer.answered_at == T0 + timedelta(seconds=1) and answer.detail == "relay/0 off"
    assert switcher.relay_state(METER) is False and switcher.relay_state(OTHER) is False
    assert switcher.waiting == 0


def test_gen1_timeout_says_what_the_device_reported() -> None:
    switcher, bus, _ = make_switcher(timeout=0.05)
    bus.device = lambda topic, payload: switcher.handle(gen1_relay(METER), b"on")
    answer = switcher.switch(METER, False, generation=1)
    assert answer.outcome == "timeout" and answer.detail == "no answer within 0.05 s; it reported on only"
    bus.device = None
    assert switcher.switch(METER, False, generation=1).detail == "no answer within 0.05 s"


def test_gen1_concurrent_requests_on_one_meter() -> None:
    switcher = make_switcher(timeout=5)[0]
    results: dict[bool, Any] = {}
    threads = [threading.Thread(target=lambda on=on: results.__setitem__(on, switcher.switch(
        METER, on, generation=1))) for on in (True, False)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 5
    while switcher.waiting < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    switcher.handle(gen1_relay(METER), b"off")
    switcher.handle(gen1_relay(METER), b"on")
    for t in threads:
        t.join(5)
    assert {on: r.outcome for on, r in results.items()} == {True: "confirmed", False: "confirmed"}


def test_switcher_refuses_a_bad_meter_id_and_timeout() -> None:
    with pytest.raises(ValidationError):
        make_switcher()[0].switch("a/b", True)
    with pytest.raises(ValueError):
        Switcher(Bus(), timeout=0)


# -- settings ------------------------------------------------------------------------------------------

def test_switch_timeout_setting() -> None:
    assert WebSettings.from_env({}).switch_timeout == 5.0
    assert WebSettings.from_env({"WEBUI_SWITCH_TIMEOUT": "2.5"}).switch_timeout == 2.5
    for bad in ("0", "-1", "soon", "inf", "61"):
        with pytest.raises(ValidationError, match="WEBUI_SWITCH_TIMEOUT"):
            WebSettings.from_env({"WEBUI_SWITCH_TIMEOUT": bad})


# -- API -----------------------------------------------------------------------------------------------

class SwitchApi:
    def __init__(self, app: Flask) -> None:
        self.app = app
        self.state = web_state(app)
        self.switcher = self.state.switcher
        self.client = app.test_client()
        self.tokens = {name: token_for(self.state.make_session, name) for name in ("viewer", "operator", "admin")}
        self.bus = Bus()
        self.switcher.publish = self.bus
        self.switcher.clock = FakeClock()

    def post(self, body: Any, role: str = "operator", meter: str = METER, **kw: Any) -> Any:
        return self.client.post(f"/api/meters/{meter}/switch", json=body,
                                headers={"Authorization": f"Bearer {self.tokens[role]}"}, **kw)

    def get(self, url: str, role: str = "viewer") -> Any:
        return self.client.get(url, headers={"Authorization": f"Bearer {self.tokens[role]}"})

    def actions(self) -> list[orm.SwitchAction]:
        with self.state.make_session() as s:
            return list(s.scalars(select(orm.SwitchAction).order_by(orm.SwitchAction.id)))


@pytest.fixture
def sw(tmp_path: Path) -> SwitchApi:
    return SwitchApi(make_web_app(tmp_path, switch_timeout=0.2))


def test_operator_switches_off_confirmed_and_audited(sw: SwitchApi, caplog: pytest.LogCaptureFixture) -> None:
    sw.bus.device = gen2_device(sw.switcher, was_on=True)
    with caplog.at_level(logging.INFO, logger="webui.audit"):
        resp = sw.post({"on": False})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["outcome"] == "confirmed" and body["on"] is False and body["was_on"] is True
    assert body["answered_at"] == "2026-11-21T10:15:02.000Z" and body["meter"] == METER
    (row,) = sw.actions()
    assert body["action_id"] == row.id
    assert (row.meter_id, row.requested_by, row.remote_addr, row.from_state, row.to_state, row.outcome) == \
        (METER, "operator", "127.0.0.1", "on", "off", "confirmed")
    assert row.answered_at == T0 and row.requested_at == T0
    assert json.loads(row.detail or "") == {"was_on": True}
    (line,) = [r.getMessage() for r in caplog.records if "meter.switch" in r.getMessage()]
    assert "user='operator'" in line and f"meter='{METER}'" in line
    assert "from_state='on'" in line and "to_state='off'" in line and "outcome='confirmed'" in line


def test_the_devices_was_on_is_the_from_state(sw: SwitchApi) -> None:
    # The stored reading says on (the seed); the device knows better.
    sw.bus.device = gen2_device(sw.switcher, was_on=False)
    body = sw.post({"on": True}, role="admin").get_json()
    assert body["was_on"] is False
    (row,) = sw.actions()
    assert (row.from_state, row.to_state, row.requested_by) == ("off", "on", "admin")


def test_device_error_is_502_and_audited(sw: SwitchApi) -> None:
    sw.bus.device = gen2_device(sw.switcher, error=(-105, "Argument 'id', value 0 not found!"))
    resp = sw.post({"on": False})
    assert resp.status_code == 502
    body = resp.get_json()
    assert body["outcome"] == "error" and body["code"] == -105 and body["status"] == 502
    assert body["error"] == "the meter refused: Argument 'id', value 0 not found! (code -105)"
    (row,) = sw.actions()
    assert (row.outcome, row.from_state, row.answered_at) == ("error", "on", T0)
    assert row.detail == "Argument 'id', value 0 not found! (code -105)"


def test_no_answer_is_504_timeout_and_audited(sw: SwitchApi) -> None:
    resp = sw.post({"on": False})
    assert resp.status_code == 504
    body = resp.get_json()
    assert body["outcome"] == "timeout" and body["error"] == \
        "No answer from the meter within 0.2 s — its state is unknown"
    (row,) = sw.actions()
    assert (row.outcome, row.answered_at, row.detail) == ("timeout", None, "no answer within 0.2 s")
    assert body["action_id"] == row.id


def test_mqtt_down_is_503_and_the_attempt_is_audited(tmp_path: Path) -> None:
    app = make_web_app(tmp_path)  # its live feed never connected: publish raises MqttUnavailable
    token = token_for(web_state(app).make_session, "operator")
    resp = app.test_client().post(f"/api/meters/{METER}/switch", json={"on": True},
                                  headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 503
    body = resp.get_json()
    assert body["outcome"] == "error"
    assert body["error"] == "nothing was sent: the web UI cannot publish to the MQTT broker"
    with web_state(app).make_session() as s:
        (row,) = s.scalars(select(orm.SwitchAction))
        # the stored detail keeps the client's own reason (for engineers)
        assert (row.outcome, row.to_state) == ("error", "on") and row.detail == (
            "not sent: the web UI is not connected to the MQTT broker")


def test_gen1_meter_gets_the_relay_command(sw: SwitchApi) -> None:
    with sw.state.make_session.begin() as s:
        s.add(orm.Device(device=MeterSource(METER).key, generation=1, disabled=False))
    sw.switcher.handle(gen1_relay(METER), b"off")  # the latest known state: live, newer than the stored one
    sw.bus.device = lambda topic, payload: sw.switcher.handle(gen1_relay(METER), payload.encode())
    body = sw.post({"on": True}).get_json()
    assert body["outcome"] == "confirmed" and body["was_on"] is False
    assert sw.bus.sent == [(f"shellies/{METER}/relay/0/command", "on")]
    (row,) = sw.actions()
    assert (row.from_state, row.to_state, row.detail) == ("off", "on", "relay/0 on")


def test_viewers_cannot_switch_and_nothing_is_sent(sw: SwitchApi) -> None:
    resp = sw.post({"on": False}, role="viewer")
    assert resp.status_code == 403 and "operator role" in resp.get_json()["error"]
    assert sw.bus.sent == [] and sw.actions() == []


def test_cookie_sessions_need_the_csrf_header(sw: SwitchApi) -> None:
    sw.bus.device = gen2_device(sw.switcher)
    http = sw.app.test_client()
    login(http, "operator")
    url = f"/api/meters/{METER}/switch"
    assert http.post(url, json={"on": False}).status_code == 403
    assert sw.bus.sent == []
    assert http.post(url, json={"on": False}, headers=csrf(http)).status_code == 200


@pytest.mark.parametrize(("body", "message"), [
    ({}, "field 'on' is required"),
    ({"on": "off"}, "field 'on' must be true or false"),
    ({"on": 0}, "field 'on' must be true or false"),
    ({"on": None}, "field 'on' must be true or false"),
    ({"on": True, "id": 1}, "unknown field 'id'"),
    ([True], "must be a JSON object"),
])
def test_bad_bodies_are_400(sw: SwitchApi, body: Any, message: str) -> None:
    resp = sw.post(body)
    assert resp.status_code == 400 and message in resp.get_json()["error"]
    assert sw.bus.sent == [] and sw.actions() == []


def test_unknown_meter_and_parameters(sw: SwitchApi) -> None:
    assert sw.post({"on": True}, meter=OTHER).status_code == 404
    assert sw.post({"on": True}, meter="not a meter").status_code == 404
    assert sw.post({"on": True}, query_string={"x": "1"}).status_code == 400
    assert sw.bus.sent == []
    assert sw.get(f"/api/meters/{OTHER}/switch-actions").status_code == 404
    assert sw.get(f"/api/meters/{METER}/switch-actions?x=1").status_code == 400


def test_switch_actions_newest_first_paginated(sw: SwitchApi) -> None:
    clock = sw.switcher.clock
    assert isinstance(clock, FakeClock)
    sw.bus.device = gen2_device(sw.switcher, was_on=True)
    for i, on in enumerate((False, True, False)):
        clock.now = T0 + timedelta(minutes=i)
        assert sw.post({"on": on}).status_code == 200
    data = sw.get(f"/api/meters/{METER}/switch-actions?per_page=2").get_json()
    assert (data["total"], data["pages"], data["page"], data["per_page"]) == (3, 2, 1, 2)
    first = data["items"][0]
    assert first == {"id": 3, "meter": METER, "requested_at": "2026-11-21T10:17:02.000Z",
                     "requested_by": "operator", "remote_addr": "127.0.0.1", "from_state": "on", "to_state": "off",
                     "outcome": "confirmed", "answered_at": "2026-11-21T10:17:02.000Z", "detail": '{"was_on":true}'}
    assert [i["to_state"] for i in data["items"]] == ["off", "on"]
    page2 = sw.get(f"/api/meters/{METER}/switch-actions?per_page=2&page=2").get_json()
    assert [i["id"] for i in page2["items"]] == [1]
    assert sw.get(f"/api/meters/{METER}/switch-actions?page=3").status_code == 404


def test_meter_page_shows_the_buttons_to_operators_only(sw: SwitchApi) -> None:
    for role, shown in (("viewer", False), ("operator", True), ("admin", True)):
        http = sw.app.test_client()
        login(http, role)
        html = http.get(f"/meters/{METER}").get_data(as_text=True)
        assert ('id="switch-on"' in html) is shown and ('id="switch-off"' in html) is shown, role
        assert 'id="switch-actions"' in html and 'id="switch-status"' in html
