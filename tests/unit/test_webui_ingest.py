"""Legacy HTTP ingest with the Flask test client (webui/ingest.py): /collector/info and /webhook/
authenticate by device token (401/403), parse JSON, form and query string strictly (400 naming the
field, nothing published), cap bodies (413), are rate-limited (429), wait for the broker's PUBACK
(503 otherwise); plus the admins' token API, page and CLI. The broker is faked here; the end-to-end
run is tests/integration/test_legacy_http.py."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from plantmodel import legacy
from plantmodel.readings import Reading, parse_ts, utcnow
from plantmodel.shelly import PowerSample
from store import models as orm
from tests.webapp import csrf, login, make_web_app, token_for
from webui import web_state
from webui.api.tokens import add_device_token
from webui.live import MqttUnavailable

UNIT_TOKEN, METER_TOKEN, REVOKED_TOKEN = "unit-1-token", "meter-token", "revoked-token"
METER = "legacy-pro1pm"
SEED = {"unityId": 1, "tmp_Cuve": 3.2, "tmp_Ext": 11.4, "poids_Lait_Cuve": 3950, "mesure_PH": 7.0, "mesure_K": 40,
        "concentration_NaCl": 1.3, "niv_Bact_Salmonelle": 20, "niv_Bact_Ecoli": 40, "niv_Bact_Listeria": 30}
FORM = {k: str(v) for k, v in SEED.items()}
WEBHOOK = {"power": 120.5, "voltage": 230.1, "current": 0.52, "energy": 10.2}
BEARER = {"Authorization": f"Bearer {UNIT_TOKEN}"}
METER_BEARER = {"Authorization": f"Bearer {METER_TOKEN}"}


class FakeInfo:
    def __init__(self, published: bool) -> None:
        self.published = published

    def wait_for_publish(self, timeout: float) -> None:
        pass

    def is_published(self) -> bool:
        return self.published


@dataclass
class Broker:
    """Stands in for the web UI's MQTT connection: records what is published."""

    messages: list[tuple[str, str]] = field(default_factory=list)
    connected: bool = True
    acknowledges: bool = True

    def publish(self, topic: str, payload: str, *, qos: int = 1) -> FakeInfo:
        assert qos == 1
        if not self.connected:
            raise MqttUnavailable("the web UI is not connected to the MQTT broker")
        self.messages.append((topic, payload))
        return FakeInfo(self.acknowledges)


@dataclass
class Ingest:
    app: Flask
    http: FlaskClient
    broker: Broker

    def post(self, url: str, headers: dict[str, str] | None = None, **kw: Any) -> TestResponse:
        return self.http.post(url, headers=BEARER if headers is None else headers, **kw)

    def token_row(self, token_id: int) -> orm.DeviceToken:
        with web_state(self.app).make_session() as s:
            row = s.get(orm.DeviceToken, token_id)
            assert row is not None
            return row


@pytest.fixture
def ingest(tmp_path: Path) -> Iterator[Ingest]:
    app = make_web_app(tmp_path)
    with web_state(app).make_session.begin() as s:
        add_device_token(s, "units/1", "test unit", "admin", token=UNIT_TOKEN)
        add_device_token(s, f"meters/{METER}", None, "admin", token=METER_TOKEN)
        row, _ = add_device_token(s, "units/1", "old", "admin", token=REVOKED_TOKEN)
        row.revoked_at, row.revoked_by = utcnow(), "admin"
    broker = Broker()
    web_state(app).feed.publish = broker.publish  # type: ignore[method-assign]
    yield Ingest(app, app.test_client(), broker)


def error(resp: TestResponse, status: int) -> str:
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True))
    body = resp.get_json()
    assert body["status"] == status
    return body["error"]


# -- seed 1: /collector/info ----------------------------------------------------------------------------

def test_collector_json_is_published_as_a_seqless_reading(ingest: Ingest) -> None:
    resp = ingest.post("/collector/info", json=SEED)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    ((topic, payload),) = ingest.broker.messages
    assert topic == "plant/legacy/units/1/automates/1/readings"
    reading = Reading.from_json(payload)
    assert '"seq"' not in payload and reading.seq is None
    assert (reading.unit, reading.automate, reading.tank_temp_c, reading.milk_kg) == (1, 1, 3.2, 3950)
    assert reading.type == "0x0000BA27"  # the automate's stored type
    assert reading.product_kg == 50  # 4000 kg before (the seeded latest reading), 3950 now
    assert abs(reading.ts - utcnow()) < timedelta(seconds=5)  # the receive time
    body = resp.get_json()
    assert body["accepted"] is True and body["topic"] == topic and Reading.from_dict(body["reading"]) == reading
    assert "Set-Cookie" not in resp.headers  # session-less
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]


