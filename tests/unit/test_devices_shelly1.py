"""Shelly 1PM (Gen1) simulator: topics and payloads, the W·min counter, commands, announce, faults,
settings and CLI selection, and its MQTT wiring (MeterLink with a fake paho client)."""

from __future__ import annotations

import json
import logging
import random
import re
import signal
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest

from devices import __main__ as cli
from devices import runner as runner_mod
from devices.faults import Fault, FaultInjector
from devices.runner import DeviceRunner, MeterLink, make_meter
from devices.settings import DevicesSettings, parse_meter_ids
from devices.shelly import ShellyPro1PM
from devices.shelly1 import FW_VER, MODEL, OVERTEMP_C, Shelly1PM, gen1_topic
from plantmodel.errors import ValidationError
from plantmodel.layout import PlantLayout
from plantmodel.mqtt import MqttSettings
from tests.unit.test_devices_shelly import FakeClient

METER = "shelly1pm-A4CF12F45E3B"
OTHER = "shellypro1pm-a8032ab1c2d3"
T0 = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)
P = f"shellies/{METER}"
PERIODIC = [f"{P}/relay/0", f"{P}/relay/0/power", f"{P}/relay/0/energy", f"{P}/temperature",
            f"{P}/overtemperature"]
NUMBER = re.compile(r"-?[0-9]+\.[0-9]{2}")


def meter(seed: int = 7, **kwargs: Any) -> Shelly1PM:
    return Shelly1PM(METER, random.Random(seed), start=T0, **kwargs)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def values(messages: list[tuple[str, str]]) -> dict[str, str]:
    return {topic.removeprefix(f"{P}/"): payload for topic, payload in messages}


def constant_power(sim: Shelly1PM, watts: float) -> None:
    """Freeze the charger at ``watts`` (the relay stays as it is)."""
    sim._meter.load.power = watts
    sim._meter.advance = lambda dt: None  # type: ignore[method-assign]


# -- topics and payloads ---------------------------------------------------------------------------

def test_topics_and_subscriptions() -> None:
    sim = meter()
    assert sim.gen == 1 and sim.online_topic == f"{P}/online"
    assert sim.subscriptions() == [f"{P}/relay/0/command", "shellies/command"]
    assert gen1_topic(METER, "relay/0") == f"{P}/relay/0"
    with pytest.raises(ValidationError):
        gen1_topic("a/#", "relay/0")


def test_birth_is_the_announce_then_every_value() -> None:
    sim = meter()
    messages = sim.birth(at(0))
    assert [t for t, _ in messages] == [f"{P}/announce", *PERIODIC]
    announce = messages[0][1]
    assert list(json.loads(announce)) == ["id", "model", "mac", "ip", "new_fw", "fw_ver"]
    assert json.loads(announce) == {"id": METER, "model": "SHSW-PM", "mac": "A4CF12F45E3B",
                                    "ip": sim.ip, "new_fw": False, "fw_ver": FW_VER}
    assert MODEL == "SHSW-PM" and " " not in announce  # compact, one line for mosquitto_sub
    assert re.fullmatch(r"192\.0\.2\.([1-9][0-9]?|1[0-9]{2}|2[0-4][0-9]|25[0-4])", sim.ip)
    v = values(messages[1:])
    assert v["relay/0"] == "on" and v["relay/0/energy"] == "0"  # the counter starts at boot


def test_mac_from_an_id_without_one_is_derived() -> None:
    sim = Shelly1PM("meter-hall-b", random.Random(1), start=T0)
    assert re.fullmatch(r"[0-9A-F]{12}", sim.mac)
    assert json.loads(sim.announce()[1])["mac"] == sim.mac


def test_periodic_values_every_update_period_and_nothing_between() -> None:
    sim = meter(update_period=30)
    sim.birth(at(0))
    sent_at = []
    for i in range(1, 601):
        messages = sim.tick(at(i))
        if not messages:
            continue
        sent_at.append(i)
        assert [t for t, _ in messages] == PERIODIC
        v = values(messages)
        assert v["relay/0"] in ("on", "off")
        assert NUMBER.fullmatch(v["relay/0/power"]) and NUMBER.fullmatch(v["temperature"])
        assert re.fullmatch(r"[0-9]+", v["relay/0/energy"])
        assert v["overtemperature"] in ("0", "1")
    assert sent_at == list(range(30, 601, 30))


def test_a_stall_skips_the_missed_updates() -> None:
    sim = meter(update_period=30)
    assert sim.tick(at(29)) == []
    assert sim.tick(at(300)) != []  # one update, not a burst
    assert sim.tick(at(301)) == [] and sim.tick(at(329)) == [] and sim.tick(at(330)) != []


