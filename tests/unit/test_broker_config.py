from __future__ import annotations

import base64
import hashlib
import json
import stat
from pathlib import Path

import pytest

from broker.config import DEFAULT_CONF, REPLACED, LocalBroker, directives, render
from broker.credentials import CredentialFiles, ServiceUsers, acl_text, generate, hash_password, users_for
from broker.settings import BrokerSettings
from plantmodel import Topics
from plantmodel.errors import ValidationError
from plantmodel.layout import PlantLayout


def test_rendering_keeps_every_directive_but_paths_and_listener(tmp_path: Path) -> None:
    template = DEFAULT_CONF.read_text()
    out = render(template, LocalBroker(12345, "127.0.0.1", tmp_path / "p", tmp_path / "a", tmp_path / "d"))
    kept = [d for d in directives(template) if d[0] not in REPLACED]
    rendered = directives(out)
    for d in kept:
        assert d in rendered
    assert ("listener", "12345 127.0.0.1") in rendered
    assert ("password_file", str(tmp_path / "p")) in rendered
    assert ("allow_anonymous", "false") in rendered


def test_client_ids_are_the_user_names() -> None:
    """A listener option, silently ignored before the first ``listener`` line (checked on 2.0.11)."""
    names = [name for name, _ in directives(DEFAULT_CONF.read_text())]
    assert ("use_username_as_clientid", "true") in directives(DEFAULT_CONF.read_text())
    assert names.index("listener") < names.index("use_username_as_clientid")
    out = render(DEFAULT_CONF.read_text(), LocalBroker(1, "127.0.0.1", Path("p"), Path("a"), Path("d")))
    rendered = [name for name, _ in directives(out)]
    assert rendered.index("listener") < rendered.index("use_username_as_clientid")


def test_queue_limits_cover_ten_minutes_of_full_rate() -> None:
    conf = dict(directives(DEFAULT_CONF.read_text()))
    assert int(conf["max_queued_messages"]) >= 6 * 16 * 600 + 20 * 2 * 600
    assert int(conf["max_inflight_messages"]) >= 500  # the bridge's default batch


def test_password_hash_is_mosquitto_format() -> None:
    salt = b"123456789012"
    h = hash_password("s3cret", salt)
    _, alg, iterations, salt_b64, digest_b64 = h.split("$")
    assert (alg, iterations) == ("7", "101") and base64.b64decode(salt_b64) == salt
    assert base64.b64decode(digest_b64) == hashlib.pbkdf2_hmac("sha512", b"s3cret", salt, 101)


def test_generate_keeps_passwords_and_adds_new_devices(tmp_path: Path) -> None:
    files = CredentialFiles(tmp_path / "secrets")
    users, added = generate(PlantLayout(units=2, meters=("m1",)), Topics(), files)
    assert set(users) == {"bridge", "webui", "debug", "unit-1", "unit-2", "m1"} == set(added)
    assert stat.S_IMODE(files.credentials.stat().st_mode) == 0o600
    users2, added2 = generate(PlantLayout(units=3, meters=("m1",)), Topics(), files)
    assert added2 == ["unit-3"] and all(users2[u] == p for u, p in users.items())
    assert len(files.passwd.read_text().splitlines()) == 7
    assert json.loads(files.credentials.read_text())["users"]["unit-3"] == users2["unit-3"]


def acl_sections(acl: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    for block in acl.split("\nuser ")[1:]:
        lines = block.strip().splitlines()
        assert lines[0] not in sections, f"user {lines[0]} twice in the ACL"
        sections[lines[0]] = [line for line in lines[1:] if line.startswith("topic")]
    return sections


def test_acl_is_least_privilege() -> None:
    sections = acl_sections(acl_text(PlantLayout(units=2, meters=("m1",)), Topics()))
    assert set(sections) == {"bridge", "webui", "debug", "unit-1", "unit-2", "m1"}
    assert sections["unit-2"] == ["topic write plant/units/2/#", "topic read plant/confirm/units/2"]
    assert sections["m1"] == ["topic write m1/#", "topic read m1/rpc"]
    assert all(line.startswith("topic read") for line in sections["webui"] + sections["debug"])
    assert sections["debug"] == ["topic read #"]
    assert sections["webui"] == [f"topic read {t}" for t in Topics().live_subscriptions()]
    assert sections["bridge"] == ["topic read #", "topic write plant/alarms/#", "topic write plant/bridge/status",
                                  "topic write plant/confirm/#", "topic write +/rpc"]


def test_numbered_bridges_and_debug_users_share_their_role_acl(tmp_path: Path) -> None:
    services = ServiceUsers(bridges=3, debug=2)
    assert services.bridge_users() == ["bridge", "bridge-2", "bridge-3"]
    assert services.debug_users() == ["debug", "debug-2"]
    sections = acl_sections(acl_text(PlantLayout(units=1, meters=()), Topics("site/a"), services))
    assert set(sections) == {"bridge", "bridge-2", "bridge-3", "webui", "debug", "debug-2", "unit-1"}
    assert sections["bridge-3"] == sections["bridge"] and "topic write site/a/confirm/#" in sections["bridge"]
    assert sections["debug-2"] == sections["debug"] == ["topic read #"]
    assert sections["unit-1"] == ["topic write site/a/units/1/#", "topic read site/a/confirm/units/1"]
    files = CredentialFiles(tmp_path / "secrets")
    users, _ = generate(PlantLayout(units=1, meters=()), Topics(), files)
    assert set(users) == {"bridge", "webui", "debug", "unit-1"}
    # Adding bridges later keeps the existing passwords (the running bridge stays connected).
    users2, added = generate(PlantLayout(units=1, meters=()), Topics(), files, services)
    assert added == ["bridge-2", "bridge-3", "debug-2"] and all(users2[u] == p for u, p in users.items())
    assert sorted(line.split(":")[0] for line in files.passwd.read_text().splitlines()) == sorted(users2)


def test_service_user_counts_come_from_the_environment() -> None:
    assert BrokerSettings.from_env({}).services == ServiceUsers(1, 1)
    settings = BrokerSettings.from_env({"BROKER_BRIDGES": "3", "BROKER_DEBUG_USERS": "4"})
    assert settings.services.bridge_users()[-1] == "bridge-3" and len(settings.services.debug_users()) == 4
    with pytest.raises(ValidationError):
        BrokerSettings.from_env({"BROKER_BRIDGES": "0"})


def test_a_meter_named_like_another_user_is_refused() -> None:
    with pytest.raises(ValidationError, match="bridge-2"):
        users_for(PlantLayout(units=1, meters=("bridge-2",)), ServiceUsers(bridges=2))
