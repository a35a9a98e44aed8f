"""MQTT connection settings and the client factory every service uses.

This is the one module of the model that touches paho-mqtt: it fixes the choices every client
must share (protocol, callback API version 2, reconnect back-off, bounded queues).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt

from plantmodel.envconf import env_int, env_path, env_str
from plantmodel.errors import ValidationError

DEFAULT_PORT = 1883
DEFAULT_CREDENTIALS_FILE = Path("var/secrets/credentials.json")


@dataclass(frozen=True, slots=True)
class MqttSettings:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    username: str = ""
    password: str = ""
    keepalive: int = 30

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, default_user: str) -> MqttSettings:
        """``MQTT_HOST``, ``MQTT_PORT``, ``MQTT_USERNAME``, ``MQTT_PASSWORD``; when no password is
        given, it is looked up for the user in ``MQTT_CREDENTIALS_FILE`` (written by
        ``python -m broker credentials``)."""
        username = env_str(env, "MQTT_USERNAME", default_user)
        password = env.get("MQTT_PASSWORD", "")
        if not password:
            creds = env_path(env, "MQTT_CREDENTIALS_FILE", DEFAULT_CREDENTIALS_FILE)
            password = load_credentials(creds).get(username, "")
        return cls(
            host=env_str(env, "MQTT_HOST", "127.0.0.1"),
            port=env_int(env, "MQTT_PORT", DEFAULT_PORT, minimum=1),
            username=username,
            password=password,
        )

    def with_user(self, username: str, password: str) -> MqttSettings:
        return MqttSettings(self.host, self.port, username, password, self.keepalive)


def load_credentials(path: Path) -> dict[str, str]:
    """user -> password from the generated credentials file ({} when it does not exist)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValidationError(f"cannot read credentials file {path}: {exc}") from None
    users = data.get("users", {}) if isinstance(data, dict) else None
    if not isinstance(users, dict):
        raise ValidationError(f"credentials file {path} has no \"users\" object (regenerate it with "
                              "`python -m broker credentials`)")
    return {u: p for u, p in users.items() if isinstance(u, str) and isinstance(p, str)}


def new_client(
    settings: MqttSettings,
    client_id: str,
    *,
    clean_session: bool = True,
    manual_ack: bool = False,
    max_inflight: int = 20,
    max_queued: int = 1000,
) -> mqtt.Client:
    """A configured (not yet connected) paho client: MQTT 3.1.1, callback API v2, bounded queues
    (an unbounded QoS 1 queue collapses throughput), reconnect back-off 1..30 s."""
    client = mqtt.Client(
        callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=clean_session,
        protocol=mqtt.MQTTv311,
        manual_ack=manual_ack,
    )
    if settings.username:
        client.username_pw_set(settings.username, settings.password)
    client.max_inflight_messages_set(max_inflight)
    client.max_queued_messages_set(max_queued)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    return client


def connect_async(client: mqtt.Client, settings: MqttSettings) -> None:
    """Start connecting in the background; paho's loop keeps reconnecting after failures, so a
    service started before the broker simply waits for it."""
    client.connect_async(settings.host, settings.port, keepalive=settings.keepalive)
    client.loop_start()