def test_load_is_an_ev_charger_within_realistic_bounds() -> None:
    sim = meter(seed=3, update_period=5)
    powers, temps = [], []
    for i in range(1, 4 * 3600):
        v = values(sim.tick(at(i)))
        if v:
            powers.append(float(v["relay/0/power"]))
            temps.append(float(v["temperature"]))
            assert v["overtemperature"] == "0"
    assert 0 < min(powers) < 3 and 1500 < max(powers) < 3500  # idle and charging both happen
    assert min(temps) > 25 and max(temps) < OVERTEMP_C


# -- the watt-minute counter -----------------------------------------------------------------------

def test_energy_is_counted_in_watt_minutes() -> None:
    sim = meter(update_period=60)
    constant_power(sim, 600.0)
    for i in range(1, 61):
        messages = sim.tick(at(i))
    # 600 W for one minute: 600 W·min (= 10 Wh, which the Gen2 device would report).
    assert values(messages)["relay/0/energy"] == "600" and sim.energy_wmin == 600
    for i in range(61, 121):
        messages = sim.tick(at(i))
    assert values(messages)["relay/0/energy"] == "1200"


def test_energy_counter_is_monotonic_integer_and_follows_the_power() -> None:
    sim = meter(seed=5, update_period=30)
    prev, expected_wmin, power = 0, 0.0, sim._meter.power_w
    for i in range(1, 3 * 3600):
        expected_wmin += power / 60.0  # one second at the power held since the last tick
        v = values(sim.tick(at(i)))
        power = sim._meter.power_w
        if v:
            energy = int(v["relay/0/energy"])
            assert energy >= prev
            assert abs(energy - expected_wmin) <= 1.0  # floored, never rounded up
            prev = energy
    assert prev > 0


def test_counter_restarts_from_zero_at_boot() -> None:
    first = meter(update_period=30)
    for i in range(1, 3600):
        first.tick(at(i))
    assert first.energy_wmin > 0
    rebooted = Shelly1PM(METER, random.Random(7), start=at(3600), update_period=30)
    assert values(rebooted.birth(at(3600)))["relay/0/energy"] == "0"


# -- commands ----------------------------------------------------------------------------------------

def command(sim: Shelly1PM, payload: bytes | str, topic: str = f"{P}/relay/0/command") -> list[tuple[str, str]]:
    return sim.handle_message(topic, payload)


def test_relay_commands_switch_and_publish_the_state_at_once() -> None:
    sim = meter(update_period=30)
    constant_power(sim, 1000.0)
    assert command(sim, b"off") == [(f"{P}/relay/0", "off")] and sim.output is False
    assert command(sim, "off") == [(f"{P}/relay/0", "off")]  # confirmed even when unchanged
    assert command(sim, b"toggle") == [(f"{P}/relay/0", "on")] and sim.output is True
    assert command(sim, b"toggle") == [(f"{P}/relay/0", "off")]
    for i in range(1, 31):
        messages = sim.tick(at(i))
    v = values(messages)
    assert v["relay/0"] == "off" and v["relay/0/power"] == "0.00" and v["relay/0/energy"] == "0"
    assert command(sim, b"on") == [(f"{P}/relay/0", "on")]
    for i in range(31, 61):
        messages = sim.tick(at(i))
    v = values(messages)
    # Switched on again the charger starts idle (a few W), as on the Gen2 simulator.
    assert v["relay/0"] == "on" and 0 < float(v["relay/0/power"]) < 5


