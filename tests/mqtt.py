"""Small MQTT test clients (real paho clients against the test broker)."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import paho.mqtt.client as mqtt

from plantmodel.mqtt import MqttSettings, new_client
from tests.servers import MosquittoServer


def settings_for(server: MosquittoServer, user: str | None, password: str | None = None) -> MqttSettings:
    if user is None:
        return MqttSettings("127.0.0.1", server.port)
    return MqttSettings("127.0.0.1", server.port, user, password if password is not None else server.users[user])


def try_connect(server: MosquittoServer, user: str | None, password: str | None = None) -> mqtt.ReasonCode | None:
    """Connect once; return the broker's CONNACK reason (None = no answer)."""
    result: list[Any] = []
    done = threading.Event()
    client = new_client(settings_for(server, user, password), f"test-{uuid.uuid4().hex[:8]}")

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        result.append(reason)
        done.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", server.port)
    client.loop_start()
    done.wait(5)
    client.disconnect()
    client.loop_stop()
    return result[0] if result else None


class Client:
    """A connected client that records what it receives on its subscriptions.

    The broker takes the user name as the client id (``client_id`` is sent but replaced), so two
    clients of one user kick each other off: give each concurrent client its own user
    (``server.debug_user()``, ``server.bridge_user()``). ``will`` is (topic, payload), retained."""

    def __init__(self, server: MosquittoServer, user: str, subscribe: list[str] | None = None,
                 client_id: str | None = None, clean_session: bool = True,
                 will: tuple[str, str] | None = None) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.connects = 0
        self.disconnects = 0  # unexpected ones too: paho reconnects by itself, so count them
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._subs = subscribe or []
        self.client = new_client(settings_for(server, user), client_id or f"test-{user}-{uuid.uuid4().hex[:6]}",
                                 clean_session=clean_session)
        if will is not None:
            self.client.will_set(will[0], will[1], qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.connect("127.0.0.1", server.port)
        self.client.loop_start()
        if self._subs and not self._subscribed.wait(5):
            raise TimeoutError(f"{user} could not subscribe")

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            return
        with self._lock:
            self.connects += 1
        self._connected.set()
        if self._subs:
            client.subscribe([(t, 1) for t in self._subs])

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, _reason: Any, _p: Any) -> None:
        with self._lock:
            self.disconnects += 1

    def wait_connected(self, timeout: float = 5) -> None:
        if not self._connected.wait(timeout):
            raise TimeoutError("no successful CONNACK")

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def received(self, prefix: str = "") -> list[tuple[str, bytes, bool]]:
        with self._lock:
            return [m for m in self.messages if m[0].startswith(prefix)]

    def publish(self, topic: str, payload: str | bytes, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def settle(seconds: float = 0.5) -> None:
    time.sleep(seconds)
