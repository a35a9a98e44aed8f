"""The bridge service's own logic with a fake MQTT client (no broker, no database)."""

from __future__ import annotations

from typing import Any

import paho.mqtt.client as mqtt
import pytest

from bridge.processor import Outgoing
from bridge.service import Bridge
from bridge.settings import BridgeSettings
from plantmodel.errors import ValidationError


class Info:
    """As paho's MQTTMessageInfo: ``is_published`` raises when paho refused or could not send it."""

    def __init__(self, rc: int = mqtt.MQTT_ERR_SUCCESS) -> None:
        self.rc = rc
        self.published = False

    def is_published(self) -> bool:
        if self.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            raise ValueError("Message is not queued due to ERR_QUEUE_SIZE")
        if self.rc != mqtt.MQTT_ERR_SUCCESS:
            raise RuntimeError(f"Message publish failed: {mqtt.error_string(self.rc)}")
        return self.published


class FakeClient:
    def __init__(self, *_a: Any, **_k: Any) -> None:
        self.sent: list[tuple[str, str, Info]] = []
        self.rc = mqtt.MQTT_ERR_SUCCESS  # what publish answers (NO_CONN: disconnected, queued)

    def will_set(self, *_a: Any, **_k: Any) -> None:
        pass

    def publish(self, topic: str, payload: str, qos: int = 0, retain: bool = False) -> Info:
        info = Info(self.rc)
        self.sent.append((topic, payload, info))
        return info


def test_only_the_newest_confirmation_waits_while_one_is_in_flight() -> None:
    bridge = Bridge(BridgeSettings("sqlite://", metrics_port=0), sessions=None,  # type: ignore[arg-type]
                    client_factory=FakeClient)
    client: FakeClient = bridge.client  # type: ignore[assignment]
    for n in range(5):
        bridge._publish(Outgoing("plant/confirm/units/1", f"c{n}", retain=True, latest_only=True))
        bridge._publish(Outgoing("plant/alarms/x", f"a{n}", retain=True))  # never coalesced
    assert [p for t, p, _ in client.sent if "confirm" in t] == ["c0"]  # the rest waits for c0's ack
    assert [p for t, p, _ in client.sent if "alarms" in t] == ["a0", "a1", "a2", "a3", "a4"]
    bridge._publish_waiting()
    assert len([t for t, _, _ in client.sent if "confirm" in t]) == 1  # c0 not acknowledged yet
    client.sent[0][2].published = True
    bridge._publish_waiting()
    assert [p for t, p, _ in client.sent if "confirm" in t] == ["c0", "c4"]  # only the newest
    # paho refused one (its queue full): it will never be acknowledged, the next goes all the same.
    client.sent[-1] = (*client.sent[-1][:2], Info(mqtt.MQTT_ERR_QUEUE_SIZE))
    bridge._latest["plant/confirm/units/1"] = (client.sent[-1][2], None)
    bridge._publish(Outgoing("plant/confirm/units/1", "c5", retain=True, latest_only=True))
    assert [p for t, p, _ in client.sent if "confirm" in t] == ["c0", "c4", "c5"]
    # Disconnected: paho queues it (rc NO_CONN) and its result never changes; the next is not held.
    client.sent[-1][2].published = True
    client.rc = mqtt.MQTT_ERR_NO_CONN
    bridge._publish(Outgoing("plant/confirm/units/1", "c6", retain=True, latest_only=True))
    bridge._publish(Outgoing("plant/confirm/units/1", "c7", retain=True, latest_only=True))
    bridge._publish_waiting()
    assert [p for t, p, _ in client.sent if "confirm" in t][-2:] == ["c6", "c7"]


def test_partitions_deal_units_and_meters_and_refuse_nonsense() -> None:
    env = {"DATABASE_URL": "sqlite://", "PLANT_UNITS": "5", "PLANT_METERS": "m1,m2,m3", "BRIDGE_PARTITION": "2/2"}
    s = BridgeSettings.from_env(env)
    assert s.partition == (2, 2) and s.partition_of() == ([2, 4], ["m2"])
    bridge = Bridge(s, sessions=None, client_factory=FakeClient)  # type: ignore[arg-type]
    assert bridge.subscriptions() == ["$share/bridges-2of2/plant/units/2/#", "$share/bridges-2of2/plant/units/4/#",
                                      "$share/bridges-2of2/m2/#", "$share/bridges-2of2/shellies/m2/#",
                                      "$share/bridges-2of2/plant/legacy/units/2/#",
                                      "$share/bridges-2of2/plant/legacy/units/4/#",
                                      "$share/bridges-2of2/plant/legacy/meters/m2/#"]
    assert set(bridge._stale_subscriptions()) == {"#", "$share/bridges/#"}
    whole = BridgeSettings.from_env({**env, "BRIDGE_PARTITION": ""})
    assert whole.partition_of() == ([1, 2, 3, 4, 5], ["m1", "m2", "m3"])
    assert Bridge(whole, sessions=None, client_factory=FakeClient).subscriptions() == [  # type: ignore[arg-type]
        "$share/bridges/#"]
    for bad in ("3/2", "0/2", "1", "a/b", "1/2/3"):
        with pytest.raises(ValidationError, match="BRIDGE_PARTITION"):
            BridgeSettings.from_env({**env, "BRIDGE_PARTITION": bad})
    with pytest.raises(ValidationError, match="layout set explicitly, as for the broker: PLANT_UNITS"):
        BridgeSettings.from_env({"DATABASE_URL": "sqlite://", "PLANT_METERS": "m1", "BRIDGE_PARTITION": "1/2"})
    with pytest.raises(ValidationError, match="PLANT_METERS"):
        BridgeSettings.from_env({"DATABASE_URL": "sqlite://", "PLANT_UNITS": "4", "BRIDGE_PARTITION": "1/2"})
    with pytest.raises(ValidationError, match="BRIDGE_SHARE_GROUP"):
        BridgeSettings.from_env({**env, "BRIDGE_SHARE_GROUP": "a/b"})
