from __future__ import annotations

import base64
import hashlib
import json
import random
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from broker.__main__ import main as broker_main
from broker.config import DEFAULT_CONF, REPLACED, TLS_OPTIONS, LocalBroker, TlsListener, directives, render
from broker.credentials import CredentialFiles, ServiceUsers, acl_text, export, generate, hash_password, users_for
from broker.settings import BrokerSettings
from broker.tls import TlsFiles
from broker.tls import generate as generate_certs
from devices.shelly import ShellyPro1PM
from devices.units import UnitSimulator
from plantmodel import Topics
from plantmodel.confirm import AutomateConfirmation, Confirmation
from plantmodel.errors import ValidationError
from plantmodel.layout import PlantLayout
from plantmodel.measures import AUTOMATE_MEASURES
from plantmodel.readings import MAX_AUTOMATE, MAX_UNIT, Reading
from plantmodel.shelly import SWITCH_KEY, notification, parse_rpc_frame, response
from plantmodel.sources import MeterSource
from plantmodel.status import DeviceStatus
from plantmodel.storage import SEQ_MAX
from plantmodel.thresholds import Alarm


def test_rendering_keeps_every_directive_but_paths_and_listener(tmp_path: Path) -> None:
    template = DEFAULT_CONF.read_text()
    out = render(template, LocalBroker(12345, "0.0.0.0", tmp_path / "p", tmp_path / "a", tmp_path / "d"))
    kept = [d for d in directives(template) if d[0] not in REPLACED and d[0] not in TLS_OPTIONS]
    rendered = directives(out)
    for d in kept:
        assert d in rendered
    # Without TLS: one plain listener, on the address asked for, and nothing of the TLS one.
    assert [v for n, v in rendered if n == "listener"] == ["12345 0.0.0.0"]
    assert not {n for n, _ in rendered} & set(TLS_OPTIONS)
    assert ("password_file", str(tmp_path / "p")) in rendered
    assert ("allow_anonymous", "false") in rendered


def test_with_tls_the_plain_listener_stays_on_loopback(tmp_path: Path) -> None:
    tls = TlsListener(8883, tmp_path / "ca.crt", tmp_path / "server.crt", tmp_path / "server.key")
    out = render(DEFAULT_CONF.read_text(),
                 LocalBroker(1883, "0.0.0.0", tmp_path / "p", tmp_path / "a", tmp_path / "d", tls))
    rendered = directives(out)
    assert [v for n, v in rendered if n == "listener"] == ["1883 127.0.0.1", "8883 0.0.0.0"]
    names = [n for n, _ in rendered]
    tls_at = names.index("listener", names.index("listener") + 1)
    after = dict(rendered[tls_at:])  # listener options follow their listener
    assert after["certfile"] == str(tmp_path / "server.crt")
    assert after["keyfile"] == str(tmp_path / "server.key")
    assert after["cafile"] == str(tmp_path / "ca.crt")
    assert after["tls_version"] == "tlsv1.2"
    assert after["use_username_as_clientid"] == "true"


def test_the_deployed_config_serves_plain_mqtt_on_loopback_only() -> None:
    """Compose publishes the broker: plain MQTT (passwords in clear) must not be reachable."""
    conf = directives(DEFAULT_CONF.read_text())
    listeners = [v for n, v in conf if n == "listener"]
    assert listeners == ["1883 127.0.0.1", "8883"]
    tls_part = dict(conf[[n for n, _ in conf].index("listener", [n for n, _ in conf].index("listener") + 1):])
    assert {"certfile", "keyfile", "tls_version"} <= tls_part.keys()


def test_client_ids_are_the_user_names() -> None:
    """A listener option, silently ignored before the first ``listener`` line (checked on 2.0.11):
    each listener sets it."""
    conf = directives(DEFAULT_CONF.read_text())
    names = [name for name, _ in conf]
    assert ("use_username_as_clientid", "true") in conf
    assert names.index("listener") < names.index("use_username_as_clientid")
    after_each = [conf[i + 1] for i, n in enumerate(names) if n == "listener"]
    assert after_each == [("use_username_as_clientid", "true")] * 2
    out = render(DEFAULT_CONF.read_text(), LocalBroker(1, "127.0.0.1", Path("p"), Path("a"), Path("d")))
    rendered = [name for name, _ in directives(out)]
    assert rendered.index("listener") < rendered.index("use_username_as_clientid")


def test_queue_limits_cover_ten_minutes_of_full_rate() -> None:
    conf = dict(directives(DEFAULT_CONF.read_text()))
    assert int(conf["max_queued_messages"]) >= 6 * 16 * 600 + 20 * 2 * 600
    assert int(conf["max_inflight_messages"]) >= 500  # the bridge's default batch