def test_collector_form_fields_give_the_same_reading(ingest: Ingest) -> None:
    extra = {"automate": "2", "timestamp": "2026-11-21T10:16:00.000Z", "type": "0x0000ba2f"}
    assert ingest.post("/collector/info", json={**SEED, **extra}).status_code == 200
    assert ingest.post("/collector/info", data={**FORM, **extra}).status_code == 200
    assert ingest.post("/collector/info", data={**FORM, **extra},
                       content_type="multipart/form-data").status_code == 200
    (t1, p1), (t2, p2), (t3, p3) = ingest.broker.messages
    assert t1 == t2 == t3 == "plant/legacy/units/1/automates/2/readings"
    assert p1 == p2 == p3
    r = Reading.from_json(p1)
    assert (r.automate, r.type, r.ts) == (2, "0x0000BA2F", parse_ts("2026-11-21T10:16:00.000Z"))
    assert r.product_kg == 50  # before it, automate 2's reading at 10:15 had 4000 kg


def test_collector_json_without_content_type_is_read_as_json(ingest: Ingest) -> None:
    import json

    resp = ingest.post("/collector/info", data=json.dumps(SEED), content_type="text/plain")
    assert resp.status_code == 200
    resp = ingest.post("/collector/info", data=json.dumps(SEED), content_type="")
    assert resp.status_code == 200


@pytest.mark.parametrize("missing", ["unityId", *legacy.COLLECTOR_FIELDS])
def test_collector_missing_field_is_a_400_naming_it(ingest: Ingest, missing: str) -> None:
    for send in ({"json": {k: v for k, v in SEED.items() if k != missing}},
                 {"data": {k: v for k, v in FORM.items() if k != missing}}):
        assert error(ingest.post("/collector/info", **send), 400) == f"missing field {missing!r}"
    assert ingest.broker.messages == []


@pytest.mark.parametrize("name", list(legacy.COLLECTOR_FIELDS))
def test_collector_non_numeric_field_is_a_400_naming_it(ingest: Ingest, name: str) -> None:
    for value in ("abc", "nan", "inf", "", "3,2", "1e999"):
        assert error(ingest.post("/collector/info", data={**FORM, name: value}), 400).startswith(f"field {name!r}")
    for value in ("abc", True, None, [1], "NaN"):
        assert error(ingest.post("/collector/info", json={**SEED, name: value}), 400).startswith(f"field {name!r}")
    assert ingest.broker.messages == []


@pytest.mark.parametrize(("body", "names"), [
    ('{"unityId": 1, "tmp_Cuve": NaN}', "field 'tmp_Cuve' is not a finite number"),
    ('{"unityId": 1, "tmp_Cuve": Infinity}', "field 'tmp_Cuve' is not a finite number"),
    ('{"unityId": 1, "tmp_Cuve": 1e400}', "field 'tmp_Cuve' is not a finite number"),
    ('{"unityId": 1, "tmp_Cuve": true}', "field 'tmp_Cuve' must be a number"),
    ('{"unityId": 1, "tmp_Cuve": null}', "field 'tmp_Cuve' must be a number"),
    ('{"unityId": 1, "unityId": 1}', "field 'unityId' given more than once"),
    ('[1, 2]', "the body must be a JSON object"),
    ('{"unityId": 1,', "the body is not a JSON object"),
    ('', "the body must be a JSON object or form fields"),
    ('\xff', "the body is not a JSON object"),
])
def test_collector_bad_json_bodies(ingest: Ingest, body: str, names: str) -> None:
    fields = ", ".join(f'"{k}": {v}' for k, v in SEED.items() if k not in ("unityId", "tmp_Cuve"))
    text = body.replace("{", "{" + fields + ", ", 1) if body.startswith('{"unityId": 1, "tmp') else body
    raw = text.encode("latin-1") if text == "\xff" else text.encode()
    assert names in error(ingest.post("/collector/info", data=raw, content_type="application/json"), 400)
    assert ingest.broker.messages == []


