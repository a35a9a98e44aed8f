"""Production unit simulator, the store-and-forward buffer of a unit's link, and the settings."""

from __future__ import annotations

import itertools
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from devices.buffer import SendWindow
from devices.faults import Fault, FaultInjector
from devices.runner import UnitLink
from devices.settings import DevicesSettings
from devices.units import MAX_DRAIN_KG, WALK_MEASURES, UnitSimulator
from plantmodel.errors import ValidationError
from plantmodel.layout import PlantLayout
from plantmodel.measures import AUTOMATE_MEASURES, AUTOMATE_TYPE_MAX, AUTOMATE_TYPE_MIN
from plantmodel.mqtt import MqttSettings
from plantmodel.readings import Reading
from plantmodel.topics import Topics

T0 = datetime(2026, 11, 21, 10, 0, 0, 123456, tzinfo=UTC)
TICKS = 2000
RANGED = {n: m for n, m in AUTOMATE_MEASURES.items() if m.low is not None and m.high is not None}


def run(unit: int, automates: int, ticks: int, seed: int = 1,
        faults: FaultInjector | None = None) -> list[list[Reading]]:
    sim = UnitSimulator(unit, automates, random.Random(seed), faults)
    return [sim.tick(T0 + timedelta(minutes=i)) for i in range(ticks)]


@pytest.fixture(scope="module")
def long_run() -> dict[int, list[list[Reading]]]:
    return {unit: run(unit, 10, TICKS, seed=unit) for unit in (1, 6)}


def by_automate(rounds: list[list[Reading]]) -> dict[int, list[Reading]]:
    out: dict[int, list[Reading]] = {}
    for readings in rounds:
        for r in readings:
            out.setdefault(r.automate, []).append(r)
    return out


def test_values_stay_in_normal_range_and_on_step(long_run: dict[int, list[list[Reading]]]) -> None:
    for rounds in long_run.values():
        for readings in rounds:
            for r in readings:
                for name, m in RANGED.items():
                    v = getattr(r, name)
                    assert m.low <= v <= m.high, (r.unit, r.automate, name, v)
                    assert round(v, m.decimals) == v, (name, v)  # no float residue like 2.5000001
                    assert abs(v / m.step - round(v / m.step)) < 1e-9, (name, v)


def test_walks_move_over_the_whole_range(long_run: dict[int, list[list[Reading]]]) -> None:
    # A stuck or one-sided walk would pass the range test; the values must really wander.
    def values(name: str) -> list[float]:
        return [getattr(r, name) for rounds in long_run.values() for rs in rounds for r in rs]

    for name in WALK_MEASURES:
        m = AUTOMATE_MEASURES[name]
        assert min(values(name)) == m.low and max(values(name)) == m.high, name
    # The tank drains to near the bottom and is refilled near the top.
    assert min(values("milk_kg")) < 3512 + 2 * MAX_DRAIN_KG + 10 and max(values("milk_kg")) > 4607 - 10


def test_successive_values_move_by_at_most_one_step(long_run: dict[int, list[list[Reading]]]) -> None:
    for rounds in long_run.values():
        for readings in by_automate(rounds).values():
            for prev, cur in itertools.pairwise(readings):
                for name, m in RANGED.items():
                    if name != "milk_kg":
                        assert abs(getattr(cur, name) - getattr(prev, name)) <= m.step + 1e-9, name


def test_seq_counts_up_from_zero_per_automate(long_run: dict[int, list[list[Reading]]]) -> None:
    for rounds in long_run.values():
        automates = by_automate(rounds)
        assert sorted(automates) == list(range(1, 11))
        for readings in automates.values():
            assert [r.seq for r in readings] == list(range(TICKS))


def test_product_is_the_milk_difference(long_run: dict[int, list[list[Reading]]]) -> None:
    refills = 0
    for rounds in long_run.values():
        for readings in by_automate(rounds).values():
            assert readings[0].product_kg == 0
            for prev, cur in itertools.pairwise(readings):
                drop = prev.milk_kg - cur.milk_kg
                assert cur.product_kg == (drop if drop > 0 else 0)
                assert 0 <= cur.product_kg <= MAX_DRAIN_KG
                refills += drop < 0
    assert refills > 0  # the tank does get refilled over a long run