# -- message size and queue bytes (mosquitto.conf "Message size" and "Queues") ---------------------

TS = datetime(2026, 11, 21, 10, 15, 0, 123000, tzinfo=UTC)
MAX_BOOT = "9" * 32  # the longest boot id check_boot accepts
METER = "shellypro1pm-a8032ab1c2d3"
LONGEST_METER = "m" * 64  # METER_ID_RE's longest


def conf_int(name: str) -> int:
    return int(dict(directives(DEFAULT_CONF.read_text()))[name])


def widest_float(low: float, high: float) -> float:
    """The value in [low, high] whose JSON text is longest (17 significant digits, exponent form)."""
    candidates = (-1.2345678901234567e-05, 1.2345678901234567e-05, -12.345678901234567, 12345.678901234567)
    return max((c for c in candidates if low <= c <= high), key=lambda c: len(repr(c)))


def widest_reading() -> Reading:
    """A reading at the widest every field allows: the largest reading a unit can send."""
    values = {n: widest_float(m.plausible_min, m.plausible_max) for n, m in AUTOMATE_MEASURES.items()}
    return Reading(unit=MAX_UNIT, automate=MAX_AUTOMATE, type="0x0000BA27", seq=SEQ_MAX, ts=TS, boot=MAX_BOOT,
                   **values)


def unit_readings() -> list[Reading]:
    """Readings as our units send them: 6 units x 16 automates, with their boot id, for a while."""
    out = []
    for unit in range(1, 7):
        sim = UnitSimulator(unit, 16, random.Random(unit))
        for _ in range(50):
            out.extend(sim.tick(TS))
    assert all(r.boot for r in out)
    return out


def shelly_full_status() -> dict[str, Any]:
    """What a real Pro 1PM reports in NotifyFullStatus / Shelly.GetStatus with every optional part
    (its components per Shelly's Gen2 API: ble, bthome, cloud, eth, inputs, knx, mqtt, switch with
    errors, sys with updates, ui, wifi, ws, and the 10 scripts a Pro may run, all with errors)."""
    switch = ShellyPro1PM(METER, random.Random(1), start=TS).status
    switch = {**switch, "errors": ["overtemp", "overpower", "overvoltage", "undervoltage", "overcurrent"],
              "timer_started_at": 1795256100.12, "timer_duration": 3600.0}
    status: dict[str, Any] = {
        "ble": {}, "bthome": {"errors": ["bluetooth_disabled"]},
        "cloud": {"connected": True},
        "eth": {"ip": "192.168.100.200", "ip6": ["fe80::aaaa:bbbb:cccc:dddd"]},
        "input:0": {"id": 0, "state": False}, "input:1": {"id": 1, "state": True},
        "knx": {}, "mqtt": {"connected": True},
        SWITCH_KEY: switch,
        "sys": {"mac": "A8032AB1C2D3", "restart_required": False, "time": "10:15", "unixtime": 1795256100,
                "last_sync_ts": 1795256000, "uptime": 8_640_000, "ram_size": 246_684, "ram_free": 141_804,
                "ram_min_free": 120_000, "fs_size": 524_288, "fs_free": 196_608, "cfg_rev": 123,
                "kvs_rev": 45, "schedule_rev": 67, "webhook_rev": 89, "btrelay_rev": 0,
                "available_updates": {"beta": {"version": "1.5.0-beta3"}, "stable": {"version": "1.4.4"}},
                "reset_reason": 3, "utc_offset": 3600},
        "ui": {},
        "wifi": {"sta_ip": "192.168.100.201", "sta_ip6": ["fe80::aaaa:bbbb:cccc:eeee"], "status": "got ip",
                 "ssid": "A" * 32, "bssid": "aa:bb:cc:dd:ee:ff", "rssi": -71},
        "ws": {"connected": False},
    }
    for i in range(1, 11):
        status[f"script:{i}"] = {"id": i, "running": True, "mem_used": 12_345, "mem_peak": 23_456,
                                 "mem_free": 34_567, "cpu": 12,
                                 "errors": ["crashed", "syntax_error", "reference_error", "out_of_memory"]}
    return status