def test_a_field_given_twice_in_a_form_is_a_400(ingest: Ingest) -> None:
    resp = ingest.post("/collector/info", data=f"{'&'.join(f'{k}={v}' for k, v in FORM.items())}&tmp_Cuve=3.3",
                       content_type="application/x-www-form-urlencoded")
    assert error(resp, 400) == "field 'tmp_Cuve' given more than once in the form"
    assert ingest.broker.messages == []


def test_unknown_fields_are_ignored(ingest: Ingest) -> None:
    extra = {"firmware": "2.1", "extra": [1, {"a": None}]}
    assert ingest.post("/collector/info", json={**SEED, **extra}).status_code == 200
    assert ingest.post("/collector/info", data={**FORM, "firmware": "2.1"}).status_code == 200
    assert len(ingest.broker.messages) == 2


def test_an_absurd_value_is_refused_before_anything_is_published(ingest: Ingest) -> None:
    assert "'mesure_PH' = 15 is absurd" in error(ingest.post("/collector/info", json={**SEED, "mesure_PH": 15}), 400)
    assert "'timestamp' must be ISO 8601" in error(ingest.post("/collector/info", json={**SEED, "timestamp": "now"}),
                                                   400)
    assert ingest.broker.messages == []


# -- seed 2: /webhook/ ------------------------------------------------------------------------------------

def test_webhook_get_and_post_publish_a_power_sample(ingest: Ingest) -> None:
    query = "&".join(f"{k}={v}" for k, v in WEBHOOK.items())
    answers = [ingest.http.get(f"/webhook/?{query}", headers=METER_BEARER),
               ingest.http.get(f"/webhook/?token={METER_TOKEN}&{query}"),  # only the URL can be set
               ingest.http.post("/webhook/", json=WEBHOOK, headers=METER_BEARER),
               ingest.http.post("/webhook/", data={k: str(v) for k, v in WEBHOOK.items()}, headers=METER_BEARER),
               ingest.http.post(f"/webhook/?token={METER_TOKEN}", json=WEBHOOK)]
    for resp in answers:
        assert resp.status_code == 200, resp.get_data(as_text=True)
        body = resp.get_json()
        assert {k: body[k] for k in WEBHOOK} == WEBHOOK and body["meter"] == METER
    assert len(ingest.broker.messages) == 5
    for topic, payload in ingest.broker.messages:
        assert topic == f"plant/legacy/meters/{METER}/power"
        sample = PowerSample.from_json(payload)
        assert (sample.apower, sample.voltage, sample.current, sample.energy_wh) == (120.5, 230.1, 0.52, 10.2)
        assert sample.output is None and sample.freq is None
        assert abs(sample.ts - utcnow()) < timedelta(seconds=5)  # the server adds the timestamp
    assert answers[0].get_json()["timestamp"].endswith("Z")


@pytest.mark.parametrize("missing", list(legacy.WEBHOOK_FIELDS))
def test_webhook_missing_or_bad_field_is_a_400_naming_it(ingest: Ingest, missing: str) -> None:
    rest = {k: v for k, v in WEBHOOK.items() if k != missing}
    query = "&".join(f"{k}={v}" for k, v in rest.items())
    assert error(ingest.http.get(f"/webhook/?{query}", headers=METER_BEARER), 400) == f"missing field {missing!r}"
    assert error(ingest.http.post("/webhook/", json=rest, headers=METER_BEARER), 400) == f"missing field {missing!r}"
    reason = error(ingest.http.get(f"/webhook/?{query}&{missing}=high", headers=METER_BEARER), 400)
    assert reason == f"field {missing!r} = 'high' is not a number"
    reason = error(ingest.http.post("/webhook/", json={**rest, missing: "NaN"}, headers=METER_BEARER), 400)
    assert reason.startswith(f"field {missing!r}")
    reason = error(ingest.http.get(f"/webhook/?{query}&{missing}=1&{missing}=2", headers=METER_BEARER), 400)
    assert reason == f"field {missing!r} given more than once in the query string"
    assert ingest.broker.messages == []


