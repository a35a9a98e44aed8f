"""The health vocabulary shared by the services (plantmodel/servicehealth.py), the web UI's view of
the bridges' reports (webui/services.py), the notifier's health file and the bridge's user claim
candidates: pure logic, no server."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from notifier.service import read_health
from plantmodel.errors import ValidationError
from plantmodel.readings import to_ms, utcnow
from plantmodel.servicehealth import Check, ServiceHealth, health_app
from plantmodel.topics import Topics
from store.claim import claim_candidates, lock_name, role_users
from webui.services import STALE_PERIODS, BridgeReports, report_dict

NOW = to_ms(utcnow())  # reports carry milliseconds


def sample(**checks: bool | None) -> ServiceHealth:
    checked = {k: Check(v, "" if v else "why") for k, v in checks.items()}
    return ServiceHealth("bridge", "bridge-2", to_ms(utcnow()), checked,
                         {"ingest_lag_s": 1.5, "last_commit_age_s": None, "report_every_s": 2.0})


def test_healthy_unless_a_check_is_known_to_fail() -> None:
    assert sample(broker=True, database=None).ok  # unknown (just started) is not a failure
    bad = sample(broker=True, database=False)
    assert not bad.ok and bad.problems == ["database: why"]


def test_a_report_survives_json_and_garbage_is_refused() -> None:
    health = sample(broker=True, database=False, ingest=None)
    again = ServiceHealth.from_json(health.to_json())  # (times to the millisecond, as published)
    assert again == health
    for garbage in ("[]", "{}", '{"service": "bridge", "instance": "b", "ts": "x", "checks": {}}',
                    json.dumps({**health.to_dict(), "service": "mailer"}),
                    json.dumps({**health.to_dict(), "checks": {"db": {"ok": "yes"}}}),
                    json.dumps({**health.to_dict(), "values": {"lag": "NaN"}}),
                    json.dumps({**health.to_dict(), "instance": "x" * 65})):
        with pytest.raises(ValidationError):
            ServiceHealth.from_json(garbage)


def call(app: Any, path: str) -> tuple[str, bytes]:
    seen: list[str] = []
    body = b"".join(app({"PATH_INFO": path}, lambda status, headers: seen.append(status)))
    return seen[0], body


def test_the_health_endpoint_says_503_when_unhealthy_and_500_on_its_own_bug() -> None:
    def metrics(_environ: Any, start: Any) -> list[bytes]:
        start("200 OK", [])
        return [b"metrics"]

    assert call(health_app(lambda: sample(broker=True), metrics), "/metrics") == ("200 OK", b"metrics")
    status, body = call(health_app(lambda: sample(broker=True), metrics), "/healthz")
    assert status == "200 OK" and json.loads(body)["ok"] is True
    assert call(health_app(lambda: sample(broker=False), metrics), "/healthz/")[0] == "503 Service Unavailable"

    def broken() -> ServiceHealth:
        raise RuntimeError("bug")

    assert call(health_app(broken, metrics), "/healthz")[0] == "500 Internal Server Error"


def test_bridge_reports_are_kept_by_user_removed_when_emptied_and_go_stale() -> None:
    clock = [100.0]
    reports = BridgeReports(clock=lambda: clock[0])
    reports.received("bridge-2", sample(broker=True).to_json().encode())
    reports.received("bridge-3", b"{not json")  # logged and skipped
    assert [h.instance for h, _ in reports.items()] == ["bridge-2"]
    clock[0] += 2.0 * STALE_PERIODS - 0.1
    health, age = reports.items()[0]
    assert report_dict(health, age)["stale"] is False and report_dict(health, age)["ok"] is True
    clock[0] += 0.2  # past 3 of its 2-second periods: it stopped reporting
    health, age = reports.items()[0]
    assert report_dict(health, age)["stale"] is True and report_dict(health, age)["ok"] is False
    reports.received("bridge-2", b"")  # a bridge that stopped on purpose
    assert reports.items() == []


def test_the_health_topics_are_the_bridges_own() -> None:
    topics = Topics("site/a")
    assert topics.bridge_health("bridge-2") == "site/a/bridge/health/bridge-2"
    assert topics.is_bridge_own("site/a/bridge/health/bridge-2") and topics.is_bridge_own("site/a/bridge/status")
    assert not topics.is_bridge_own("site/a/units/1/status")


def test_the_notifier_health_file_must_be_recent_and_healthy(tmp_path: Path) -> None:
    path = tmp_path / "health.json"
    assert read_health(str(path), NOW, max_age=60)[0] == 1  # no file: not running
    good = ServiceHealth("notifier", "host", NOW, {"database": Check(True)})
    path.write_text(good.to_json())
    assert read_health(str(path), NOW + timedelta(seconds=30), max_age=60)[0] == 0
    code, text = read_health(str(path), NOW + timedelta(seconds=90), max_age=60)
    assert code == 1 and "stuck or stopped" in text
    path.write_text(ServiceHealth("notifier", "host", NOW, {"database": Check(False, "down")}).to_json())
    assert read_health(str(path), NOW, max_age=60)[0] == 1
    path.write_text("{half")
    assert read_health(str(path), NOW, max_age=60)[0] == 1


def test_claim_candidates_are_the_bridge_users_of_the_credentials_file(tmp_path: Path) -> None:
    assert role_users(["webui", "bridge-10", "bridge-2", "bridge", "bridge-0", "bridgeX", "debug"], "bridge") == [
        "bridge", "bridge-2", "bridge-10"]
    assert role_users(["webui-2", "webui", "bridge"], "webui") == ["webui", "webui-2"]
    creds = tmp_path / "credentials.json"
    creds.write_text(json.dumps({"users": {"bridge-2": "p2", "bridge": "p1", "webui": "w"}}))
    env = {"MQTT_CREDENTIALS_FILE": str(creds)}
    claim = "BRIDGE_CLAIM_USER"
    assert claim_candidates(env, claim, "bridge") == ()
    assert claim_candidates({**env, claim: "1"}, claim, "bridge") == (("bridge", "p1"), ("bridge-2", "p2"))
    assert claim_candidates({**env, "WEBUI_CLAIM_USER": "1"}, "WEBUI_CLAIM_USER", "webui") == (("webui", "w"),)
    for bad in ({**env, claim: "yes"}, {**env, claim: "1", "MQTT_PASSWORD": "pw"},
                {**env, claim: "1", "MQTT_USERNAME": "bridge"}):
        with pytest.raises(ValidationError):
            claim_candidates(bad, claim, "bridge")
    creds.write_text(json.dumps({"users": {"webui": "w"}}))
    with pytest.raises(ValidationError, match="no bridge user"):
        claim_candidates({**env, claim: "1"}, claim, "bridge")
    assert len(lock_name("d" * 200, "bridge-12345")) <= 64  # MariaDB's limit for a lock name


def test_a_claim_is_refused_with_galera_failover(tmp_path: Path) -> None:
    """A named lock is held on one Galera node: after a failover two bridges could hold one user."""
    from bridge.settings import BridgeSettings

    creds = tmp_path / "credentials.json"
    creds.write_text(json.dumps({"users": {"bridge": "p1"}}))
    env = {"MQTT_CREDENTIALS_FILE": str(creds), "BRIDGE_CLAIM_USER": "1",
           "DATABASE_URL": "mariadb+pymysql://u:Zq8vW2tLk4@127.0.0.1:3306/plant"}
    assert BridgeSettings.from_env(env).claim_from == (("bridge", "p1"),)
    with pytest.raises(ValidationError, match="DATABASE_FAILOVER_HOSTS"):
        BridgeSettings.from_env({**env, "DATABASE_FAILOVER_HOSTS": "127.0.0.1:3307"})