def largest_legitimate_payloads() -> dict[str, str]:
    """The largest payload of every kind of message on our broker, built with the model code."""
    sim = ShellyPro1PM(METER, random.Random(1), status_ntf=True, start=TS)
    answer = sim.handle_rpc(json.dumps({"id": 1, "src": "x" * 200, "method": "Shelly.GetStatus"}), TS)
    assert answer is not None
    full = shelly_full_status()
    payloads = {
        # The bridge confirms per unit every automate it knows: at most MAX_AUTOMATE of them.
        "confirmation, MAX_AUTOMATE automates": Confirmation(MAX_UNIT, TS, {
            a: AutomateConfirmation(SEQ_MAX, SEQ_MAX, TS, MAX_BOOT) for a in range(1, MAX_AUTOMATE + 1)}).to_json(),
        "Shelly NotifyFullStatus": notification(METER, "NotifyFullStatus", {"ts": 1795256100.12, **full}),
        "Shelly.GetStatus answer": response(2**31, METER, "x" * 200, full),
        "simulated Shelly.GetStatus answer": answer[1],
        "reading": widest_reading().to_json(),
        "alarm": Alarm(MeterSource(LONGEST_METER), "temperature_c", widest_float(-1e9, 1e9),
                       widest_float(-1e9, 1e9), "high", "critical", "active", TS, TS).to_json(),
        "unit status": DeviceStatus("offline", TS).to_json(),
    }
    for key in ("Shelly NotifyFullStatus", "Shelly.GetStatus answer", "simulated Shelly.GetStatus answer"):
        parse_rpc_frame(payloads[key])  # real frames, as the bridge parses them
    Confirmation.from_json(payloads["confirmation, MAX_AUTOMATE automates"])
    return payloads


def test_message_size_limit_is_above_every_legitimate_message_with_margin() -> None:
    limit, packet = conf_int("message_size_limit"), conf_int("max_packet_size")
    sizes = {kind: len(p.encode()) for kind, p in largest_legitimate_payloads().items()}
    # The figures the comment in mosquitto.conf gives.
    assert sizes["confirmation, MAX_AUTOMATE automates"] == 149_801
    assert sizes["reading"] == 499
    assert 2_000 < sizes["Shelly NotifyFullStatus"] < 4_000
    for kind, size in sizes.items():
        assert size * 1.5 <= limit, f"{kind}: {size} bytes leaves too little margin under {limit}"
    assert limit <= 1024 * 1024, "a limit this high no longer protects the broker"
    # The packet limit lets every payload up to the limit through, with any topic we use; a packet is
    # 1 byte of type, up to 4 of length, 2 + the topic, 2 of message id, then the payload.
    longest_topic = max(len(t) for t in (
        Topics("a" * 100).confirmation(MAX_UNIT), Topics("a" * 100).reading(MAX_UNIT, MAX_AUTOMATE),
        Topics("a" * 100).alarm(MeterSource(LONGEST_METER), "temperature_c"),
        Topics.shelly(LONGEST_METER, "events/rpc")))
    assert limit + 1 + 4 + 2 + longest_topic + 2 <= packet <= limit + 2048


def test_queued_bytes_cap_matches_the_outage_budget() -> None:
    queued, cap = conf_int("max_queued_messages"), conf_int("max_queued_bytes")
    assert queued == 250_000
    assert cap == queued * 600, "the budget: 250 000 messages of ~600 bytes"
    typical = [len(r.to_json().encode()) for r in unit_readings()]
    assert min(typical) >= 240 and max(typical) <= 300, (min(typical), max(typical))
    widest = len(widest_reading().to_json().encode())
    # A bridge down with readings queued stops at the message count, not at the bytes, even for
    # the widest readings: the 200 000-reading backlog of bench/bench_ingest.py fits.
    assert queued * widest <= cap
    assert 200_000 * widest <= cap
    # The simulator's meter traffic (NotifyStatus, and status/switch:0 when status_ntf is on) too.
    sim = ShellyPro1PM(METER, random.Random(2), status_ntf=True, start=TS)
    frames = [len(p.encode()) for s in range(1, 1200) for _, p in sim.tick(TS + timedelta(seconds=s))]
    assert len(frames) > 100 and queued * max(frames) <= cap, max(frames)


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
    assert sections["m1"] == ["topic write m1/#", "topic write shellies/m1/#", "topic read m1/rpc",
                              "topic read shellies/m1/relay/0/command", "topic read shellies/command"]
    assert sections["debug"] == ["topic read #"]
    # The web UI writes only the legacy senders' topics and the meters' command topics.
    # It reads the bridges' status (birth / last will) for its health badge and their health reports
    # for the services page, and nothing else of theirs.
    assert sections["webui"] == [*(f"topic read {t}" for t in Topics().live_subscriptions()),
                                 "topic read plant/bridge/status",
                                 "topic read plant/bridge/health/+",
                                 "topic readwrite plant/webui/alarms",
                                 "topic write plant/legacy/units/+/automates/+/readings",
                                 "topic write plant/legacy/meters/+/power",
                                 "topic write m1/rpc", "topic write shellies/m1/relay/0/command"]
    assert sections["bridge"] == ["topic read #", "topic write plant/alarms/#", "topic write plant/bridge/status",
                                  "topic write plant/bridge/health/bridge", "topic write plant/confirm/#",
                                  "topic write +/rpc"]