def test_types_and_ids() -> None:
    layout = PlantLayout(units=6, automates=10)
    types = set()
    for unit in range(1, layout.units + 1):
        (readings,) = run(unit, layout.automates, 1)
        for a, r in enumerate(readings, start=1):
            assert (r.unit, r.automate) == (unit, a)
            assert AUTOMATE_TYPE_MIN <= int(r.type, 16) <= AUTOMATE_TYPE_MAX
            assert r.type == PlantLayout.automate_type(unit, a)
            types.add(r.type)
    assert len(types) > 1


def test_readings_round_trip_and_carry_the_units_clock() -> None:
    for readings in run(3, 10, 50):
        for r in readings:
            assert Reading.from_json(r.to_json()) == r
            assert r.ts.tzinfo is not None and r.ts.microsecond % 1000 == 0
    (first, *_), *_ = run(3, 10, 1)
    assert first.ts == T0.replace(microsecond=123000)


def test_naive_clock_is_refused() -> None:
    with pytest.raises(ValueError):
        UnitSimulator(1, 1, random.Random(1)).tick(datetime(2026, 1, 1))


def test_same_seed_same_values() -> None:
    assert run(2, 3, 20, seed=9) == run(2, 3, 20, seed=9)
    assert run(2, 3, 20, seed=9) != run(2, 3, 20, seed=10)


def test_fault_values_cycle_and_clearing_restores_normal_values() -> None:
    injector = FaultInjector([Fault("units/2/automates/3", "tank_temp_c", (4.1, 4.0))])
    faulty = UnitSimulator(2, 4, random.Random(5), injector)
    clean = UnitSimulator(2, 4, random.Random(5))
    for i in range(6):
        f_rs, c_rs = faulty.tick(T0), clean.tick(T0)
        assert f_rs[2].tank_temp_c == (4.1, 4.0)[i % 2]
        # Nothing else is touched: other measures and other automates are the clean values.
        assert [r.measures() for r in f_rs[:2] + f_rs[3:]] == [r.measures() for r in c_rs[:2] + c_rs[3:]]
        assert {k: v for k, v in f_rs[2].measures().items() if k != "tank_temp_c"} == \
            {k: v for k, v in c_rs[2].measures().items() if k != "tank_temp_c"}
    injector.set_faults([])
    for _ in range(50):
        f_rs, c_rs = faulty.tick(T0), clean.tick(T0)
        assert f_rs == c_rs  # the walk went on untouched underneath
        assert 2.5 <= f_rs[2].tank_temp_c <= 4.0


def test_meter_faults_do_not_touch_units() -> None:
    injector = FaultInjector([Fault("meters/shellypro1pm-aabbccddeeff", "apower", (3800,))])
    assert run(1, 2, 5, seed=3, faults=injector) == run(1, 2, 5, seed=3)


# -- the send path of a unit's link (the unconfirmed store: test_devices_unconfirmed.py) ---------

def test_send_window() -> None:
    w = SendWindow(2)
    w.sent(1)
    w.sent(2)
    assert w.free == 0
    w.acked(1)
    assert w.free == 1 and len(w) == 1
    w.acked(7)  # ack seen before publish() returned its mid
    w.sent(7)
    assert len(w) == 1
    for mid in range(100, 200):  # acks of unknown mids cannot grow it without bound
        w.acked(mid)
    assert len(w._early) <= 4


class FakeClient:
    """The publish seam of paho: records messages, answers with a mid, or a full queue."""

    def __init__(self) -> None:
        self.published: list[tuple[str, str, int, bool]] = []
        self.subscribed: list[tuple[str, int]] = []
        self.full = False

    def subscribe(self, topic: str, qos: int = 0) -> tuple[int, int]:
        self.subscribed.append((topic, qos))
        return mqtt.MQTT_ERR_SUCCESS, 1000 + len(self.subscribed)

    def publish(self, topic: str, payload: str, qos: int = 0, retain: bool = False) -> Any:
        if self.full:
            return SimpleNamespace(rc=mqtt.MQTT_ERR_QUEUE_SIZE, mid=0)
        self.published.append((topic, payload, qos, retain))
        return SimpleNamespace(rc=mqtt.MQTT_ERR_SUCCESS, mid=len(self.published))


def make_link(buffer_size: int = 1000) -> tuple[UnitLink, FakeClient]:
    import threading

    sim = UnitSimulator(4, 10, random.Random(1))
    link = UnitLink(sim, Topics("plant"), buffer_size, MqttSettings(), {"unit-4": "pw"}, "creds",
                    threading.Event(), resend_after=5.0)
    fake = FakeClient()
    link.client = fake  # type: ignore[assignment]
    return link, fake