@pytest.mark.parametrize(("topic", "payload"), [
    (f"{P}/relay/0/command", b"ON"), (f"{P}/relay/0/command", b"1"), (f"{P}/relay/0/command", b""),
    (f"{P}/relay/0/command", b"\xff\xfe"), (f"{P}/relay/0/command", b"announce"),
    ("shellies/command", b"update"), ("shellies/command", b"on"),
    (f"{P}/relay/1/command", b"off"), ("shellies/shelly1pm-000000000000/relay/0/command", b"off"),
])
def test_anything_else_is_ignored_with_a_debug_log(topic: str, payload: bytes,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    sim = meter()
    with caplog.at_level(logging.DEBUG, logger="devices.shelly1"):
        assert sim.handle_message(topic, payload) == []
    assert sim.output is True and "ignoring" in caplog.text


def test_announce_command_answers_on_the_own_prefix() -> None:
    sim = meter()
    ((topic, payload),) = command(sim, b"announce", "shellies/command")
    assert topic == f"{P}/announce" and json.loads(payload)["id"] == METER
    assert (topic, payload) == sim.announce()


# -- faults --------------------------------------------------------------------------------------------

def test_forced_values_are_published_and_cycle_per_report() -> None:
    faults = FaultInjector([Fault(f"meters/{METER}", "apower", (3800, 3790)),
                            Fault(f"meters/{METER}", "temperature_c", (OVERTEMP_C + 5,)),
                            Fault(f"meters/{METER}", "energy_wh", (10.5,))])
    sim = meter(faults=faults, update_period=10)
    published = []
    for i in range(1, 61):
        v = values(sim.tick(at(i)))
        if v:
            published.append(v["relay/0/power"])
            assert v["temperature"] == "95.00" and v["overtemperature"] == "1"
            assert v["relay/0/energy"] == "630"  # 10.5 Wh = 630 W·min
    assert published == ["3800.00", "3790.00"] * 3
    faults.set_faults([])
    for i in range(61, 600):
        v = values(sim.tick(at(i)))
        if v:
            assert float(v["relay/0/power"]) < 3500 and v["overtemperature"] == "0"
            assert int(v["relay/0/energy"]) == sim.energy_wmin  # the true counter, untouched


def test_faults_on_other_meters_or_gen2_only_measures_change_nothing() -> None:
    faults = FaultInjector([Fault(f"meters/{OTHER}", "apower", (3800,)),
                            Fault(f"meters/{METER}", "voltage", (250,))])
    sim, ref = meter(faults=faults, update_period=10), meter(update_period=10)
    for i in range(1, 100):
        assert sim.tick(at(i)) == ref.tick(at(i))


# -- selection: settings, CLI, runner ---------------------------------------------------------------

LAYOUT = PlantLayout(units=1, automates=1, meters=(METER, OTHER))
LAYOUT_ENV = {"PLANT_UNITS": "1", "PLANT_AUTOMATES": "1", "PLANT_METERS": f"{METER},{OTHER}"}


def test_parse_meter_ids() -> None:
    assert parse_meter_ids(f" {METER}, ,{OTHER},{METER}") == (METER, OTHER)
    assert parse_meter_ids("") == parse_meter_ids(" , ") == ()
    with pytest.raises(ValidationError, match="--gen1: invalid meter id 'a/b'"):
        parse_meter_ids("a/b", "--gen1")


def test_gen1_meters_from_env() -> None:
    assert DevicesSettings.from_env(LAYOUT_ENV).gen1_meters == ()
    s = DevicesSettings.from_env({**LAYOUT_ENV, "DEVICES_GEN1_METERS": METER})
    assert s.gen1_meters == (METER,) and s.gen1_update_period == 30.0


@pytest.mark.parametrize("ids", ["shelly1pm-000000000000", f"{METER},nope"])
def test_a_gen1_meter_outside_the_layout_is_an_error(ids: str) -> None:
    with pytest.raises(ValidationError, match="not in the layout") as exc:
        DevicesSettings.from_env({**LAYOUT_ENV, "DEVICES_GEN1_METERS": ids})
    assert METER in exc.value.reason and OTHER in exc.value.reason  # the layout's meters are listed


def test_runner_builds_gen1_only_for_the_listed_meters(tmp_path: Path) -> None:
    settings = DevicesSettings(layout=LAYOUT, gen1_meters=(METER,), credentials_file=tmp_path / "none.json",
                               energy_interval=10.0, run_units=False)
    runner = DeviceRunner(settings)
    sims = {m.name: m.sim for m in runner.meters}
    assert isinstance(sims[METER], Shelly1PM) and isinstance(sims[OTHER], ShellyPro1PM)
    assert sims[METER].update_period == 5.0  # half the energy minute: 5 s in --demo
    for link in runner.meters:
        link.client.loop_stop()
    rng = random.Random(1)
    assert isinstance(make_meter(OTHER, settings, rng), ShellyPro1PM)


class _FakeRunner:
    seen: ClassVar[list[DevicesSettings]] = []

    def __init__(self, settings: DevicesSettings) -> None:
        self.seen.append(settings)

    def run(self) -> int:
        return 0

    def stop(self) -> None:
        pass


@pytest.fixture
def fake_run(monkeypatch: pytest.MonkeyPatch) -> list[DevicesSettings]:
    _FakeRunner.seen = []
    monkeypatch.setattr(runner_mod, "DeviceRunner", _FakeRunner)
    monkeypatch.setattr(signal, "signal", lambda *a: None)
    for key in ("DEVICES_GEN1_METERS", "DEVICES_STATUS_NTF"):
        monkeypatch.delenv(key, raising=False)
    for key, value in LAYOUT_ENV.items():
        monkeypatch.setenv(key, value)
    return _FakeRunner.seen


def test_cli_gen1_and_status_ntf(fake_run: list[DevicesSettings], monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli.main(["run", "--demo"]) == 0
    assert fake_run[-1].gen1_meters == () and fake_run[-1].status_ntf is False
    assert fake_run[-1].gen1_update_period == 5.0
    assert cli.main(["run", "--gen1", f"{OTHER}, {METER}", "--status-ntf"]) == 0
    assert fake_run[-1].gen1_meters == (OTHER, METER) and fake_run[-1].status_ntf is True
    # --gen1 overrides the environment, even a wrong one; '' makes every meter Gen2.
    monkeypatch.setenv("DEVICES_GEN1_METERS", "nope")
    assert cli.main(["run", "--gen1", METER]) == 0 and fake_run[-1].gen1_meters == (METER,)
    assert cli.main(["run", "--gen1", ""]) == 0 and fake_run[-1].gen1_meters == ()


def test_cli_unknown_gen1_meter_is_a_clear_error(fake_run: list[DevicesSettings],
                                                 capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli.main(["run", "--gen1", "shelly1pm-000000000000"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Gen1 meter(s) shelly1pm-000000000000") and "not in the layout" in err
    monkeypatch.setenv("DEVICES_GEN1_METERS", "nope")
    assert cli.main(["run"]) == 2 and "nope" in capsys.readouterr().err
    assert not fake_run


def test_cli_help_documents_both_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--gen1 ID[,ID...]" in text and "DEVICES_GEN1_METERS" in text
    assert "--status-ntf" in text and "DEVICES_STATUS_NTF=1" in text and "shellies/<id>/" in text


# -- MQTT wiring -------------------------------------------------------------------------------------------

def make_link(sim: Shelly1PM) -> tuple[MeterLink, FakeClient]:
    link = MeterLink(sim, MqttSettings(), {METER: "pw"}, "creds", threading.Event())
    assert link.client._will_topic == f"{P}/online".encode() and link.client._will_payload == b"false"
    assert link.client._will_retain
    fake = FakeClient()
    link.client = fake  # type: ignore[assignment]
    return link, fake


def test_meter_link_gen1_connect_commands_and_ticks() -> None:
    sim = Shelly1PM(METER, random.Random(7))  # booted now: the link ticks with the wall clock
    link, fake = make_link(sim)
    link.on_online()
    assert fake.subscribed == [(f"{P}/relay/0/command", 1), ("shellies/command", 1)]
    topics = [(t, retain) for t, _, _, retain in fake.published]
    assert topics == [(f"{P}/online", True), (f"{P}/announce", False), *((t, False) for t in PERIODIC)]
    assert fake.published[0][1] == "true" and all(qos == 1 for _, _, qos, _ in fake.published)
    fake.published.clear()

    link._on_message(None, None, _msg(f"{P}/relay/0/command", b"off"))  # type: ignore[arg-type]
    assert fake.published == [(f"{P}/relay/0", "off", 1, False)]
    link._on_message(None, None, _msg("shellies/command", b"announce"))  # type: ignore[arg-type]
    assert fake.published[-1][0] == f"{P}/announce"
    fake.published.clear()

    link.tick(datetime.now(UTC) + timedelta(seconds=31))  # not connected: nothing is kept
    assert fake.published == []
    link.connected = True
    link.tick(datetime.now(UTC) + timedelta(seconds=62))
    assert [t for t, *_ in fake.published] == PERIODIC
    assert link.goodbye() is not None and fake.published[-1] == (f"{P}/online", "false", 1, True)


def _msg(topic: str, payload: bytes) -> Any:
    from types import SimpleNamespace

    return SimpleNamespace(topic=topic, payload=payload)


def _acl_match(pattern: str, topic: str) -> bool:
    """Mosquitto's topic filter matching (+ one level, # the rest)."""
    p, t = pattern.split("/"), topic.split("/")
    for i, part in enumerate(p):
        if part == "#":
            return True
        if i >= len(t) or (part != "+" and part != t[i]):
            return False
    return len(p) == len(t)


def test_the_broker_acl_allows_every_gen1_topic() -> None:
    from broker.credentials import acl_text
    from plantmodel.topics import Topics

    lines = acl_text(LAYOUT, Topics()).splitlines()
    start = lines.index(f"user {METER}")
    rules = []
    for line in lines[start + 1:]:
        if not line.startswith("topic "):
            break
        _, access, pattern = line.split(" ", 2)
        rules.append((access, pattern))
    sim = meter(update_period=5)
    published = [sim.online_topic, *(t for t, _ in sim.birth(at(0)))]
    published += [t for i in range(1, 20) for t, _ in sim.tick(at(i))]
    published += [t for t, _ in sim.handle_message(sim.command_topic, b"toggle")]
    for topic in set(published):
        assert any(a in ("write", "readwrite") and _acl_match(p, topic) for a, p in rules), topic
    for topic in sim.subscriptions():
        assert any(a in ("read", "readwrite") and _acl_match(p, topic) for a, p in rules), topic