def test_numbered_bridges_and_debug_users_share_their_role_acl(tmp_path: Path) -> None:
    services = ServiceUsers(bridges=3, debug=2)
    assert services.bridge_users() == ["bridge", "bridge-2", "bridge-3"]
    assert services.debug_users() == ["debug", "debug-2"]
    sections = acl_sections(acl_text(PlantLayout(units=1, meters=()), Topics("site/a"), services))
    assert set(sections) == {"bridge", "bridge-2", "bridge-3", "webui", "debug", "debug-2", "unit-1"}
    # The same rights, but each bridge reports its own health only.
    assert [t.replace("bridge-3", "bridge") for t in sections["bridge-3"]] == sections["bridge"]
    assert "topic write site/a/confirm/#" in sections["bridge"]
    assert "topic write site/a/bridge/health/bridge-3" in sections["bridge-3"]
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


# -- per-service secrets (`python -m broker export`) ---------------------------------------------

def test_each_container_gets_only_its_own_secrets(tmp_path: Path) -> None:
    """A stolen bridge (or web UI, or simulator) container holds no other service's password; the
    broker's holds hashes, never a password."""
    layout = PlantLayout(units=2, automates=3, meters=("shellypro1pm-aa",))
    services = ServiceUsers(bridges=2)
    files = CredentialFiles(tmp_path / "secrets")
    users, _ = generate(layout, Topics(), files, services)
    tls = TlsFiles(tmp_path / "secrets" / "tls")
    generate_certs(tls)
    expected = {"bridge": {"bridge", "bridge-2"}, "webui": {"webui"}, "debug": {"debug"},
                "devices": {"unit-1", "unit-2", "shellypro1pm-aa"}}
    for role, names in expected.items():
        dest = tmp_path / role
        written = export(role, files, layout, services, dest, tls_dir=tls.directory)
        assert {p.name for p in written} == {"credentials.json", "ca.crt"}
        got = json.loads((dest / "credentials.json").read_text())["users"]
        assert got == {u: users[u] for u in names}
        assert stat.S_IMODE((dest / "credentials.json").stat().st_mode) == 0o600
        assert stat.S_IMODE(dest.stat().st_mode) == 0o700
        assert not (dest / "server.key").exists()
    broker = export("broker", files, layout, services, tmp_path / "broker", tls_dir=tls.directory)
    assert {p.name for p in broker} == {"passwd", "acl", "ca.crt", "server.crt", "server.key"}
    held = b"".join(p.read_bytes() for p in broker)
    assert not any(pw.encode() in held for pw in users.values())
    assert stat.S_IMODE((tmp_path / "broker" / "server.key").stat().st_mode) == 0o600
    # Exported again without TLS files: the stale certificate goes, nothing else is touched.
    (tmp_path / "bridge" / "notes.txt").write_text("mine")
    export("bridge", files, layout, services, tmp_path / "bridge")
    assert sorted(p.name for p in (tmp_path / "bridge").iterdir()) == [".broker-export", "credentials.json",
                                                                       "notes.txt"]
    # A layout the credentials were not generated for is an error, not a partial file.
    with pytest.raises(ValidationError, match="unit-3"):
        export("devices", files, PlantLayout(units=3, automates=3, meters=()), services, tmp_path / "d3")


def test_rotating_a_password_changes_that_one_only(tmp_path: Path) -> None:
    layout = PlantLayout(units=2, automates=3, meters=())
    files = CredentialFiles(tmp_path)
    before, _ = generate(layout, Topics(), files)
    after, changed = generate(layout, Topics(), files, rotate={"unit-2"})
    assert changed == ["unit-2"] and after["unit-2"] != before["unit-2"]
    assert {u: p for u, p in after.items() if u != "unit-2"} == {u: p for u, p in before.items() if u != "unit-2"}
    stored = next(line for line in files.passwd.read_text().splitlines() if line.startswith("unit-2:"))
    salt = base64.b64decode(stored.split("$")[3])
    assert stored == f"unit-2:{hash_password(after['unit-2'], salt)}"  # the broker takes the new one only
    with pytest.raises(ValidationError, match="unit-9"):
        generate(layout, Topics(), files, rotate={"unit-9"})