def test_unit_link_sends_in_order_within_the_window() -> None:
    link, fake = make_link()
    for i in range(30):
        link.enqueue(link.sim.tick(T0 + timedelta(minutes=i)))  # 300 readings
    assert link.pump() == 0 and not fake.published  # not connected: all kept
    link.connected = True
    assert link.pump() == 100  # never more than the window un-acknowledged
    for mid in range(1, 51):
        link.window.acked(mid)
    assert link.pump() == 50
    fake.full = True  # paho refuses: the reading stays first in line
    for mid in range(51, 61):
        link.window.acked(mid)
    assert link.pump() == 0
    fake.full = False
    for mid in range(61, 151):
        link.window.acked(mid)
    while link.pump():
        for mid in list(link.window._inflight):
            link.window.acked(mid)
    seqs = [Reading.from_json(p).seq for t, p, qos, retain in fake.published
            if t == Topics("plant").reading(4, 1)]
    assert seqs == list(range(30))
    assert len(fake.published) == 300 and all(qos == 1 and not retain for *_, qos, retain in fake.published)


def test_unit_link_buffer_is_bounded_while_offline() -> None:
    link, fake = make_link(buffer_size=25)
    for i in range(5):
        link.enqueue(link.sim.tick(T0 + timedelta(minutes=i)))
    assert link.unconfirmed == 25 and link.readings.dropped == 25
    link.connected = True
    link.pump()
    first = Reading.from_json(fake.published[0][1])
    assert first.seq == 2 and first.automate == 6  # the oldest 25 readings went


def test_unit_link_birth_message_is_retained() -> None:
    link, fake = make_link()
    link.on_online()
    (topic, payload, qos, retain), = fake.published
    assert topic == "plant/units/4/status" and '"online"' in payload and qos == 1 and retain
    assert fake.subscribed == [("plant/confirm/units/4", 1)]  # its confirmations, on every connect


# -- settings -----------------------------------------------------------------------------------

def test_settings_from_env_defaults() -> None:
    s = DevicesSettings.from_env({})
    assert (s.period, s.meter_period, s.energy_interval, s.buffer_size) == (60.0, 1.0, 60.0, 10_000)
    assert s.resend_after == 5.0
    assert s.seed is None and s.status_ntf is False and s.topic_root == "plant"
    assert s.fault_file == Path("var/faults.json")
    assert s.credentials_file == Path("var/secrets/credentials.json")
    assert (s.layout.units, s.layout.automates, len(s.layout.meters)) == (5, 10, 2)


def test_settings_from_env_values() -> None:
    s = DevicesSettings.from_env({
        "MQTT_HOST": "broker", "MQTT_PORT": "1884", "PLANT_UNITS": "6", "DEVICES_PERIOD": "2",
        "DEVICES_BUFFER": "50", "DEVICES_SEED": "42", "DEVICES_STATUS_NTF": "1",
        "DEVICES_FAULT_FILE": "/tmp/f.json", "PLANT_TOPIC_ROOT": "site/a", "DEVICES_RESEND_AFTER": "0.5"})
    assert (s.mqtt.host, s.mqtt.port, s.layout.units, s.period, s.buffer_size, s.seed) == \
        ("broker", 1884, 6, 2.0, 50, 42)
    assert s.status_ntf and s.fault_file == Path("/tmp/f.json") and s.topic_root == "site/a"
    assert s.resend_after == 0.5


@pytest.mark.parametrize("env", [{"DEVICES_STATUS_NTF": "2"}, {"DEVICES_PERIOD": "x"},
                                 {"DEVICES_BUFFER": "0"}, {"PLANT_UNITS": "0"},
                                 {"DEVICES_RESEND_AFTER": "0"}, {"DEVICES_RESEND_AFTER": "inf"},
                                 {"DEVICES_RESEND_AFTER": "nan"}, {"DEVICES_RESEND_AFTER": "soon"}])
def test_settings_from_env_errors(env: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        DevicesSettings.from_env(env)


def test_each_start_has_its_own_boot_id_on_every_reading() -> None:
    first, second = UnitSimulator(2, 3, random.Random(9)), UnitSimulator(2, 3, random.Random(9))
    readings = first.tick(T0) + first.tick(T0)
    assert {r.boot for r in readings} == {first.boot} and first.boot != second.boot
    assert json.loads(readings[0].to_json())["boot"] == first.boot