# -- tokens ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("how", [{"headers": {"Authorization": f"Bearer {UNIT_TOKEN}"}},
                                 {"headers": {"Authorization": f"Token {UNIT_TOKEN}"}},
                                 {"headers": {"authorization": f"bearer {UNIT_TOKEN}"}},
                                 {"headers": {"X-Device-Token": UNIT_TOKEN}},
                                 {"headers": {}, "query_string": {"token": UNIT_TOKEN}},
                                 {"headers": {"X-Device-Token": UNIT_TOKEN, "Authorization": f"Bearer {UNIT_TOKEN}"}}])
def test_every_way_of_sending_the_token(ingest: Ingest, how: dict[str, Any]) -> None:
    assert ingest.post("/collector/info", json=SEED, **how).status_code == 200


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": f"Bearer {REVOKED_TOKEN}"},
                                     {"Authorization": f"Basic {UNIT_TOKEN}"}, {"X-Device-Token": "x" * 300},
                                     {"Authorization": "Bearer " + "abb_not-a-device-token"}])
def test_unknown_revoked_or_missing_token_is_a_401(ingest: Ingest, headers: dict[str, str]) -> None:
    assert "token" in error(ingest.post("/collector/info", json=SEED, headers=headers), 401)
    assert "token" in error(ingest.http.get("/webhook/?power=1&voltage=1&current=1&energy=1", headers=headers), 401)
    assert ingest.broker.messages == []


def test_a_users_api_token_is_not_a_device_token(ingest: Ingest) -> None:
    admin = token_for(web_state(ingest.app).make_session, "admin")
    error(ingest.post("/collector/info", json=SEED, headers={"Authorization": f"Bearer {admin}"}), 401)


def test_two_different_tokens_are_a_400(ingest: Ingest) -> None:
    resp = ingest.post("/collector/info", json=SEED, headers={"X-Device-Token": METER_TOKEN, **BEARER})
    assert "two different device tokens" in error(resp, 400)
    resp = ingest.post(f"/collector/info?token={UNIT_TOKEN}&token={UNIT_TOKEN}", json=SEED, headers={})
    assert "'token' given more than once" in error(resp, 400)


def test_a_token_for_another_device_is_a_403(ingest: Ingest) -> None:
    assert error(ingest.post("/collector/info", json={**SEED, "unityId": 2}), 403) == \
        "this token is for unit 1, not unityId 2"
    assert error(ingest.post("/collector/info", data={**FORM, "unityId": "2"}), 403)
    assert "/webhook/ only" in error(ingest.post("/collector/info", json=SEED, headers=METER_BEARER), 403)
    assert "/collector/info only" in error(ingest.http.post("/webhook/", json=WEBHOOK, headers=BEARER), 403)
    assert "/collector/info only" in error(ingest.http.get(f"/webhook/?token={UNIT_TOKEN}&power=1"), 403)
    assert ingest.broker.messages == []


def test_last_used_is_recorded_at_most_once_a_minute(ingest: Ingest) -> None:
    assert ingest.token_row(1).last_used_at is None
    error(ingest.post("/collector/info", json={**SEED, "tmp_Cuve": "x"}), 400)
    assert ingest.token_row(1).last_used_at is None  # only accepted requests count
    assert ingest.post("/collector/info", json=SEED).status_code == 200
    first = ingest.token_row(1).last_used_at
    assert first is not None and abs(first - utcnow()) < timedelta(seconds=5)
    assert ingest.post("/collector/info", json=SEED).status_code == 200
    assert ingest.token_row(1).last_used_at == first  # not rewritten within the minute
    with web_state(ingest.app).make_session.begin() as s:
        row = s.get(orm.DeviceToken, 1)
        assert row is not None
        row.last_used_at = first - timedelta(minutes=2)
    assert ingest.post("/collector/info", json=SEED).status_code == 200
    assert ingest.token_row(1).last_used_at > first  # type: ignore[operator]