def test_provision_keeps_a_sites_own_certificates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """What compose's one-shot runs: every container's folder, and the certificates a site put in
    BROKER_TLS_DIR used as they are (development ones only when there are none)."""
    own = TlsFiles(tmp_path / "site-certs")
    generate_certs(own, ("broker.plant.example",))
    own.ca_key.unlink()  # a site's CA key never leaves its CA
    before = {p.name: p.read_bytes() for p in own.directory.iterdir()}
    monkeypatch.setenv("SECRETS_DIR", str(tmp_path / "secrets"))
    monkeypatch.setenv("BROKER_TLS_DIR", str(own.directory))
    monkeypatch.setenv("PLANT_UNITS", "1")
    monkeypatch.setenv("PLANT_METER_COUNT", "1")
    assert broker_main(["provision", "--out", str(tmp_path / "out")]) == 0
    assert {p.name: p.read_bytes() for p in own.directory.iterdir()} == before
    assert (tmp_path / "out" / "broker" / "server.crt").read_bytes() == before["server.crt"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["bridge", "broker", "devices", "proxy", "webui"]
    assert json.loads((tmp_path / "out" / "webui" / "credentials.json").read_text())["users"].keys() == {"webui"}
    # nginx gets the certificate and key for HTTPS, and no one's password.
    proxy = tmp_path / "out" / "proxy"
    shown = sorted(p.name for p in proxy.iterdir() if not p.name.startswith("."))
    assert shown == ["ca.crt", "server.crt", "server.key"]
    assert (proxy / "server.key").read_bytes() == before["server.key"]
    # Half a set of certificates is an error, not a silent new CA.
    own.server_key.unlink()
    assert broker_main(["provision", "--out", str(tmp_path / "out")]) == 2
    assert "server.key is missing" in capsys.readouterr().err


def test_export_writes_through_no_planted_link(tmp_path: Path) -> None:
    """compose's root one-shot writes again into folders other containers own: a link planted there
    (`acl.tmp -> the CA's key`) must not make it overwrite or chown anything outside."""
    layout = PlantLayout(units=1, automates=1, meters=())
    files = CredentialFiles(tmp_path / "secrets")
    generate(layout, Topics(), files)
    victim = tmp_path / "victim"
    victim.write_text("precious")
    dest = tmp_path / "out"
    export("broker", files, layout, None, dest)
    for name in ("acl", "acl.tmp", "passwd.tmp", ".acl.tmp", "server.key"):
        (dest / name).unlink(missing_ok=True)
        (dest / name).symlink_to(victim)
    export("broker", files, layout, None, dest)
    assert victim.read_text() == "precious"
    assert not (dest / "acl").is_symlink() and (dest / "acl").read_bytes() == files.acl.read_bytes()
    assert not (dest / "server.key").exists() and not (dest / "server.key").is_symlink()  # cleaned up, target kept
    # The folder itself as a link: refused.
    linked = tmp_path / "linked"
    linked.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(ValidationError, match="is a link"):
        export("broker", files, layout, None, linked)


def test_export_refuses_the_folders_holding_the_secrets_themselves(tmp_path: Path) -> None:
    """`export bridge var/secrets` would have cleaned up passwd and acl and left one password."""
    layout = PlantLayout(units=1, automates=1, meters=())
    files = CredentialFiles(tmp_path / "secrets")
    generate(layout, Topics(), files)
    tls = TlsFiles(tmp_path / "secrets" / "tls")
    generate_certs(tls)
    before = {p: p.read_bytes() for p in (tmp_path / "secrets").rglob("*") if p.is_file()}
    # Through a folder that does not exist yet, too: `y/..` is only made to land there.
    for dest in (files.directory, tls.directory, tmp_path / "secrets" / ".." / "secrets",
                 tmp_path / "secrets" / "y" / ".." / "tls", tmp_path / "secrets" / "z" / ".."):
        with pytest.raises(ValidationError, match="where the credentials or certificates themselves live"):
            export("bridge", files, layout, None, dest, tls_dir=tls.directory)
    assert not (tmp_path / "secrets" / "y").exists()  # refused before anything was made
    other = tmp_path / "someone-elses"
    other.mkdir()
    (other / "credentials.json").write_text("{}")
    with pytest.raises(ValidationError, match="did not write"):
        export("bridge", files, layout, None, other)
    assert {p: p.read_bytes() for p in (tmp_path / "secrets").rglob("*") if p.is_file()} == before
