from __future__ import annotations

import base64
import hashlib
import json
import stat
from pathlib import Path

from broker.config import DEFAULT_CONF, REPLACED, LocalBroker, directives, render
from broker.credentials import CredentialFiles, acl_text, generate, hash_password
from plantmodel import Topics
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


def test_acl_is_least_privilege() -> None:
    acl = acl_text(PlantLayout(units=2, meters=("m1",)), Topics())
    sections = {}
    for block in acl.split("\nuser ")[1:]:
        lines = block.strip().splitlines()
        sections[lines[0]] = [line for line in lines[1:] if line.startswith("topic")]
    assert sections["unit-2"] == ["topic write plant/units/2/#"]
    assert sections["m1"] == ["topic write m1/#", "topic read m1/rpc"]
    assert all(line.startswith("topic read") for line in sections["webui"] + sections["debug"])
    assert "topic read #" in sections["bridge"]