def test_tokens_never_reach_the_log(ingest: Ingest, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    ingest.post("/collector/info", json=SEED)
    ingest.post("/collector/info", json=SEED, headers={"Authorization": "Bearer secret-guess-123"})
    ingest.post("/collector/info", json=SEED, headers={"Authorization": f"Bearer {REVOKED_TOKEN}"})
    ingest.broker.connected = False
    ingest.post("/collector/info", json=SEED)
    assert "revoked device token 3 used from" in caplog.text and "unknown device token from" in caplog.text
    for secret in (UNIT_TOKEN, "secret-guess-123", REVOKED_TOKEN):
        assert secret not in caplog.text


def test_a_token_in_the_url_is_redacted_from_the_access_log(caplog: pytest.LogCaptureFixture) -> None:
    from webui.ingest import RedactTokens

    access = logging.getLogger("werkzeug")
    access.addFilter(RedactTokens())  # as install() does (once per process)
    caplog.set_level(logging.INFO, logger="werkzeug")
    access.info('%s - - [%s] "%s" %s %s', "10.0.0.1", "now", f"GET /webhook/?token={METER_TOKEN}&power=1 HTTP/1.1",
                200, "-")
    access.info(f"POST /collector/info?x=1&token={UNIT_TOKEN} HTTP/1.1")
    assert METER_TOKEN not in caplog.text and UNIT_TOKEN not in caplog.text
    assert "/webhook/?token=***&power=1" in caplog.text and "?x=1&token=***" in caplog.text


# -- broker, body size, rate limits -------------------------------------------------------------------------

def test_no_broker_or_no_puback_is_a_503_to_retry(ingest: Ingest) -> None:
    ingest.broker.connected = False
    resp = ingest.post("/collector/info", json=SEED)
    assert "not connected" in error(resp, 503) and resp.headers["Retry-After"] == "5"
    ingest.broker.connected, ingest.broker.acknowledges = True, False
    resp = ingest.http.post("/webhook/", json=WEBHOOK, headers=METER_BEARER)
    assert "did not acknowledge" in error(resp, 503) and resp.headers["Retry-After"]
    assert ingest.token_row(2).last_used_at is None


def test_bodies_are_capped(ingest: Ingest) -> None:
    padding = {"padding": "x" * 20_000}
    assert "larger than 16384 bytes" in error(ingest.post("/collector/info", json={**SEED, **padding}), 413)
    assert error(ingest.post("/collector/info", data={**FORM, **padding}), 413)
    ingest.app.config["INGEST_MAX_BODY"] = 100
    assert error(ingest.http.post("/webhook/", json={**WEBHOOK, "x": "y" * 100}, headers=METER_BEARER), 413)
    assert ingest.broker.messages == []
    # Without a token, the body is not even read: 401.
    error(ingest.post("/collector/info", json={**SEED, **padding}, headers={}), 401)


def test_requests_are_rate_limited_per_token(ingest: Ingest) -> None:
    ingest.app.config["INGEST_LIMIT_TOKEN"] = "3 per minute"
    assert [ingest.post("/collector/info", json=SEED).status_code for _ in range(3)] == [200] * 3
    resp = ingest.post("/collector/info", json=SEED)
    assert "too many requests" in error(resp, 429) and int(resp.headers["Retry-After"]) >= 1
    # One budget per token across both routes; another token has its own.
    assert ingest.post("/collector/info", json=SEED, headers={"X-Device-Token": UNIT_TOKEN}).status_code == 429
    assert ingest.http.post("/webhook/", json=WEBHOOK, headers=BEARER).status_code == 429  # (else 403)
    assert ingest.http.post("/webhook/", json=WEBHOOK, headers=METER_BEARER).status_code == 200
    assert len(ingest.broker.messages) == 4


def test_failed_authentications_are_limited_per_address(ingest: Ingest) -> None:
    ingest.app.config["INGEST_LIMIT_FAILED"] = "3 per minute"
    guess = {"Authorization": "Bearer guess"}
    env = {"REMOTE_ADDR": "10.0.0.7"}
    assert [ingest.post("/collector/info", json=SEED, headers=guess, environ_base=env).status_code
            for _ in range(3)] == [401] * 3
    assert error(ingest.post("/collector/info", json=SEED, headers=guess, environ_base=env), 429)
    assert error(ingest.post("/collector/info", json=SEED, environ_base=env), 429)  # even with a right token
    assert ingest.post("/collector/info", json=SEED, environ_base={"REMOTE_ADDR": "10.0.0.8"}).status_code == 200


def test_requests_are_rate_limited_per_address(ingest: Ingest) -> None:
    ingest.app.config["INGEST_LIMIT_ADDRESS"] = "2 per minute"
    env = {"REMOTE_ADDR": "10.0.0.9"}
    assert ingest.post("/collector/info", json=SEED, environ_base=env).status_code == 200
    assert ingest.http.post("/webhook/", json=WEBHOOK, headers=METER_BEARER, environ_base=env).status_code == 200
    assert error(ingest.http.post("/webhook/", json=WEBHOOK, headers=METER_BEARER, environ_base=env), 429)


def test_machine_routes_need_no_csrf_even_with_a_session_cookie(ingest: Ingest) -> None:
    login(ingest.http, "viewer")
    assert ingest.post("/collector/info", json=SEED).status_code == 200
    assert error(ingest.post("/collector/info", json=SEED, headers={}), 401)  # the cookie is not a device token


# -- the admins' token API -------------------------------------------------------------------------------------

def admin_headers(app: Flask, user: str = "admin") -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(web_state(app).make_session, user)}"}


def test_create_list_and_revoke_tokens(ingest: Ingest, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="webui.audit")
    h = admin_headers(ingest.app)
    resp = ingest.http.post("/api/device-tokens", json={"device": "units/2", "label": "old PLC, hall B"}, headers=h)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    created = resp.get_json()
    token = created.pop("token")
    assert token.startswith("abbdev_") and len(token) > 40
    assert created["device"] == "units/2" and created["kind"] == "unit" and created["route"] == "/collector/info"
    assert (created["label"], created["created_by"], created["active"]) == ("old PLC, hall B", "admin", True)

    # The new token works at once, for its unit only.
    headers = {"Authorization": f"Bearer {token}"}
    assert ingest.http.post("/collector/info", json={**SEED, "unityId": 2}, headers=headers).status_code == 200
    error(ingest.http.post("/collector/info", json=SEED, headers=headers), 403)

    listed = ingest.http.get("/api/device-tokens", headers=h).get_json()["items"]
    assert [t["device"] for t in listed] == ["units/2", f"meters/{METER}", "units/1", "units/1"]  # active first
    assert all("token" not in t and "token_hash" not in t for t in listed)
    assert token not in ingest.http.get("/api/device-tokens", headers=h).get_data(as_text=True)
    assert listed[0]["last_used_at"] is not None and listed[-1]["active"] is False

    resp = ingest.http.delete(f"/api/device-tokens?id={created['id']}", headers=h)
    revoked = resp.get_json()["revoked"]
    assert (revoked["active"], revoked["revoked_by"]) == (False, "admin") and revoked["revoked_at"]
    error(ingest.http.post("/collector/info", json={**SEED, "unityId": 2}, headers=headers), 401)
    assert "already revoked by admin" in error(ingest.http.delete(f"/api/device-tokens?id={created['id']}",
                                                                  headers=h), 409)
    with web_state(ingest.app).make_session() as s:  # kept, never deleted
        assert s.scalar(select(orm.DeviceToken).where(orm.DeviceToken.id == created["id"])) is not None
    audit = [r.getMessage() for r in caplog.records if "AUDIT" in r.getMessage()]
    assert any("action=device_token.create" in a and "device='units/2'" in a for a in audit)
    assert any("action=device_token.revoke" in a and f"id='{created['id']}'" in a for a in audit)
    assert all(token not in a for a in audit)


def test_meter_tokens_go_to_the_webhook(ingest: Ingest) -> None:
    h = admin_headers(ingest.app)
    created = ingest.http.post("/api/device-tokens", json={"device": "meters/hall-b"}, headers=h).get_json()
    assert (created["kind"], created["route"], created["label"]) == ("meter", "/webhook/", None)
    resp = ingest.http.post("/webhook/", json=WEBHOOK, headers={"X-Device-Token": created["token"]})
    assert resp.status_code == 200 and ingest.broker.messages[-1][0] == "plant/legacy/meters/hall-b/power"


@pytest.mark.parametrize(("body", "names"), [
    ({"device": "units/0"}, "device 'units/0' must be units/<unit number>"),
    ({"device": "units/1/automates/2"}, "must be units/<unit number>"),
    ({"device": "meters/a b"}, "invalid meter id"),
    ({"device": 3}, "field 'device' must be a string"),
    ({}, "field 'device' is required"),
    ({"device": "units/1", "label": "x" * 65}, "'label' must be at most 64 printable characters"),
    ({"device": "units/1", "label": "a\nb"}, "'label' must be at most 64 printable characters"),
    ({"device": "units/1", "label": 3}, "'label' must be a string"),
    ({"device": "units/1", "token": "mine"}, "unknown field 'token'"),
])
def test_bad_token_requests_are_400(ingest: Ingest, body: dict[str, Any], names: str) -> None:
    assert names in error(ingest.http.post("/api/device-tokens", json=body, headers=admin_headers(ingest.app)), 400)


def test_token_api_is_for_admins_only(ingest: Ingest) -> None:
    h = admin_headers(ingest.app, "operator")
    assert "admin role" in error(ingest.http.get("/api/device-tokens", headers=h), 403)
    assert error(ingest.http.post("/api/device-tokens", json={"device": "units/2"}, headers=h), 403)
    assert error(ingest.http.delete("/api/device-tokens?id=1", headers=h), 403)
    assert error(ingest.http.get("/api/device-tokens"), 401)
    h = admin_headers(ingest.app)
    assert error(ingest.http.delete("/api/device-tokens?id=99", headers=h), 404) == "device token 99 is unknown"
    assert "'id' is required" in error(ingest.http.delete("/api/device-tokens", headers=h), 400)
    assert "is not an integer" in error(ingest.http.delete("/api/device-tokens?id=x", headers=h), 400)


def test_a_browser_needs_the_csrf_header_to_create_a_token(ingest: Ingest) -> None:
    login(ingest.http, "admin")
    assert "CSRF" in error(ingest.http.post("/api/device-tokens", json={"device": "units/2"}), 403)
    resp = ingest.http.post("/api/device-tokens", json={"device": "units/2"}, headers=csrf(ingest.http))
    assert resp.status_code == 201


def test_senders_page(ingest: Ingest) -> None:
    http = ingest.http
    login(http, "operator")
    assert http.get("/admin/senders").status_code == 403
    assert 'href="/admin/senders"' not in http.get("/").get_data(as_text=True)
    http = ingest.app.test_client()
    login(http, "admin")
    html = http.get("/admin/senders").get_data(as_text=True)
    assert 'id="token-form"' in html and 'id="tokens"' in html and "/static/senders.js" in html
    assert '<option value="units/1">' in html and '<option value="meters/shellypro1pm-a8032ab1c2d3">' in html
    for tag in html.split("<script")[1:]:  # CSP: no inline script or style
        head = tag.split(">", 1)[0]
        assert "src=" in head or 'type="application/json"' in head, head
    assert " style=" not in html and "<style" not in html and " onclick=" not in html
    assert 'href="/admin/senders" aria-current="page"' in html
    assert http.get("/static/senders.js").status_code == 200


def test_openapi_documents_the_token_api_and_the_ingest_routes(ingest: Ingest) -> None:
    doc = ingest.http.get("/api/openapi.json", headers=admin_headers(ingest.app)).get_json()
    assert set(doc["paths"]["/api/device-tokens"]) == {"get", "post", "delete"}
    assert set(doc["x-legacy-ingest"]["/collector/info"]) == {"post"}
    assert set(doc["x-legacy-ingest"]["/webhook/"]) == {"get", "post"}
    required = doc["x-legacy-ingest"]["/collector/info"]["post"]["requestBody"]["content"]["application/json"]
    assert required["schema"]["required"] == ["unityId", *legacy.COLLECTOR_FIELDS]


# -- the CLI ----------------------------------------------------------------------------------------------------

def test_token_cli(ingest: Ingest, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from webui.__main__ import main

    url = str(web_state(ingest.app).make_session.kw["bind"].url)
    monkeypatch.setenv("DATABASE_URL", url)
    assert main(["token", "create", "--device", "meters/cli-meter", "--label", "from the CLI"]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("abbdev_")
    assert ingest.http.get("/webhook/?power=1&voltage=230&current=0.1&energy=5",
                           headers={"X-Device-Token": token}).status_code == 200
    assert main(["token", "list"]) == 0
    listing = capsys.readouterr().out
    assert "meters/cli-meter" in listing and "from the CLI" in listing and token not in listing
    token_id = max(t["id"] for t in ingest.http.get("/api/device-tokens",
                                                    headers=admin_headers(ingest.app)).get_json()["items"])
    assert main(["token", "revoke", str(token_id)]) == 0
    assert ingest.token_row(token_id).revoked_by.startswith("cli")  # type: ignore[union-attr]
    assert main(["token", "revoke", str(token_id)]) == 2
    assert "already revoked" in capsys.readouterr().err
    assert main(["token", "create", "--device", "units/x"]) == 2
